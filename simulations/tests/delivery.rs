//! Reliable delivery in the traffic-analysis engine: the client's outbox,
//! SURB-ACKs through the network and retransmission, against the closed
//! forms for independent losses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use aegis_sim::delivery::DeliveryReport;
use aegis_sim::{NetworkScenario, Report, Scenario, run};

fn load(f: impl FnOnce(&mut NetworkScenario)) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/acks.toml");
    let mut s = Scenario::load(&path).unwrap();
    if let Scenario::Network(n) = &mut s {
        n.duration_secs = 600.0;
        f(n);
    }
    s
}

fn delivery(s: &Scenario) -> DeliveryReport {
    match run(s, &mut |_| {}).unwrap() {
        Report::Network(r) => r.delivery.expect("a delivery report"),
        Report::SingleMix(_) => panic!("expected a network report"),
    }
}

#[test]
fn under_loss_transmissions_and_copies_follow_the_closed_form() {
    let d = delivery(&load(|_| {}));
    let q = 0.97f64.powi(5);
    assert!(d.messages > 2500, "{d:?}");
    assert_eq!(d.failed, 0);
    // Only messages written in the last seconds wait for their ack.
    assert!(d.acknowledged as f64 > 0.98 * d.messages as f64, "{d:?}");
    assert!(d.received >= d.acknowledged);
    // Geometric transmissions (success q²): mean 1/q², sd of the mean
    // √((1 − q²)/q⁴/n) ≈ 0.013 here.
    let t = d.transmissions_per_message;
    assert!(
        (t - 1.0 / (q * q)).abs() < 0.06,
        "{t} transmissions per message"
    );
    let r = d.receipts_per_message;
    assert!((r - 1.0 / q).abs() < 0.04, "{r} copies per message");
    // One first transmission per message sent at least once.
    let first = d.transmissions - d.retransmissions;
    assert!(first <= d.messages && first >= d.acknowledged, "{d:?}");
}

#[test]
fn without_loss_each_message_is_sent_and_received_once() {
    let d = delivery(&load(|n| n.faults.link_loss = 0.0));
    assert_eq!(d.failed, 0);
    // Only an acknowledgement that waits unusually long for a slot times a
    // fragment out early.
    assert!(d.retransmissions * 100 <= d.transmissions, "{d:?}");
    assert!(d.duplicates <= d.retransmissions, "{d:?}");
    // Every copy is acknowledged once (the last few may still wait for a
    // slot when the run ends).
    assert!(
        d.acks_sent <= d.received && d.acks_sent >= d.acknowledged,
        "{d:?}"
    );
    assert!(d.acknowledged as f64 > 0.98 * d.messages as f64, "{d:?}");
}

fn latency_and_delivery(s: &Scenario) -> (f64, DeliveryReport) {
    match run(s, &mut |_| {}).unwrap() {
        Report::Network(r) => (r.latency.mean, r.delivery.expect("a delivery report")),
        Report::SingleMix(_) => panic!("expected a network report"),
    }
}

#[test]
fn on_the_pull_grid_the_closed_forms_hold_and_a_batch_caps_each_pull() {
    let (at_once, _) = latency_and_delivery(&load(|_| {}));
    // The client's own interval at these rates: 8 / (2 (λP + λL)).
    let (grid, d) = latency_and_delivery(&load(|n| {
        n.delivery.pull_interval_secs = Some(8.0 / (2.0 * 2.2));
    }));
    let q = 0.97f64.powi(5);
    assert_eq!(d.failed, 0);
    let t = d.transmissions_per_message;
    assert!(
        (t - 1.0 / (q * q)).abs() < 0.06,
        "{t} transmissions per message"
    );
    // A box waits half an interval for the pull on average.
    assert!(
        grid > at_once + 0.5 && grid < at_once + 3.0,
        "{at_once} → {grid}"
    );
    // Pulls of 8 every 10 s cannot keep up with 2.2 boxes a second: the
    // mailbox backs up and messages wait far longer.
    let (slow, _) = latency_and_delivery(&load(|n| n.delivery.pull_interval_secs = Some(10.0)));
    assert!(slow > 10.0 * grid, "{grid} → {slow}");
}
