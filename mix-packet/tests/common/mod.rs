//! A line of real nodes with real keys, to push packets through by hand.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, missing_docs)]

use aegis_mix_packet::kem::HybridSecret;
use aegis_mix_packet::{
    Body, EpochKey, EpochKeys, Fragment, Geometry, Hop, HopDelays, LoopId, MailboxId, NodeId,
    OutgoingPacket, PacketError, Processed, ReplayFilter, ReplyKey, Route, SphinxPublicKey,
    SphinxSecret, SurbAck, build_mailbox_packet, process_frame,
};
use rand::{CryptoRng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::sync::Arc;
use std::time::Duration;

pub const EPOCH: u64 = 42;

pub struct TestNode {
    pub id: NodeId,
    pub keys: EpochKeys,
}

impl TestNode {
    pub fn new<R: CryptoRng>(rng: &mut R, epoch: u64) -> Self {
        let mut id = [0u8; 32];
        rng.fill_bytes(&mut id);
        let mut keys = EpochKeys::new();
        keys.insert(epoch, epoch_key(rng));
        TestNode {
            id: NodeId(id),
            keys,
        }
    }

    pub fn public(&self, epoch: u64) -> SphinxPublicKey {
        self.keys.get(epoch).unwrap().public
    }

    /// This node as a hop of a route for `epoch`, with both its keys.
    pub fn hop(&self, epoch: u64) -> Hop {
        let key = self.keys.get(epoch).unwrap();
        Hop {
            kem_key: key.kem.as_ref().map(|k| Arc::new(k.public().clone())),
            ..Hop::sphinx(self.id, key.public)
        }
    }
}

/// A fragment packet from `alice` to `bob` over `out`, carrying a SURB-ACK
/// over `back` to alice, and the reply key alice keeps for the ack.
#[allow(clippy::too_many_arguments)]
pub fn fragment_packet<R: CryptoRng + ?Sized>(
    rng: &mut R,
    geometry: &Geometry,
    (out, out_delays): (&Route, &HopDelays),
    (back, back_delays): (&Route, &HopDelays),
    alice: &TestMailbox,
    bob: &TestMailbox,
    fragment: Fragment,
) -> (OutgoingPacket, ReplyKey) {
    let (surb_ack, key) =
        SurbAck::new(rng, geometry, back, back_delays, alice.id, alice.public()).unwrap();
    let body = Body::Fragment { fragment, surb_ack };
    let packet =
        build_mailbox_packet(rng, geometry, out, out_delays, bob.id, &bob.public(), &body).unwrap();
    (packet, key)
}

/// A key for one epoch in both formats, with its replay filter.
fn epoch_key<R: CryptoRng>(rng: &mut R) -> EpochKey {
    let secret = SphinxSecret::random_from_rng(rng);
    let kem = HybridSecret::random(rng);
    EpochKey::with_kem(secret, kem, ReplayFilter::with_capacity(rng, 100_000, 1e-6))
}

/// A client's mailbox: id and sealing key pair.
pub struct TestMailbox {
    pub id: MailboxId,
    pub secret: SphinxSecret,
}

impl TestMailbox {
    pub fn new<R: CryptoRng>(rng: &mut R) -> Self {
        TestMailbox {
            id: MailboxId::random(rng),
            secret: SphinxSecret::random_from_rng(rng),
        }
    }
    pub fn public(&self) -> SphinxPublicKey {
        SphinxPublicKey::from(&self.secret)
    }
}

pub struct TestNet {
    pub geometry: Geometry,
    pub nodes: Vec<TestNode>,
    pub rng: ChaCha20Rng,
    /// The key epochs every hop tries, in order (a node's clock decides
    /// them; see `Schedule::key_epochs_at`).
    pub live: Vec<u64>,
}

/// One hop of a traced delivery: the epoch of the key that opened the
/// packet, and the frame it arrived in.
pub type Opened = (u64, Vec<u8>);

/// Result of pushing a frame through the line of nodes.
#[derive(Debug)]
pub struct Trace {
    pub hops_visited: Vec<NodeId>,
    pub delays: Vec<Duration>,
    pub frame_lens: Vec<usize>,
    pub last: Processed,
}

impl TestNet {
    /// `count` nodes with keys for `EPOCH`, in the standard geometry.
    pub fn new(seed: u64, count: usize) -> Self {
        Self::in_geometry(Geometry::STANDARD, seed, count)
    }

    /// `count` nodes with keys for `EPOCH`, building and processing packets
    /// of `geometry`.
    pub fn in_geometry(geometry: Geometry, seed: u64, count: usize) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let nodes = (0..count).map(|_| TestNode::new(&mut rng, EPOCH)).collect();
        TestNet {
            geometry,
            nodes,
            rng,
            live: vec![EPOCH, EPOCH + 1, EPOCH - 1],
        }
    }

    /// Gives every node a key (and filter) for `epoch` too.
    pub fn add_epoch(&mut self, epoch: u64) {
        for node in &mut self.nodes {
            node.keys.insert(epoch, epoch_key(&mut self.rng));
        }
    }

    /// A route over the nodes at the given positions.
    pub fn route(&self, positions: &[usize]) -> Route {
        self.route_for(EPOCH, positions)
    }

    /// A route over the nodes at the given positions, with their keys of
    /// `epoch`.
    pub fn route_for(&self, epoch: u64, positions: &[usize]) -> Route {
        Route::new(
            positions
                .iter()
                .map(|&i| self.nodes[i].hop(epoch))
                .collect(),
            &self.geometry,
        )
        .unwrap()
    }

    /// A loop cover packet over the nodes at `positions` to `mailbox`, with
    /// delays of mean 1 ms.
    pub fn loop_packet(
        &mut self,
        positions: &[usize],
        mailbox: &TestMailbox,
        id: u8,
    ) -> OutgoingPacket {
        self.loop_packet_for(EPOCH, positions, mailbox, id)
    }

    /// [`Self::loop_packet`] with the nodes' keys of `epoch`.
    pub fn loop_packet_for(
        &mut self,
        epoch: u64,
        positions: &[usize],
        mailbox: &TestMailbox,
        id: u8,
    ) -> OutgoingPacket {
        let route = self.route_for(epoch, positions);
        let delays = self.delays(1);
        self.build_loop(&route, &delays, mailbox, id)
    }

    /// A loop packet with loop id `id`, in this network's geometry.
    fn build_loop(
        &mut self,
        route: &Route,
        delays: &HopDelays,
        mailbox: &TestMailbox,
        id: u8,
    ) -> OutgoingPacket {
        let geometry = self.geometry.clone();
        build_mailbox_packet(
            &mut self.rng,
            &geometry,
            route,
            delays,
            mailbox.id,
            &mailbox.public(),
            &Body::Loop(LoopId([id; 16])),
        )
        .unwrap()
    }

    /// `count` loop packets over the first five nodes to `mailbox`, with
    /// zero delays, as frames (the benchmarks' pools).
    pub fn loop_frames(&mut self, mailbox: &TestMailbox, count: usize) -> Vec<Vec<u8>> {
        let geometry = self.geometry.clone();
        let route = self.route(&[0, 1, 2, 3, 4]);
        let delays = HopDelays::fixed(&[Duration::ZERO; 5]);
        (0..count)
            .map(|i| {
                self.build_loop(&route, &delays, mailbox, i as u8)
                    .to_frame(&geometry)
                    .unwrap()
            })
            .collect()
    }

    pub fn delays(&mut self, mean_ms: u64) -> HopDelays {
        HopDelays::sample_exponential(
            &mut self.rng,
            self.geometry.hops,
            Duration::from_millis(mean_ms),
        )
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Processes `frame` at `first`, then forwards hop by hop until a final
    /// hop or an error.
    pub fn deliver(&mut self, first: NodeId, frame: Vec<u8>) -> Result<Trace, PacketError> {
        self.deliver_tracing(first, frame).map(|(trace, _)| trace)
    }

    /// [`Self::deliver`], also returning, for each hop, the epoch of the key
    /// that opened the packet and the frame it arrived in.
    pub fn deliver_tracing(
        &mut self,
        first: NodeId,
        mut frame: Vec<u8>,
    ) -> Result<(Trace, Vec<Opened>), PacketError> {
        let mut opened = Vec::new();
        let mut at = self.index_of(first).expect("first hop is a test node");
        let mut trace = Trace {
            hops_visited: vec![],
            delays: vec![],
            frame_lens: vec![frame.len()],
            last: Processed::Forward {
                next_hop: first,
                delay: Duration::ZERO,
                delay_capped: false,
                packet: vec![],
            },
        };
        loop {
            trace.hops_visited.push(self.nodes[at].id);
            let geometry = self.geometry.clone();
            let (epoch, processed) =
                process_frame(&geometry, &frame, &mut self.nodes[at].keys, &self.live)?;
            opened.push((epoch, frame.clone()));
            match processed {
                Processed::Forward {
                    next_hop,
                    delay,
                    packet,
                    ..
                } => {
                    trace.delays.push(delay);
                    frame = aegis_mix_packet::Frame::encode(&geometry, &packet)?;
                    trace.frame_lens.push(frame.len());
                    at = self.index_of(next_hop).expect("next hop is a test node");
                }
                last @ Processed::Final { .. } => {
                    trace.last = last;
                    return Ok((trace, opened));
                }
            }
        }
    }
}
