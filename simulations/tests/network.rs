//! End-to-end network runs: determinism, adversary models, and the
//! disclosure attack against the dumb-relay baseline.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use aegis_sim::{AdversaryModel, NetworkReport, Report, Scenario, output, run};

fn scenario(clients: usize, secs: f64, extra: &str) -> Scenario {
    let text = format!(
        r#"
kind = "network"
name = "test"
seed = 5
duration_secs = {secs}
warmup_secs = 10.0
[topology]
layers = 3
width = 2
gateways = 2
link_latency_ms = 5.0
link_jitter_ms = 1.0
[clients]
count = {clients}
rate = 0.1
contacts = 3
[shaping]
kind = "poisson"
payload_rate = 1.0
loop_rate = 0.2
drop_rate = 0.2
[mixing]
strategy = "poisson"
mu = 20.0
{extra}
"#
    );
    Scenario::from_toml(&text).unwrap()
}

fn network(report: Report) -> NetworkReport {
    match report {
        Report::Network(r) => *r,
        Report::SingleMix(_) => panic!("expected a network report"),
    }
}

fn with_model(s: &Scenario, f: impl FnOnce(&mut aegis_sim::NetworkScenario)) -> Scenario {
    let mut s = s.clone();
    if let Scenario::Network(n) = &mut s {
        f(n);
    }
    s
}

#[test]
fn the_same_seed_gives_identical_json() {
    let s = scenario(
        60,
        60.0,
        "[adversary]\ntargets = 40\n[disclosure]\nusers = 10\ncompare_relay = true\n",
    );
    let a = output::to_json(&run(&s, &mut |_| {}).unwrap()).unwrap();
    let b = output::to_json(&run(&s, &mut |_| {}).unwrap()).unwrap();
    assert_eq!(a, b);
    let other = with_model(&s, |n| n.seed = 6);
    let c = output::to_json(&run(&other, &mut |_| {}).unwrap()).unwrap();
    assert_ne!(a, c, "a different seed must change the run");
}

#[test]
fn corruption_and_the_relay_cost_anonymity_in_the_expected_order() {
    let base = scenario(
        60,
        60.0,
        "[adversary]\ntargets = 60\n[disclosure]\nusers = 0\n",
    );
    let gpa = network(run(&base, &mut |_| {}).unwrap());
    let all_corrupt = network(
        run(
            &with_model(&base, |n| {
                n.adversary.model = AdversaryModel::CorruptMixes;
                n.adversary.corrupt_fraction = 1.0;
            }),
            &mut |_| {},
        )
        .unwrap(),
    );
    let relay = network(
        run(
            &with_model(&base, |n| n.adversary.model = AdversaryModel::DumbRelay),
            &mut |_| {},
        )
        .unwrap(),
    );
    let h = |r: &NetworkReport| r.anonymity.as_ref().unwrap().entropy_bits;
    let a = gpa.anonymity.as_ref().unwrap();
    assert!(a.targets >= 40, "{a:?}");
    assert!(h(&gpa) > 2.0 && h(&gpa) <= a.ideal_bits + 1e-9, "{a:?}");
    assert!(
        h(&all_corrupt) < h(&gpa) - 0.2,
        "{} vs {}",
        h(&all_corrupt),
        h(&gpa)
    );
    assert_eq!(
        all_corrupt.anonymity.as_ref().unwrap().fully_corrupt_paths,
        1.0
    );
    assert_eq!(h(&relay), 0.0);
    assert_eq!(relay.anonymity.as_ref().unwrap().top1, 1.0);
    // Cover traffic costs bandwidth: about (λP + λL + λD)/rate packets per message.
    assert!(gpa.bandwidth.overhead > 10.0, "{:?}", gpa.bandwidth);
    assert!(
        gpa.latency.mean > 5.0 * 0.05,
        "five hops of 50 ms mean delay: {:?}",
        gpa.latency
    );
    assert!(relay.latency.mean < 0.02);
}

#[test]
fn the_disclosure_attack_beats_a_dumb_relay_but_not_the_mixnet_with_cover() {
    let s = scenario(
        100,
        300.0,
        "[adversary]\ntargets = 0\n[disclosure]\nusers = 30\nwindow_secs = 10.0\nguesses = 3\ncompare_relay = true\n",
    );
    let r = network(run(&s, &mut |_| {}).unwrap());
    let mix = r.disclosure.last().unwrap();
    let relay = r.relay_disclosure.as_ref().unwrap().last().unwrap();
    assert!(relay.recall > 0.8, "relay {relay:?}");
    assert!(mix.recall < 0.35, "mixnet {mix:?}");
    assert!(
        relay.recall > 2.5 * mix.recall.max(0.01),
        "{relay:?} vs {mix:?}"
    );
}

#[test]
fn lineage_tracking_gives_the_dense_figures_target_by_target() {
    // Tracking draws nothing from the RNG, so both methods see the same run;
    // they differ only in where the pool mixtures are computed.
    let dense = scenario(
        300,
        60.0,
        "[adversary]\ntargets = 80\n[disclosure]\nusers = 0\n",
    );
    let lineage = with_model(&dense, |n| {
        n.adversary.tracking = aegis_sim::Tracking::Lineage
    });
    let a = network(run(&dense, &mut |_| {}).unwrap());
    let b = network(run(&lineage, &mut |_| {}).unwrap());
    assert!(a.targets.len() >= 60, "{}", a.targets.len());
    assert_eq!(a.targets.len(), b.targets.len());
    for (x, y) in a.targets.iter().zip(&b.targets) {
        assert_eq!((x.message, x.sender), (y.message, y.sender));
        assert!(y.untracked_mass < 1e-6, "{y:?}");
        assert!(
            (x.guess.entropy_bits - y.guess.entropy_bits).abs() < 1e-3,
            "{x:?} vs {y:?}"
        );
        assert!((x.guess.top1 - y.guess.top1).abs() < 1e-9, "{x:?} vs {y:?}");
    }
    let again = output::to_json(&run(&lineage, &mut |_| {}).unwrap()).unwrap();
    assert_eq!(
        output::to_json(&Report::Network(Box::new(b.clone()))).unwrap(),
        again,
        "the same seed gives the same bytes"
    );
    let r = b.anonymity.unwrap();
    assert!(r.entropy_error_bound < 1e-3, "{r:?}");
}

#[test]
fn lineage_tracking_lifts_the_client_limit() {
    let base = scenario(
        60,
        30.0,
        "[adversary]\ntargets = 10\n[disclosure]\nusers = 0\n",
    );
    let big = |tracking| {
        with_model(&base, |n| {
            n.clients.count = 30_000;
            n.clients.rate = 0.001;
            n.shaping = aegis_sim::ShapingSpec::None;
            n.adversary.tracking = tracking;
        })
    };
    assert!(big(aegis_sim::Tracking::Dense).validate().is_err());
    let r = network(run(&big(aegis_sim::Tracking::Lineage), &mut |_| {}).unwrap());
    let a = r.anonymity.unwrap();
    assert!(a.targets >= 5 && a.entropy_bits > 1.0, "{a:?}");
}

#[test]
fn churn_lets_the_intersection_attack_find_correspondents_unless_clients_stay_online() {
    let text = r#"
kind = "network"
name = "churn"
seed = 8
duration_secs = 86400.0
[topology]
layers = 2
width = 2
gateways = 2
[clients]
count = 300
rate = 0.002
contacts = 3
[shaping]
kind = "poisson"
payload_rate = 0.01
loop_rate = 0.002
drop_rate = 0.002
[mixing]
mu = 20.0
[adversary]
targets = 0
[disclosure]
users = 0
[churn]
mean_online_secs = 3600.0
mean_offline_secs = 10800.0
[intersection]
recipients = 15
window_secs = 120.0
"#;
    let churn = Scenario::from_toml(text).unwrap();
    let always = with_model(&churn, |n| n.churn.mean_offline_secs = 0.0);
    let a = network(run(&churn, &mut |_| {}).unwrap());
    let b = network(run(&always, &mut |_| {}).unwrap());
    // People write only while online: an alternating renewal process is
    // online a share on/(on + off) = 1/4 of the time, so the Poisson count
    // of messages is about clients · rate · duration / 4.
    let expected = 300.0 * 0.002 * 86_400.0 / 4.0;
    let written = a.bandwidth.messages_written as f64;
    assert!(
        (written - expected).abs() < 4.0 * expected.sqrt() + 0.03 * expected,
        "{written} written, {expected} expected"
    );
    let full = b.bandwidth.messages_written as f64;
    assert!(
        (full - 4.0 * expected).abs() < 4.0 * (4.0 * expected).sqrt(),
        "{full}"
    );
    let churned = a.intersection.last().unwrap().recall;
    let online = b.intersection.last().unwrap().recall;
    assert!(churned > 0.3, "with churn: {churned}");
    assert!(online < 0.05, "always online: {online}");
    // Messages to an offline recipient wait in its mailbox until it is back.
    // A recipient is offline 3/4 of the time, for 3 h on average.
    assert!(a.latency.mean > 3000.0, "{:?}", a.latency);
    assert!(b.latency.mean < 600.0, "{:?}", b.latency);
}
