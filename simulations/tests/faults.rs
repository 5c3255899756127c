//! Packet loss and node failure as scenario events, against their closed
//! forms: the share of real packets a lossy route leaves, the traffic a
//! stopped mix would have carried, and the other mixes' loop alarms.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use aegis_sim::faults::FaultReport;
use aegis_sim::{NetworkScenario, Report, Scenario, SimError, run};

fn load(f: impl FnOnce(&mut NetworkScenario)) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/faults.toml");
    let mut s = Scenario::load(&path).unwrap();
    if let Scenario::Network(n) = &mut s {
        n.clients.count = 100;
        n.duration_secs = 600.0;
        f(n);
    }
    s
}

fn faults(s: &Scenario) -> FaultReport {
    match run(s, &mut |_| {}).unwrap() {
        Report::Network(r) => r.faults.expect("a fault report"),
        Report::SingleMix(_) => panic!("expected a network report"),
    }
}

#[test]
fn lossy_links_leave_the_closed_form_share_of_real_packets() {
    let s = load(|n| {
        n.faults.link_loss = 0.03;
        n.faults.outages.clear();
    });
    let f = faults(&s);
    let q = f.link_loss_closed_form;
    assert!((q - 0.97f64.powi(5)).abs() < 1e-12);
    let resolved = (f.real_delivered + f.real_lost) as f64;
    assert!(resolved > 2000.0, "{resolved} real packets");
    let sd = (q * (1.0 - q) / resolved).sqrt();
    assert!(
        (f.delivery_ratio - q).abs() < 4.0 * sd,
        "delivered {} against {q} ± {sd}",
        f.delivery_ratio
    );
    assert_eq!(f.lost_at_failed_nodes, 0);
}

#[test]
fn a_stopped_mix_loses_its_share_and_the_other_mixes_notice() {
    let s = load(|n| {
        n.faults.link_loss = 0.0;
        n.faults.outages[0].start_secs = 200.0;
        n.faults.outages[0].end_secs = Some(500.0);
    });
    let Scenario::Network(n) = &s else {
        unreachable!()
    };
    let f = faults(&s);
    let o = &f.outages[0];
    // What reaches a middle-layer mix: a third of the clients' packets, and
    // a third of the loops of the first and last layers' mixes and of the
    // gateways (each crosses the middle layer once), for the 300 s it is
    // down.
    let (width, lambda_m) = (n.topology.width as f64, n.node_cover.loop_rate);
    let client_rate = n.clients.count as f64 * (0.5 + 0.1 + 0.1);
    let loops = lambda_m * (2.0 * width + n.topology.gateways as f64);
    let expected = 300.0 * (client_rate + loops) / width;
    let got = o.arrived_while_down as f64;
    assert!(
        (got - expected).abs() < 5.0 * expected.sqrt(),
        "{got} arrived while down, expected {expected}"
    );
    let alarm = o.first_alarm_after_secs.expect("another mix's alarm");
    // The deadline (10 s) must pass before a loop counts as lost.
    assert!(alarm > 9.0 && alarm < 120.0, "first alarm after {alarm} s");
    // Real packets: a third of those crossing the middle layer in 300 of
    // the 600 s are lost, and nothing else.
    assert!(f.delivery_ratio > 0.78 && f.delivery_ratio < 0.89, "{f:?}");
    assert_eq!(f.lost_on_links, 0);
}

#[test]
fn outages_must_name_a_node_of_the_topology() {
    let s = load(|n| n.faults.outages[0].index = 3);
    assert!(matches!(run(&s, &mut |_| {}), Err(SimError::Invalid(_))));
    let s = load(|n| n.faults.outages[0].end_secs = Some(100.0));
    assert!(matches!(run(&s, &mut |_| {}), Err(SimError::Invalid(_))));
}
