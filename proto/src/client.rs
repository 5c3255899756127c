//! The client endpoint: every decision a client makes about its traffic,
//! sans-IO.
//!
//! The endpoint owns the traffic shaper, the outbox, the inbox, the client's
//! loops and the pull grid. Its driver feeds it the time, the consensus and
//! what the gateway's pulls bring, and asks it for frames to send to the
//! gateway and for the acknowledgement ids of the next pull:
//!
//! * [`Endpoint::handle_timeout`] — the shaper's slots that are due become
//!   packets: a real slot carries a pending acknowledgement or the outbox's
//!   next (re)transmission (taking turns when both wait), else loop cover;
//!   loop and drop slots carry cover. [`Endpoint::poll_transmit`] hands out the frames.
//! * [`Endpoint::poll_pull`] — pulls leave on a fixed grid whose interval
//!   follows from the published rates alone ([`Endpoint::pull_interval`]);
//!   each carries the ids of what the previous pull brought.
//! * [`Endpoint::handle_pulled`] — what a pull brought: loops come home,
//!   acknowledgements settle the outbox, fragments go through the inbox and
//!   are acknowledged through their SURB-ACKs.
//! * [`Endpoint::poll_event`] — status changes, complete messages (still
//!   end-to-end encrypted: the conversation layer opens them) and which
//!   fragments to keep across a restart.
//!
//! What goes out depends on the schedule alone, never on whether anything is
//! queued, so the gateway link looks the same for an idle and a busy client.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use aegis_mix_packet::access::PULL_BATCH;
use aegis_mix_packet::constants::ID_LEN;
use aegis_mix_packet::{
    Body, Geometry, HopDelays, LoopId, MailboxId, NodeId, OutgoingPacket, SphinxPublicKey,
    SphinxSecret, SurbAck, build_ack, build_drop_cover, build_mailbox_packet, open_delivery,
    split_delivery,
};
use rand::rngs::StdRng;
use rand::{CryptoRng, SeedableRng as _};

use crate::delivery::{
    Inbox, LocalId, Outbox, OutboxError, Received, StatusEvent, Transmission, ack_timeout,
};
use crate::loop_cover::{LoopStats, LoopTracker};
use crate::shaping::{ShapingConfig, Slot, TrafficShaper};
use crate::topology::Topology;

/// Pending acknowledgements kept at most (each waits for a real slot).
pub const MAX_PENDING_ACKS: usize = 4_096;
/// Shortest time between pulls (gateways refuse more than 20 a second).
pub const MIN_PULL_INTERVAL: Duration = Duration::from_millis(60);
/// A client loop not back within this time counts as lost.
pub const LOOP_TIMEOUT: Duration = Duration::from_secs(300);
/// Real items the shaper holds at most; the rest wait in the outbox.
const SHAPER_QUEUE: usize = 64;

/// Where a recipient's packets go: its gateway, its mailbox there, and the
/// key its mailbox packets are sealed to (all from its contact card).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// The recipient's gateway.
    pub gateway: NodeId,
    /// Its mailbox at that gateway.
    pub mailbox: MailboxId,
    /// The key packets to that mailbox are sealed to.
    pub mailbox_key: SphinxPublicKey,
}

/// The client's own attachment: its gateway, mailbox and sealing key.
pub struct Own {
    /// The gateway the client attaches to.
    pub gateway: NodeId,
    /// Its mailbox there.
    pub mailbox: MailboxId,
    /// The secret its mailbox packets are sealed to.
    pub sealing: SphinxSecret,
}

/// How an endpoint runs.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// The longest time between pulls; shortened when the published rates need it.
    pub pull_interval: Duration,
    /// The sending schedule; `None` follows the consensus's λ rates.
    pub shaping: Option<ShapingConfig>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            pull_interval: Duration::from_secs(1),
            shaping: None,
        }
    }
}

/// Something the driver should act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointEvent<C> {
    /// A queued message changed status.
    Status(StatusEvent<C>),
    /// A message arrived complete, exactly once; its bytes are still sealed
    /// end to end.
    Message(Vec<u8>),
    /// Keep this mailbox payload (a fragment of an incomplete message) so a
    /// restart can feed it again: the gateway deletes it once acknowledged.
    KeepFragment {
        /// The message it belongs to.
        message_id: [u8; ID_LEN],
        /// Its index.
        index: u16,
        /// The payload as pulled.
        payload: Vec<u8>,
    },
    /// The message is complete: its kept fragments can go.
    ForgetFragments {
        /// The message.
        message_id: [u8; ID_LEN],
    },
}

/// The endpoint's own traffic figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Real packets sent (fragments and acknowledgements).
    pub real_sent: u64,
    /// Loop cover sent.
    pub loops_sent: u64,
    /// Drop cover sent.
    pub drops_sent: u64,
    /// Slots that carried nothing (no route or no key at the time).
    pub skipped: u64,
    /// The loops' counts.
    pub loops: LoopStats,
}

/// What waits for a real slot.
#[derive(Debug)]
enum Pending<C> {
    Ack(OutgoingPacket),
    Fragment(Transmission<C>),
}

/// A client's protocol state machine.
pub struct Endpoint<C> {
    config: EndpointConfig,
    geometry: Geometry,
    own: Own,
    own_key: SphinxPublicKey,
    topology: Arc<Topology>,
    shaper: TrafficShaper<Pending<C>>,
    shaping: ShapingConfig,
    /// The schedule's own randomness, seeded once from the caller's RNG:
    /// building a packet of one kind or another draws differently from the
    /// caller's RNG, and must not move the slots that follow.
    schedule: StdRng,
    outbox: Outbox<C>,
    inbox: Inbox,
    addresses: HashMap<C, Address>,
    acks: VecDeque<OutgoingPacket>,
    /// Whether the last real item handed to the shaper was an
    /// acknowledgement (acknowledgements and own fragments take turns).
    ack_went_last: bool,
    loops: LoopTracker<LoopId>,
    unacknowledged: Vec<[u8; 8]>,
    next_pull: Duration,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<EndpointEvent<C>>,
    stats: EndpointStats,
    outbox_changed: bool,
    inbox_changed: bool,
}

fn shaping_of(topology: &Topology) -> ShapingConfig {
    ShapingConfig::Poisson {
        payload_rate: topology.parameters.lambda_p,
        loop_rate: topology.parameters.lambda_l,
        drop_rate: topology.parameters.lambda_d,
    }
}

impl<C: Clone + Eq + Hash + Ord> Endpoint<C> {
    /// An endpoint starting at `now` under `topology`, with the outbox and
    /// inbox it had (new ones for a new profile).
    #[allow(clippy::too_many_arguments)]
    pub fn new<R: CryptoRng + ?Sized>(
        rng: &mut R,
        config: EndpointConfig,
        geometry: Geometry,
        own: Own,
        topology: Arc<Topology>,
        outbox: Outbox<C>,
        inbox: Inbox,
        now: Duration,
    ) -> Self {
        let shaping = config
            .shaping
            .clone()
            .unwrap_or_else(|| shaping_of(&topology));
        let mut schedule = StdRng::from_rng(rng);
        let shaper = TrafficShaper::new(&shaping, now, SHAPER_QUEUE, &mut schedule);
        let own_key = SphinxPublicKey::from(&own.sealing);
        Endpoint {
            config,
            geometry,
            own,
            own_key,
            topology,
            shaper,
            shaping,
            schedule,
            outbox,
            inbox,
            addresses: HashMap::new(),
            acks: VecDeque::new(),
            ack_went_last: false,
            loops: LoopTracker::new(LOOP_TIMEOUT),
            unacknowledged: Vec::new(),
            next_pull: now,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
            outbox_changed: false,
            inbox_changed: false,
        }
    }

    /// The consensus routes are built from.
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// A newer consensus: later packets use its nodes, keys and rates. A
    /// change of the published rates restarts the schedule at `now`.
    pub fn set_topology(&mut self, topology: Arc<Topology>, now: Duration) {
        if self.config.shaping.is_none() {
            let wanted = shaping_of(&topology);
            if wanted != self.shaping {
                let mut shaper = TrafficShaper::new(&wanted, now, SHAPER_QUEUE, &mut self.schedule);
                // Whatever waited for a real slot keeps its place.
                for emission in self.shaper.drain_queued() {
                    let _ = shaper.enqueue(emission);
                }
                self.shaper = shaper;
                self.shaping = wanted;
            }
        }
        self.topology = topology;
    }

    /// Where `recipient`'s packets go (from its card); needed before its
    /// fragments can be sent, also for messages restored from a saved outbox.
    pub fn set_address(&mut self, recipient: C, address: Address) {
        self.addresses.insert(recipient, address);
    }

    /// Queues a message (already sealed end to end) for `recipient` at `address`.
    pub fn queue<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        recipient: C,
        address: Address,
        message: Vec<u8>,
        now: Duration,
    ) -> Result<LocalId, OutboxError> {
        self.addresses.insert(recipient.clone(), address);
        let local = self.outbox.queue(rng, recipient, message, now)?;
        self.outbox_changed = true;
        Ok(local)
    }

    /// When the endpoint next has something to do.
    pub fn poll_timeout(&self) -> Duration {
        let mut wake = self.next_pull;
        if let Some(d) = self.shaper.next_deadline() {
            wake = wake.min(d);
        }
        if let Some(d) = self.outbox.next_deadline() {
            wake = wake.min(d);
        }
        wake
    }

    /// Does what is due by `now`: acknowledgement timeouts, and the
    /// schedule's slots, each turned into a frame for the gateway.
    pub fn handle_timeout<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, now: Duration) {
        for event in self.outbox.poll(now) {
            self.outbox_changed = true;
            self.events.push_back(EndpointEvent::Status(event));
        }
        self.loops.expire(now);
        self.refill(now);
        for emission in self.shaper.poll(now, &mut self.schedule) {
            self.emit(rng, emission.slot, now);
            self.refill(now);
        }
    }

    /// The next frame to send to the gateway.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// When a pull is due at `now` (on the fixed grid), the acknowledgement
    /// ids it carries; the grid moves on whether or not the pull goes out.
    /// A pull that could not be made is reported with [`Endpoint::pull_failed`].
    pub fn poll_pull(&mut self, now: Duration) -> Option<Vec<[u8; 8]>> {
        if now < self.next_pull {
            return None;
        }
        let interval = self.pull_interval();
        self.next_pull += interval;
        if self.next_pull <= now {
            self.next_pull = now + interval;
        }
        Some(std::mem::take(&mut self.unacknowledged))
    }

    /// The pull carrying `ack` did not reach the gateway: acknowledge them
    /// with the next one.
    pub fn pull_failed(&mut self, ack: Vec<[u8; 8]>) {
        self.unacknowledged = ack;
    }

    /// What a pull brought: `(id, delivery)` of each real entry (the
    /// delivery tag and payload the gateway stored). Each is acknowledged by
    /// the next pull.
    pub fn handle_pulled<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        entries: Vec<([u8; 8], Vec<u8>)>,
        now: Duration,
    ) {
        for (id, delivery) in entries {
            self.deliver(rng, &delivery, now);
            if self.unacknowledged.len() < PULL_BATCH {
                self.unacknowledged.push(id);
            }
        }
    }

    /// After a restart: a kept fragment goes through the inbox again. It
    /// was acknowledged to its sender before, so no acknowledgement is sent.
    pub fn refeed<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, payload: &[u8], now: Duration) {
        self.receive(rng, payload, now, false);
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<EndpointEvent<C>> {
        self.events.pop_front()
    }

    /// Time between pulls: the configured interval, shortened when the
    /// consensus rates need it. A client's mailbox fills at about λP + λL
    /// packets a second (its own loops and what its contacts send in their
    /// payload slots), and each pull takes [`PULL_BATCH`] of them, so pulls
    /// come at least twice as often as that inflow needs. The interval
    /// depends only on the published rates, the same for every client.
    pub fn pull_interval(&self) -> Duration {
        let p = &self.topology.parameters;
        let inflow = (p.lambda_p + p.lambda_l).max(0.0);
        if inflow <= 0.0 || !inflow.is_finite() {
            return self.config.pull_interval;
        }
        let needed = Duration::from_secs_f64(PULL_BATCH as f64 / (2.0 * inflow));
        self.config.pull_interval.min(needed).max(MIN_PULL_INTERVAL)
    }

    /// The outbox, to save it; see [`Endpoint::take_outbox_changed`].
    pub fn outbox(&self) -> &Outbox<C> {
        &self.outbox
    }

    /// The inbox, to save it; see [`Endpoint::take_inbox_changed`].
    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// Whether the outbox changed since the last call.
    pub fn take_outbox_changed(&mut self) -> bool {
        std::mem::take(&mut self.outbox_changed)
    }

    /// Whether the inbox changed since the last call.
    pub fn take_inbox_changed(&mut self) -> bool {
        std::mem::take(&mut self.inbox_changed)
    }

    /// The endpoint's traffic figures.
    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            loops: self.loops.stats(),
            ..self.stats
        }
    }

    /// Keeps one real item waiting in the shaper: a pending acknowledgement
    /// or the outbox's next (re)transmission. When both wait they take
    /// turns, so whoever fills the mailbox with fragments (anyone holding
    /// the client's card can) makes the client spend at most every other
    /// real slot acknowledging them: its own messages still leave at half
    /// their rate or better, and acknowledgements beyond
    /// [`MAX_PENDING_ACKS`] are dropped (their senders retransmit).
    fn refill(&mut self, now: Duration) {
        if self.shaper.queued() > 0 {
            return;
        }
        if self.ack_went_last && self.refill_own(now) {
            return;
        }
        if let Some(ack) = self.acks.pop_front() {
            match self.shaper.enqueue(Pending::Ack(ack)) {
                Ok(()) => self.ack_went_last = true,
                Err(Pending::Ack(ack)) => self.acks.push_front(ack),
                Err(Pending::Fragment(_)) => {}
            }
            return;
        }
        self.refill_own(now);
    }

    /// Hands the outbox's next (re)transmission to the shaper; false if
    /// none is due.
    fn refill_own(&mut self, now: Duration) -> bool {
        let Some(t) = self.outbox.next_transmission(now) else {
            return false;
        };
        self.outbox_changed = true;
        match self.shaper.enqueue(Pending::Fragment(t)) {
            Ok(()) => {
                self.ack_went_last = false;
                true
            }
            Err(Pending::Fragment(t)) => {
                self.outbox.not_sent(t.local_id, t.fragment.index);
                false
            }
            Err(Pending::Ack(_)) => false,
        }
    }

    fn emit<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, slot: Slot<Pending<C>>, now: Duration) {
        let packet = match slot {
            Slot::Real(Pending::Ack(packet)) => {
                self.stats.real_sent += 1;
                Some(packet)
            }
            Slot::Real(Pending::Fragment(t)) => match self.fragment_packet(rng, &t, now) {
                Some(p) => {
                    self.stats.real_sent += 1;
                    Some(p)
                }
                None => {
                    self.outbox.not_sent(t.local_id, t.fragment.index);
                    None
                }
            },
            Slot::Loop => {
                self.stats.loops_sent += 1;
                self.loop_packet(rng, now)
            }
            Slot::Drop => {
                self.stats.drops_sent += 1;
                self.drop_packet(rng)
            }
        };
        match packet.and_then(|p| p.to_frame(&self.geometry).ok()) {
            Some(frame) => self.transmits.push_back(frame),
            None => self.stats.skipped += 1,
        }
    }

    fn delays<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> HopDelays {
        HopDelays::sample_exponential(rng, self.geometry.hops, self.topology.mean_hop_delay())
    }

    fn loop_packet<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now: Duration,
    ) -> Option<OutgoingPacket> {
        let gateway = self.own.gateway;
        let route = self
            .topology
            .route(rng, &self.geometry, gateway, gateway)
            .ok()?;
        let delays = self.delays(rng);
        let mut id = [0u8; ID_LEN];
        rng.fill_bytes(&mut id);
        let id = LoopId(id);
        let packet = build_mailbox_packet(
            rng,
            &self.geometry,
            &route,
            &delays,
            self.own.mailbox,
            &self.own_key,
            &Body::Loop(id),
        )
        .ok()?;
        self.loops.sent(id, now);
        Some(packet)
    }

    fn drop_packet<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Option<OutgoingPacket> {
        let exit = self.topology.random_gateway(rng).ok()?;
        let route = self
            .topology
            .route(rng, &self.geometry, self.own.gateway, exit)
            .ok()?;
        let delays = self.delays(rng);
        build_drop_cover(rng, &self.geometry, &route, &delays).ok()
    }

    fn fragment_packet<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        t: &Transmission<C>,
        now: Duration,
    ) -> Option<OutgoingPacket> {
        let address = self.addresses.get(&t.recipient)?.clone();
        let geometry = &self.geometry;
        let route = self
            .topology
            .route(rng, geometry, self.own.gateway, address.gateway)
            .ok()?;
        let back = self
            .topology
            .route(rng, geometry, address.gateway, self.own.gateway)
            .ok()?;
        let delays = self.delays(rng);
        let back_delays = self.delays(rng);
        let (surb_ack, reply_key) = SurbAck::new(
            rng,
            geometry,
            &back,
            &back_delays,
            self.own.mailbox,
            self.own_key,
        )
        .ok()?;
        let ack_id = surb_ack.ack_id;
        let packet = build_mailbox_packet(
            rng,
            geometry,
            &route,
            &delays,
            address.mailbox,
            &address.mailbox_key,
            &Body::Fragment {
                fragment: t.fragment.clone(),
                surb_ack,
            },
        )
        .ok()?;
        let expected = self.topology.mean_hop_delay() * geometry.hops as u32;
        let timeout = ack_timeout(expected, self.pull_interval());
        if let Some(event) = self.outbox.record_sent(
            t.local_id,
            t.fragment.index,
            ack_id,
            reply_key,
            now,
            timeout,
        ) {
            self.events.push_back(EndpointEvent::Status(event));
        }
        self.outbox_changed = true;
        Some(packet)
    }

    /// One stored packet: an ack over a reply block this client gave away
    /// is found by its delivery tag and turned back into its view with the
    /// kept reply key; anything else is its view already.
    fn deliver<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, delivery: &[u8], now: Duration) {
        let Ok((tag, payload)) = split_delivery(&self.geometry, delivery) else {
            return;
        };
        match self.outbox.reply_key(tag) {
            Some(key) => {
                if let Ok(view) = key.open(&self.geometry, payload) {
                    self.receive(rng, &view, now, true);
                }
            }
            None => self.receive(rng, payload, now, true),
        }
    }

    fn receive<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        payload: &[u8],
        now: Duration,
        acknowledge: bool,
    ) {
        let Ok(body) = open_delivery(&self.geometry, &self.own.sealing, payload) else {
            // Not sealed to this mailbox: a dummy or garbage.
            return;
        };
        match body {
            Body::Loop(id) => {
                self.loops.returned(&id, now);
            }
            Body::Ack(id) => {
                if let Some(event) = self.outbox.acknowledged(id, now) {
                    self.outbox_changed = true;
                    self.events.push_back(EndpointEvent::Status(event));
                }
            }
            Body::Fragment { fragment, surb_ack } => {
                let message_id = fragment.message_id.0;
                let index = fragment.index;
                let received = self.inbox.receive(fragment, now);
                match &received {
                    Received::Rejected(_) => return,
                    Received::Partial if acknowledge => {
                        self.events.push_back(EndpointEvent::KeepFragment {
                            message_id,
                            index,
                            payload: payload.to_vec(),
                        })
                    }
                    _ => {}
                }
                // Each block is used once: a second copy of the fragment
                // (a mailbox entry delivered again) gets no second ack,
                // which would repeat the block's Sphinx header on the wire.
                if acknowledge
                    && self.acks.len() < MAX_PENDING_ACKS
                    && self.inbox.first_answer(surb_ack.ack_id, now)
                {
                    self.inbox_changed = true;
                    if let Ok(ack) = build_ack(rng, &self.geometry, surb_ack) {
                        self.acks.push_back(ack);
                    }
                }
                if let Received::Complete(bytes) = received {
                    self.inbox_changed = true;
                    self.events.push_back(EndpointEvent::Message(bytes));
                    self.events
                        .push_back(EndpointEvent::ForgetFragments { message_id });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
