//! Continuous-time (Poisson) mixing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::PushError;

struct Held<P> {
    due: Duration,
    seq: u64,
    packet: P,
}

impl<P> PartialEq for Held<P> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<P> Eq for Held<P> {}
impl<P> PartialOrd for Held<P> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<P> Ord for Held<P> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// Holds each packet until its arrival time plus the delay its sender chose.
///
/// Since the delays are exponential, the packets present at any moment are
/// equally likely to leave next, whatever their arrival order: that is what
/// hides the link between an input and an output. The node must not shorten
/// or clamp delays; the sender side caps only absurd values.
pub struct PoissonMix<P> {
    heap: BinaryHeap<Reverse<Held<P>>>,
    capacity: usize,
    seq: u64,
}

impl<P> std::fmt::Debug for PoissonMix<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoissonMix")
            .field("held", &self.heap.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<P> PoissonMix<P> {
    /// An empty mix holding at most `capacity` packets.
    pub fn new(capacity: usize) -> Self {
        PoissonMix {
            heap: BinaryHeap::new(),
            capacity,
            seq: 0,
        }
    }

    /// Holds `packet`, which arrived at `now`, for `delay`.
    pub fn push(&mut self, now: Duration, delay: Duration, packet: P) -> Result<(), PushError<P>> {
        if self.heap.len() >= self.capacity {
            return Err(PushError(packet));
        }
        self.seq += 1;
        self.heap.push(Reverse(Held {
            due: now.saturating_add(delay),
            seq: self.seq,
            packet,
        }));
        Ok(())
    }

    /// Appends every packet due at or before `now`, earliest first.
    pub fn poll(&mut self, now: Duration, out: &mut Vec<P>) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.due > now {
                break;
            }
            if let Some(Reverse(held)) = self.heap.pop() {
                out.push(held.packet);
            }
        }
    }

    /// Appends every packet held, emptying the mix.
    pub fn drain(&mut self, out: &mut Vec<P>) {
        out.extend(self.heap.drain().map(|Reverse(held)| held.packet));
    }

    /// When the earliest held packet is due.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse(h)| h.due)
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no packet is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use rand_distr::{Distribution, Exp};

    #[test]
    fn holds_each_packet_for_its_sampled_delay_with_the_right_mean() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let exp = Exp::new(1.0 / 0.050).unwrap(); // mean 50 ms
        let mut mix = PoissonMix::new(100_000);
        let n = 20_000;
        for i in 0..n {
            let arrival = Duration::from_micros(i * 100);
            let delay = Duration::from_secs_f64(exp.sample(&mut rng));
            mix.push(arrival, delay, (arrival, delay)).unwrap();
        }
        // Step virtual time in 1 ms ticks; every packet leaves within one tick of its due time.
        let mut out = Vec::new();
        let mut total_held = 0.0;
        let mut now = Duration::ZERO;
        let tick = Duration::from_millis(1);
        while !mix.is_empty() {
            now += tick;
            out.clear();
            mix.poll(now, &mut out);
            for (arrival, delay) in &out {
                let held = now - *arrival;
                assert!(
                    held >= *delay && held < *delay + tick,
                    "held {held:?} for delay {delay:?}"
                );
                total_held += held.as_secs_f64();
            }
        }
        let mean = total_held / n as f64;
        // the 1 ms tick adds 0.5 ms on average; the sample mean's s.e. is 50/sqrt(20000) ≈ 0.35 ms
        assert!((mean - 0.0505).abs() < 0.0015, "mean hold {mean}");
    }

    #[test]
    fn releases_in_due_order_not_arrival_order_and_reports_deadlines() {
        let mut mix = PoissonMix::new(10);
        let ms = Duration::from_millis;
        mix.push(ms(0), ms(30), "a").unwrap();
        mix.push(ms(1), ms(5), "b").unwrap();
        mix.push(ms(2), ms(5), "c").unwrap();
        assert_eq!(mix.next_deadline(), Some(ms(6)));
        let mut out = vec![];
        mix.poll(ms(5), &mut out);
        assert!(out.is_empty());
        mix.poll(ms(10), &mut out);
        assert_eq!(out, vec!["b", "c"]);
        mix.poll(ms(30), &mut out);
        assert_eq!(out, vec!["b", "c", "a"]);
        assert_eq!(mix.next_deadline(), None);
    }

    #[test]
    fn a_full_mix_refuses_instead_of_growing() {
        let mut mix = PoissonMix::new(2);
        mix.push(Duration::ZERO, Duration::ZERO, 1).unwrap();
        mix.push(Duration::ZERO, Duration::ZERO, 2).unwrap();
        assert_eq!(
            mix.push(Duration::ZERO, Duration::ZERO, 3),
            Err(PushError(3))
        );
        assert_eq!(mix.len(), 2);
    }
}
