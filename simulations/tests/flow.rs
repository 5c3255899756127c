//! Flow correlation on long conversations, run through the whole network:
//! the measured true-positive rate follows the closed form, grows with the
//! observation, and cover traffic is what holds it back.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use aegis_sim::flow::FlowReport;
use aegis_sim::{Report, Scenario, SimError, run};

fn load(name: &str, f: impl FnOnce(&mut aegis_sim::NetworkScenario)) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    let mut s = Scenario::load(&path).unwrap();
    if let Scenario::Network(n) = &mut s {
        f(n);
    }
    s
}

fn flow(s: &Scenario) -> FlowReport {
    match run(s, &mut |_| {}).unwrap() {
        Report::Network(r) => r.flow.expect("a flow report"),
        Report::SingleMix(_) => panic!("expected a network report"),
    }
}

#[test]
fn with_cover_recall_grows_with_observation_as_the_closed_form_says() {
    let s = load("flow.toml", |n| {
        n.duration_secs = 900.0;
        n.flow.observe_secs = vec![150.0, 300.0, 600.0, 900.0];
    });
    let f = flow(&s);
    assert_eq!(f.pairs, 40);
    assert!(f.negatives > 1400, "{} cross pairs", f.negatives);
    let tpr: Vec<f64> = f.points.iter().map(|p| p.tpr).collect();
    assert!(tpr[0] < 0.5 && tpr[3] > 0.6, "{tpr:?}");
    assert!(tpr[3] > tpr[0], "{tpr:?}");
    for p in &f.points {
        // Unrelated pairs cross the normal threshold about 1 % of the time
        // (binomial sd over ~1500 pairs: 0.26 %).
        assert!(p.fpr_at_normal < 0.025, "{p:?}");
        // Forty conversations: the measured share is within about two
        // binomial sd (each at most 0.08) of the closed form.
        assert!((p.tpr_at_normal - p.predicted_tpr).abs() < 0.15, "{p:?}");
    }
}

#[test]
fn without_cover_every_conversation_is_found_within_minutes() {
    let cover = load("flow.toml", |n| {
        n.duration_secs = 300.0;
        n.flow.observe_secs = vec![300.0];
    });
    let bare = load("flow-no-cover.toml", |n| {
        n.duration_secs = 300.0;
        n.flow.observe_secs = vec![300.0];
    });
    let with_cover = flow(&cover).points[0].tpr;
    let without = flow(&bare).points[0].tpr;
    assert!(without >= 0.95, "without cover: {without}");
    assert!(with_cover < 0.8, "with cover: {with_cover}");
}

#[test]
fn the_delay_model_needs_poisson_mixing() {
    let s = load("flow.toml", |n| n.mixing.strategy = "timed-pool".into());
    assert!(matches!(run(&s, &mut |_| {}), Err(SimError::Invalid(_))));
}
