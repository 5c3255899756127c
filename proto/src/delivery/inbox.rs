//! The recipient's side of reliable delivery.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use aegis_mix_packet::constants::ID_LEN;
use aegis_mix_packet::{
    AckId, Fragment, Geometry, MessageId, PacketError, Reassembled, Reassembler, ReassemblyLimits,
    ReassemblyStats,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Version of the inbox's persisted form.
/// Version 1 kept delivered message ids; version 2 also the ack ids
/// answered (version 1 still restores, with none).
const INBOX_FORMAT_VERSION: u8 = 2;
const INBOX_FORMAT_V1: u8 = 1;

/// Bounds of an [`Inbox`].
#[derive(Clone, Debug)]
pub struct InboxConfig {
    /// Bounds on partial messages (count, bytes, age).
    pub reassembly: ReassemblyLimits,
    /// How long a delivered message's id is remembered, so that late copies
    /// of its fragments are recognised as duplicates. It must exceed the
    /// time over which a sender retransmits (its attempts × timeouts) plus
    /// the time a copy can wait in the mailbox; the default, 7 days, covers
    /// the outbox defaults with backoff many times over and a week offline.
    pub remember_for: Duration,
    /// Most delivered message ids remembered; the oldest are forgotten first.
    pub max_remembered: usize,
}

impl Default for InboxConfig {
    fn default() -> Self {
        InboxConfig {
            reassembly: ReassemblyLimits::default(),
            remember_for: Duration::from_secs(7 * 24 * 3600),
            max_remembered: 100_000,
        }
    }
}

/// What a received fragment amounts to. Acknowledge every fragment that
/// is not `Rejected` — duplicates too, since the sender may have missed the
/// first acknowledgement.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// The fragment completed a message: here it is, once.
    Complete(Vec<u8>),
    /// Stored; more fragments are needed.
    Partial,
    /// A copy of a fragment already held, or of a message already delivered.
    Duplicate,
    /// The fragment is invalid (inconsistent header, oversized data); do not acknowledge it.
    Rejected(PacketError),
}

/// Why a saved inbox could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InboxError {
    /// The bytes do not decode or are inconsistent.
    #[error("malformed saved inbox: {0}")]
    Malformed(&'static str),
    /// A saved inbox of a format this client does not read.
    #[error("unsupported saved inbox version {0}")]
    UnsupportedVersion(u8),
}

/// Reassembles fragments and delivers every message exactly once.
pub struct Inbox {
    config: InboxConfig,
    geometry: Geometry,
    reassembler: Reassembler,
    /// Delivered ids, oldest first, with the time they were delivered.
    delivered_order: VecDeque<(Duration, MessageId)>,
    delivered: HashSet<MessageId>,
    /// Ack ids this inbox answered (each SURB-ACK's block is used once),
    /// oldest first, with the time they were answered.
    answered_order: VecDeque<(Duration, AckId)>,
    answered: HashSet<AckId>,
    rejected: u64,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("partial_messages", &self.reassembler.partial_messages())
            .field("remembered", &self.delivered.len())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u8,
    /// `(age, id)`, oldest first.
    delivered: Vec<(Duration, [u8; ID_LEN])>,
    /// `(age, ack id)` answered, oldest first.
    answered: Vec<(Duration, [u8; ID_LEN])>,
}

#[derive(Serialize, Deserialize)]
struct SavedV1 {
    version: u8,
    delivered: Vec<(Duration, [u8; ID_LEN])>,
}

impl Inbox {
    /// Takes fragments of `geometry` (the network's: the consensus names
    /// it) from now on.
    pub fn set_geometry(&mut self, geometry: Geometry) {
        self.geometry = geometry;
    }

    /// An empty inbox for the standard geometry.
    pub fn new(config: InboxConfig) -> Self {
        Inbox {
            reassembler: Reassembler::new(config.reassembly.clone()),
            config,
            geometry: Geometry::STANDARD,
            delivered_order: VecDeque::new(),
            delivered: HashSet::new(),
            answered_order: VecDeque::new(),
            answered: HashSet::new(),
            rejected: 0,
        }
    }

    /// Whether the SURB-ACK `ack` may be answered at `now`: true the first
    /// time (and it is remembered as answered), false for every later copy
    /// of its fragment. Using a reply block twice would send one Sphinx
    /// header twice, which the sender's gateway (and every hop) would see
    /// as the same packet; a sender that wants another ack sends another
    /// block with its retransmission.
    pub fn first_answer(&mut self, ack: AckId, now: Duration) -> bool {
        self.forget_expired(now);
        if self.answered.contains(&ack) {
            return false;
        }
        while self.answered.len() >= self.config.max_remembered.max(1) {
            match self.answered_order.pop_front() {
                Some((_, old)) => {
                    self.answered.remove(&old);
                }
                None => break,
            }
        }
        self.answered.insert(ack);
        self.answered_order.push_back((now, ack));
        true
    }

    /// Takes a fragment received at `now`.
    pub fn receive(&mut self, fragment: Fragment, now: Duration) -> Received {
        self.forget_expired(now);
        if fragment.data.len() > self.geometry.fragment_data_len() {
            self.rejected += 1;
            return Received::Rejected(PacketError::InvalidFragment(
                "data larger than a fragment holds",
            ));
        }
        if self.delivered.contains(&fragment.message_id) {
            return Received::Duplicate;
        }
        match self.reassembler.insert(fragment, now) {
            Ok(Reassembled::Complete(id, message)) => {
                self.remember(id, now);
                Received::Complete(message)
            }
            Ok(Reassembled::Pending) => Received::Partial,
            Ok(Reassembled::Duplicate) => Received::Duplicate,
            Err(e) => {
                self.rejected += 1;
                Received::Rejected(e)
            }
        }
    }

    fn remember(&mut self, id: MessageId, now: Duration) {
        while self.delivered.len() >= self.config.max_remembered.max(1) {
            match self.delivered_order.pop_front() {
                Some((_, old)) => {
                    self.delivered.remove(&old);
                }
                None => break,
            }
        }
        if self.delivered.insert(id) {
            self.delivered_order.push_back((now, id));
        }
    }

    fn forget_expired(&mut self, now: Duration) {
        while let Some(&(at, id)) = self.delivered_order.front() {
            if now.saturating_sub(at) < self.config.remember_for {
                break;
            }
            self.delivered_order.pop_front();
            self.delivered.remove(&id);
        }
        while let Some(&(at, ack)) = self.answered_order.front() {
            if now.saturating_sub(at) < self.config.remember_for {
                break;
            }
            self.answered_order.pop_front();
            self.answered.remove(&ack);
        }
    }

    /// Drops expired partial messages and remembered ids; call now and then
    /// when no fragments arrive.
    pub fn expire(&mut self, now: Duration) {
        self.forget_expired(now);
        self.reassembler.expire(now);
    }

    /// Delivered message ids currently remembered.
    pub fn remembered(&self) -> usize {
        self.delivered.len()
    }

    /// Messages waiting for more fragments.
    pub fn partial_messages(&self) -> usize {
        self.reassembler.partial_messages()
    }

    /// Fragments rejected as invalid.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// What the reassembler has done (completed, duplicates, evictions, expiries).
    pub fn reassembly_stats(&self) -> &ReassemblyStats {
        self.reassembler.stats()
    }

    /// The remembered delivered ids, to keep across restarts (times relative
    /// to `now`). Partial messages are not included: keep received fragments
    /// in the store before acknowledging them and feed them again after a
    /// restart.
    pub fn to_bytes(&self, now: Duration) -> Vec<u8> {
        let saved = Saved {
            version: INBOX_FORMAT_VERSION,
            delivered: self
                .delivered_order
                .iter()
                .map(|(at, id)| (now.saturating_sub(*at), id.0))
                .collect(),
            answered: self
                .answered_order
                .iter()
                .map(|(at, ack)| (now.saturating_sub(*at), ack.0))
                .collect(),
        };
        // Plain integers and byte arrays always serialise.
        postcard::to_allocvec(&saved).unwrap_or_default()
    }

    /// Restores what [`Inbox::to_bytes`] saved, with `now` on the new time origin.
    pub fn from_bytes(
        bytes: &[u8],
        config: InboxConfig,
        now: Duration,
    ) -> Result<Self, InboxError> {
        let version = *bytes.first().ok_or(InboxError::Malformed("empty input"))?;
        let saved = match version {
            INBOX_FORMAT_VERSION => decode_all::<Saved>(bytes)?,
            INBOX_FORMAT_V1 => {
                let v1 = decode_all::<SavedV1>(bytes)?;
                Saved {
                    version: INBOX_FORMAT_VERSION,
                    delivered: v1.delivered,
                    answered: Vec::new(),
                }
            }
            other => return Err(InboxError::UnsupportedVersion(other)),
        };
        let mut inbox = Inbox::new(config);
        let mut previous_age = Duration::MAX;
        for (age, id) in saved.delivered {
            if age > previous_age {
                return Err(InboxError::Malformed("ids out of order"));
            }
            previous_age = age;
            inbox.remember(MessageId(id), now.saturating_sub(age));
        }
        let mut previous_age = Duration::MAX;
        for (age, ack) in saved.answered {
            if age > previous_age {
                return Err(InboxError::Malformed("ack ids out of order"));
            }
            previous_age = age;
            if !inbox.first_answer(AckId(ack), now.saturating_sub(age)) {
                return Err(InboxError::Malformed("repeated ack id"));
            }
        }
        inbox.forget_expired(now);
        Ok(inbox)
    }
}

fn decode_all<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, InboxError> {
    super::decode_whole(bytes).map_err(InboxError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(id: u8, index: u16, count: u16) -> Fragment {
        Fragment {
            message_id: MessageId([id; ID_LEN]),
            index,
            count,
            data: vec![id; 10],
        }
    }

    const T0: Duration = Duration::from_secs(100);

    #[test]
    fn a_message_is_delivered_once_whatever_the_order_and_copies() {
        let mut inbox = Inbox::new(InboxConfig::default());
        assert_eq!(inbox.receive(fragment(1, 2, 3), T0), Received::Partial);
        assert_eq!(inbox.receive(fragment(1, 2, 3), T0), Received::Duplicate);
        assert_eq!(inbox.receive(fragment(1, 0, 3), T0), Received::Partial);
        assert_eq!(
            inbox.receive(fragment(1, 1, 3), T0),
            Received::Complete(vec![1; 30])
        );
        for i in 0..3 {
            assert_eq!(inbox.receive(fragment(1, i, 3), T0), Received::Duplicate);
        }
        assert_eq!(inbox.remembered(), 1);
    }

    #[test]
    fn invalid_fragments_are_rejected() {
        let mut inbox = Inbox::new(InboxConfig::default());
        assert!(matches!(
            inbox.receive(fragment(1, 3, 3), T0),
            Received::Rejected(PacketError::InvalidFragment(_))
        ));
        let mut big = fragment(2, 0, 1);
        big.data = vec![0; Geometry::STANDARD.fragment_data_len() + 1];
        assert!(matches!(inbox.receive(big, T0), Received::Rejected(_)));
        assert_eq!(inbox.receive(fragment(3, 0, 2), T0), Received::Partial);
        assert!(matches!(
            inbox.receive(fragment(3, 1, 4), T0),
            Received::Rejected(_)
        ));
        assert_eq!(inbox.rejected(), 3);
    }

    #[test]
    fn remembered_ids_are_bounded_and_expire() {
        let config = InboxConfig {
            remember_for: Duration::from_secs(60),
            max_remembered: 3,
            ..InboxConfig::default()
        };
        let mut inbox = Inbox::new(config.clone());
        for id in 1..=4 {
            assert_eq!(
                inbox.receive(fragment(id, 0, 1), T0),
                Received::Complete(vec![id; 10])
            );
        }
        assert_eq!(inbox.remembered(), 3);
        // The oldest was forgotten here; the reassembler's own, shorter
        // memory still knows it.
        assert_eq!(inbox.receive(fragment(1, 0, 1), T0), Received::Duplicate);
        assert_eq!(inbox.remembered(), 3);
        inbox.expire(T0 + Duration::from_secs(59));
        assert_eq!(inbox.remembered(), 3);
        inbox.expire(T0 + Duration::from_secs(60));
        assert_eq!(inbox.remembered(), 0);
    }

    #[test]
    fn remembered_ids_survive_a_restart_on_a_new_time_origin() {
        let mut inbox = Inbox::new(InboxConfig::default());
        assert!(matches!(
            inbox.receive(fragment(1, 0, 1), T0),
            Received::Complete(_)
        ));
        assert!(matches!(
            inbox.receive(fragment(2, 0, 1), T0 + Duration::from_secs(10)),
            Received::Complete(_)
        ));
        let saved = inbox.to_bytes(T0 + Duration::from_secs(20));
        // After the restart the clock starts again from zero.
        let mut restored =
            Inbox::from_bytes(&saved, InboxConfig::default(), Duration::ZERO).unwrap();
        assert_eq!(restored.remembered(), 2);
        assert_eq!(
            restored.receive(fragment(1, 0, 1), Duration::from_secs(1)),
            Received::Duplicate
        );
        assert!(Inbox::from_bytes(&[], InboxConfig::default(), T0).is_err());
        assert_eq!(
            Inbox::from_bytes(&[9], InboxConfig::default(), T0).err(),
            Some(InboxError::UnsupportedVersion(9))
        );
        let mut trailing = saved.clone();
        trailing.push(0);
        assert!(Inbox::from_bytes(&trailing, InboxConfig::default(), T0).is_err());
        // Forgotten on restore once older than the window.
        let config = InboxConfig {
            remember_for: Duration::from_secs(15),
            ..InboxConfig::default()
        };
        assert_eq!(
            Inbox::from_bytes(&saved, config, T0).unwrap().remembered(),
            1
        );
    }

    #[test]
    fn each_ack_is_answered_once_even_across_a_restart() {
        let mut inbox = Inbox::new(InboxConfig::default());
        let ack = AckId([7; ID_LEN]);
        assert!(inbox.first_answer(ack, T0));
        assert!(!inbox.first_answer(ack, T0 + Duration::from_secs(1)));
        assert!(inbox.first_answer(AckId([8; ID_LEN]), T0));
        let saved = inbox.to_bytes(T0 + Duration::from_secs(5));
        let mut restored =
            Inbox::from_bytes(&saved, InboxConfig::default(), Duration::ZERO).unwrap();
        assert!(!restored.first_answer(ack, Duration::from_secs(1)));
        // A saved inbox of format 1 (delivered ids only) still restores.
        let v1 = postcard::to_allocvec(&SavedV1 {
            version: INBOX_FORMAT_V1,
            delivered: vec![(Duration::from_secs(3), [1; ID_LEN])],
        })
        .unwrap();
        let mut old = Inbox::from_bytes(&v1, InboxConfig::default(), T0).unwrap();
        assert_eq!(old.remembered(), 1);
        assert!(old.first_answer(ack, T0));
        // A saved list that names one ack twice is refused.
        let twice = postcard::to_allocvec(&Saved {
            version: INBOX_FORMAT_VERSION,
            delivered: vec![],
            answered: vec![
                (Duration::from_secs(2), [7; ID_LEN]),
                (Duration::from_secs(1), [7; ID_LEN]),
            ],
        })
        .unwrap();
        assert!(Inbox::from_bytes(&twice, InboxConfig::default(), T0).is_err());
    }
}
