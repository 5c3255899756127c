//! The single Poisson mix, driven by the node's own `PoissonMix`, reproduces
//! Danezis's closed form H = log2(e·λ/μ) over Loopix's Fig. 4 grid wherever
//! λ/μ ≥ 50.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use aegis_sim::{Report, Scenario, run, run_single_mix};

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

/// A network fed with λ = 1000 messages/s by `clients` clients with no cover,
/// one gateway, `width` mixes per layer, μ = 20.
struct Net {
    width: usize,
    layers: usize,
    gateways_delay: bool,
    latency_ms: f64,
    clients: usize,
}

impl Net {
    /// Mean sender entropy over three seeds, and the report's closed form.
    fn entropy(&self) -> (f64, f64) {
        let runs: Vec<(f64, f64)> = [21, 22, 23].iter().map(|&seed| self.run(seed)).collect();
        let h = runs.iter().map(|r| r.0).sum::<f64>() / runs.len() as f64;
        (h, runs[0].1)
    }

    fn run(&self, seed: u64) -> (f64, f64) {
        let Net {
            width,
            layers,
            gateways_delay,
            latency_ms,
            clients,
        } = *self;
        let rate = 1000.0 / clients as f64;
        let text = format!(
            r#"
kind = "network"
name = "chain"
seed = {seed}
duration_secs = 12.0
warmup_secs = 2.0
[topology]
layers = {layers}
width = {width}
gateways = 1
link_latency_ms = {latency_ms}
[clients]
count = {clients}
rate = {rate}
contacts = 5
[shaping]
kind = "none"
[mixing]
strategy = "poisson"
mu = 20.0
gateways_delay = {gateways_delay}
[adversary]
targets = 200
tracking = "lineage"
[disclosure]
users = 0
"#
        );
        let scenario = Scenario::from_toml(&text).unwrap();
        let Report::Network(r) = run(&scenario, &mut |_| {}).unwrap() else {
            panic!("expected a network report");
        };
        let a = r.anonymity.unwrap();
        assert!(a.targets >= 190, "{a:?}");
        assert!(a.entropy_error_bound < 1e-3, "{a:?}");
        (a.entropy_bits, a.chain_closed_form_bits.unwrap())
    }
}

/// k delaying hops of a chain (one mix per layer): mixes only, gateways
/// forwarding at once, or mixes and both gateways. Three delaying hops are
/// reached both ways.
const CHAINS: [(usize, bool, u32); 6] = [
    (1, false, 1),
    (2, false, 2),
    (3, false, 3),
    (1, true, 3),
    (2, true, 4),
    (3, true, 5),
];

#[test]
fn a_chain_of_mixes_matches_the_closed_form_for_one_to_five_delaying_hops() {
    // 50,000 clients sending 0.02 messages/s: two inputs from one sender in
    // the same window are rare, so senders and inputs coincide.
    for (layers, gateways_delay, k) in CHAINS {
        let net = Net {
            width: 1,
            layers,
            gateways_delay,
            latency_ms: 50.0,
            clients: 50_000,
        };
        let (h, closed) = net.entropy();
        let theory = aegis_sim::theory::chain_entropy_bits(1000.0, 20.0, k);
        assert!((closed - theory).abs() < 1e-9, "{closed} vs {theory}");
        assert!(
            (h - theory).abs() < 0.1,
            "{layers} layers, gateways delay {gateways_delay}: {h:.3} bits against {theory:.3}"
        );
    }
}

#[test]
fn with_fewer_senders_the_closed_form_bounds_the_sender_entropy_from_above() {
    // 5,000 clients at 0.2/s: inputs from one sender merge, so the entropy
    // over senders falls below the entropy over inputs, more so as the
    // distribution spreads over more inputs.
    let mut gaps = Vec::new();
    for (layers, gateways_delay, k) in [CHAINS[0], CHAINS[5]] {
        let net = Net {
            width: 1,
            layers,
            gateways_delay,
            latency_ms: 50.0,
            clients: 5_000,
        };
        let (h, _) = net.entropy();
        gaps.push(aegis_sim::theory::chain_entropy_bits(1000.0, 20.0, k) - h);
    }
    assert!(gaps[0] > 0.0 && gaps[1] > gaps[0], "{gaps:?}");
}

#[test]
fn a_constant_link_latency_does_not_move_the_result() {
    // Ten mixes per layer and delaying gateways: a pool that mixed a
    // gateway's entry and exit packets would depend on the time packets
    // spend between the two.
    let net = |latency_ms| Net {
        width: 10,
        layers: 3,
        gateways_delay: true,
        latency_ms,
        clients: 5_000,
    };
    let (fast, _) = net(0.0).entropy();
    let (slow, _) = net(50.0).entropy();
    assert!(
        (fast - slow).abs() < 0.1,
        "0 ms: {fast:.3}, 50 ms: {slow:.3}"
    );
}

/// One n−1 attack on the first mix of the middle layer from `start` with
/// loops at `loop_rate`; returns the report.
fn n_minus_one(loop_rate: f64, seed: u64) -> aegis_sim::NMinusOneReport {
    // Enough loops before the attack for the alarm's warm-up (40) and
    // window (20), and time after it for ten times the expected wait.
    let start = 10.0 + 80.0 / loop_rate;
    let duration = start + 30.0 + 30.0 / loop_rate;
    let text = format!(
        r#"
kind = "network"
name = "n-1"
seed = {seed}
duration_secs = {duration}
[topology]
layers = 3
width = 3
gateways = 2
link_latency_ms = 10.0
[clients]
count = 20
rate = 0.01
contacts = 3
[shaping]
kind = "poisson"
payload_rate = 0.05
loop_rate = 0.01
drop_rate = 0.01
[mixing]
mu = 20.0
[adversary]
targets = 0
[disclosure]
users = 0
[node_cover]
loop_rate = {loop_rate}
[n_minus_one]
start_secs = {start}
layer = 1
"#
    );
    let scenario = Scenario::from_toml(&text).unwrap();
    let Report::Network(r) = run(&scenario, &mut |_| {}).unwrap() else {
        panic!("expected a network report");
    };
    r.n_minus_one.unwrap()
}

#[test]
fn an_n_minus_one_attack_is_detected_when_the_loop_alarm_predicts() {
    // The node's alarm (window 20, floor 0.05, tail 1e-6) needs 9 losses in
    // a row; a mix's loop (3 hops of 50 ms and 4 links of 10 ms) comes back
    // to its input 0.19 s after it leaves on average.
    let threshold = aegis_sim::theory::alarm_threshold(20, 0.05, 1e-6);
    assert_eq!(threshold, 9);
    for loop_rate in [0.2, 1.0, 5.0] {
        let runs: Vec<aegis_sim::NMinusOneReport> = (0..30)
            .map(|seed| n_minus_one(loop_rate, 100 + seed))
            .collect();
        let deadline = runs[0].deadline_secs;
        assert_eq!(
            deadline, 10.0,
            "the node's deadline for 4-hop loops of 50 ms"
        );
        let times: Vec<f64> = runs
            .iter()
            .map(|r| {
                assert_eq!(r.false_alarms, 0, "{r:?}");
                r.detected_after_secs
                    .unwrap_or_else(|| panic!("not detected: {r:?}"))
            })
            .collect();
        let n = times.len() as f64;
        let mean = times.iter().sum::<f64>() / n;
        let sd = (times.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let expected =
            aegis_sim::theory::n_minus_one_detection_secs(deadline, loop_rate, threshold, 0.19);
        assert!(
            (mean - expected).abs() < 3.5 * sd / n.sqrt() + 0.5,
            "λM = {loop_rate}: {mean:.2} s (sd {sd:.2}) against {expected:.2} s"
        );
    }
}
