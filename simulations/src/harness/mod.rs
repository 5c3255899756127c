//! A socket-free whole network on a virtual clock: clients, gateways and
//! mixes running the protocol's own code, driven by hand.
//!
//! Every client is an [`aegis_proto::Endpoint`] attached to a gateway; every
//! node keeps real Sphinx keys and a replay filter, unwraps each packet with
//! `aegis_mix_packet::process_frame`, holds it in an [`aegis_proto::Mixer`]
//! and, at a gateway, stores it in a mailbox served under
//! [`aegis_proto::access`]'s limits; nodes send their own loop cover along
//! [`aegis_proto::Topology::loop_route`]. Links are queues with a fixed latency
//! that lose each packet with a set probability (none by default). Nothing reads a clock or opens a socket, and one seeded
//! RNG makes a run reproducible bit for bit, so tests can script faults —
//! a client offline for hours, a mix lost, a gateway restarted — and check
//! exactly-once delivery in seconds. This is quinn-proto's `Pair` idea for
//! a whole mixnet.

mod config;
mod node;

pub use config::{HarnessConfig, HarnessError};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aegis_directory::constants::MIX_LAYERS;
use aegis_directory::{NetworkParameters, Role};
use aegis_mix_packet::{Geometry, MailboxId, NodeId, SphinxPublicKey, SphinxSecret};
use aegis_proto::delivery::OutboxError;
use aegis_proto::testnet;
use aegis_proto::{
    Address, Endpoint, EndpointConfig, EndpointEvent, Inbox, InboxConfig, LocalId, MessageStatus,
    Outbox, OutboxConfig, Own, Topology,
};
use rand::{Rng as _, RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution as _, Exp};

use crate::clock::EventQueue;
use node::{Arrival, SimNode};

/// The harness's first epoch.
const EPOCH: u64 = 1;
/// Packets each replay filter is sized for: hours of the test network's traffic.
const FILTER_CAPACITY: u64 = 200_000;

/// One line of a run's transcript: what happened, when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptLine {
    /// Virtual time.
    pub at: Duration,
    /// What happened.
    pub what: String,
}

/// Counts over the whole network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HarnessStats {
    /// Frames a node unwrapped.
    pub hops: u64,
    /// Frames refused as replays.
    pub replays: u64,
    /// Frames lost: sent to a stopped node or from an offline client.
    pub lost: u64,
    /// Frames put on a link (client to gateway, node to node).
    pub link_frames: u64,
    /// Of those, frames the link lost ([`HarnessConfig::link_loss`]).
    pub link_lost: u64,
    /// Packets refused by a node's mixer, a gateway's rate limit or a full mailbox.
    pub refused: u64,
    /// Drop cover discarded at its exit gateway.
    pub drop_cover: u64,
    /// Node loops sent.
    pub node_loops_sent: u64,
    /// Node loops back.
    pub node_loops_returned: u64,
}

struct SimClient {
    endpoint: Endpoint<u32>,
    gateway: usize,
    address: Address,
    online: bool,
    /// Only the newest scheduled wake-up acts; older ones are stale.
    wake: u64,
    delivered: Vec<Vec<u8>>,
    statuses: Vec<(LocalId, MessageStatus)>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A client's endpoint has something to do (the number tells stale
    /// wake-ups from the current one).
    ClientWake(usize, u64),
    /// A frame reaches a node.
    Frame {
        node: usize,
        frame: Vec<u8>,
        from_client: Option<usize>,
    },
    /// A node's mixer may have packets due.
    NodeWake(usize),
    /// A node sends loop cover.
    NodeLoop(usize),
    /// A pull's answer reaches a client.
    Pulled {
        client: usize,
        entries: Vec<([u8; 8], Vec<u8>)>,
    },
}

/// The consensus for `epoch` listing the nodes `listed` (indices into
/// `nodes`, gateways first, then the mixes layer by layer).
fn consensus_of<R: rand::CryptoRng + ?Sized>(
    rng: &mut R,
    nodes: &[SimNode],
    listed: &[usize],
    epoch: u64,
    config: &HarnessConfig,
    parameters: &NetworkParameters,
) -> Arc<Topology> {
    let descriptors = |range: std::ops::Range<usize>| -> Vec<_> {
        listed
            .iter()
            .filter(|i| range.contains(i))
            .map(|&i| nodes[i].secrets.descriptor(epoch))
            .collect()
    };
    let gateways = descriptors(0..config.gateways);
    let mixes: [Vec<_>; MIX_LAYERS] = std::array::from_fn(|layer| {
        let start = config.gateways + layer * config.width;
        descriptors(start..start + config.width)
    });
    let document = testnet::consensus(rng, epoch, *parameters, mixes, gateways);
    Arc::new(Topology::new(document))
}

/// A whole network on a virtual clock.
pub struct Harness {
    rng: ChaCha20Rng,
    geometry: Geometry,
    topology: Arc<Topology>,
    latency: Duration,
    nodes: Vec<SimNode>,
    by_id: HashMap<NodeId, usize>,
    clients: Vec<SimClient>,
    queue: EventQueue<Event>,
    loop_gap: Option<Exp<f64>>,
    config: HarnessConfig,
    transcript: Vec<TranscriptLine>,
    stats: HarnessStats,
}

impl Harness {
    /// Builds the network and starts every client and node at time zero.
    pub fn new(config: HarnessConfig) -> Result<Self, HarnessError> {
        if config.width == 0 || config.gateways == 0 || config.clients == 0 {
            return Err(HarnessError::Empty);
        }
        if !(0.0..=1.0).contains(&config.link_loss) {
            return Err(HarnessError::LinkLoss(config.link_loss));
        }
        config.parameters.validate()?;
        let mut rng = ChaCha20Rng::seed_from_u64(config.seed);
        // The consensus names the geometry, and so the packet format, as a
        // real network's does.
        let geometry = Geometry::by_hash(&config.parameters.geometry_hash)
            .ok_or(HarnessError::UnknownGeometry)?;
        let capacity = FILTER_CAPACITY;
        let mut secrets = Vec::new();
        let node = |rng: &mut ChaCha20Rng, role, index| {
            testnet::node_in(geometry.format, rng, role, EPOCH, index, capacity)
        };
        for index in 0..config.gateways {
            secrets.push(node(&mut rng, Role::Gateway, index));
        }
        for index in 0..MIX_LAYERS * config.width {
            secrets.push(node(&mut rng, Role::Mix, config.gateways + index));
        }
        let nodes: Vec<SimNode> = secrets
            .into_iter()
            .map(|s| SimNode::new(s, &config.parameters))
            .collect();
        let listed: Vec<usize> = (0..nodes.len()).collect();
        let topology = consensus_of(
            &mut rng,
            &nodes,
            &listed,
            EPOCH,
            &config,
            &config.parameters,
        );
        let by_id = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
        let mut harness = Harness {
            rng,
            geometry,
            topology,
            latency: config.link_latency,
            nodes,
            by_id,
            clients: Vec::new(),
            queue: EventQueue::new(),
            loop_gap: Exp::new(config.parameters.lambda_m).ok(),
            config: config.clone(),
            transcript: Vec::new(),
            stats: HarnessStats::default(),
        };
        for index in 0..config.clients {
            harness.add_client(index % config.gateways, &config.outbox);
        }
        for node in 0..harness.nodes.len() {
            harness.schedule_loop(node, Duration::ZERO);
        }
        Ok(harness)
    }

    fn add_client(&mut self, gateway: usize, outbox: &OutboxConfig) {
        let mut sealing = [0u8; 32];
        self.rng.fill_bytes(&mut sealing);
        let sealing = SphinxSecret::from(sealing);
        let mailbox = MailboxId(self.rng.random());
        let address = Address {
            gateway: self.nodes[gateway].id,
            mailbox,
            mailbox_key: SphinxPublicKey::from(&sealing),
        };
        let own = Own {
            gateway: address.gateway,
            mailbox,
            sealing,
        };
        let endpoint = Endpoint::new(
            &mut self.rng,
            EndpointConfig::default(),
            self.geometry.clone(),
            own,
            Arc::clone(&self.topology),
            Outbox::new(outbox.clone()),
            Inbox::new(InboxConfig::default()),
            self.queue.now(),
        );
        let index = self.clients.len();
        self.clients.push(SimClient {
            endpoint,
            gateway,
            address,
            online: true,
            wake: 0,
            delivered: Vec::new(),
            statuses: Vec::new(),
        });
        self.schedule_wake(index);
    }

    /// Schedules client `index`'s next wake-up, superseding earlier ones.
    fn schedule_wake(&mut self, index: usize) {
        let client = &mut self.clients[index];
        client.wake += 1;
        let at = client.endpoint.poll_timeout().max(self.queue.now());
        self.queue
            .schedule(at, Event::ClientWake(index, client.wake));
    }

    /// Virtual time now.
    pub fn now(&self) -> Duration {
        self.queue.now()
    }

    /// The consensus every client and node uses.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Queues `message` from client `from` to client `to`.
    pub fn send(
        &mut self,
        from: usize,
        to: usize,
        message: Vec<u8>,
    ) -> Result<LocalId, OutboxError> {
        let address = self.clients[to].address.clone();
        let now = self.now();
        let client = &mut self.clients[from];
        let local = client
            .endpoint
            .queue(&mut self.rng, to as u32, address, message, now)?;
        self.note(format!(
            "client {from} queued message {} for client {to}",
            local.0
        ));
        self.schedule_wake(from);
        Ok(local)
    }

    /// Reply blocks client `from` gives away (encoded), over which client
    /// `to` can answer without learning `from`'s address.
    pub fn give_reply_blocks(&mut self, from: usize, to: usize, count: usize) -> Vec<Vec<u8>> {
        let address = self.clients[to].address.clone();
        let now = self.now();
        self.clients[from]
            .endpoint
            .give_reply_blocks(&mut self.rng, &address, count, now)
    }

    /// Queues `message` from client `from` over reply blocks someone gave
    /// it (the anonymous recipient is `u32::MAX` to `from`'s endpoint).
    pub fn reply_over_blocks(
        &mut self,
        from: usize,
        blocks: &[Vec<u8>],
        message: Vec<u8>,
    ) -> Result<LocalId, OutboxError> {
        let decoded = blocks
            .iter()
            .filter_map(|b| aegis_mix_packet::SurbAck::decode(&self.geometry, b).ok())
            .collect();
        let now = self.now();
        let local = self.clients[from].endpoint.queue_over_blocks(
            &mut self.rng,
            u32::MAX,
            decoded,
            message,
            now,
        )?;
        self.note(format!(
            "client {from} queued message {} over reply blocks",
            local.0
        ));
        self.schedule_wake(from);
        Ok(local)
    }

    /// Reply blocks client `client` still holds for its anonymous
    /// recipient.
    pub fn reply_blocks_left(&self, client: usize) -> usize {
        self.clients[client].endpoint.reply_blocks_left(&u32::MAX)
    }

    /// Takes a client off the network (its device is off: it neither sends
    /// nor pulls) or brings it back.
    pub fn set_online(&mut self, client: usize, online: bool) {
        self.clients[client].online = online;
        self.note(format!(
            "client {client} {}",
            if online { "online" } else { "offline" }
        ));
        if online {
            self.schedule_wake(client);
        }
    }

    /// Stops a node for good: what it holds is lost, and frames sent to it
    /// are lost. The consensus still lists it until the next epoch.
    pub fn stop_node(&mut self, node: NodeId) {
        if let Some(&index) = self.by_id.get(&node) {
            self.nodes[index].stop();
            self.note(format!("node {index} stopped"));
        }
    }

    /// Restarts gateway `index`: packets in its mixer and its client
    /// sessions are lost, its mailboxes and replay filter survive (they are
    /// on disk in a real gateway).
    pub fn restart_gateway(&mut self, index: usize) {
        self.nodes[index].restart();
        self.note(format!("gateway {index} restarted"));
    }

    /// Publishes the next epoch's consensus, leaving out `without` (nodes
    /// that stopped publishing descriptors). Nodes keep the previous
    /// epoch's keys, so packets built before still cross.
    pub fn next_epoch(&mut self, without: &[NodeId]) {
        let epoch = self.topology.epoch + 1;
        for node in &mut self.nodes {
            node.secrets
                .keys_from(&mut self.rng, epoch, FILTER_CAPACITY);
        }
        let listed: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !without.contains(&self.nodes[i].id))
            .collect();
        let parameters = self.topology.parameters;
        self.topology = consensus_of(
            &mut self.rng,
            &self.nodes,
            &listed,
            epoch,
            &self.config,
            &parameters,
        );
        let now = self.now();
        for client in &mut self.clients {
            client
                .endpoint
                .set_topology(Arc::clone(&self.topology), now);
        }
        self.note(format!("epoch {epoch} with {} nodes", listed.len()));
    }

    /// The mixes of `layer` (0-based), by identity.
    pub fn mixes(&self, layer: usize) -> Vec<NodeId> {
        self.topology.layers.get(layer).cloned().unwrap_or_default()
    }

    /// Runs every event up to and including `until`.
    pub fn run_until(&mut self, until: Duration) {
        while let Some(at) = self.queue.peek_time() {
            if at > until {
                break;
            }
            let Some((now, event)) = self.queue.pop() else {
                break;
            };
            self.handle(now, event);
        }
    }

    /// Runs for `span` of virtual time.
    pub fn run_for(&mut self, span: Duration) {
        self.run_until(self.now() + span);
    }

    /// The messages client `client` received, in order of arrival.
    pub fn delivered(&self, client: usize) -> &[Vec<u8>] {
        &self.clients[client].delivered
    }

    /// Every status client `client` was shown for its messages, in order.
    pub fn statuses(&self, client: usize) -> &[(LocalId, MessageStatus)] {
        &self.clients[client].statuses
    }

    /// What happened, in order: the run's transcript.
    pub fn transcript(&self) -> &[TranscriptLine] {
        &self.transcript
    }

    /// The packet geometry the network runs (its consensus names it).
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Counts over the whole network.
    pub fn stats(&self) -> HarnessStats {
        let mut stats = self.stats;
        for node in &self.nodes {
            stats.node_loops_sent += node.loops.stats().sent;
            stats.node_loops_returned += node.loops.stats().returned;
        }
        stats
    }

    /// A client's endpoint figures.
    pub fn client_stats(&self, client: usize) -> aegis_proto::EndpointStats {
        self.clients[client].endpoint.stats()
    }

    fn note(&mut self, what: String) {
        self.transcript.push(TranscriptLine {
            at: self.now(),
            what,
        });
    }

    fn handle(&mut self, now: Duration, event: Event) {
        match event {
            Event::ClientWake(client, wake) => {
                if self.clients[client].wake == wake {
                    self.client_wake(client, now);
                }
            }
            Event::Frame {
                node,
                frame,
                from_client,
            } => self.frame(node, frame, from_client, now),
            Event::NodeWake(node) => self.node_wake(node, now),
            Event::NodeLoop(node) => self.node_loop(node, now),
            Event::Pulled { client, entries } => {
                if self.clients[client].online {
                    let endpoint = &mut self.clients[client].endpoint;
                    endpoint.handle_pulled(&mut self.rng, entries, now);
                    self.client_events(client);
                }
            }
        }
    }

    fn client_wake(&mut self, index: usize, now: Duration) {
        let client = &mut self.clients[index];
        if !client.online {
            return;
        }
        client.endpoint.handle_timeout(&mut self.rng, now);
        let gateway = client.gateway;
        let mut frames = Vec::new();
        while let Some(frame) = client.endpoint.poll_transmit() {
            frames.push(frame);
        }
        // The next slots' packets are built once these have left.
        client.endpoint.prepare(&mut self.rng, now);
        let pull = client.endpoint.poll_pull(now);
        let mailbox = client.address.mailbox;
        for frame in frames {
            if !self.link_carries() {
                continue;
            }
            self.queue.schedule(
                now + self.latency,
                Event::Frame {
                    node: gateway,
                    frame,
                    from_client: Some(index),
                },
            );
        }
        if let Some(ack) = pull {
            let at = now + self.latency;
            match self.nodes[gateway].pull(&mut self.rng, &self.geometry, index, &mailbox, &ack, at)
            {
                Some(entries) => self.queue.schedule(
                    now + self.latency * 2,
                    Event::Pulled {
                        client: index,
                        entries,
                    },
                ),
                None => self.clients[index].endpoint.pull_failed(ack),
            }
        }
        self.client_events(index);
        self.schedule_wake(index);
    }

    fn client_events(&mut self, index: usize) {
        while let Some(event) = self.clients[index].endpoint.poll_event() {
            match event {
                EndpointEvent::Status(status) => {
                    self.note(format!(
                        "client {index} message {} {:?}",
                        status.local_id.0, status.status
                    ));
                    self.clients[index]
                        .statuses
                        .push((status.local_id, status.status));
                }
                EndpointEvent::Message(bytes) => {
                    self.note(format!("client {index} received {} bytes", bytes.len()));
                    self.clients[index].delivered.push(bytes);
                }
                EndpointEvent::KeepFragment { .. } | EndpointEvent::ForgetFragments { .. } => {}
            }
        }
    }

    fn frame(&mut self, index: usize, frame: Vec<u8>, from_client: Option<usize>, now: Duration) {
        let current = self.topology.epoch;
        let epochs = [current, current.saturating_sub(1)];
        let arrival = self.nodes[index].receive(&self.geometry, &frame, &epochs, from_client, now);
        match arrival {
            Arrival::Lost => self.stats.lost += 1,
            Arrival::Replayed => self.stats.replays += 1,
            Arrival::Refused => self.stats.refused += 1,
            Arrival::Invalid => {}
            Arrival::Held => self.stats.hops += 1,
            Arrival::Delivered | Arrival::LoopBack => self.stats.hops += 1,
            Arrival::DropCover => {
                self.stats.hops += 1;
                self.stats.drop_cover += 1;
            }
        }
        if let Some(deadline) = self.nodes[index].next_deadline() {
            self.queue.schedule(deadline, Event::NodeWake(index));
        }
    }

    fn node_wake(&mut self, index: usize, now: Duration) {
        for (next_hop, frame) in self.nodes[index].due(&mut self.rng, now) {
            self.forward(next_hop, frame, now);
        }
        if let Some(deadline) = self.nodes[index].next_deadline()
            && deadline > now
        {
            self.queue.schedule(deadline, Event::NodeWake(index));
        }
    }

    /// Whether a link carries the frame put on it (else it is lost and
    /// counted). With no loss configured the RNG is not drawn from, so
    /// lossless runs keep their transcripts.
    fn link_carries(&mut self) -> bool {
        self.stats.link_frames += 1;
        let loss = self.config.link_loss;
        if loss > 0.0 && self.rng.random_bool(loss) {
            self.stats.link_lost += 1;
            return false;
        }
        true
    }

    fn forward(&mut self, next_hop: NodeId, frame: Vec<u8>, now: Duration) {
        if !self.link_carries() {
            return;
        }
        match self.by_id.get(&next_hop) {
            Some(&node) => self.queue.schedule(
                now + self.latency,
                Event::Frame {
                    node,
                    frame,
                    from_client: None,
                },
            ),
            None => self.stats.lost += 1,
        }
    }

    fn schedule_loop(&mut self, node: usize, now: Duration) {
        if let Some(gap) = self.loop_gap {
            let wait = Duration::from_secs_f64(gap.sample(&mut self.rng));
            self.queue.schedule(now + wait, Event::NodeLoop(node));
        }
    }

    fn node_loop(&mut self, index: usize, now: Duration) {
        if let Some((first_hop, frame)) =
            self.nodes[index].loop_packet(&mut self.rng, &self.geometry, &self.topology, now)
        {
            self.forward(first_hop, frame, now);
        }
        if self.nodes[index].is_up() {
            self.schedule_loop(index, now);
        }
    }
}
