//! The two-sample Kolmogorov–Smirnov test: whether two samples could come
//! from one distribution. The benchmarks use it to check that something
//! an observer can time (a packet's emission) does not depend on what the
//! packet is.
//!
//! The p-value is Smirnov's asymptotic one with Stephens' small-sample
//! correction: `p = Q(λ)`, `λ = (√n + 0.12 + 0.11/√n)·D`, `n = n₁n₂/(n₁+n₂)`,
//! `Q(λ) = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²λ²}` (Kolmogorov's distribution).
//! The tests check `Q` against SciPy's `kstwobign.sf` and the whole test
//! against SciPy's `ks_2samp`.

/// The test's statistic and p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// The largest distance between the two empirical distributions.
    pub d: f64,
    /// The probability of a distance at least `d` if both samples come from
    /// one continuous distribution.
    pub p: f64,
}

/// Kolmogorov's survival function `Q(λ) = P(K > λ)`.
pub fn kolmogorov_sf(lambda: f64) -> f64 {
    if lambda < 0.2 {
        // The series converges slowly here and the value is 1 to 1e-12.
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100u32 {
        let kf = f64::from(k);
        let term = 2.0 * (-2.0 * kf * kf * lambda * lambda).exp();
        sum += if k % 2 == 1 { term } else { -term };
        if term < 1e-16 {
            break;
        }
    }
    sum.clamp(0.0, 1.0)
}

/// The two-sample test of `a` against `b`; `None` if either is empty or
/// holds a NaN.
pub fn two_sample(a: &[f64], b: &[f64]) -> Option<KsResult> {
    if a.is_empty() || b.is_empty() || a.iter().chain(b).any(|x| x.is_nan()) {
        return None;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut d: f64 = 0.0;
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n1 - j as f64 / n2).abs());
    }
    let n = n1 * n2 / (n1 + n2);
    let root = n.sqrt();
    let p = kolmogorov_sf((root + 0.12 + 0.11 / root) * d);
    Some(KsResult { d, p })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kolmogorovs_distribution_matches_scipy() {
        // scipy.stats.kstwobign.sf (SciPy 1.17.1).
        let reference = [
            (0.3, 0.9999906941986655),
            (0.5, 0.9639452436648751),
            (0.8, 0.5441424115741981),
            (1.0, 0.26999967167735456),
            (1.2, 0.11224966667072497),
            (1.36, 0.049485876755377876),
            (1.63, 0.009846364888486529),
            (2.0, 0.0006709252557796953),
        ];
        for (lambda, expected) in reference {
            let got = kolmogorov_sf(lambda);
            assert!(
                (got - expected).abs() < 1e-12,
                "Q({lambda}) = {got}, not {expected}"
            );
        }
    }

    #[test]
    fn the_two_sample_test_matches_scipy() {
        // Deterministic samples: fractional parts of i·φ (400 values)
        // against the same raised to a power (300 values), and against
        // fractional parts of i·ρ (plastic number), which fill [0, 1)
        // as evenly. Reference: scipy.stats.ks_2samp(a, b,
        // method='asymp'), SciPy 1.17.1, whose p-value uses the exact
        // Kolmogorov distribution at n = 171; ours is within 6 %.
        let frac = |x: f64| x - x.floor();
        let a: Vec<f64> = (1..=400)
            .map(|i| frac(f64::from(i) * 0.618_033_988_749_894_9))
            .collect();
        let powered = |e: f64| -> Vec<f64> {
            (1..=300)
                .map(|i| frac(f64::from(i) * 0.618_033_988_749_894_9).powf(e))
                .collect()
        };
        let cases = [
            (powered(1.15), 0.054166666666666696, 0.6767115375874582),
            (powered(1.3), 0.09999999999999998, 0.06100028140888469),
            (powered(1.5), 0.15166666666666667, 0.0006715402672689536),
        ];
        for (b, d, p) in cases {
            let r = two_sample(&a, &b).unwrap();
            assert!((r.d - d).abs() < 1e-12, "D = {}, not {d}", r.d);
            assert!((r.p / p).ln().abs() < 0.06, "p = {}, not {p}", r.p);
        }
        let c: Vec<f64> = (1..=300)
            .map(|i| frac(f64::from(i) * 0.754_877_666_246_692_7))
            .collect();
        let r = two_sample(&a, &c).unwrap();
        assert!((r.d - 0.009166666666666656).abs() < 1e-12);
        assert!(r.p > 0.999);
        assert!(two_sample(&[], &c).is_none());
        assert!(two_sample(&[f64::NAN], &c).is_none());
    }
}
