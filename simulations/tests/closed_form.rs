//! The single Poisson mix, driven by the node's own `PoissonMix`, reproduces
//! Danezis's closed form H = log2(e·λ/μ) over Loopix's Fig. 4 grid wherever
//! λ/μ ≥ 50.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use aegis_sim::run_single_mix;

const LAMBDAS: [f64; 5] = [100.0, 200.0, 300.0, 400.0, 500.0];
const MUS: [f64; 5] = [200.0, 20.0, 2.0, 0.2, 0.02];

#[test]
fn poisson_mix_entropy_matches_the_closed_form_on_the_fig4_grid() {
    let mut checked = 0;
    for (i, &mu) in MUS.iter().enumerate() {
        for (j, &lambda) in LAMBDAS.iter().enumerate() {
            if lambda / mu < 50.0 {
                continue;
            }
            let p = run_single_mix(lambda, mu, 60, 1000 + (i * 10 + j) as u64, false);
            let err = (p.entropy_bits - p.closed_form_bits).abs();
            assert!(err < 0.15, "λ={lambda} μ={mu}: {p:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 15);
}

#[test]
fn the_closed_form_is_asymptotic_and_misses_at_light_load() {
    // λ/μ = 0.5: the pool holds one or two packets and log2(e·λ/μ) = 0.44
    // bit is far from what the mix actually achieves; this is why the
    // comparison above is limited to λ/μ ≥ 50.
    let p = run_single_mix(100.0, 200.0, 200, 7, false);
    assert!((p.entropy_bits - p.closed_form_bits).abs() > 0.3, "{p:?}");
}
