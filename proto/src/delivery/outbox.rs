//! The sender's side of reliable delivery.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use aegis_mix_packet::constants::DELIVERY_TAG_LEN;
use aegis_mix_packet::{AckId, Fragment, Geometry, MessageId, PacketError, ReplyKey, split};
use rand::Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{ContactId, LocalId};

/// Bounds and retry policy of an [`Outbox`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Most messages queued at once (until delivered or failed).
    pub max_messages: usize,
    /// Most payload bytes queued at once.
    pub max_bytes: usize,
    /// Transmissions of one fragment before its message fails (at least 1;
    /// by default no limit, so `give_up_after` decides).
    pub max_attempts: u32,
    /// Age of a message (since it was queued) past which a timed-out
    /// fragment fails it. The back-off doubles the wait up to an hour, so a
    /// message to a recipient who is offline is tried about hourly; the
    /// default, 7 days, lets it wait out a week offline (the inbox
    /// remembers delivered ids as long, so a late copy is still a
    /// duplicate).
    pub give_up_after: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_messages: 1000,
            max_bytes: 64 * 1024 * 1024,
            max_attempts: u32::MAX,
            give_up_after: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Where a queued message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageStatus {
    /// Some fragment has not been sent yet.
    Queued,
    /// Every fragment has been sent at least once.
    Sent,
    /// Every fragment has been acknowledged. The message has left the outbox.
    Delivered,
    /// A fragment went unacknowledged after the last attempt. The message
    /// has left the outbox; the recipient may still receive it (it may have
    /// been offline), but the sender will not learn of it.
    Failed,
}

/// A change of a message's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEvent<R> {
    /// The message.
    pub local_id: LocalId,
    /// Its recipient.
    pub recipient: R,
    /// Its new status.
    pub status: MessageStatus,
}

/// One fragment to put in the next real slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmission<R> {
    /// The message it belongs to.
    pub local_id: LocalId,
    /// The recipient.
    pub recipient: R,
    /// The fragment; send it with a fresh SURB-ACK over a fresh route.
    pub fragment: Fragment,
    /// 1 for the first transmission, n for the n-th.
    pub attempt: u32,
}

/// How far a queued message has come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Queued or Sent.
    pub status: MessageStatus,
    /// Fragments of the message.
    pub fragments: usize,
    /// Fragments sent at least once.
    pub sent: usize,
    /// Fragments acknowledged.
    pub acknowledged: usize,
    /// Time since the message was queued.
    pub age: Duration,
}

/// Why a message could not be queued, or a saved outbox restored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OutboxError {
    /// The outbox holds [`OutboxConfig::max_messages`] messages already.
    #[error("outbox full: {0} messages queued")]
    TooManyMessages(usize),
    /// The message would take the outbox past [`OutboxConfig::max_bytes`].
    #[error("outbox full: {queued} bytes queued, {len} more would exceed {max}")]
    TooManyBytes {
        /// Bytes queued already.
        queued: usize,
        /// Size of the message.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The message is larger than the geometry can carry.
    #[error("message too large: {0}")]
    TooLarge(PacketError),
    /// A saved outbox that does not decode or is inconsistent.
    #[error("malformed saved outbox: {0}")]
    Malformed(&'static str),
    /// A saved outbox of a format this client does not read.
    #[error("unsupported saved outbox version {0}")]
    UnsupportedVersion(u8),
    /// The outbox could not be serialised (the recipient type refused).
    #[error("could not serialise the outbox")]
    Encoding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Never handed out.
    Unsent,
    /// Handed out by `next_transmission`, waiting for `record_sent`.
    Handed,
    /// Sent; waiting for an acknowledgement until the deadline.
    InFlight(Duration),
    /// Timed out; waiting in the retransmission queue.
    Due,
    /// Acknowledged.
    Acked,
}

#[derive(Debug)]
struct OutFragment {
    data: Vec<u8>,
    attempts: u32,
    /// Recorded as sent at least once.
    ever_sent: bool,
    state: State,
    /// Every transmission's ack id and reply key: an ack of any of them
    /// counts.
    copies: Vec<SentCopy>,
}

/// One transmission of a fragment: the id its ack carries, and the key that
/// reads the ack (none for a copy sent before reply keys were kept).
#[derive(Debug)]
struct SentCopy {
    ack: AckId,
    key: Option<ReplyKey>,
}

#[derive(Debug)]
struct OutMessage<R> {
    recipient: R,
    message_id: MessageId,
    queued_at: Duration,
    fragments: Vec<OutFragment>,
    next_unsent: usize,
    sent: usize,
    acked: usize,
    bytes: usize,
}

impl<R> OutMessage<R> {
    fn status(&self) -> MessageStatus {
        if self.sent == self.fragments.len() {
            MessageStatus::Sent
        } else {
            MessageStatus::Queued
        }
    }
}

/// The sender's reliable-delivery state machine. `R` names recipients.
#[derive(Debug)]
pub struct Outbox<R = ContactId> {
    config: OutboxConfig,
    geometry: Geometry,
    next_local: u64,
    messages: BTreeMap<LocalId, OutMessage<R>>,
    /// Messages with unsent fragments, in queue order.
    fresh: VecDeque<LocalId>,
    /// Fragments whose acknowledgement timed out, oldest first.
    due: VecDeque<(LocalId, usize)>,
    deadlines: BTreeSet<(Duration, LocalId, usize)>,
    acks: HashMap<AckId, (LocalId, usize)>,
    /// The delivery tags acks arrive with, to find their reply key by.
    tags: HashMap<[u8; DELIVERY_TAG_LEN], (LocalId, usize)>,
    queued_bytes: usize,
    /// Status changes found while handing out transmissions, for `poll`.
    events: Vec<StatusEvent<R>>,
}

impl<R: Clone> Outbox<R> {
    /// Splits messages queued from now on for `geometry` (the network's:
    /// the consensus names it). Messages already split keep their
    /// fragments, which a geometry with room for more data carries as well.
    pub fn set_geometry(&mut self, geometry: Geometry) {
        self.geometry = geometry;
    }

    /// An empty outbox for the standard geometry.
    pub fn new(config: OutboxConfig) -> Self {
        Outbox {
            config,
            geometry: Geometry::STANDARD,
            next_local: 0,
            messages: BTreeMap::new(),
            fresh: VecDeque::new(),
            due: VecDeque::new(),
            deadlines: BTreeSet::new(),
            acks: HashMap::new(),
            tags: HashMap::new(),
            queued_bytes: 0,
            events: Vec::new(),
        }
    }

    /// Queues `payload` (an encrypted message) for `recipient`, split into fragments.
    pub fn queue<G: Rng + ?Sized>(
        &mut self,
        rng: &mut G,
        recipient: R,
        payload: Vec<u8>,
        now: Duration,
    ) -> Result<LocalId, OutboxError> {
        if self.messages.len() >= self.config.max_messages {
            return Err(OutboxError::TooManyMessages(self.messages.len()));
        }
        if self.queued_bytes.saturating_add(payload.len()) > self.config.max_bytes {
            return Err(OutboxError::TooManyBytes {
                queued: self.queued_bytes,
                len: payload.len(),
                max: self.config.max_bytes,
            });
        }
        let message_id = MessageId::random(rng);
        let fragments =
            split(&self.geometry, message_id, &payload).map_err(OutboxError::TooLarge)?;
        let local_id = LocalId(self.next_local);
        self.next_local += 1;
        self.queued_bytes += payload.len();
        self.messages.insert(
            local_id,
            OutMessage {
                recipient,
                message_id,
                queued_at: now,
                fragments: fragments
                    .into_iter()
                    .map(|f| OutFragment {
                        data: f.data,
                        attempts: 0,
                        ever_sent: false,
                        state: State::Unsent,
                        copies: Vec::new(),
                    })
                    .collect(),
                next_unsent: 0,
                sent: 0,
                acked: 0,
                bytes: payload.len(),
            },
        );
        self.fresh.push_back(local_id);
        Ok(local_id)
    }

    /// The fragment to put in a real slot that fires at `now`: a due
    /// retransmission if there is one, else the next new fragment in queue
    /// order. Call [`Outbox::record_sent`] once it is sent, or
    /// [`Outbox::not_sent`] if it could not be.
    pub fn next_transmission(&mut self, now: Duration) -> Option<Transmission<R>> {
        self.expire(now);
        while let Some((local_id, index)) = self.due.pop_front() {
            if let Some(t) = self.hand_out(local_id, index, State::Due) {
                return Some(t);
            }
        }
        while let Some(&local_id) = self.fresh.front() {
            let Some(message) = self.messages.get_mut(&local_id) else {
                self.fresh.pop_front();
                continue;
            };
            let index = message.next_unsent;
            message.next_unsent += 1;
            if message.next_unsent >= message.fragments.len() {
                self.fresh.pop_front();
            }
            if let Some(t) = self.hand_out(local_id, index, State::Unsent) {
                return Some(t);
            }
        }
        None
    }

    fn hand_out(
        &mut self,
        local_id: LocalId,
        index: usize,
        expected: State,
    ) -> Option<Transmission<R>> {
        let message = self.messages.get_mut(&local_id)?;
        let count = message.fragments.len() as u16;
        let fragment = message.fragments.get_mut(index)?;
        if fragment.state != expected {
            return None;
        }
        fragment.state = State::Handed;
        fragment.attempts += 1;
        Some(Transmission {
            local_id,
            recipient: message.recipient.clone(),
            fragment: Fragment {
                message_id: message.message_id,
                index: index as u16,
                count,
                data: fragment.data.clone(),
            },
            attempt: fragment.attempts,
        })
    }

    /// Puts a handed-out fragment that could not be sent back at the front
    /// of the queue; the attempt does not count.
    pub fn not_sent(&mut self, local_id: LocalId, index: u16) {
        let index = index as usize;
        if let Some(fragment) = self
            .messages
            .get_mut(&local_id)
            .and_then(|m| m.fragments.get_mut(index))
            && fragment.state == State::Handed
        {
            fragment.state = State::Due;
            fragment.attempts = fragment.attempts.saturating_sub(1);
            self.due.push_front((local_id, index));
        }
    }

    /// Records that fragment `index` of `local_id` was sent at `now` with a
    /// SURB-ACK carrying `ack_id`, whose ack `key` reads. `ack_timeout` is the wait for a first
    /// transmission's acknowledgement; the n-th transmission waits
    /// [`retransmission_timeout`](super::retransmission_timeout)`(ack_timeout, n)`.
    /// Returns the message's `Sent` event when this was its last unsent
    /// fragment. Fragments no longer waiting to be sent (their message was
    /// delivered or failed meanwhile) are ignored.
    pub fn record_sent(
        &mut self,
        local_id: LocalId,
        index: u16,
        ack_id: AckId,
        key: ReplyKey,
        now: Duration,
        ack_timeout: Duration,
    ) -> Option<StatusEvent<R>> {
        let index = index as usize;
        let message = self.messages.get_mut(&local_id)?;
        let fragment = message.fragments.get_mut(index)?;
        if fragment.state != State::Handed {
            return None;
        }
        // Each retransmission waits twice as long as the one before, so a
        // recipient who is offline costs its contacts few real slots.
        let wait = super::retransmission_timeout(ack_timeout, fragment.attempts);
        let deadline = now.saturating_add(wait);
        fragment.state = State::InFlight(deadline);
        self.acks.insert(ack_id, (local_id, index));
        self.tags.insert(*key.tag(), (local_id, index));
        fragment.copies.push(SentCopy {
            ack: ack_id,
            key: Some(key),
        });
        self.deadlines.insert((deadline, local_id, index));
        if !fragment.ever_sent {
            fragment.ever_sent = true;
            message.sent += 1;
            if message.sent == message.fragments.len() {
                return Some(StatusEvent {
                    local_id,
                    recipient: message.recipient.clone(),
                    status: MessageStatus::Sent,
                });
            }
        }
        None
    }

    /// The key that reads an ack arriving with delivery tag `tag`, if it
    /// answers a transmission still waiting for one.
    pub fn reply_key(&self, tag: &[u8; DELIVERY_TAG_LEN]) -> Option<&ReplyKey> {
        let (local_id, index) = self.tags.get(tag)?;
        self.messages
            .get(local_id)?
            .fragments
            .get(*index)?
            .copies
            .iter()
            .filter_map(|c| c.key.as_ref())
            .find(|k| k.tag() == tag)
    }

    /// An acknowledgement arrived. Returns `Delivered` when it was the
    /// message's last unacknowledged fragment; unknown and repeated
    /// acknowledgements return `None`.
    pub fn acknowledged(&mut self, ack_id: AckId, _now: Duration) -> Option<StatusEvent<R>> {
        let (local_id, index) = self.acks.remove(&ack_id)?;
        let message = self.messages.get_mut(&local_id)?;
        let fragment = message.fragments.get_mut(index)?;
        if let State::InFlight(deadline) = fragment.state {
            self.deadlines.remove(&(deadline, local_id, index));
        }
        fragment.state = State::Acked;
        for copy in fragment.copies.drain(..) {
            self.acks.remove(&copy.ack);
            if let Some(key) = &copy.key {
                self.tags.remove(key.tag());
            }
        }
        message.acked += 1;
        if message.acked < message.fragments.len() {
            return None;
        }
        self.remove(local_id).map(|m| StatusEvent {
            local_id,
            recipient: m.recipient,
            status: MessageStatus::Delivered,
        })
    }

    /// Moves fragments whose acknowledgement timed out by `now` to the
    /// retransmission queue, fails messages that ran out of attempts, and
    /// returns the status changes since the last call.
    pub fn poll(&mut self, now: Duration) -> Vec<StatusEvent<R>> {
        self.expire(now);
        std::mem::take(&mut self.events)
    }

    fn expire(&mut self, now: Duration) {
        while let Some(&(deadline, local_id, index)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(message) = self.messages.get_mut(&local_id) else {
                continue;
            };
            let too_old = now.saturating_sub(message.queued_at) >= self.config.give_up_after;
            let Some(fragment) = message.fragments.get_mut(index) else {
                continue;
            };
            if fragment.state != State::InFlight(deadline) {
                continue;
            }
            if fragment.attempts >= self.config.max_attempts || too_old {
                if let Some(m) = self.remove(local_id) {
                    self.events.push(StatusEvent {
                        local_id,
                        recipient: m.recipient,
                        status: MessageStatus::Failed,
                    });
                }
            } else {
                fragment.state = State::Due;
                self.due.push_back((local_id, index));
            }
        }
    }

    /// Takes a message out with everything that refers to it; stale queue
    /// entries are skipped when they come up.
    fn remove(&mut self, local_id: LocalId) -> Option<OutMessage<R>> {
        let message = self.messages.remove(&local_id)?;
        for (index, fragment) in message.fragments.iter().enumerate() {
            for copy in &fragment.copies {
                self.acks.remove(&copy.ack);
                if let Some(key) = &copy.key {
                    self.tags.remove(key.tag());
                }
            }
            if let State::InFlight(deadline) = fragment.state {
                self.deadlines.remove(&(deadline, local_id, index));
            }
        }
        self.queued_bytes -= message.bytes;
        Some(message)
    }

    /// When [`Outbox::poll`] next has something to do: the earliest
    /// acknowledgement deadline, or zero if status changes are waiting.
    pub fn next_deadline(&self) -> Option<Duration> {
        if !self.events.is_empty() {
            return Some(Duration::ZERO);
        }
        self.deadlines.first().map(|(d, _, _)| *d)
    }

    /// The status of a message still in the outbox; `None` once it has left
    /// (its `Delivered` or `Failed` event said so) or if it never existed.
    pub fn status(&self, local_id: LocalId) -> Option<MessageStatus> {
        self.messages.get(&local_id).map(OutMessage::status)
    }

    /// Details of a message still in the outbox.
    pub fn progress(&self, local_id: LocalId, now: Duration) -> Option<Progress> {
        self.messages.get(&local_id).map(|m| Progress {
            status: m.status(),
            fragments: m.fragments.len(),
            sent: m.sent,
            acknowledged: m.acked,
            age: now.saturating_sub(m.queued_at),
        })
    }

    /// Whether a transmission is waiting for a slot.
    pub fn has_pending_transmission(&self) -> bool {
        self.fresh.iter().any(|id| self.messages.contains_key(id))
            || self.due.iter().any(|(id, i)| {
                self.messages
                    .get(id)
                    .and_then(|m| m.fragments.get(*i))
                    .is_some_and(|f| f.state == State::Due)
            })
    }

    /// Messages in the outbox.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the outbox is empty.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Payload bytes in the outbox.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Acknowledgement ids the outbox is waiting for.
    pub fn outstanding_acks(&self) -> usize {
        self.acks.len()
    }
}

mod saved;

#[cfg(test)]
mod tests;
