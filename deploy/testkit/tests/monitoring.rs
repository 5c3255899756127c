//! The dashboard and alert rules in `deploy/monitoring/` against the
//! programs they watch: every metric they name is one a running authority
//! and gateway export, and the rules pass Prometheus's own checker and
//! their unit tests (`promtool`, from Debian's `prometheus` package, which
//! `scripts/prerequisites.sh` installs).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use aegis_directory::api;
use aegis_testkit::{LocalNet, LocalNetSpec};

fn monitoring() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../monitoring")
}

/// Metric names (`aegis_…`, `process_…`) mentioned in `text`, as the
/// family a scrape declares them under: without the `_total`, `_bucket`,
/// `_sum` and `_count` of their samples.
fn names_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("aegis_") || w.starts_with("process_"))
        .map(|w| {
            ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| w.strip_suffix(suffix))
                .unwrap_or(w)
                .to_owned()
        })
        .collect()
}

/// The metric families a scrape declares (`# TYPE name kind`).
fn declared(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The text `/metrics` at `url` serves.
async fn scrape(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(monitoring())
        .output()
        .expect("promtool (Debian package `prometheus`; scripts/prerequisites.sh installs it)");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    promtool(&["check", "rules", "aegislink-alerts.yml"]);
    promtool(&["test", "rules", "aegislink-alerts.test.yml"]);
    promtool(&["check", "config", "prometheus.yml"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_the_rules_name_is_exported() {
    let rules = std::fs::read_to_string(monitoring().join("aegislink-alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(monitoring().join("grafana-dashboard.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut exprs = String::new();
    for panel in parsed["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(!expr.is_empty(), "{}", panel["title"]);
            exprs.push_str(expr);
            exprs.push('\n');
        }
    }
    let mut wanted = names_in(&rules);
    wanted.extend(names_in(&exprs));
    assert!(wanted.len() > 30, "{wanted:?}");

    let base = tempfile::tempdir().unwrap();
    let spec = LocalNetSpec {
        authorities: 1,
        mixes: 3,
        gateways: 1,
        ..LocalNetSpec::default()
    };
    let net = LocalNet::start(base.path(), &spec).await.unwrap();
    net.wait_ready(Duration::from_secs(60)).await.unwrap();
    let http = reqwest::Client::new();
    let gateway = net.gateways()[0];
    let node_url = format!("http://{}/metrics", net.node(gateway).unwrap().metrics_addr);
    let node = scrape(&http, &node_url).await;
    // Refusals are counted by reason, and a family shows once a reason
    // occurred: send the authority one bad upload of each kind first.
    for route in [api::DESCRIPTOR, api::VOTE, api::SIGNATURE] {
        let refused = http
            .post(api::url(&net.authorities[0].url, route))
            .body(vec![0xFF; 64])
            .send()
            .await
            .unwrap();
        assert!(refused.status().is_client_error(), "{route}");
    }
    let authority = scrape(&http, &api::url(&net.authorities[0].url, api::METRICS)).await;
    net.shutdown().await;

    let mut exported = declared(&node);
    exported.extend(declared(&authority));
    let missing: Vec<&String> = wanted.difference(&exported).collect();
    assert!(missing.is_empty(), "named but not exported: {missing:?}");
    // The gateway says it is listed, and which version and role it runs.
    assert!(node.contains("aegis_node_listed 1"), "{node}");
    assert!(node.contains("role=\"gateway\""), "{node}");
}
