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
//! * [`Endpoint::prepare`] — builds the packets the next slots will carry
//!   (a fragment or an acknowledgement for the next real slot, a loop, a
//!   drop) and does the bookkeeping of what just left. The driver calls it
//!   after sending the frames, so emitting a slot costs the same whatever
//!   the packet is: its timing on the link does not tell its kind.
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

use aegis_directory::ClientShaping;
use aegis_mix_packet::access::PULL_BATCH;
use aegis_mix_packet::constants::ID_LEN;
use aegis_mix_packet::{
    Body, Geometry, HopDelays, LoopId, MailboxId, NodeId, SphinxPublicKey, SphinxSecret, SurbAck,
    build_ack, build_drop_cover, build_mailbox_packet, open_delivery, split_delivery,
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
/// An acknowledgement owed: the fragment's SURB-ACK, or (for a reply that
/// came over an anonymous reply block) a forward packet to the writer's
/// address naming the ack id.
enum OwedAck {
    Surb(SurbAck),
    Forward(Address, aegis_mix_packet::AckId),
}

/// Where in `Endpoint::ready` each kind of slot's packet waits.
const REAL: usize = 0;
const LOOP: usize = 1;
const DROP: usize = 2;

mod anonymous;
mod packets;
mod receive;
pub use anonymous::MAX_GIVEN_BLOCKS;
mod types;
pub use types::{Address, EndpointConfig, EndpointEvent, EndpointStats, Own, PacketKind};

/// A packet built before its slot: the frame, what it is, and what to
/// record once it has left. Every kind goes through the same steps when
/// its slot comes.
#[derive(Debug)]
struct Ready<C> {
    frame: Vec<u8>,
    kind: PacketKind,
    after: After<C>,
}

/// What to record about a packet that left, done in [`Endpoint::prepare`]
/// after the frame is on its way.
#[derive(Debug)]
enum After<C> {
    Nothing,
    /// A fragment: its retransmission deadline and SURB-ACK.
    Fragment(Box<SentFragment<C>>),
    /// A loop: its send time.
    Loop(LoopId),
}

/// What the outbox records when a fragment leaves.
#[derive(Debug)]
struct SentFragment<C> {
    t: Transmission<C>,
    ack_id: aegis_mix_packet::AckId,
    key: aegis_mix_packet::ReplyKey,
}

/// A client's protocol state machine.
pub struct Endpoint<C> {
    config: EndpointConfig,
    geometry: Geometry,
    own: Own,
    own_key: SphinxPublicKey,
    topology: Arc<Topology>,
    /// The schedule; its queue holds a token per real item staged in
    /// `ready[REAL]`.
    shaper: TrafficShaper<()>,
    shaping: ShapingConfig,
    /// The schedule's own randomness, seeded once from the caller's RNG:
    /// building a packet of one kind or another draws differently from the
    /// caller's RNG, and must not move the slots that follow.
    schedule: StdRng,
    outbox: Outbox<C>,
    inbox: Inbox,
    addresses: HashMap<C, Address>,
    /// Reply blocks given away for anonymous replies, and received.
    anonymous: anonymous::Anonymous<C>,
    /// Acknowledgements owed, built only when staged for their slot.
    acks: VecDeque<OwedAck>,
    /// The next real item, a loop and a drop, built ahead of their slots,
    /// side by side: whatever a slot carries, its emission takes it from
    /// the same few bytes of memory.
    ready: [Option<Ready<C>>; 3],
    /// Packets that left since the last [`Endpoint::prepare`], and when.
    left: Vec<(After<C>, Duration)>,
    /// The slots due at a wake-up (kept to reuse its allocation).
    due: Vec<crate::shaping::Emission<()>>,
    /// Whether the last real item handed to the shaper was an
    /// acknowledgement (acknowledgements and own fragments take turns).
    ack_went_last: bool,
    loops: LoopTracker<LoopId>,
    unacknowledged: Vec<[u8; 8]>,
    next_pull: Duration,
    transmits: VecDeque<(Vec<u8>, PacketKind)>,
    events: VecDeque<EndpointEvent<C>>,
    stats: EndpointStats,
    outbox_changed: bool,
    inbox_changed: bool,
}

/// The schedule the consensus asks for: Loopix's three Poisson streams, or
/// one real-or-loop packet at fixed intervals at the same total rate.
fn shaping_of(topology: &Topology) -> ShapingConfig {
    let p = &topology.parameters;
    match p.shaping {
        ClientShaping::Poisson => ShapingConfig::Poisson {
            payload_rate: p.lambda_p,
            loop_rate: p.lambda_l,
            drop_rate: p.lambda_d,
        },
        ClientShaping::ConstantRate => ShapingConfig::ConstantRate {
            interval: Duration::from_secs_f64(1.0 / p.client_rate()),
        },
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
        let (mut outbox, mut inbox) = (outbox, inbox);
        outbox.set_geometry(geometry.clone());
        inbox.set_geometry(geometry.clone());
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
            anonymous: anonymous::Anonymous::default(),
            acks: VecDeque::new(),
            ready: [None, None, None],
            left: Vec::with_capacity(8),
            due: Vec::with_capacity(8),
            ack_went_last: false,
            loops: LoopTracker::new(LOOP_TIMEOUT),
            unacknowledged: Vec::new(),
            next_pull: now,
            transmits: VecDeque::with_capacity(8),
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
                for token in self.shaper.drain_queued() {
                    let _ = shaper.enqueue(token);
                }
                self.shaper = shaper;
                self.shaping = wanted;
            }
        }
        // Packets already prepared still leave: hops try the previous
        // epoch's keys too.
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
        if self.config.prepare_ahead {
            self.prepare(rng, now);
        }
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

    /// Turns the schedule's slots due by `now` into frames for the
    /// gateway. With packets prepared ahead ([`Endpoint::prepare`]) this
    /// only hands out frames that are ready, whatever their kind; timers
    /// (acknowledgement timeouts, lost loops) are handled by `prepare`.
    pub fn handle_timeout<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, now: Duration) {
        if !self.config.prepare_ahead {
            self.expire(now);
            self.refill(rng, now);
        }
        // The buffers are kept between calls: emitting allocates nothing.
        let mut due = std::mem::take(&mut self.due);
        self.shaper.poll_into(now, &mut self.schedule, &mut due);
        let count = due.len();
        for (i, emission) in due.drain(..).enumerate() {
            self.emit(rng, emission.slot, now);
            // Several slots at once (a late wake-up): the next needs its
            // packets now.
            if !self.config.prepare_ahead || i + 1 < count {
                self.prepare(rng, now);
            }
        }
        self.due = due;
    }

    /// Builds what the next slots will carry — the next real item (an
    /// acknowledgement, or the outbox's next fragment with a fresh
    /// SURB-ACK), a loop and a drop — and records what left since the last
    /// call (retransmission deadlines, loop send times). Call it after
    /// sending the frames [`Endpoint::handle_timeout`] produced (queueing a
    /// message and taking in a pull call it themselves): then no slot
    /// waits for a packet to be built.
    pub fn prepare<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, now: Duration) {
        self.expire(now);
        self.settle();
        self.refill(rng, now);
        if self.ready[LOOP].is_none() {
            self.ready[LOOP] = self.loop_packet(rng);
        }
        if self.ready[DROP].is_none() {
            self.ready[DROP] = self.drop_packet(rng);
        }
    }

    /// Acknowledgement timeouts that passed (their fragments become due
    /// again) and loops given up as lost. Done outside the emission, so a
    /// slot's cost does not show whether timers fired before it.
    fn expire(&mut self, now: Duration) {
        for event in self.outbox.poll(now) {
            self.outbox_changed = true;
            self.events.push_back(EndpointEvent::Status(event));
        }
        self.loops.expire(now);
    }

    /// Records what left: each fragment's retransmission deadline (from
    /// when it left) and each loop's send time.
    fn settle(&mut self) {
        let expected = self.topology.mean_hop_delay() * self.geometry.hops as u32;
        let timeout = ack_timeout(expected, self.pull_interval());
        // Drained, not taken: the list keeps its allocation, so an
        // emission never allocates (what the allocator does would depend on
        // what was built and freed before it).
        for (after, at) in self.left.drain(..) {
            match after {
                After::Nothing => {}
                After::Fragment(sent) => {
                    let SentFragment { t, ack_id, key } = *sent;
                    if let Some(event) = self.outbox.record_sent(
                        t.local_id,
                        t.fragment.index,
                        ack_id,
                        key,
                        at,
                        timeout,
                    ) {
                        self.events.push_back(EndpointEvent::Status(event));
                    }
                    self.outbox_changed = true;
                }
                After::Loop(id) => self.loops.sent(id, at),
            }
        }
    }

    /// The next frame to send to the gateway.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front().map(|(frame, _)| frame)
    }

    /// The next frame to send, with what it carries (for the driver's own
    /// figures; the frame looks the same whatever it is).
    pub fn poll_transmit_kind(&mut self) -> Option<(Vec<u8>, PacketKind)> {
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
            self.deliver(&delivery, now);
            if self.unacknowledged.len() < PULL_BATCH {
                self.unacknowledged.push(id);
            }
        }
        // Acknowledgements now owed are ready for the next real slot.
        if self.config.prepare_ahead {
            self.prepare(rng, now);
        }
    }

    /// What a pull from another mailbox of ours brought (the gateway the
    /// mailbox moved away from, still drained): handled as
    /// [`Endpoint::handle_pulled`] does, but the pull ids are the other
    /// session's to acknowledge, not this one's.
    pub fn handle_drained<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        deliveries: Vec<Vec<u8>>,
        now: Duration,
    ) {
        for delivery in deliveries {
            self.deliver(&delivery, now);
        }
        if self.config.prepare_ahead {
            self.prepare(rng, now);
        }
    }

    /// After a restart: a kept fragment goes through the inbox again. It
    /// was acknowledged to its sender before, so no acknowledgement is sent.
    pub fn refeed(&mut self, payload: &[u8], now: Duration) {
        self.receive(payload, now, false);
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<EndpointEvent<C>> {
        self.events.pop_front()
    }

    /// Time between pulls: the configured interval, shortened when the
    /// consensus rates need it. Under Poisson shaping a client's mailbox
    /// fills at about λP + λL packets a second (its own loops and what its
    /// contacts send in their payload slots); at a constant rate every slot
    /// is real or a loop, so at λP + λL + λD. Each pull takes
    /// [`PULL_BATCH`] of them, so pulls come at least twice as often as
    /// that inflow needs. The interval depends only on the published
    /// parameters, the same for every client.
    pub fn pull_interval(&self) -> Duration {
        let p = &self.topology.parameters;
        let inflow = match p.shaping {
            ClientShaping::Poisson => p.lambda_p + p.lambda_l,
            ClientShaping::ConstantRate => p.client_rate(),
        }
        .max(0.0);
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

    /// Keeps one real item waiting in the shaper, built: a pending
    /// acknowledgement or the outbox's next (re)transmission. When both
    /// wait they take turns, so whoever fills the mailbox with fragments
    /// (anyone holding the client's card can) makes the client spend at
    /// most every other real slot acknowledging them: its own messages
    /// still leave at half their rate or better, and acknowledgements
    /// beyond [`MAX_PENDING_ACKS`] are dropped (their senders retransmit).
    fn refill<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, now: Duration) {
        if self.shaper.queued() > 0 {
            return;
        }
        if self.ack_went_last && self.refill_own(rng, now) {
            return;
        }
        if let Some(owed) = self.acks.pop_front() {
            // Built now, not when its fragment arrived: taking in a pull
            // builds nothing, and an ack costs its building here, next to
            // the fragments' (a block that cannot be built is dropped; its
            // sender retransmits with another).
            let frame = match owed {
                OwedAck::Surb(surb_ack) => build_ack(rng, &self.geometry, surb_ack)
                    .ok()
                    .and_then(|p| p.to_frame(&self.geometry).ok()),
                OwedAck::Forward(to, ack_id) => self.forward_ack(rng, &to, ack_id),
            };
            if let Some(frame) = frame {
                let ack = Ready {
                    frame,
                    kind: PacketKind::Ack,
                    after: After::Nothing,
                };
                if self.stage_real(ack).is_ok() {
                    self.ack_went_last = true;
                }
            }
            return;
        }
        self.refill_own(rng, now);
    }

    /// Builds the outbox's next (re)transmission and hands it to the
    /// shaper; false if none is due (or none could be built: it waits in
    /// the outbox).
    fn refill_own<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, now: Duration) -> bool {
        let Some(t) = self.outbox.next_transmission(now) else {
            return false;
        };
        self.outbox_changed = true;
        let Some(ready) = self.fragment_packet(rng, t) else {
            return false;
        };
        match self.stage_real(ready) {
            Ok(()) => {
                self.ack_went_last = false;
                true
            }
            Err(ready) => {
                if let After::Fragment(sent) = ready.after {
                    self.outbox.not_sent(sent.t.local_id, sent.t.fragment.index);
                }
                false
            }
        }
    }

    /// Stages a real item for the next payload slot (one at a time: the
    /// shaper's token says a payload slot carries it).
    fn stage_real(&mut self, ready: Ready<C>) -> Result<(), Ready<C>> {
        if self.ready[REAL].is_some() || self.shaper.enqueue(()).is_err() {
            return Err(ready);
        }
        self.ready[REAL] = Some(ready);
        Ok(())
    }

    /// Hands out the slot's frame. A prepared packet of any kind takes the
    /// same steps from the same place; only a cover packet that could not
    /// be prepared is built here.
    fn emit<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, slot: Slot<()>, now: Duration) {
        let index = match slot {
            Slot::Real(()) => REAL,
            Slot::Loop => LOOP,
            Slot::Drop => DROP,
        };
        let ready = match self.ready[index].take() {
            Some(ready) => Some(ready),
            None if index == LOOP => self.loop_packet(rng),
            None if index == DROP => self.drop_packet(rng),
            None => None,
        };
        let Some(ready) = ready else {
            self.stats.skipped += 1;
            return;
        };
        match ready.kind {
            PacketKind::Fragment | PacketKind::Ack => self.stats.real_sent += 1,
            PacketKind::Loop => self.stats.loops_sent += 1,
            PacketKind::Drop => self.stats.drops_sent += 1,
        }
        self.left.push((ready.after, now));
        self.transmits.push_back((ready.frame, ready.kind));
    }
}

#[cfg(test)]
mod tests;
