//! The network engine: clients running the real traffic shaper, nodes
//! running the real mixers, wires with latency, and the adversary's
//! observations, all driven by one virtual clock.
//!
//! Event kinds: a client writes a message; a client's shaper is due; a
//! packet arrives at a node; a node's mixer is due. Each packet carries the
//! route and per-hop delays its sender chose (drawn by `HopDelays`, as real
//! senders do) and, when probability tracking is on, the adversary's current
//! distribution over its sender.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use aegis_directory::MixingStrategy;
use aegis_mix_packet::HopDelays;
use aegis_proto::loop_alarm::{NODE_LINK_SLACK, loop_deadline};
use aegis_proto::loop_cover::NODE_LOOP_TIMEOUT;
use aegis_proto::{AlarmChange, LoopTracker, LossAlarm, LossAlarmConfig, Mixer};
use aegis_proto::{Slot, Stream, TrafficShaper};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde::Serialize;

use crate::adversary::Adversary;
use crate::anonymity::{GuessSummary, MixturePool, SenderDist};
use crate::clock::EventQueue;
use crate::disclosure::DisclosureAttack;
use crate::faults::{FaultReport, OutageReport};
use crate::flow::{DelayKernel, FlowAttack, FlowReport, Slots};
use crate::intersection::{IntersectionAttack, OnlineLog};
use crate::latency::LatencyHistogram;
use crate::layout::{Layout, MAX_ROUTE, NodeRole};
use crate::lineage::{Lineage, Source};
use crate::report::{
    AnonymityReport, BandwidthReport, NMinusOneReport, NetworkReport, TargetRecord,
};
use crate::scenario::{AdversaryModel, NetworkScenario, ShapingSpec, Tracking, secs};
use crate::social::SocialGraph;
use crate::{SimError, relay};

mod access;
mod clients;
mod delivery;
mod faults;
mod loops;
mod observer;
mod report;

use access::Access;
use delivery::Delivery;
use faults::Faults;
use loops::{Attack, MixLoops};
use observer::{Arrival, View, chain_closed_form, pool_id};

/// How often (in events) the progress callback is called.
const PROGRESS_EVERY: u64 = 1 << 16;

/// Wall-clock cost of a run (not part of the deterministic report).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EngineStats {
    /// Events processed.
    pub events: u64,
    /// Packets forwarded by nodes.
    pub packet_hops: u64,
    /// Wall-clock seconds of the run.
    pub wall_secs: f64,
    /// Events per wall-clock second.
    pub events_per_sec: f64,
    /// Packet-hops per wall-clock second.
    pub packet_hops_per_sec: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Write,
    ClientDue(u32),
    /// A client connects or disconnects.
    Toggle(u32),
    /// A node judges its loops and sends the next one.
    MixLoop(u32),
    /// A conversation's sender writes to its partner.
    Converse(u32),
    /// An outage starts.
    Fail(u32),
    /// An outage ends.
    Recover(u32),
    /// A client's outbox timer.
    OutboxDue(u32),
    /// A client pulls its mailbox.
    Pull(u32),
    Arrive {
        node: u32,
        packet: u32,
    },
    NodeDue(u32),
}

/// A message waiting in a client's shaper queue.
#[derive(Clone, Copy, Debug)]
struct Message {
    id: u64,
    recipient: u32,
    written: Duration,
    target: bool,
    /// The SURB-ACK's id with acks on (0: none).
    ack: u64,
}

/// What lands in a mailbox.
#[derive(Clone, Copy, Debug)]
enum Boxed {
    /// A real message (a fragment's copy, with acks on).
    Real(Message),
    /// One of the owner's own loops.
    Loop,
    /// The acknowledgement of the owner's transmission `ack`.
    Ack(u64),
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Real(Message),
    Loop,
    Drop,
    /// A recipient's acknowledgement of transmission `ack`, to `to`.
    Ack {
        to: u32,
        ack: u64,
    },
    /// A mix's own loop, back to `origin`.
    NodeLoop {
        origin: u32,
        id: u64,
    },
}

#[derive(Debug)]
struct Packet {
    kind: Kind,
    sender: u32,
    route: [u32; MAX_ROUTE],
    delays: [Duration; MAX_ROUTE],
    hop: u8,
    /// Hops of the route.
    hops: u8,
    view: View,
    mixes_all_corrupt: bool,
}

struct Node {
    mixer: Mixer<u32>,
    /// The observer's pools, one per arrival class, made on first use; none
    /// for a node whose outputs the observer links to its inputs (corrupt,
    /// or forwarding at once).
    pools: [Option<MixturePool>; 2],
    /// Whether probability tracking pools this node's packets.
    pooled: bool,
    /// Whether the node holds packets (false: a gateway forwarding at once).
    delays: bool,
    due: Option<Duration>,
    corrupt: bool,
    is_mix: bool,
}

struct Sim<'a> {
    s: &'a NetworkScenario,
    rng: ChaCha8Rng,
    queue: EventQueue<Event>,
    topo: Layout,
    graph: SocialGraph,
    nodes: Vec<Node>,
    shapers: Vec<Option<TrafficShaper<Message>>>,
    packets: Vec<Option<Packet>>,
    free: Vec<u32>,
    out: Vec<u32>,
    tracking: Option<Tracking>,
    lineage: Option<Lineage>,
    poisson: bool,
    mean_delay: Duration,
    latency: Duration,
    jitter: f64,
    write_gap: Option<Exp<f64>>,
    warmup: Duration,
    target_stride: u64,
    targets_taken: usize,
    written: u64,
    hist: LatencyHistogram,
    bw: BandwidthReport,
    records: Vec<TargetRecord>,
    sda: Option<DisclosureAttack>,
    relay_sda: Option<DisclosureAttack>,
    /// Online and offline period lengths, when clients go offline.
    churn: Option<(Exp<f64>, Exp<f64>)>,
    online: OnlineLog,
    /// Whether a `ClientDue` is scheduled for each client.
    due_pending: Vec<bool>,
    /// What waits in each client's mailbox (kept with churn or pulls).
    mailbox: Vec<Vec<Boxed>>,
    intersection: Option<IntersectionAttack>,
    /// Each node's loops, when nodes send loop cover.
    loops: Vec<Option<MixLoops>>,
    loop_gap: Option<Exp<f64>>,
    loop_deadline: Duration,
    attack: Option<Attack>,
    /// The conversations' flows, and the gap between their messages.
    flow: Option<(FlowAttack, Exp<f64>)>,
    faults: Option<Faults>,
    delivery: Option<Delivery>,
    access: Option<Access>,
    /// The pull grid's interval, when clients pull.
    pull: Option<Duration>,
    /// Whether a `Pull` is scheduled for each client.
    pull_pending: Vec<bool>,
}

/// Runs a network scenario; the dumb-relay model runs the relay baseline.
pub fn run_network(
    s: &NetworkScenario,
    progress: &mut dyn FnMut(f64),
) -> Result<(NetworkReport, EngineStats), SimError> {
    if s.adversary.model == AdversaryModel::DumbRelay {
        return Ok(relay::run_dumb_relay(s, progress));
    }
    let started = Instant::now();
    let mut sim = Sim::new(s)?;
    let end = secs(s.duration_secs);
    while let Some(at) = sim.queue.peek_time() {
        if at > end {
            break;
        }
        let Some((now, event)) = sim.queue.pop() else {
            break;
        };
        sim.handle(now, event);
        if sim.queue.processed().is_multiple_of(PROGRESS_EVERY) {
            progress(now.as_secs_f64() / s.duration_secs);
        }
    }
    progress(1.0);
    let report = sim.finish(end);
    let wall = started.elapsed().as_secs_f64();
    let stats = EngineStats {
        events: report.events,
        packet_hops: report.bandwidth.packet_hops,
        wall_secs: wall,
        events_per_sec: report.events as f64 / wall.max(1e-9),
        packet_hops_per_sec: report.bandwidth.packet_hops as f64 / wall.max(1e-9),
    };
    Ok((report, stats))
}

/// The users attacked by the disclosure attack: the first `n` clients
/// (client ids carry no meaning, so this is an unbiased sample).
pub(crate) fn attacked_users(
    graph: &SocialGraph,
    clients: usize,
    n: usize,
) -> Vec<(u32, Vec<u32>)> {
    (0..n.min(clients))
        .map(|u| (u as u32, graph.contacts(u).to_vec()))
        .collect()
}

/// Every `stride`-th message after warm-up is a target, spreading targets
/// over the first two thirds of the measured time so most are delivered.
pub(crate) fn target_stride(s: &NetworkScenario) -> u64 {
    let expected =
        s.clients.count as f64 * s.clients.rate * (s.duration_secs - s.warmup_secs) * 0.66;
    ((expected / s.adversary.targets.max(1) as f64) as u64).max(1)
}

impl<'a> Sim<'a> {
    fn new(s: &'a NetworkScenario) -> Result<Self, SimError> {
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let topo = Layout::new(&s.topology);
        let graph = SocialGraph::zipf(
            &mut rng,
            s.clients.count,
            s.clients.contacts,
            s.clients.zipf_exponent,
        );
        let adversary = Adversary::new(&mut rng, &s.adversary, &topo);
        let config = s.mixing.config()?;
        let tracking = (s.adversary.targets > 0).then_some(s.adversary.tracking);
        let lineage = (tracking == Some(Tracking::Lineage))
            .then(|| Lineage::new(2 * topo.nodes(), s.lineage_horizon_secs()));
        let nodes = (0..topo.nodes())
            .map(|id| {
                let is_mix = matches!(topo.role(id), NodeRole::Mix(_));
                let delays = is_mix || s.mixing.gateways_delay;
                Node {
                    mixer: Mixer::new(&config, s.mixing.capacity, Duration::ZERO),
                    pools: [None, None],
                    pooled: tracking.is_some() && delays && !adversary.is_corrupt(id),
                    delays,
                    due: None,
                    corrupt: adversary.is_corrupt(id),
                    is_mix,
                }
            })
            .collect();
        let shaping = s.shaping.config();
        let mut queue = EventQueue::new();
        let mut due_pending = vec![false; s.clients.count];
        let shapers = (0..s.clients.count)
            .map(|c| {
                let shaper = shaping.as_ref().map(|cfg| {
                    TrafficShaper::new(cfg, Duration::ZERO, s.clients.max_queue, &mut rng)
                });
                if let Some(due) = shaper.as_ref().and_then(TrafficShaper::next_deadline) {
                    queue.schedule_far(due, Event::ClientDue(c as u32));
                    due_pending[c] = true;
                }
                shaper
            })
            .collect();
        // Churn draws from the RNG only when enabled, so runs without it
        // keep their transcripts.
        let churn = s.churn.enabled().then(|| {
            let rate = |mean: f64| Exp::new(1.0 / mean).ok();
            (
                rate(s.churn.mean_online_secs),
                rate(s.churn.mean_offline_secs),
            )
        });
        let churn = match churn {
            Some((Some(on), Some(off))) => Some((on, off)),
            _ => None,
        };
        let online = match &churn {
            None => vec![true; s.clients.count],
            Some((on, off)) => {
                let share = s.churn.mean_online_secs
                    / (s.churn.mean_online_secs + s.churn.mean_offline_secs);
                (0..s.clients.count)
                    .map(|c| {
                        let online = rng.random::<f64>() < share;
                        // Exponential periods are memoryless: the rest of the
                        // current one has the same law.
                        let left = if online { on } else { off }.sample(&mut rng);
                        queue.schedule_far(secs(left), Event::Toggle(c as u32));
                        online
                    })
                    .collect()
            }
        };
        let write_gap = Exp::new(s.clients.rate * s.clients.count as f64).ok();
        if let Some(gap) = write_gap {
            queue.schedule(secs(gap.sample(&mut rng)), Event::Write);
        }
        let d = &s.disclosure;
        let duration = secs(s.duration_secs);
        let make_sda = |linked| {
            DisclosureAttack::new(
                s.clients.count,
                attacked_users(&graph, s.clients.count, d.users),
                secs(d.window_secs),
                d.guesses,
                duration,
                linked,
            )
        };
        // Like churn, node loops draw from the RNG only when enabled.
        let loop_gap = Some(s.node_cover.loop_rate)
            .filter(|&rate| rate > 0.0)
            .and_then(|rate| Exp::new(rate).ok());
        let loop_deadline = loop_deadline(
            topo.route_len() - 1,
            s.mixing.mean_delay(),
            NODE_LINK_SLACK,
            NODE_LOOP_TIMEOUT,
        );
        let loops = (0..topo.nodes())
            .map(|id| {
                let gap = loop_gap?;
                queue.schedule(secs(gap.sample(&mut rng)), Event::MixLoop(id as u32));
                Some(MixLoops::new(loop_deadline))
            })
            .collect();
        let attack = s.n_minus_one.start_secs.map(|start| Attack {
            mix: topo.mix(s.n_minus_one.layer, 0),
            start: secs(start),
            detected: None,
            false_alarms: 0,
            collateral_alarms: 0,
            held_back: 0,
        });
        let i = &s.intersection;
        let intersection = (i.recipients > 0).then(|| {
            IntersectionAttack::new(
                s.clients.count,
                (0..i.recipients.min(s.clients.count) as u32).collect(),
                secs(i.window_secs),
                duration,
            )
        });
        let mut sim = Sim {
            flow: None,
            faults: None,
            delivery: None,
            access: None,
            pull: s.delivery.pull_interval_secs.map(secs),
            pull_pending: Vec::new(),
            loops,
            loop_gap,
            loop_deadline,
            attack,
            mailbox: if churn.is_some() || s.delivery.pull_interval_secs.is_some() {
                vec![Vec::new(); s.clients.count]
            } else {
                Vec::new()
            },
            churn,
            online: OnlineLog::new(online),
            due_pending,
            intersection,
            sda: (d.users > 0).then(|| make_sda(false)),
            relay_sda: (d.users > 0 && d.compare_relay).then(|| make_sda(true)),
            s,
            rng,
            queue,
            topo,
            graph,
            nodes,
            shapers,
            packets: Vec::new(),
            free: Vec::new(),
            out: Vec::new(),
            tracking,
            lineage,
            poisson: matches!(config, MixingStrategy::Poisson { .. }),
            mean_delay: s.mixing.mean_delay(),
            latency: secs(s.topology.link_latency_ms / 1000.0),
            jitter: s.topology.link_jitter_ms.max(0.0) / 1000.0,
            write_gap,
            warmup: secs(s.warmup_secs),
            target_stride: target_stride(s),
            targets_taken: 0,
            written: 0,
            hist: LatencyHistogram::new(),
            bw: BandwidthReport::default(),
            records: Vec::new(),
        };
        sim.start_conversations();
        sim.start_faults();
        sim.start_delivery();
        sim.start_access();
        Ok(sim)
    }

    fn handle(&mut self, now: Duration, event: Event) {
        match event {
            Event::Write => self.write(now),
            Event::ClientDue(c) => self.client_due(now, c as usize),
            Event::Toggle(c) => self.toggle(now, c as usize),
            Event::MixLoop(node) => self.mix_loop(now, node as usize),
            Event::Converse(pair) => self.converse(now, pair as usize),
            Event::Fail(outage) => self.fail(outage as usize),
            Event::Recover(outage) => self.recover(outage as usize),
            Event::OutboxDue(client) => self.outbox_due(now, client as usize),
            Event::Pull(client) => self.pull(now, client as usize),
            Event::Arrive { node, packet } => self.arrive(now, node as usize, packet),
            Event::NodeDue(node) => self.node_due(now, node as usize),
        }
    }

    fn link_delay(&mut self) -> Duration {
        if self.jitter > 0.0 {
            self.latency + secs(self.rng.random::<f64>() * self.jitter)
        } else {
            self.latency
        }
    }

    fn arrive(&mut self, now: Duration, node: usize, id: u32) {
        if let Some(attack) = self.attack.as_mut()
            && node == attack.mix
            && now >= attack.start
        {
            // The n−1 attacker holds back everything bound for the mix.
            attack.held_back += 1;
            self.release(id);
            return;
        }
        if self.down_drops(node, id) {
            return;
        }
        let from_client = self.packets[id as usize]
            .as_ref()
            .filter(|p| p.hop == 0 && p.sender != u32::MAX)
            .map(|p| p.sender);
        if let Some(client) = from_client
            && self.over_send_limit(now, client, id)
        {
            return;
        }
        let Some(p) = self.packets[id as usize].as_ref() else {
            return;
        };
        if !self.nodes[node].delays {
            self.depart(now, node, id);
            return;
        }
        let delay = p.delays[p.hop as usize];
        let class = Arrival::of_hop(p.hop);
        let n = &mut self.nodes[node];
        if n.mixer.push(now, delay, id).is_err() {
            self.bw.refused_by_nodes += 1;
            self.release(id);
            return;
        }
        match &p.view {
            View::Dense(dist) => {
                if let Some(pool) = n.pool(class, self.s.clients.count) {
                    pool.arrive(dist);
                }
            }
            View::Lineage(source) => {
                if let (true, Some(book)) = (n.pooled, self.lineage.as_mut()) {
                    book.arrive(pool_id(node, class), now.as_secs_f64(), *source);
                }
            }
            View::Untracked => {}
        }
        self.arm(now, node);
    }

    /// Makes sure a `NodeDue` is scheduled for the mixer's next deadline.
    fn arm(&mut self, now: Duration, node: usize) {
        let n = &mut self.nodes[node];
        if let Some(due) = n.mixer.next_deadline() {
            let due = due.max(now);
            if n.due.is_none_or(|d| due < d) {
                n.due = Some(due);
                self.queue.schedule(due, Event::NodeDue(node as u32));
            }
        }
    }

    fn node_due(&mut self, now: Duration, node: usize) {
        if self.nodes[node].due != Some(now) {
            return; // superseded by an earlier deadline
        }
        self.nodes[node].due = None;
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        self.nodes[node].mixer.poll(now, &mut self.rng, &mut out);
        for &id in &out {
            self.depart(now, node, id);
        }
        self.out = out;
        self.arm(now, node);
    }

    fn depart(&mut self, now: Duration, node: usize, id: u32) {
        self.bw.packet_hops += 1;
        let link = self.link_delay();
        let n = &mut self.nodes[node];
        let Some(p) = self.packets[id as usize].as_mut() else {
            return;
        };
        let class = Arrival::of_hop(p.hop);
        match &mut p.view {
            View::Dense(dist) => {
                if let Some(pool) = n.pool(class, self.s.clients.count) {
                    *dist = pool.depart();
                }
            }
            View::Lineage(source) => {
                if let (true, Some(book)) = (n.pooled, self.lineage.as_mut()) {
                    *source = book.depart(pool_id(node, class));
                }
            }
            View::Untracked => {}
        }
        if n.is_mix && !n.corrupt {
            p.mixes_all_corrupt = false;
        }
        p.hop += 1;
        if p.hop < p.hops {
            let next = p.route[p.hop as usize];
            if self.link_drops(id) {
                return;
            }
            self.queue.schedule(
                now + link,
                Event::Arrive {
                    node: next,
                    packet: id,
                },
            );
        } else {
            self.deliver(now, id);
        }
    }

    /// The exit gateway puts the packet in the recipient's mailbox; an
    /// online recipient is taken to fetch it at once, an offline one when it
    /// is back.
    fn deliver(&mut self, now: Duration, id: u32) {
        let Some(p) = self.packets[id as usize].take() else {
            return;
        };
        self.free.push(id);
        let mailbox = match p.kind {
            Kind::Real(message) => Some((message.recipient as usize, Boxed::Real(message))),
            Kind::Loop => Some((p.sender as usize, Boxed::Loop)),
            Kind::Ack { to, ack } => Some((to as usize, Boxed::Ack(ack))),
            Kind::Drop => None,
            Kind::NodeLoop { origin, id } => {
                if let Some(loops) = self.loops.get_mut(origin as usize).and_then(Option::as_mut)
                    && loops.tracker.returned(&id, now).is_some()
                {
                    loops.returned += 1;
                }
                None
            }
        };
        if let Some((owner, boxed)) = mailbox {
            if let Some((flow, _)) = &mut self.flow {
                flow.observe_arrival(owner, now.as_secs_f64(), p.sender as usize);
            }
            if self.online.is_online(owner) && self.pull.is_none() {
                self.fetched(now, owner, boxed);
            } else if self.mailbox_has_room(owner)
                && let Some(waiting) = self.mailbox.get_mut(owner)
            {
                waiting.push(boxed);
            }
        }
        match p.kind {
            Kind::Real(m) => {
                self.bw.real_delivered += 1;
                if let Some(attack) = &mut self.intersection {
                    attack.observe_delivery(now, m.recipient as usize, p.sender, &self.online);
                }
                if m.target
                    && let Some((guess, untracked_mass)) = self.judge(&p)
                {
                    self.records.push(TargetRecord {
                        message: m.id,
                        sender: p.sender,
                        written_secs: m.written.as_secs_f64(),
                        delivered_secs: now.as_secs_f64(),
                        guess,
                        untracked_mass,
                        fully_corrupt_path: p.mixes_all_corrupt,
                    });
                }
            }
            Kind::Loop | Kind::Drop | Kind::Ack { .. } | Kind::NodeLoop { .. } => {}
        }
    }

    /// The sender-chosen delays of a route of `hops` hops (none unless the
    /// nodes run Poisson mixes, whose delays the packets carry).
    fn hop_delays(&mut self, hops: usize) -> [Duration; MAX_ROUTE] {
        let mut delays = [Duration::ZERO; MAX_ROUTE];
        if self.poisson {
            let sampled = HopDelays::sample_exponential(&mut self.rng, hops, self.mean_delay);
            for (d, s) in delays.iter_mut().zip(sampled.as_durations()) {
                *d = s;
            }
        }
        delays
    }

    /// Keeps `packet` in a free slot; returns its id.
    fn store(&mut self, packet: Packet) -> u32 {
        match self.free.pop() {
            Some(id) => {
                self.packets[id as usize] = Some(packet);
                id
            }
            None => {
                self.packets.push(Some(packet));
                (self.packets.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, id: u32) {
        if self.packets[id as usize].take().is_some() {
            self.free.push(id);
        }
    }
}
