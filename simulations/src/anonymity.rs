//! Anonymity metrics and the probability-tracking method.
//!
//! The adversary's knowledge about one packet is a probability distribution
//! over candidates (senders, or inputs of a single mix). Following the
//! probability-tracking method of the Loopix evaluation, an honest mix is a
//! *pool*: an arriving packet's distribution is averaged into the pool, and a
//! departing packet inherits the pool's current mixture — for a Poisson mix
//! that is exact, because by memorylessness the packet that leaves is equally
//! likely to be any packet held. A corrupt mix knows its own mapping and
//! passes each packet's distribution through unchanged.
//!
//! Both trackers store masses against a running scale factor so that a
//! departure, which shrinks every held mass by `1 - 1/n`, costs O(1).

use std::collections::VecDeque;

/// Below this scale factor the stored masses are folded back into it, long
/// before `f64` loses precision (masses grow as the scale shrinks).
const RESCALE_BELOW: f64 = 1e-150;

/// Inputs whose log-mass has fallen this far below the newest input's carry
/// less than e^-25 of it each and are forgotten.
const FORGET_LOG_MASS: f64 = -25.0;

/// The adversary's distribution over which sender a packet came from.
#[derive(Clone, Debug, PartialEq)]
pub enum SenderDist {
    /// Certainly this sender (what an observer of the sender's link sees).
    Point(u32),
    /// A probability per sender, indexed by sender id.
    Dense(Box<[f32]>),
}

impl SenderDist {
    /// Probabilities as a dense vector over `senders` senders.
    pub fn to_dense(&self, senders: usize) -> Vec<f64> {
        match self {
            SenderDist::Point(s) => {
                let mut v = vec![0.0; senders];
                if let Some(x) = v.get_mut(*s as usize) {
                    *x = 1.0;
                }
                v
            }
            SenderDist::Dense(p) => p.iter().map(|&x| f64::from(x)).collect(),
        }
    }
}

/// An honest pool's mixture over senders, with O(1) departures.
#[derive(Clone, Debug)]
pub struct MixturePool {
    /// Unnormalised masses; the true mass of sender `i` is `mass[i] * scale`.
    mass: Vec<f64>,
    scale: f64,
    held: usize,
}

impl MixturePool {
    /// An empty pool over `senders` possible senders.
    pub fn new(senders: usize) -> Self {
        MixturePool {
            mass: vec![0.0; senders],
            scale: 1.0,
            held: 0,
        }
    }

    /// A packet with distribution `dist` entered the pool.
    pub fn arrive(&mut self, dist: &SenderDist) {
        let w = 1.0 / self.scale;
        match dist {
            SenderDist::Point(s) => {
                if let Some(m) = self.mass.get_mut(*s as usize) {
                    *m += w;
                }
            }
            SenderDist::Dense(p) => {
                for (m, &x) in self.mass.iter_mut().zip(p.iter()) {
                    *m += w * f64::from(x);
                }
            }
        }
        self.held += 1;
    }

    /// A packet left: it inherits the pool's mixture, and every packet still
    /// held keeps the same mixture with one packet's worth of mass less.
    pub fn depart(&mut self) -> SenderDist {
        if self.held == 0 {
            return SenderDist::Dense(vec![0.0; self.mass.len()].into_boxed_slice());
        }
        let norm = self.scale / self.held as f64;
        let out: Box<[f32]> = self.mass.iter().map(|&m| (m * norm) as f32).collect();
        if self.held == 1 {
            self.mass.fill(0.0);
            self.scale = 1.0;
            self.held = 0;
        } else {
            self.scale *= 1.0 - 1.0 / self.held as f64;
            self.held -= 1;
            if self.scale < RESCALE_BELOW {
                let s = self.scale;
                self.mass.iter_mut().for_each(|m| *m *= s);
                self.scale = 1.0;
            }
        }
        SenderDist::Dense(out)
    }

    /// Packets the pool believes it holds.
    pub fn held(&self) -> usize {
        self.held
    }
}

/// A single mix's mixture over its individual inputs (Danezis's question:
/// which input was this output?), with O(1) arrivals and departures.
#[derive(Clone, Debug, Default)]
pub struct InputTracker {
    /// log of the running scale; input `i`'s mass is `exp(log_scale - arrived[i])`.
    log_scale: f64,
    /// log-scale at each remembered input's arrival, oldest first.
    arrived: VecDeque<f64>,
    /// Sequence number of `arrived[0]`.
    first: u64,
    held: usize,
}

impl InputTracker {
    /// An empty mix.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next input arrived; returns its sequence number.
    pub fn arrive(&mut self) -> u64 {
        self.arrived.push_back(self.log_scale);
        self.held += 1;
        self.first + self.arrived.len() as u64 - 1
    }

    /// The adversary's guess about a packet departing now whose true input
    /// is `truth`, given as the summary of the pool's current mixture.
    pub fn guess(&self, truth: u64, top_k: usize) -> GuessSummary {
        let held = self.held.max(1) as f64;
        let truth_idx = truth.checked_sub(self.first).map(|i| i as usize);
        let truth_p = truth_idx
            .and_then(|i| self.arrived.get(i))
            .map(|&l| (self.log_scale - l).exp() / held)
            .unwrap_or(0.0);
        let probs = self
            .arrived
            .iter()
            .rev()
            .map(|&l| self.log_scale - l)
            .take_while(|&d| d > FORGET_LOG_MASS)
            .map(|d| d.exp() / held);
        GuessSummary::from_probs(probs, truth_p, top_k)
    }

    /// A packet departed (the caller asks [`guess`](Self::guess) first if it
    /// wants the departing packet's distribution).
    pub fn depart(&mut self) {
        if self.held <= 1 {
            // The pool empties: every remembered input's mass is spent.
            self.first += self.arrived.len() as u64;
            self.arrived.clear();
            self.log_scale = 0.0;
            self.held = 0;
            return;
        }
        self.log_scale += (1.0 - 1.0 / self.held as f64).ln();
        self.held -= 1;
        while let Some(&l) = self.arrived.front() {
            if self.log_scale - l > FORGET_LOG_MASS {
                break;
            }
            self.arrived.pop_front();
            self.first += 1;
        }
    }
}

/// What one distribution is worth to the adversary, against the truth.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct GuessSummary {
    /// Shannon entropy in bits.
    pub entropy_bits: f64,
    /// Min-entropy −log2 max p in bits.
    pub min_entropy_bits: f64,
    /// Probability the adversary's single best guess is right (ties broken at random).
    pub top1: f64,
    /// Probability the truth is among the adversary's `k` best guesses.
    pub topk: f64,
}

impl GuessSummary {
    /// Summarises the (normalised or not) probabilities `probs`, of which the
    /// truth has probability `truth_p`; ties at the truth's value are broken
    /// uniformly at random, so a uniform distribution gives top-1 = 1/n.
    pub fn from_probs(probs: impl Iterator<Item = f64>, truth_p: f64, top_k: usize) -> Self {
        let (mut sum, mut plogp, mut max) = (0.0f64, 0.0f64, 0.0f64);
        let (mut greater, mut equal) = (0usize, 0usize);
        for p in probs.filter(|&p| p > 0.0) {
            sum += p;
            plogp += p * p.log2();
            max = max.max(p);
            if p > truth_p {
                greater += 1;
            } else if p == truth_p {
                equal += 1;
            }
        }
        if sum <= 0.0 {
            return GuessSummary::default();
        }
        // H = −Σ (p/s) log2(p/s) = log2 s − (Σ p log2 p)/s.
        let entropy = sum.log2() - plogp / sum;
        let chance_in_top = |k: usize| {
            if truth_p <= 0.0 || equal == 0 {
                0.0
            } else {
                (k.saturating_sub(greater) as f64 / equal as f64).min(1.0)
            }
        };
        GuessSummary {
            entropy_bits: entropy.max(0.0),
            min_entropy_bits: (sum / max).log2().max(0.0),
            top1: chance_in_top(1),
            topk: chance_in_top(top_k),
        }
    }

    /// Summary of a dense distribution against the true index.
    pub fn of_dense(p: &[f64], truth: usize, top_k: usize) -> Self {
        let truth_p = p.get(truth).copied().unwrap_or(0.0);
        Self::from_probs(p.iter().copied(), truth_p, top_k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_distribution_has_log_n_bits_and_chance_guesses() {
        let p = vec![0.25; 4];
        let g = GuessSummary::of_dense(&p, 2, 2);
        assert!((g.entropy_bits - 2.0).abs() < 1e-12);
        assert!((g.min_entropy_bits - 2.0).abs() < 1e-12);
        assert!((g.top1 - 0.25).abs() < 1e-12);
        assert!((g.topk - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_point_mass_is_zero_bits_and_always_guessed() {
        let g = GuessSummary::of_dense(&[0.0, 1.0, 0.0], 1, 1);
        assert_eq!(g.entropy_bits, 0.0);
        assert_eq!(g.top1, 1.0);
    }

    #[test]
    fn pool_mixture_averages_arrivals_and_departures_inherit_it() {
        let mut pool = MixturePool::new(3);
        pool.arrive(&SenderDist::Point(0));
        pool.arrive(&SenderDist::Point(1));
        let out = pool.depart().to_dense(3);
        assert!((out[0] - 0.5).abs() < 1e-6 && (out[1] - 0.5).abs() < 1e-6);
        // The packet left holds the same mixture; a new arrival dilutes it.
        pool.arrive(&SenderDist::Point(2));
        let out = pool.depart().to_dense(3);
        assert!((out[0] - 0.25).abs() < 1e-6, "{out:?}");
        assert!((out[2] - 0.5).abs() < 1e-6, "{out:?}");
        let total: f64 = out.iter().sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn input_tracker_weights_decay_with_departures() {
        let mut t = InputTracker::new();
        let a = t.arrive();
        let b = t.arrive();
        let g = t.guess(a, 1);
        assert!((g.entropy_bits - 1.0).abs() < 1e-12);
        t.depart();
        let c = t.arrive();
        // a and b hold 1/2 each of one packet's mass, c a whole one: 1/4, 1/4, 1/2.
        let g = t.guess(c, 1);
        assert!((g.entropy_bits - 1.5).abs() < 1e-12, "{g:?}");
        assert_eq!(g.top1, 1.0);
        assert!((t.guess(b, 1).top1).abs() < 1e-12);
    }
}
