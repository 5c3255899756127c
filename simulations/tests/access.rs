//! The gateways' per-client limits in the traffic-analysis engine: honest
//! clients pass at the node's defaults; a tight send limit or a small
//! mailbox refuses, and counts what it refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use aegis_sim::access::AccessReport;
use aegis_sim::{NetworkScenario, Report, Scenario, SimError, run};

fn load(f: impl FnOnce(&mut NetworkScenario)) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/acks.toml");
    let mut s = Scenario::load(&path).unwrap();
    if let Scenario::Network(n) = &mut s {
        n.duration_secs = 600.0;
        n.faults.link_loss = 0.0;
        n.gateway.policy = true;
        n.delivery.pull_interval_secs = Some(8.0 / (2.0 * 2.2));
        f(n);
    }
    s
}

fn access(s: &Scenario) -> AccessReport {
    match run(s, &mut |_| {}).unwrap() {
        Report::Network(r) => r.access.expect("an access report"),
        Report::SingleMix(_) => panic!("expected a network report"),
    }
}

#[test]
fn honest_clients_pass_the_default_limits() {
    let a = access(&load(|_| {}));
    assert!((a.send_rate - 2.0 * 2.4).abs() < 1e-9);
    assert_eq!((a.rate_limited, a.pulls_refused, a.mailbox_full), (0, 0, 0));
}

#[test]
fn a_limit_at_the_bare_rate_drops_poisson_bursts_and_counts_them() {
    let a = access(&load(|n| n.gateway.rate_slack = 1.0));
    assert!(a.rate_limited > 0);
    assert!(
        a.rate_limited_share > 0.005 && a.rate_limited_share < 0.05,
        "{a:?}"
    );
}

#[test]
fn a_full_mailbox_drops_what_lands_and_counts_it() {
    let a = access(&load(|n| {
        n.gateway.mailbox_limit = 5;
        n.delivery.pull_interval_secs = Some(10.0);
    }));
    assert!(a.mailbox_full > 0, "{a:?}");
}

#[test]
fn a_slack_below_one_is_refused() {
    let s = load(|n| n.gateway.rate_slack = 0.5);
    assert!(matches!(run(&s, &mut |_| {}), Err(SimError::Invalid(_))));
}
