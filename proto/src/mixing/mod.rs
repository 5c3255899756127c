//! Mixing strategies: how long a node holds each packet and in which order
//! it lets packets go.
//!
//! * [`PoissonMix`] — Loopix's continuous-time mix: each packet is held for
//!   the delay its sender sampled from Exp(μ) and chose for this hop; the
//!   node adds nothing and reorders by due time.
//! * [`TimedPool`] — every interval, a random share of the pool above a
//!   minimum leaves (a timed dynamic pool mix).
//! * [`ThresholdPool`] — when the pool reaches a threshold, all of it leaves
//!   in random order (a threshold mix).
//!
//! All are sans-IO: `push` a packet with the time it arrived, `poll` with the
//! current time for what is due, and ask `next_deadline` when to poll next.
//! Every pool is bounded: a full pool refuses the packet (the caller drops
//! and counts it) instead of growing. The consensus says which strategy runs ([`MixingStrategy`]).

mod poisson;
mod pool;

pub use poisson::PoissonMix;
pub use pool::{ThresholdPool, TimedPool};

use std::time::Duration;

use aegis_directory::MixingStrategy;
use rand::Rng;

/// A packet refused because the mix is at capacity; the packet is handed back.
#[derive(Debug, PartialEq, Eq)]
pub struct PushError<P>(pub P);

/// The strategy a node runs, chosen at run time from the consensus.
#[derive(Debug)]
pub enum Mixer<P> {
    /// See [`PoissonMix`].
    Poisson(PoissonMix<P>),
    /// See [`TimedPool`].
    TimedPool(TimedPool<P>),
    /// See [`ThresholdPool`].
    ThresholdPool(ThresholdPool<P>),
}

impl<P> Mixer<P> {
    /// A mixer running `strategy` (as a consensus publishes it) holding at
    /// most `capacity` packets, starting at `now`.
    pub fn new(strategy: &MixingStrategy, capacity: usize, now: Duration) -> Self {
        match *strategy {
            MixingStrategy::Poisson { .. } => Mixer::Poisson(PoissonMix::new(capacity)),
            MixingStrategy::TimedPool {
                interval_ms,
                min_pool,
                fraction,
            } => Mixer::TimedPool(TimedPool::new(
                Duration::from_millis(interval_ms),
                min_pool as usize,
                fraction,
                capacity,
                now,
            )),
            MixingStrategy::ThresholdPool { threshold } => {
                Mixer::ThresholdPool(ThresholdPool::new(threshold as usize, capacity))
            }
        }
    }

    /// A packet arrived at `now`; `delay` is the delay its sender chose for
    /// this hop (used by Poisson mixing, ignored by pools).
    pub fn push(&mut self, now: Duration, delay: Duration, packet: P) -> Result<(), PushError<P>> {
        match self {
            Mixer::Poisson(m) => m.push(now, delay, packet),
            Mixer::TimedPool(m) => m.push(packet),
            Mixer::ThresholdPool(m) => m.push(packet),
        }
    }

    /// Appends to `out` every packet due at `now`, in the order to send them.
    pub fn poll<R: Rng + ?Sized>(&mut self, now: Duration, rng: &mut R, out: &mut Vec<P>) {
        match self {
            Mixer::Poisson(m) => m.poll(now, out),
            Mixer::TimedPool(m) => m.poll(now, rng, out),
            Mixer::ThresholdPool(m) => m.poll(rng, out),
        }
    }

    /// When the next packet may become due; `None` if nothing will without a new arrival.
    pub fn next_deadline(&self) -> Option<Duration> {
        match self {
            Mixer::Poisson(m) => m.next_deadline(),
            Mixer::TimedPool(m) => Some(m.next_deadline()),
            Mixer::ThresholdPool(m) => m.next_deadline(),
        }
    }

    /// Empties the mixer at once (a node that stops loses what it held),
    /// appending every packet held to `out` in no meaningful order.
    pub fn drain(&mut self, out: &mut Vec<P>) {
        match self {
            Mixer::Poisson(m) => m.drain(out),
            Mixer::TimedPool(m) => m.drain(out),
            Mixer::ThresholdPool(m) => m.drain(out),
        }
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        match self {
            Mixer::Poisson(m) => m.len(),
            Mixer::TimedPool(m) => m.len(),
            Mixer::ThresholdPool(m) => m.len(),
        }
    }

    /// Whether no packet is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn drain_empties_every_strategy_and_loses_nothing() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let strategies = [
            MixingStrategy::Poisson {
                mean_delay_ms: 50.0,
            },
            MixingStrategy::TimedPool {
                interval_ms: 100,
                min_pool: 3,
                fraction: 0.5,
            },
            MixingStrategy::ThresholdPool { threshold: 100 },
        ];
        for strategy in &strategies {
            let mut mixer = Mixer::new(strategy, 1000, Duration::ZERO);
            for i in 0..20u32 {
                mixer
                    .push(Duration::ZERO, Duration::from_secs(1), i)
                    .unwrap();
            }
            let mut out = Vec::new();
            mixer.poll(Duration::from_millis(150), &mut rng, &mut out);
            mixer.drain(&mut out);
            assert!(mixer.is_empty());
            out.sort_unstable();
            assert_eq!(out, (0..20).collect::<Vec<_>>(), "{strategy:?}");
        }
    }
}
