//! One Poisson mix fed by a Poisson stream: Danezis's continuous-time mix,
//! measured with the node's own [`PoissonMix`] core.
//!
//! For arrival rate λ and delay rate μ, the entropy of the distribution over
//! which input a given output was tends to H = log2(e·λ/μ) bits (Danezis,
//! "The Traffic Analysis of Continuous-Time Mixes", PET 2004). Here the
//! distribution is computed by probability tracking ([`InputTracker`]) for
//! sampled outputs after the pool has reached equilibrium.

use std::time::Duration;

use aegis_mix_packet::HopDelays;
use aegis_proto::PoissonMix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde::Serialize;

use crate::anonymity::InputTracker;
use crate::report::SingleMixReport;
use crate::scenario::{SingleMixScenario, secs};

/// Mean delays of warm-up before the first output is sampled: the pool then
/// holds all but e^-8 of its equilibrium mass.
const WARMUP_MEAN_DELAYS: f64 = 8.0;
/// Mean delays over which the sampled outputs are spread: the pool size
/// wanders on the scale of one mean delay, so samples closer together than
/// that are nearly the same sample.
const SAMPLING_MEAN_DELAYS: f64 = 40.0;

/// The measured and predicted entropy at one (λ, μ).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SingleMixPoint {
    /// Arrival rate, messages per second.
    pub lambda: f64,
    /// Delay rate, per second.
    pub mu: f64,
    /// log2(e·λ/μ).
    pub closed_form_bits: f64,
    /// Mean Shannon entropy over sampled outputs.
    pub entropy_bits: f64,
    /// Standard error of that mean.
    pub entropy_stderr: f64,
    /// Mean min-entropy.
    pub min_entropy_bits: f64,
    /// Mean probability the adversary's best guess of the input is right.
    pub top1: f64,
    /// Outputs sampled.
    pub samples: usize,
}

/// log2(e·λ/μ): the chain closed form for one hop.
pub fn closed_form_entropy_bits(lambda: f64, mu: f64) -> f64 {
    crate::theory::chain_entropy_bits(lambda, mu, 1)
}

/// Runs one grid point: `targets` outputs sampled after warm-up.
pub fn run_single_mix(
    lambda: f64,
    mu: f64,
    targets: usize,
    seed: u64,
    cap: bool,
) -> SingleMixPoint {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mean = secs(1.0 / mu);
    // Uncapped samples follow the same rule as `HopDelays` (nanoseconds,
    // rounded) without the protocol's 10 s cap, which the closed form lacks.
    let exp_nanos = Exp::new(1.0 / mean.as_nanos() as f64).ok();
    let arrivals = Exp::new(lambda).ok();
    let draw_delay = |rng: &mut ChaCha8Rng| -> Duration {
        if cap {
            HopDelays::sample_exponential(rng, 1, mean).total()
        } else {
            exp_nanos.map_or(Duration::ZERO, |e| {
                Duration::from_nanos(e.sample(rng).round() as u64)
            })
        }
    };
    let mut mix: PoissonMix<u64> = PoissonMix::new(usize::MAX);
    let mut tracker = InputTracker::new();
    let warmup = secs(WARMUP_MEAN_DELAYS / mu);
    let expected_outputs = lambda * SAMPLING_MEAN_DELAYS / mu;
    let stride = ((expected_outputs / targets as f64) as u64).max(1);

    let mut next_arrival = Duration::ZERO;
    let mut departures = 0u64;
    let mut out = Vec::new();
    let (mut h, mut h2, mut hmin, mut top1, mut n) = (0.0, 0.0, 0.0, 0.0, 0usize);
    while n < targets {
        match mix.next_deadline() {
            Some(due) if due <= next_arrival => {
                out.clear();
                mix.poll(due, &mut out);
                for &input in &out {
                    if due >= warmup {
                        departures += 1;
                        if departures.is_multiple_of(stride) && n < targets {
                            let g = tracker.guess(input, 1);
                            h += g.entropy_bits;
                            h2 += g.entropy_bits * g.entropy_bits;
                            hmin += g.min_entropy_bits;
                            top1 += g.top1;
                            n += 1;
                        }
                    }
                    tracker.depart();
                }
            }
            _ => {
                let id = tracker.arrive();
                let delay = draw_delay(&mut rng);
                // The mix is unbounded here, so a push cannot be refused.
                let _ = mix.push(next_arrival, delay, id);
                let gap = arrivals.map_or(1.0, |e| e.sample(&mut rng));
                next_arrival += secs(gap);
            }
        }
    }
    let nf = n.max(1) as f64;
    let mean_h = h / nf;
    let var = (h2 / nf - mean_h * mean_h).max(0.0);
    SingleMixPoint {
        lambda,
        mu,
        closed_form_bits: closed_form_entropy_bits(lambda, mu),
        entropy_bits: mean_h,
        entropy_stderr: (var / nf).sqrt(),
        min_entropy_bits: hmin / nf,
        top1: top1 / nf,
        samples: n,
    }
}

/// Runs every (λ, μ) of the scenario, each from its own seed.
pub(crate) fn run_grid(s: &SingleMixScenario, progress: &mut dyn FnMut(f64)) -> SingleMixReport {
    let total = (s.lambdas.len() * s.mus.len()) as f64;
    let mut points = Vec::new();
    for (i, &mu) in s.mus.iter().enumerate() {
        for (j, &lambda) in s.lambdas.iter().enumerate() {
            let seed = s.seed ^ ((i as u64) << 32 | j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            points.push(run_single_mix(lambda, mu, s.targets, seed, s.delay_cap));
            progress(points.len() as f64 / total);
        }
    }
    SingleMixReport {
        name: s.name.clone(),
        seed: s.seed,
        delay_cap: s.delay_cap,
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_mix_matches_the_closed_form() {
        let p = run_single_mix(100.0, 1.0, 100, 3, false);
        assert!((p.entropy_bits - p.closed_form_bits).abs() < 0.15, "{p:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_point() {
        assert_eq!(
            run_single_mix(50.0, 2.0, 20, 9, true),
            run_single_mix(50.0, 2.0, 20, 9, true)
        );
    }
}
