//! Saving an outbox across restarts: a versioned postcard encoding with
//! times relative to the moment of saving, checked field by field on restore.

use std::time::Duration;

use aegis_mix_packet::constants::{ID_LEN, MAX_FRAGMENTS};
use aegis_mix_packet::{AckId, Geometry, MessageId, ReplyKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{LocalId, OutFragment, OutMessage, Outbox, OutboxConfig, OutboxError, SentCopy, State};

/// Version of the outbox's persisted form. Version 1 kept ack ids only;
/// version 2 keeps each transmission's reply key with its ack id. A
/// version-1 outbox still restores: its copies have no key (their acks,
/// sent over the earlier packet format, cannot arrive any more), and
/// retransmission sends the fragments again.
const OUTBOX_FORMAT_VERSION: u8 = 2;
const OUTBOX_FORMAT_V1: u8 = 1;

#[derive(Serialize, Deserialize)]
enum SavedState {
    Unsent,
    /// Sent (or handed out) and not yet acknowledged; the time left.
    Waiting(Duration),
    Due,
    Acked,
}

#[derive(Serialize, Deserialize)]
struct SavedCopy {
    ack: [u8; ID_LEN],
    /// `ReplyKey::to_bytes`; empty for a copy without a key.
    key: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct SavedFragment<C = SavedCopy> {
    data: Vec<u8>,
    attempts: u32,
    ever_sent: bool,
    state: SavedState,
    copies: Vec<C>,
}

#[derive(Serialize, Deserialize)]
struct SavedMessage<R, C = SavedCopy> {
    local_id: u64,
    recipient: R,
    message_id: [u8; ID_LEN],
    age: Duration,
    fragments: Vec<SavedFragment<C>>,
}

#[derive(Serialize, Deserialize)]
struct Saved<R, C = SavedCopy> {
    version: u8,
    next_local: u64,
    messages: Vec<SavedMessage<R, C>>,
}

/// A version-1 copy: the ack id alone.
type SavedAckV1 = [u8; ID_LEN];

impl<R> SavedMessage<R, SavedAckV1> {
    fn upgrade(self) -> SavedMessage<R> {
        SavedMessage {
            local_id: self.local_id,
            recipient: self.recipient,
            message_id: self.message_id,
            age: self.age,
            fragments: self
                .fragments
                .into_iter()
                .map(|f| SavedFragment {
                    data: f.data,
                    attempts: f.attempts,
                    ever_sent: f.ever_sent,
                    state: f.state,
                    copies: f
                        .copies
                        .into_iter()
                        .map(|ack| SavedCopy { ack, key: vec![] })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl<R: Clone + Serialize + DeserializeOwned> Outbox<R> {
    /// The outbox's state, to keep across restarts. Times are saved relative
    /// to `now`, so the restored outbox may use another time origin.
    /// A fragment handed out but not yet recorded as sent is saved as sent
    /// with no time left, so it is retransmitted soon after a restore.
    pub fn to_bytes(&self, now: Duration) -> Result<Vec<u8>, OutboxError> {
        let messages = self
            .messages
            .iter()
            .map(|(id, m)| SavedMessage {
                local_id: id.0,
                recipient: m.recipient.clone(),
                message_id: m.message_id.0,
                age: now.saturating_sub(m.queued_at),
                fragments: m
                    .fragments
                    .iter()
                    .map(|f| SavedFragment {
                        data: f.data.clone(),
                        attempts: f.attempts,
                        ever_sent: f.ever_sent,
                        state: match f.state {
                            State::Unsent => SavedState::Unsent,
                            State::Handed => SavedState::Waiting(Duration::ZERO),
                            State::InFlight(d) => SavedState::Waiting(d.saturating_sub(now)),
                            State::Due => SavedState::Due,
                            State::Acked => SavedState::Acked,
                        },
                        copies: f
                            .copies
                            .iter()
                            .map(|c| SavedCopy {
                                ack: c.ack.0,
                                key: c.key.as_ref().map(|k| k.to_bytes()).unwrap_or_default(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        postcard::to_allocvec(&Saved {
            version: OUTBOX_FORMAT_VERSION,
            next_local: self.next_local,
            messages,
        })
        .map_err(|_| OutboxError::Encoding)
    }

    /// Restores an outbox saved by [`Outbox::to_bytes`] for a network of
    /// `geometry` (its fragments must fit that geometry's), with `now` on
    /// the new time origin. Every field is checked for consistency.
    pub fn from_bytes(
        bytes: &[u8],
        config: OutboxConfig,
        geometry: &Geometry,
        now: Duration,
    ) -> Result<Self, OutboxError> {
        let version = *bytes.first().ok_or(OutboxError::Malformed("empty input"))?;
        let saved: Saved<R> = match version {
            OUTBOX_FORMAT_VERSION => decode_all(bytes)?,
            OUTBOX_FORMAT_V1 => {
                let v1: Saved<R, SavedAckV1> = decode_all(bytes)?;
                Saved {
                    version: OUTBOX_FORMAT_VERSION,
                    next_local: v1.next_local,
                    messages: v1.messages.into_iter().map(SavedMessage::upgrade).collect(),
                }
            }
            other => return Err(OutboxError::UnsupportedVersion(other)),
        };
        let mut outbox = Outbox::new(config);
        outbox.set_geometry(geometry.clone());
        outbox.next_local = saved.next_local;
        for m in saved.messages {
            outbox.restore_message(m, now)?;
        }
        Ok(outbox)
    }

    fn restore_message(&mut self, m: SavedMessage<R>, now: Duration) -> Result<(), OutboxError> {
        let local_id = LocalId(m.local_id);
        if m.local_id >= self.next_local || self.messages.contains_key(&local_id) {
            return Err(OutboxError::Malformed("message ids"));
        }
        let count = m.fragments.len();
        if count == 0 || count > MAX_FRAGMENTS {
            return Err(OutboxError::Malformed("fragment count"));
        }
        let mut message = OutMessage {
            recipient: m.recipient,
            message_id: MessageId(m.message_id),
            queued_at: now.saturating_sub(m.age),
            fragments: Vec::with_capacity(count),
            next_unsent: count,
            sent: 0,
            acked: 0,
            bytes: 0,
        };
        for (index, f) in m.fragments.into_iter().enumerate() {
            if f.data.len() > self.geometry.fragment_data_len() {
                return Err(OutboxError::Malformed("fragment data length"));
            }
            let unsent = matches!(f.state, SavedState::Unsent);
            let consistent = match f.state {
                SavedState::Unsent => f.attempts == 0 && !f.ever_sent,
                SavedState::Waiting(_) => f.attempts >= 1,
                SavedState::Due => true,
                SavedState::Acked => f.ever_sent,
            };
            if !consistent
                || (f.ever_sent && f.attempts == 0)
                || f.copies.len() > f.attempts as usize
            {
                return Err(OutboxError::Malformed("fragment attempts"));
            }
            if unsent {
                message.next_unsent = message.next_unsent.min(index);
            } else if message.next_unsent < index {
                return Err(OutboxError::Malformed("unsent fragments must come last"));
            }
            if f.ever_sent {
                message.sent += 1;
            }
            let state = match f.state {
                SavedState::Unsent => State::Unsent,
                SavedState::Waiting(left) => {
                    let deadline = now.saturating_add(left);
                    self.deadlines.insert((deadline, local_id, index));
                    State::InFlight(deadline)
                }
                SavedState::Due => {
                    self.due.push_back((local_id, index));
                    State::Due
                }
                SavedState::Acked => {
                    message.acked += 1;
                    State::Acked
                }
            };
            let mut copies = Vec::new();
            if state != State::Acked {
                for c in f.copies {
                    let key = if c.key.is_empty() {
                        None
                    } else {
                        let key = ReplyKey::from_bytes(&c.key)
                            .map_err(|_| OutboxError::Malformed("reply key"))?;
                        if self.tags.insert(*key.tag(), (local_id, index)).is_some() {
                            return Err(OutboxError::Malformed("repeated reply tag"));
                        }
                        Some(key)
                    };
                    if self.acks.insert(AckId(c.ack), (local_id, index)).is_some() {
                        return Err(OutboxError::Malformed("repeated ack id"));
                    }
                    copies.push(SentCopy {
                        ack: AckId(c.ack),
                        key,
                    });
                }
            }
            message.bytes += f.data.len();
            message.fragments.push(OutFragment {
                data: f.data,
                attempts: f.attempts,
                ever_sent: f.ever_sent,
                state,
                copies,
            });
        }
        if message.acked == count {
            return Err(OutboxError::Malformed("delivered message kept"));
        }
        if message.next_unsent < count {
            self.fresh.push_back(local_id);
        }
        self.queued_bytes += message.bytes;
        self.messages.insert(local_id, message);
        Ok(())
    }
}

fn decode_all<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, OutboxError> {
    crate::delivery::decode_whole(bytes).map_err(OutboxError::Malformed)
}
