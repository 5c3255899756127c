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
    (parameters.lambda_p + parameters.lambda_l + parameters.lambda_d) * slack
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

/// A pull answer: `stored` (id and payload, at most [`PULL_BATCH`] of them)
/// followed by dummies of `payload_len` random bytes and random ids, exactly
/// [`PULL_BATCH`] entries in all.
pub fn pull_answer<R: Rng + ?Sized>(
    rng: &mut R,
    stored: impl IntoIterator<Item = (u64, Vec<u8>)>,
    payload_len: usize,
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
        let mut payload = vec![0u8; payload_len];
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
