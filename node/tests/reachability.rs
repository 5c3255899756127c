//! A node whose published address no one can dial is not listed, and it
//! says why: the authority dials it back, refuses its descriptor with the
//! address and the error, and the node shows that reason on `/health` (what
//! `aegis-node status` prints), in its metrics and in a warning.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use aegis_directory::Role;
use aegis_node::metrics::MetricsText;
use aegis_node::{NodeConfig, RunningNode};
use aegis_testkit::{LocalNet, LocalNetSpec, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_no_one_can_dial_is_not_listed_and_says_why() {
    let base = tempfile::tempdir().unwrap();
    let net = LocalNet::start(base.path(), &LocalNetSpec::default())
        .await
        .unwrap();
    net.wait_ready(Duration::from_secs(60)).await.unwrap();

    // A newcomer that listens on one port but publishes another, where
    // nothing listens (a wrong public_addresses, or a closed firewall).
    let closed = free_port().unwrap();
    let mut config = NodeConfig::new(
        Role::Mix,
        &base.path().join("newcomer"),
        &format!("/ip4/127.0.0.1/tcp/{}", free_port().unwrap()),
        format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap(),
        net.trusted(),
    );
    config.workers = 1;
    config.public_addresses = vec![format!("/ip4/127.0.0.1/tcp/{closed}")];
    let newcomer = RunningNode::start(config).await.unwrap();
    let health_url = format!("http://{}/health", newcomer.metrics_addr);
    let http = reqwest::Client::new();

    let deadline = Instant::now() + Duration::from_secs(40);
    let health = loop {
        let health: serde_json::Value = serde_json::from_slice(
            &http
                .get(&health_url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
        )
        .unwrap();
        let why = health["not_listed_because"].as_str().unwrap_or("");
        if why.contains("unreachable") {
            break health;
        }
        assert!(Instant::now() < deadline, "no reason given: {health}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(health["listed"], false, "{health}");
    let why = health["not_listed_because"].as_str().unwrap();
    assert!(
        why.contains(&format!("/ip4/127.0.0.1/tcp/{closed}")),
        "{why}"
    );
    let metrics = MetricsText(newcomer.metrics().encode());
    assert!(
        metrics
            .value("aegis_node_descriptors_refused_total")
            .unwrap()
            >= 1,
        "{}",
        metrics.0
    );

    // Two epochs on, the consensus still does not list it; the others are.
    let epoch_ms = net.schedule.epoch_length_ms;
    tokio::time::sleep(Duration::from_millis(2 * epoch_ms)).await;
    let topology = net.wait_ready(Duration::from_secs(30)).await.unwrap();
    assert!(topology.node(&newcomer.id()).is_none());
    assert_eq!(topology.nodes.len(), net.nodes.len());
    newcomer.shutdown().await;
    net.shutdown().await;
}
