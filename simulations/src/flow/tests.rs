//! Checks of the statistic against its closed forms.

use super::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Gamma};

fn poisson(rng: &mut ChaCha8Rng, rate: f64, until: f64) -> Vec<f64> {
    let gap = Exp::new(rate).unwrap();
    let mut t = 0.0;
    let mut out = Vec::new();
    loop {
        t += gap.sample(rng);
        if t > until {
            return out;
        }
        out.push(t);
    }
}

#[test]
fn the_kernel_is_a_density_and_its_overlap_the_closed_form() {
    for (k, mu) in [(1, 20.0), (3, 5.0), (5, 20.0), (5, 1.0)] {
        let kernel = DelayKernel::gamma(k, mu, 0.05);
        let total = kernel.cdf(1e9);
        assert!((total - 1.0).abs() < 1e-4, "k {k}: mass {total}");
        let exact = gamma_self_overlap(k, mu);
        let table = kernel.overlap(0.0);
        assert!(
            (table / exact - 1.0).abs() < 1e-3,
            "k {k}: {table} vs {exact}"
        );
        assert_eq!(kernel.density(0.04), 0.0);
    }
    // Exponential: ∫ f² = μ/2.
    assert!((gamma_self_overlap(1, 8.0) - 4.0).abs() < 1e-12);
    // Gamma(2, 1): ∫ x² e^{−2x} dx = 1/4.
    assert!((gamma_self_overlap(2, 1.0) - 0.25).abs() < 1e-12);
}

#[test]
fn the_normal_functions_match_published_values() {
    assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
    assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
    assert!((normal_quantile(0.99) - 2.326_348).abs() < 1e-5);
    assert!((normal_quantile(0.001) + 3.090_232).abs() < 1e-5);
}

/// Unrelated Poisson flows exceed z₀.₉₉ about 1 % of the time, and a
/// conversation's z follows the closed form's shift.
#[test]
fn null_and_alternative_follow_the_closed_form() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (k, mu, length) = (3, 5.0, 600.0);
    let kernel = DelayKernel::gamma(k, mu, 0.03);
    let delay = Gamma::new(f64::from(k), 1.0 / mu).unwrap();
    let normal = normal_quantile(0.99);
    let trials = 3000u32;
    let (mut false_hits, mut true_hits, mut predicted) = (0u32, 0u32, 0.0);
    for _ in 0..trials {
        let sent = poisson(&mut rng, 1.0, length);
        let mut noise = poisson(&mut rng, 0.5, length);
        let z = z_scores(&kernel, &sent, &noise, &[length])[0];
        false_hits += u32::from(z > normal);
        // A tenth of the sender's packets reach the recipient.
        let mut carried = 0;
        for &s in &sent {
            if rng.random::<f64>() < 0.1 {
                let at = s + 0.03 + delay.sample(&mut rng);
                if at <= length {
                    noise.push(at);
                    carried += 1;
                }
            }
        }
        noise.sort_by(f64::total_cmp);
        let z = z_scores(&kernel, &sent, &noise, &[length])[0];
        true_hits += u32::from(z > normal);
        let sums = recipient_sums(&kernel, &noise, &[length]);
        let (_, spread) = null_moments(sent.len(), length, sums.mean[0], sums.var[0]);
        let shift = f64::from(carried) * kernel.overlap(0.0) / spread;
        predicted += normal_cdf(shift - normal);
    }
    let fpr = f64::from(false_hits) / f64::from(trials);
    // Binomial(3000, 0.01): sd 0.0018.
    assert!((fpr - 0.01).abs() < 0.006, "false positives {fpr}");
    let tpr = f64::from(true_hits) / f64::from(trials);
    let predicted = predicted / f64::from(trials);
    assert!(predicted > 0.2 && predicted < 0.9, "{predicted}");
    assert!(
        (tpr - predicted).abs() < 0.05,
        "measured {tpr}, closed form {predicted}"
    );
}

/// A sender with Poisson payload slots: each message takes the first
/// slot after it is written, and the conversation's z follows the
/// closed form only with the slot-gap correction.
#[test]
fn the_slot_gap_correction_predicts_shaped_senders() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (k, mu, length, slot_rate) = (5, 20.0, 1800.0, 2.0);
    let kernel = DelayKernel::gamma(k, mu, 0.05);
    let delay = Gamma::new(f64::from(k), 1.0 / mu).unwrap();
    let normal = normal_quantile(0.99);
    let plain = kernel.overlap(0.0);
    let gain = plain - kernel.slot_gap(slot_rate);
    assert!(
        gain > 0.5 * plain && gain < 0.8 * plain,
        "{gain} of {plain}"
    );
    let (trials, mut hits, mut corrected, mut uncorrected) = (400u32, 0u32, 0.0, 0.0);
    for _ in 0..trials {
        let slots = poisson(&mut rng, slot_rate, length);
        let mut sent = poisson(&mut rng, 0.2, length);
        sent.extend_from_slice(&slots);
        sent.sort_by(f64::total_cmp);
        let mut arrived = poisson(&mut rng, slot_rate, length);
        let mut carried = 0u32;
        for written in poisson(&mut rng, 0.05, length) {
            let next = slots.partition_point(|&s| s <= written);
            if let Some(&slot) = slots.get(next) {
                let at = slot + 0.05 + delay.sample(&mut rng);
                if at <= length {
                    arrived.push(at);
                    carried += 1;
                }
            }
        }
        arrived.sort_by(f64::total_cmp);
        let z = z_scores(&kernel, &sent, &arrived, &[length])[0];
        hits += u32::from(z > normal);
        let sums = recipient_sums(&kernel, &arrived, &[length]);
        let (_, spread) = null_moments(sent.len(), length, sums.mean[0], sums.var[0]);
        corrected += normal_cdf(f64::from(carried) * gain / spread - normal);
        uncorrected += normal_cdf(f64::from(carried) * plain / spread - normal);
    }
    let n = f64::from(trials);
    let (tpr, corrected, uncorrected) = (f64::from(hits) / n, corrected / n, uncorrected / n);
    assert!(
        (tpr - corrected).abs() < 0.08,
        "measured {tpr}, corrected {corrected}"
    );
    assert!(
        uncorrected - tpr > 0.1,
        "uncorrected {uncorrected}, measured {tpr}"
    );
}

#[test]
fn conversations_and_cross_pairs_are_told_apart() {
    let mut a = FlowAttack::new(10, 3);
    assert_eq!(a.pair(0), (4, 5));
    assert_eq!(a.pair(2), (8, 9));
    a.observe_send(4, 1.0);
    a.observe_send(5, 1.0); // a recipient's own sending is not its flow
    a.observe_arrival(5, 2.0, 4);
    a.observe_arrival(7, 2.5, 4); // sender 0 also reached recipient 1
    a.observe_arrival(4, 3.0, 9);
    assert_eq!(a.sent[0], vec![1.0]);
    assert!(a.sent[1].is_empty());
    assert_eq!(a.delivered[0], vec![2.0]);
    assert_eq!(a.arrived[1], vec![2.5]);
    assert_eq!(a.negatives(), 5);
}
