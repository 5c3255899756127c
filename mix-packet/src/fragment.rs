//! Fragmentation and reassembly of messages.
//!
//! A message is split into fragments that each fit one packet. The recipient
//! reassembles them in any order, ignores duplicates (retransmissions), and
//! bounds what partial messages may cost: their number, their bytes, and
//! their age. Time is passed in by the caller (any fixed origin), so this is
//! a sans-IO core the simulator drives with a virtual clock.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;

use crate::constants::{ID_LEN, MAX_FRAGMENTS};
use crate::error::PacketError;
use crate::geometry::Geometry;

/// Identifies a message across its fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; ID_LEN]);

impl MessageId {
    /// A fresh random message id.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut id = [0u8; ID_LEN];
        rng.fill_bytes(&mut id);
        MessageId(id)
    }
}

/// One fragment of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// The message this fragment belongs to.
    pub message_id: MessageId,
    /// Position of the fragment, `0..count`.
    pub index: u16,
    /// Number of fragments of the message, `1..=MAX_FRAGMENTS`.
    pub count: u16,
    /// The fragment's share of the message.
    pub data: Vec<u8>,
}

impl Fragment {
    pub(crate) fn check(&self) -> Result<(), PacketError> {
        if self.count == 0 || self.count as usize > MAX_FRAGMENTS {
            return Err(PacketError::InvalidFragment("fragment count out of range"));
        }
        if self.index >= self.count {
            return Err(PacketError::InvalidFragment("index not below count"));
        }
        Ok(())
    }
}

/// Splits `message` into fragments of at most `geometry.fragment_data_len()`
/// bytes. An empty message is one empty fragment.
pub fn split(
    geometry: &Geometry,
    message_id: MessageId,
    message: &[u8],
) -> Result<Vec<Fragment>, PacketError> {
    let max = geometry.max_message_len();
    if message.len() > max {
        return Err(PacketError::MessageTooLarge {
            len: message.len(),
            max,
        });
    }
    let chunk = geometry.fragment_data_len();
    let count = message.len().div_ceil(chunk).max(1);
    Ok((0..count)
        .map(|i| Fragment {
            message_id,
            index: i as u16,
            count: count as u16,
            data: message[(i * chunk).min(message.len())..((i + 1) * chunk).min(message.len())]
                .to_vec(),
        })
        .collect())
}

/// Bounds on what partial messages may cost a recipient.
#[derive(Clone, Debug)]
pub struct ReassemblyLimits {
    /// Most messages in reassembly at once.
    pub max_partial_messages: usize,
    /// Most fragment bytes held across all partial messages.
    pub max_buffered_bytes: usize,
    /// A partial message whose first fragment is older than this is dropped;
    /// a completed message id is remembered this long to ignore late duplicates.
    pub timeout: Duration,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            max_partial_messages: 256,
            max_buffered_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(24 * 3600),
        }
    }
}

/// What inserting a fragment did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reassembled {
    /// The message is complete: here it is, once.
    Complete(MessageId, Vec<u8>),
    /// Stored; more fragments are needed.
    Pending,
    /// Seen before (a retransmission, or a late copy of a completed message).
    Duplicate,
}

/// Counters of what the reassembler did, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Messages completed.
    pub completed: u64,
    /// Fragments ignored as duplicates.
    pub duplicates: u64,
    /// Partial messages evicted to stay within the limits.
    pub evicted: u64,
    /// Partial messages dropped because they grew too old.
    pub expired: u64,
}

struct Partial {
    count: u16,
    parts: Vec<Option<Vec<u8>>>,
    received: usize,
    bytes: usize,
    first_seen: Duration,
}

/// Reassembles messages from fragments arriving in any order.
pub struct Reassembler {
    limits: ReassemblyLimits,
    partial: HashMap<MessageId, Partial>,
    buffered: usize,
    completed: HashMap<MessageId, Duration>,
    stats: ReassemblyStats,
}

impl Reassembler {
    /// A reassembler with the given limits.
    pub fn new(limits: ReassemblyLimits) -> Self {
        Reassembler {
            limits,
            partial: HashMap::new(),
            buffered: 0,
            completed: HashMap::new(),
            stats: ReassemblyStats::default(),
        }
    }

    /// Adds a fragment received at `now`.
    pub fn insert(
        &mut self,
        fragment: Fragment,
        now: Duration,
    ) -> Result<Reassembled, PacketError> {
        fragment.check()?;
        self.expire(now);
        if self.completed.contains_key(&fragment.message_id) {
            self.stats.duplicates += 1;
            return Ok(Reassembled::Duplicate);
        }
        if let Some(p) = self.partial.get(&fragment.message_id) {
            if p.count != fragment.count {
                return Err(PacketError::InvalidFragment(
                    "count differs from earlier fragments",
                ));
            }
            if p.parts[fragment.index as usize].is_some() {
                self.stats.duplicates += 1;
                return Ok(Reassembled::Duplicate);
            }
        } else if fragment.count > 1 {
            self.make_room(fragment.data.len());
            self.partial.insert(
                fragment.message_id,
                Partial {
                    count: fragment.count,
                    parts: vec![None; fragment.count as usize],
                    received: 0,
                    bytes: 0,
                    first_seen: now,
                },
            );
        } else {
            return Ok(self.complete(fragment.message_id, fragment.data, now));
        }
        let Some(p) = self.partial.get_mut(&fragment.message_id) else {
            return Ok(Reassembled::Pending);
        };
        p.bytes += fragment.data.len();
        self.buffered += fragment.data.len();
        p.received += 1;
        p.parts[fragment.index as usize] = Some(fragment.data);
        if p.received < p.count as usize {
            self.enforce_byte_limit(fragment.message_id);
            return Ok(Reassembled::Pending);
        }
        let Some(p) = self.partial.remove(&fragment.message_id) else {
            return Ok(Reassembled::Pending);
        };
        self.buffered -= p.bytes;
        let message = p.parts.into_iter().flatten().flatten().collect();
        Ok(self.complete(fragment.message_id, message, now))
    }

    fn complete(&mut self, id: MessageId, message: Vec<u8>, now: Duration) -> Reassembled {
        self.stats.completed += 1;
        let max_remembered = self.limits.max_partial_messages.max(1) * 16;
        if self.completed.len() >= max_remembered
            && let Some(oldest) = self
                .completed
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(id, _)| *id)
        {
            self.completed.remove(&oldest);
        }
        self.completed.insert(id, now);
        Reassembled::Complete(id, message)
    }

    /// Evicts the oldest partial messages until one more (of `incoming` bytes) fits.
    fn make_room(&mut self, incoming: usize) {
        while !self.partial.is_empty()
            && (self.partial.len() >= self.limits.max_partial_messages
                || self.buffered + incoming > self.limits.max_buffered_bytes)
        {
            self.evict_oldest(None);
        }
    }

    fn enforce_byte_limit(&mut self, keep: MessageId) {
        while self.buffered > self.limits.max_buffered_bytes && self.partial.len() > 1 {
            self.evict_oldest(Some(keep));
        }
        if self.buffered > self.limits.max_buffered_bytes {
            self.evict_oldest(None);
        }
    }

    fn evict_oldest(&mut self, except: Option<MessageId>) {
        let oldest = self
            .partial
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .min_by_key(|(_, p)| p.first_seen)
            .map(|(id, _)| *id);
        if let Some(id) = oldest
            && let Some(p) = self.partial.remove(&id)
        {
            self.buffered -= p.bytes;
            self.stats.evicted += 1;
        }
    }

    /// Drops partial messages and remembered ids older than the timeout.
    pub fn expire(&mut self, now: Duration) {
        let timeout = self.limits.timeout;
        let before = self.partial.len();
        let mut freed = 0;
        self.partial.retain(|_, p| {
            let keep = now.saturating_sub(p.first_seen) < timeout;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.buffered -= freed;
        self.stats.expired += (before - self.partial.len()) as u64;
        self.completed
            .retain(|_, t| now.saturating_sub(*t) < timeout);
    }

    /// Messages currently in reassembly.
    pub fn partial_messages(&self) -> usize {
        self.partial.len()
    }

    /// Fragment bytes currently held.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// What the reassembler has done so far.
    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> MessageId {
        MessageId([n; ID_LEN])
    }

    #[test]
    fn split_sizes() {
        let g = Geometry::STANDARD;
        let cap = g.fragment_data_len();
        assert_eq!(split(&g, id(1), b"").unwrap().len(), 1);
        assert_eq!(split(&g, id(1), &vec![0; cap]).unwrap().len(), 1);
        assert_eq!(split(&g, id(1), &vec![0; cap + 1]).unwrap().len(), 2);
        let too_big = vec![0; g.max_message_len() + 1];
        assert!(matches!(
            split(&g, id(1), &too_big),
            Err(PacketError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn limits_evict_oldest_and_count_it() {
        let limits = ReassemblyLimits {
            max_partial_messages: 2,
            max_buffered_bytes: 1000,
            timeout: Duration::from_secs(10),
        };
        let mut r = Reassembler::new(limits);
        let frag = |m: u8, i: u16| Fragment {
            message_id: id(m),
            index: i,
            count: 2,
            data: vec![m; 10],
        };
        let t = Duration::from_secs;
        assert_eq!(r.insert(frag(1, 0), t(0)).unwrap(), Reassembled::Pending);
        assert_eq!(r.insert(frag(2, 0), t(1)).unwrap(), Reassembled::Pending);
        assert_eq!(r.insert(frag(3, 0), t(2)).unwrap(), Reassembled::Pending);
        assert_eq!(r.partial_messages(), 2);
        assert_eq!(r.stats().evicted, 1);
        // message 1 was evicted: its second fragment starts over
        assert_eq!(r.insert(frag(1, 1), t(3)).unwrap(), Reassembled::Pending);
        assert_eq!(
            r.insert(frag(3, 1), t(3)).unwrap(),
            Reassembled::Complete(id(3), vec![3; 20])
        );
        assert_eq!(r.insert(frag(3, 1), t(4)).unwrap(), Reassembled::Duplicate);
    }

    #[test]
    fn byte_limit_holds() {
        let limits = ReassemblyLimits {
            max_partial_messages: 100,
            max_buffered_bytes: 25,
            timeout: Duration::from_secs(10),
        };
        let mut r = Reassembler::new(limits);
        for m in 0..10u8 {
            let f = Fragment {
                message_id: id(m),
                index: 0,
                count: 3,
                data: vec![m; 10],
            };
            r.insert(f, Duration::ZERO).unwrap();
            assert!(r.buffered_bytes() <= 25);
        }
        assert!(r.stats().evicted >= 8);
    }

    #[test]
    fn partial_messages_expire_by_passed_in_time() {
        let limits = ReassemblyLimits {
            max_partial_messages: 10,
            max_buffered_bytes: 1000,
            timeout: Duration::from_secs(10),
        };
        let mut r = Reassembler::new(limits);
        let f = Fragment {
            message_id: id(9),
            index: 0,
            count: 2,
            data: vec![1; 5],
        };
        r.insert(f, Duration::from_secs(0)).unwrap();
        r.expire(Duration::from_secs(9));
        assert_eq!(r.partial_messages(), 1);
        r.expire(Duration::from_secs(10));
        assert_eq!(r.partial_messages(), 0);
        assert_eq!(r.buffered_bytes(), 0);
        assert_eq!(r.stats().expired, 1);
    }

    #[test]
    fn inconsistent_fragments_are_errors() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let f = |i, c| Fragment {
            message_id: id(1),
            index: i,
            count: c,
            data: vec![],
        };
        assert!(r.insert(f(2, 2), Duration::ZERO).is_err());
        assert!(r.insert(f(0, 0), Duration::ZERO).is_err());
        assert!(
            r.insert(f(0, (MAX_FRAGMENTS + 1) as u16), Duration::ZERO)
                .is_err()
        );
        r.insert(f(0, 3), Duration::ZERO).unwrap();
        assert_eq!(
            r.insert(f(1, 4), Duration::ZERO),
            Err(PacketError::InvalidFragment(
                "count differs from earlier fragments"
            ))
        );
    }
}
