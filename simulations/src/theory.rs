//! Closed forms the simulator is checked against.
//!
//! A chain of k Poisson mixes, each delaying by an independent exponential
//! with rate μ, fed by a Poisson stream of λ packets per second: an output's
//! total delay is Gamma(k, 1/μ), and as λ/μ grows the entropy of a global
//! passive observer's distribution over which input it was tends to
//! log2(λ) + h(Gamma(k, 1/μ)) bits, h the differential entropy in bits. For
//! k = 1 this is Danezis's log2(e·λ/μ) ("The Traffic Analysis of
//! Continuous-Time Mixes", PET 2004). Routes that spread packets uniformly
//! over a layer of several mixes do not change the limit: every input still
//! reaches every output with the same delay distribution.

/// Euler–Mascheroni constant γ.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Differential entropy, in bits, of Gamma(k, scale) for whole k ≥ 1:
/// h = k + ln(scale) + ln Γ(k) + (1 − k) ψ(k) nats, with Γ(k) = (k − 1)! and
/// ψ(k) = −γ + Σ_{j<k} 1/j.
pub fn gamma_entropy_bits(k: u32, scale: f64) -> f64 {
    let k = k.max(1);
    let ln_gamma: f64 = (1..k).map(|j| f64::from(j).ln()).sum();
    let digamma = -EULER_GAMMA + (1..k).map(|j| 1.0 / f64::from(j)).sum::<f64>();
    let kf = f64::from(k);
    let nats = kf + scale.ln() + ln_gamma + (1.0 - kf) * digamma;
    nats / std::f64::consts::LN_2
}

/// log2(λ) + h(Gamma(k, 1/μ)): the entropy over inputs behind one output of
/// a chain of `hops` Poisson mixes (see the module documentation).
pub fn chain_entropy_bits(lambda: f64, mu: f64, hops: u32) -> f64 {
    lambda.log2() + gamma_entropy_bits(hops, 1.0 / mu)
}

/// The fewest lost loops among the last `window` that a loss alarm with
/// baseline loss `p` and false-alarm tail `alpha` calls implausible: the
/// least l with P[Binomial(window, p) ≥ l] < alpha.
pub fn alarm_threshold(window: usize, p: f64, alpha: f64) -> usize {
    let pmf = |k: usize| {
        let ln_choose: f64 = (0..k)
            .map(|i| ((window - i) as f64).ln() - ((i + 1) as f64).ln())
            .sum();
        (ln_choose + k as f64 * p.ln() + (window - k) as f64 * (1.0 - p).ln()).exp()
    };
    (0..=window)
        .find(|&l| (l..=window).map(pmf).sum::<f64>() < alpha)
        .unwrap_or(window + 1)
}

/// Expected seconds from the start of an n−1 attack to the attacked mix's
/// loss alarm, for a mix that sends Poisson loops at `loop_rate`, counts a
/// loop lost `deadline` seconds after sending it, judges its loops each time
/// it sends one, and alarms once `threshold` of the loops it judges in a row
/// are lost. Every loop reaching the mix's input after the start is held
/// back: those sent in the last `mean_return` seconds before it (the time a
/// loop takes to come back to the mix's input) and all sent after. The
/// `threshold`-th of them is sent Gamma(threshold, 1/λM) − `mean_return`
/// after the start on average, is declared lost `deadline` later, and is
/// noticed at the next loop, Exp(λM) after that:
/// deadline + (threshold + 1)/λM − mean_return.
pub fn n_minus_one_detection_secs(
    deadline: f64,
    loop_rate: f64,
    threshold: usize,
    mean_return: f64,
) -> f64 {
    deadline + (threshold as f64 + 1.0) / loop_rate - mean_return
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_threshold_is_the_binomial_quantile() {
        // P[Bin(20, 0.05) ≥ 9] = 1.98e-7 < 1e-6 ≤ P[Bin(20, 0.05) ≥ 8] = 2.86e-6.
        assert_eq!(alarm_threshold(20, 0.05, 1e-6), 9);
        // With p = 1/2, P[X ≥ 20] = 2^-20: below 1.5 · 2^-20, not below 2^-20.
        assert_eq!(alarm_threshold(20, 0.5, 0.5f64.powi(20)), 21);
        assert_eq!(alarm_threshold(20, 0.5, 0.5f64.powi(20) * 1.5), 20);
    }

    #[test]
    fn one_hop_is_danezis_single_mix_formula() {
        for (lambda, mu) in [(100.0, 2.0), (1000.0, 20.0), (5.0, 0.1)] {
            let danezis = (std::f64::consts::E * lambda / mu).log2();
            assert!((chain_entropy_bits(lambda, mu, 1) - danezis).abs() < 1e-12);
        }
    }

    #[test]
    fn gamma_entropy_matches_published_values() {
        // Gamma(2, 1): h = 2 + ln 1 + ln 1 − ψ(2) = 2 − (1 − γ) = 1 + γ nats.
        let h2 = (1.0 + EULER_GAMMA) / std::f64::consts::LN_2;
        assert!((gamma_entropy_bits(2, 1.0) - h2).abs() < 1e-12);
        // The figures quoted for λ = 1000, μ = 20: 8.31 bits for 3 hops, 8.75 for 5.
        assert!((chain_entropy_bits(1000.0, 20.0, 3) - 8.31).abs() < 0.005);
        assert!((chain_entropy_bits(1000.0, 20.0, 5) - 8.75).abs() < 0.005);
        // Scaling time by c adds log2 c.
        let d = gamma_entropy_bits(4, 3.0) - gamma_entropy_bits(4, 1.0);
        assert!((d - 3f64.log2()).abs() < 1e-12);
    }
}
