//! Batching strategies: timed and threshold pool mixes.

use std::time::Duration;

use rand::{Rng, RngExt};

use super::PushError;

/// Removes `count` packets chosen uniformly at random from `pool` into `out`.
fn take_random<P, R: Rng + ?Sized>(pool: &mut Vec<P>, count: usize, rng: &mut R, out: &mut Vec<P>) {
    for _ in 0..count.min(pool.len()) {
        let i = rng.random_range(0..pool.len());
        out.push(pool.swap_remove(i));
    }
}

/// A timed dynamic pool: every `interval`, if more than `min_pool` packets
/// are held, a `fraction` of the excess (at least one) leaves, chosen at
/// random. Keeping `min_pool` packets back means an attacker who floods the
/// mix cannot flush a target packet out in a single round.
#[derive(Debug)]
pub struct TimedPool<P> {
    pool: Vec<P>,
    interval: Duration,
    min_pool: usize,
    fraction: f64,
    capacity: usize,
    next_round: Duration,
}

impl<P> TimedPool<P> {
    /// A pool whose first round is one `interval` after `now`.
    pub fn new(
        interval: Duration,
        min_pool: usize,
        fraction: f64,
        capacity: usize,
        now: Duration,
    ) -> Self {
        let interval = interval.max(Duration::from_micros(1));
        TimedPool {
            pool: Vec::new(),
            interval,
            min_pool,
            fraction: fraction.clamp(f64::MIN_POSITIVE, 1.0),
            capacity,
            next_round: now + interval,
        }
    }

    /// Adds a packet to the pool.
    pub fn push(&mut self, packet: P) -> Result<(), PushError<P>> {
        if self.pool.len() >= self.capacity {
            return Err(PushError(packet));
        }
        self.pool.push(packet);
        Ok(())
    }

    /// Runs every round due by `now`.
    pub fn poll<R: Rng + ?Sized>(&mut self, now: Duration, rng: &mut R, out: &mut Vec<P>) {
        while self.next_round <= now {
            let excess = self.pool.len().saturating_sub(self.min_pool);
            if excess == 0 {
                // Nothing leaves in any missed round: skip to the next boundary after `now`.
                let behind = (now - self.next_round).as_nanos() / self.interval.as_nanos();
                self.next_round += self.interval * (behind as u32).saturating_add(1);
                break;
            }
            let count = ((excess as f64 * self.fraction).ceil() as usize).clamp(1, excess);
            take_random(&mut self.pool, count, rng, out);
            self.next_round += self.interval;
        }
    }

    /// When the next round runs.
    pub fn next_deadline(&self) -> Duration {
        self.next_round
    }

    /// Appends every packet held, emptying the pool.
    pub fn drain(&mut self, out: &mut Vec<P>) {
        out.append(&mut self.pool);
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.pool.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.pool.is_empty()
    }
}

/// A threshold mix: packets collect until `threshold` are held, then all of
/// them leave at once in random order.
#[derive(Debug)]
pub struct ThresholdPool<P> {
    pool: Vec<P>,
    threshold: usize,
    capacity: usize,
}

impl<P> ThresholdPool<P> {
    /// A pool flushing at `threshold` packets (at least 1), holding at most `capacity`.
    pub fn new(threshold: usize, capacity: usize) -> Self {
        let threshold = threshold.max(1);
        ThresholdPool {
            pool: Vec::with_capacity(threshold),
            threshold,
            capacity: capacity.max(threshold),
        }
    }

    /// Adds a packet to the pool.
    pub fn push(&mut self, packet: P) -> Result<(), PushError<P>> {
        if self.pool.len() >= self.capacity {
            return Err(PushError(packet));
        }
        self.pool.push(packet);
        Ok(())
    }

    /// Flushes the pool, shuffled, if it has reached the threshold.
    pub fn poll<R: Rng + ?Sized>(&mut self, rng: &mut R, out: &mut Vec<P>) {
        if self.pool.len() >= self.threshold {
            let n = self.pool.len();
            take_random(&mut self.pool, n, rng, out);
        }
    }

    /// `Some(ZERO)` — poll at once — when the threshold is reached; otherwise
    /// only a new arrival can make anything due.
    pub fn next_deadline(&self) -> Option<Duration> {
        (self.pool.len() >= self.threshold).then_some(Duration::ZERO)
    }

    /// Appends every packet held, emptying the pool.
    pub fn drain(&mut self, out: &mut Vec<P>) {
        out.append(&mut self.pool);
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.pool.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.pool.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn timed_pool_sends_a_share_of_the_excess_each_round_and_keeps_the_minimum() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let s = Duration::from_secs;
        let mut pool = TimedPool::new(s(1), 10, 0.5, 1000, s(0));
        for i in 0..30 {
            pool.push(i).unwrap();
        }
        let mut out = vec![];
        pool.poll(Duration::from_millis(999), &mut rng, &mut out);
        assert!(out.is_empty(), "nothing before the first round");
        pool.poll(s(1), &mut rng, &mut out);
        assert_eq!(out.len(), 10, "half of the 20 above the minimum");
        pool.poll(s(2), &mut rng, &mut out);
        assert_eq!(out.len(), 15);
        // many rounds later the pool is down to its minimum and stays there
        pool.poll(s(100), &mut rng, &mut out);
        assert_eq!(pool.len(), 10);
        assert_eq!(pool.next_deadline(), s(101));
        let mut sorted = out.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 20, "each packet leaves once");
    }

    #[test]
    fn timed_pool_output_order_is_random() {
        // Over many runs, the first packet to leave is any of the pool's packets.
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut first = [0usize; 10];
        for _ in 0..2000 {
            let mut pool = TimedPool::new(Duration::from_secs(1), 0, 0.1, 100, Duration::ZERO);
            for i in 0..10 {
                pool.push(i).unwrap();
            }
            let mut out = vec![];
            pool.poll(Duration::from_secs(1), &mut rng, &mut out);
            first[out[0]] += 1;
        }
        assert!(first.iter().all(|&c| (140..=260).contains(&c)), "{first:?}");
    }

    #[test]
    fn threshold_pool_flushes_exactly_at_the_threshold() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut pool = ThresholdPool::new(4, 100);
        let mut out = vec![];
        for i in 0..3 {
            pool.push(i).unwrap();
            pool.poll(&mut rng, &mut out);
            assert!(out.is_empty());
            assert_eq!(pool.next_deadline(), None);
        }
        pool.push(3).unwrap();
        assert_eq!(pool.next_deadline(), Some(Duration::ZERO));
        pool.poll(&mut rng, &mut out);
        let mut sorted = out.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3]);
        assert!(pool.is_empty());
    }

    #[test]
    fn full_pools_refuse() {
        let mut t = TimedPool::new(Duration::from_secs(1), 0, 1.0, 1, Duration::ZERO);
        t.push(1).unwrap();
        assert_eq!(t.push(2), Err(PushError(2)));
        let mut p = ThresholdPool::new(5, 5);
        for i in 0..5 {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(9), Err(PushError(9)));
    }
}
