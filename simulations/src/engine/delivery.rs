//! The outboxes, acknowledgements and retransmissions of
//! [`crate::delivery`].

use aegis_mix_packet::access::PULL_BATCH;
use aegis_mix_packet::constants::{DELIVERY_TAG_LEN, ID_LEN, PAYLOAD_KEY_SEED_LEN};
use aegis_mix_packet::{AckId, ReplyKey};
use aegis_proto::delivery::{
    LocalId, MessageStatus, Outbox, OutboxConfig, StatusEvent, ack_timeout,
};

use super::*;
use crate::delivery::DeliveryReport;
use crate::lineage::FixedMap;

/// Per-client outboxes and what the clients owe each other.
pub(super) struct Delivery {
    outboxes: Vec<Outbox<u32>>,
    /// Acknowledgements each client owes: the ack id.
    owed: Vec<VecDeque<u64>>,
    /// Whether the client's last real slot carried an acknowledgement.
    last_was_ack: Vec<bool>,
    /// When each client's outbox timer is scheduled.
    due: Vec<Option<Duration>>,
    /// What was written, by (writer, outbox id).
    messages: FixedMap<(u32, u64), Message>,
    /// Who is waiting for each ack id.
    acks: FixedMap<u64, u32>,
    /// Copies fetched, by message id.
    receipts: FixedMap<u64, u32>,
    next_ack: u64,
    timeout: Duration,
    latency_sum: f64,
    report: DeliveryReport,
}

/// The ack id a SURB-ACK carries, from the engine's counter.
fn ack_id(n: u64) -> AckId {
    let mut id = [0u8; ID_LEN];
    id[..8].copy_from_slice(&n.to_le_bytes());
    AckId(id)
}

impl Delivery {
    /// Outboxes for `clients`, timing out acknowledgements as the client
    /// does for routes that take `route_delay` on average, with the
    /// recipient's wait for a slot (`slot_wait`) in place of its pulls.
    pub(super) fn new(clients: usize, route_delay: Duration, slot_wait: Duration) -> Self {
        Delivery {
            outboxes: (0..clients)
                .map(|_| Outbox::new(OutboxConfig::default()))
                .collect(),
            owed: vec![VecDeque::new(); clients],
            last_was_ack: vec![false; clients],
            due: vec![None; clients],
            messages: FixedMap::default(),
            acks: FixedMap::default(),
            receipts: FixedMap::default(),
            next_ack: 1,
            timeout: ack_timeout(route_delay, slot_wait),
            latency_sum: 0.0,
            report: DeliveryReport::default(),
        }
    }
}

impl Sim<'_> {
    /// Starts reliable delivery and the pull grid, if the scenario asks.
    pub(super) fn start_delivery(&mut self) {
        if !self.s.delivery.acks {
            self.start_pulls();
            return;
        }
        let hops = self.topo.route_len() as u32;
        let route = self.mean_delay * hops + self.latency * hops;
        self.start_pulls();
        let slot_wait = match self.s.shaping {
            ShapingSpec::Poisson { payload_rate, .. } if payload_rate > 0.0 => {
                secs(1.0 / payload_rate)
            }
            ShapingSpec::Constant { interval_ms } => secs(interval_ms / 1000.0),
            _ => Duration::ZERO,
        };
        let slot_wait = self.pull.unwrap_or(slot_wait);
        self.delivery = Some(Delivery::new(self.s.clients.count, route, slot_wait));
    }

    /// Queues `message` from `sender` in its outbox; false if there is no
    /// outbox (acks off) or it is full.
    pub(super) fn queue_message(&mut self, now: Duration, sender: usize, message: Message) -> bool {
        let Some(d) = self.delivery.as_mut() else {
            return false;
        };
        let payload = message.id.to_le_bytes().to_vec();
        match d.outboxes[sender].queue(&mut self.rng, message.recipient, payload, now) {
            Ok(LocalId(local)) => {
                d.messages.insert((sender as u32, local), message);
                d.report.messages += 1;
            }
            Err(_) => self.bw.messages_queue_dropped += 1,
        }
        true
    }

    /// What a free payload slot of `client` at `at` carries: an owed
    /// acknowledgement or the outbox's next fragment (alternating while
    /// both wait), or nothing (a loop).
    pub(super) fn fill_slot(&mut self, at: Duration, client: usize) -> Option<Kind> {
        let d = self.delivery.as_mut()?;
        // After an acknowledgement, a waiting fragment has the next slot.
        let fragment_turn = d.last_was_ack[client] && d.outboxes[client].has_pending_transmission();
        let transmission = if d.owed[client].is_empty() || fragment_turn {
            d.outboxes[client].next_transmission(at)
        } else {
            None
        };
        let Some(t) = transmission else {
            let ack = d.owed[client].pop_front()?;
            d.last_was_ack[client] = true;
            d.report.acks_sent += 1;
            let to = d.acks.get(&ack).copied().unwrap_or(u32::MAX);
            return Some(Kind::Ack { to, ack });
        };
        d.last_was_ack[client] = false;
        let ack = d.next_ack;
        d.next_ack += 1;
        let mut key = vec![0u8; DELIVERY_TAG_LEN + PAYLOAD_KEY_SEED_LEN * self.topo.route_len()];
        key[..8].copy_from_slice(&ack.to_le_bytes());
        let Ok(key) = ReplyKey::from_bytes(&key) else {
            // Cannot happen for a valid topology; the fragment goes back.
            d.outboxes[client].not_sent(t.local_id, t.fragment.index);
            return None;
        };
        // The Sent status is of no use here.
        let _ = d.outboxes[client].record_sent(
            t.local_id,
            t.fragment.index,
            ack_id(ack),
            key,
            at,
            d.timeout,
        );
        d.acks.insert(ack, client as u32);
        d.report.transmissions += 1;
        if t.attempt > 1 {
            d.report.retransmissions += 1;
        }
        let mut message = *d.messages.get(&(client as u32, t.local_id.0))?;
        message.ack = ack;
        message.target &= t.attempt == 1;
        self.arm_outbox(at, client);
        Some(Kind::Real(message))
    }

    /// A recipient fetched a copy of `message`: it owes an acknowledgement
    /// for it. True for the first copy (always, with acks off).
    pub(super) fn receive(&mut self, client: usize, message: &Message) -> bool {
        let Some(d) = self.delivery.as_mut() else {
            return true;
        };
        if message.ack != 0 {
            d.owed[client].push_back(message.ack);
        }
        let copies = d.receipts.entry(message.id).or_insert(0);
        *copies += 1;
        if *copies == 1 {
            d.report.received += 1;
            true
        } else {
            d.report.duplicates += 1;
            false
        }
    }

    /// `client` fetched the acknowledgement `ack` from its mailbox.
    pub(super) fn acknowledged(&mut self, now: Duration, client: usize, ack: u64) {
        let Some(d) = self.delivery.as_mut() else {
            return;
        };
        d.acks.remove(&ack);
        if let Some(event) = d.outboxes[client].acknowledged(ack_id(ack), now) {
            Self::settle(d, client, now, event);
        }
    }

    /// A client's outbox timer: timed-out fragments become due again, and
    /// messages past their age fail.
    pub(super) fn outbox_due(&mut self, now: Duration, client: usize) {
        let Some(d) = self.delivery.as_mut() else {
            return;
        };
        if d.due[client] != Some(now) {
            return;
        }
        d.due[client] = None;
        for event in d.outboxes[client].poll(now) {
            Self::settle(d, client, now, event);
        }
        self.arm_outbox(now, client);
    }

    fn settle(d: &mut Delivery, client: usize, now: Duration, event: StatusEvent<u32>) {
        let Some(message) = d.messages.remove(&(client as u32, event.local_id.0)) else {
            return;
        };
        match event.status {
            MessageStatus::Delivered => {
                d.report.acknowledged += 1;
                let latency = (now - message.written).as_secs_f64();
                d.latency_sum += latency;
                d.report.ack_latency_max_secs = d.report.ack_latency_max_secs.max(latency);
            }
            MessageStatus::Failed => d.report.failed += 1,
            MessageStatus::Queued | MessageStatus::Sent => {
                d.messages
                    .insert((client as u32, event.local_id.0), message);
            }
        }
    }

    fn arm_outbox(&mut self, now: Duration, client: usize) {
        let Some(d) = self.delivery.as_mut() else {
            return;
        };
        if let Some(next) = d.outboxes[client].next_deadline() {
            let next = next.max(now);
            if d.due[client].is_none_or(|t| next < t) {
                d.due[client] = Some(next);
                self.queue
                    .schedule_far(next, Event::OutboxDue(client as u32));
            }
        }
    }

    /// Puts every online client on its pull grid, at a random phase.
    fn start_pulls(&mut self) {
        let Some(interval) = self.pull else {
            return;
        };
        self.pull_pending = vec![false; self.s.clients.count];
        for client in 0..self.s.clients.count {
            if self.online.is_online(client) {
                let phase = interval.mul_f64(self.rng.random::<f64>());
                self.pull_pending[client] = true;
                self.queue.schedule_far(phase, Event::Pull(client as u32));
            }
        }
    }

    /// `client` pulls: it fetches up to a batch of what waits, oldest
    /// first, and its next pull is one interval on (an offline client stops
    /// pulling until it is back).
    pub(super) fn pull(&mut self, now: Duration, client: usize) {
        self.pull_pending[client] = false;
        let Some(interval) = self.pull else {
            return;
        };
        if !self.online.is_online(client) {
            return;
        }
        let n = if self.pull_allowed(now, client) {
            PULL_BATCH.min(self.mailbox[client].len())
        } else {
            0
        };
        let batch: Vec<Boxed> = self.mailbox[client].drain(..n).collect();
        for boxed in batch {
            self.fetched(now, client, boxed);
        }
        self.pull_pending[client] = true;
        self.queue
            .schedule_far(now + interval, Event::Pull(client as u32));
    }

    /// A client back online pulls at once, then on its grid.
    pub(super) fn resume_pulls(&mut self, now: Duration, client: usize) {
        if self.pull.is_some() && !self.pull_pending[client] {
            self.pull_pending[client] = true;
            self.queue.schedule_far(now, Event::Pull(client as u32));
        }
    }

    /// The report, with its ratios.
    pub(super) fn delivery_report(&self) -> Option<DeliveryReport> {
        let d = self.delivery.as_ref()?;
        let mut r = d.report.clone();
        r.transmissions_per_message = r.transmissions as f64 / r.acknowledged.max(1) as f64;
        r.receipts_per_message = (r.received + r.duplicates) as f64 / r.received.max(1) as f64;
        r.ack_latency_mean_secs = d.latency_sum / r.acknowledged.max(1) as f64;
        Some(r)
    }
}
