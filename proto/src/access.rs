//! The gateway's access policy, sans-IO: how fast an attached client may
//! send and pull, and what a pull is answered with.
//!
//! A gateway accepts packets from a client at the rate the consensus lets
//! clients send (λP + λL + λD, with some slack for bursts the Poisson
//! schedule produces) and pulls at a fixed rate; anything faster is dropped
//! and counted. Every pull is answered with exactly
//! [`PULL_BATCH`] entries — the stored packets first, random dummies after —
//! so the answer does not say how much was waiting.

use std::time::Duration;

use aegis_directory::NetworkParameters;
use aegis_mix_packet::access::{Entry, PULL_BATCH};
use rand::Rng;

/// Pulls a client may make per second.
pub const PULL_RATE: f64 = 20.0;
/// Pulls a client may save up.
pub const PULL_BURST: f64 = 10.0;
/// Seconds of sending a client may save up.
pub const SEND_BURST_SECONDS: f64 = 10.0;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: f64, now: Duration) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Duration) -> bool {
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The rate in packets per second a client may send at under `parameters`:
/// the sum of the client streams' rates times `slack`.
pub fn client_send_rate(parameters: &NetworkParameters, slack: f64) -> f64 {
    parameters.client_rate() * slack
}

/// What to do with a message from an attached client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accept it.
    Accept,
    /// Drop it and count it as rate limited; the session goes on.
    RateLimited,
    /// Drop it, count it, and end the session: an honest client never does this.
    Detach(&'static str),
}

/// One attached client's limits.
#[derive(Debug, Clone)]
pub struct Session {
    sends: TokenBucket,
    pulls: TokenBucket,
}

impl Session {
    /// A client attached at `now`, allowed to send at `send_rate` packets per second.
    pub fn new(send_rate: f64, now: Duration) -> Self {
        Session {
            sends: TokenBucket::new(send_rate, send_rate * SEND_BURST_SECONDS, now),
            pulls: TokenBucket::new(PULL_RATE, PULL_BURST, now),
        }
    }

    /// A packet arrived at `now`.
    pub fn on_send(&mut self, now: Duration) -> Verdict {
        if self.sends.take(now) {
            Verdict::Accept
        } else {
            Verdict::RateLimited
        }
    }

    /// A pull acknowledging `acknowledged` ids arrived at `now`.
    pub fn on_pull(&mut self, now: Duration, acknowledged: usize) -> Verdict {
        if acknowledged != PULL_BATCH {
            return Verdict::Detach("a pull acknowledges a whole batch");
        }
        if self.pulls.take(now) {
            Verdict::Accept
        } else {
            // Answering would let a client read the store as fast as it likes.
            Verdict::Detach("pulls too fast")
        }
    }
}

/// How long the limits of a detached mailbox are remembered: longer than a
/// send burst takes to refill, so reconnecting does not reset them.
pub const REMEMBER_DETACHED: Duration = Duration::from_secs(60);

/// Why a client could not attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// As many mailboxes are attached as the gateway serves.
    #[error("gateway full")]
    Full,
}

/// A client's session in the [`Registry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attached {
    /// This session's number; a later session of the same mailbox ends it.
    pub generation: u64,
    /// The earlier session of the same mailbox, which must now end.
    pub replaced: Option<u64>,
}

#[derive(Debug)]
struct Slot {
    session: Session,
    live: Option<u64>,
    detached_at: Duration,
}

/// The gateway's attached clients, by mailbox (sans-IO). Limits belong to
/// the mailbox, not the connection: a second session of one mailbox takes
/// over the first (which must end) with the same token buckets, and a
/// mailbox that detaches and comes back within [`REMEMBER_DETACHED`] finds
/// them as it left them. At most `max_clients` mailboxes are attached at
/// once; handshakes before a valid hello take no slot here.
#[derive(Debug)]
pub struct Registry<K> {
    max_clients: usize,
    slots: std::collections::HashMap<K, Slot>,
    attached: usize,
    next_generation: u64,
}

impl<K: std::hash::Hash + Eq + Copy> Registry<K> {
    /// An empty registry serving up to `max_clients` mailboxes at once.
    pub fn new(max_clients: usize) -> Self {
        Registry {
            max_clients,
            slots: std::collections::HashMap::new(),
            attached: 0,
            next_generation: 1,
        }
    }

    /// Mailboxes attached now.
    pub fn attached(&self) -> usize {
        self.attached
    }

    /// A client proved it holds mailbox `key` at `now`.
    pub fn attach(
        &mut self,
        key: K,
        send_rate: f64,
        now: Duration,
    ) -> Result<Attached, AttachError> {
        let generation = self.next_generation;
        if let Some(slot) = self.slots.get_mut(&key) {
            let replaced = slot.live.replace(generation);
            if replaced.is_none() {
                if self.attached >= self.max_clients {
                    slot.live = None;
                    return Err(AttachError::Full);
                }
                self.attached += 1;
            }
            self.next_generation += 1;
            return Ok(Attached {
                generation,
                replaced,
            });
        }
        if self.attached >= self.max_clients {
            return Err(AttachError::Full);
        }
        self.forget_detached(now);
        self.slots.insert(
            key,
            Slot {
                session: Session::new(send_rate, now),
                live: Some(generation),
                detached_at: now,
            },
        );
        self.attached += 1;
        self.next_generation += 1;
        Ok(Attached {
            generation,
            replaced: None,
        })
    }

    fn live_slot(&mut self, key: &K, generation: u64) -> Option<&mut Session> {
        self.slots
            .get_mut(key)
            .filter(|slot| slot.live == Some(generation))
            .map(|slot| &mut slot.session)
    }

    /// A packet from session `generation` of `key` arrived at `now`.
    pub fn on_send(&mut self, key: &K, generation: u64, now: Duration) -> Verdict {
        match self.live_slot(key, generation) {
            Some(session) => session.on_send(now),
            None => Verdict::Detach("replaced by a newer session"),
        }
    }

    /// A pull from session `generation` of `key` acknowledging
    /// `acknowledged` ids arrived at `now`.
    pub fn on_pull(
        &mut self,
        key: &K,
        generation: u64,
        now: Duration,
        acknowledged: usize,
    ) -> Verdict {
        match self.live_slot(key, generation) {
            Some(session) => session.on_pull(now, acknowledged),
            None => Verdict::Detach("replaced by a newer session"),
        }
    }

    /// Session `generation` of `key` ended at `now` (a replaced session's
    /// end changes nothing).
    pub fn detach(&mut self, key: &K, generation: u64, now: Duration) {
        if let Some(slot) = self.slots.get_mut(key)
            && slot.live == Some(generation)
        {
            slot.live = None;
            slot.detached_at = now;
            self.attached -= 1;
        }
    }

    /// Keeps the map within twice the client cap: detached mailboxes are
    /// forgotten after [`REMEMBER_DETACHED`], and sooner if many come and go.
    fn forget_detached(&mut self, now: Duration) {
        let cap = self.max_clients.saturating_mul(2).max(64);
        if self.slots.len() < cap {
            return;
        }
        self.slots.retain(|_, slot| {
            slot.live.is_some() || now.saturating_sub(slot.detached_at) < REMEMBER_DETACHED
        });
        if self.slots.len() >= cap {
            self.slots.retain(|_, slot| slot.live.is_some());
        }
    }
}

/// A pull answer: `stored` (id and delivery, at most [`PULL_BATCH`] of
/// them) followed by dummies of `delivery_len` random bytes and random ids,
/// exactly [`PULL_BATCH`] entries in all.
pub fn pull_answer<R: Rng + ?Sized>(
    rng: &mut R,
    stored: impl IntoIterator<Item = (u64, Vec<u8>)>,
    delivery_len: usize,
) -> Vec<Entry> {
    let mut entries: Vec<Entry> = stored
        .into_iter()
        .take(PULL_BATCH)
        .map(|(id, payload)| Entry {
            real: true,
            id: id.to_be_bytes(),
            payload,
        })
        .collect();
    while entries.len() < PULL_BATCH {
        let mut payload = vec![0u8; delivery_len];
        rng.fill_bytes(&mut payload);
        entries.push(Entry {
            real: false,
            id: rng.next_u64().to_be_bytes(),
            payload,
        });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn token_bucket_allows_rate_and_burst_only() {
        let t = |ms: u64| Duration::from_millis(ms);
        let mut bucket = TokenBucket::new(10.0, 5.0, t(0));
        assert_eq!((0..8).filter(|_| bucket.take(t(0))).count(), 5);
        // 10/s refills one token per 100 ms.
        assert!(!bucket.take(t(50)));
        assert!(bucket.take(t(150)));
        assert!(!bucket.take(t(160)));
        // Long idle refills only up to the burst.
        assert_eq!((0..20).filter(|_| bucket.take(t(60_000))).count(), 5);
        // Time going backwards grants nothing.
        assert!(!bucket.take(t(1_000)));
    }

    #[test]
    fn a_session_limits_sends_and_detaches_on_hostile_pulls() {
        let t = Duration::from_millis;
        let mut session = Session::new(1.0, t(0));
        let accepted = (0..20)
            .filter(|_| session.on_send(t(0)) == Verdict::Accept)
            .count();
        assert_eq!(accepted, 10, "ten seconds of sending saved up");
        assert_eq!(session.on_send(t(500)), Verdict::RateLimited);
        assert_eq!(session.on_send(t(1_000)), Verdict::Accept);
        assert!(matches!(session.on_pull(t(0), 3), Verdict::Detach(_)));
        for _ in 0..10 {
            assert_eq!(session.on_pull(t(0), PULL_BATCH), Verdict::Accept);
        }
        assert!(matches!(
            session.on_pull(t(0), PULL_BATCH),
            Verdict::Detach(_)
        ));
    }

    #[test]
    fn limits_belong_to_the_mailbox_not_the_connection() {
        let t = Duration::from_millis;
        let mut registry = Registry::new(2);
        let first = registry.attach(1u8, 1.0, t(0)).unwrap();
        let sent = (0..8)
            .filter(|_| registry.on_send(&1, first.generation, t(0)) == Verdict::Accept)
            .count();
        assert_eq!(sent, 8);
        // A second connection for the same mailbox takes over, with the
        // same bucket: two more of the ten-second burst, not ten more.
        let second = registry.attach(1, 1.0, t(0)).unwrap();
        assert_eq!(second.replaced, Some(first.generation));
        assert_eq!(registry.attached(), 1);
        let more = (0..20)
            .filter(|_| registry.on_send(&1, second.generation, t(0)) == Verdict::Accept)
            .count();
        assert_eq!(more, 2);
        // The replaced session is told to go.
        assert!(matches!(
            registry.on_send(&1, first.generation, t(0)),
            Verdict::Detach(_)
        ));
        // Its end changes nothing; the live one's end frees the slot, and
        // coming back soon finds the bucket as it was left.
        registry.detach(&1, first.generation, t(0));
        assert_eq!(registry.attached(), 1);
        registry.detach(&1, second.generation, t(0));
        assert_eq!(registry.attached(), 0);
        let third = registry.attach(1, 1.0, t(500)).unwrap();
        assert_eq!(third.replaced, None);
        assert_eq!(
            registry.on_send(&1, third.generation, t(500)),
            Verdict::RateLimited
        );
    }

    #[test]
    fn attached_mailboxes_are_capped_and_slots_come_back() {
        let t = Duration::from_millis;
        let mut registry = Registry::new(2);
        let a = registry.attach(1u32, 1.0, t(0)).unwrap();
        registry.attach(2, 1.0, t(0)).unwrap();
        assert_eq!(registry.attach(3, 1.0, t(0)), Err(AttachError::Full));
        // An attached mailbox may still reconnect when the gateway is full.
        assert!(registry.attach(2, 1.0, t(0)).is_ok());
        registry.detach(&1, a.generation, t(0));
        assert!(registry.attach(3, 1.0, t(0)).is_ok());
        assert_eq!(registry.attach(1, 1.0, t(0)), Err(AttachError::Full));
        assert_eq!(registry.attached(), 2);
        // Many mailboxes coming and going do not grow the map past its cap.
        let mut big = Registry::new(4);
        for key in 0..10_000u32 {
            let s = big.attach(key, 1.0, t(u64::from(key))).unwrap();
            big.detach(&key, s.generation, t(u64::from(key)));
        }
        assert!(big.slots.len() <= 64);
    }

    #[test]
    fn every_answer_has_a_whole_batch_real_entries_first() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let stored = vec![(7u64, vec![1u8; 32]), (9, vec![2u8; 32])];
        let answer = pull_answer(&mut rng, stored, 32);
        assert_eq!(answer.len(), PULL_BATCH);
        assert!(answer[0].real && answer[1].real);
        assert_eq!(answer[0].id, 7u64.to_be_bytes());
        assert!(answer[2..].iter().all(|e| !e.real && e.payload.len() == 32));
        let empty = pull_answer(&mut rng, Vec::new(), 32);
        assert!(empty.iter().all(|e| !e.real));
    }
}
