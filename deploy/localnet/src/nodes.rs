//! The launched nodes as the faults see them, looked up in the network's
//! plan: their configuration files, ports and addresses, their health, and
//! the current document.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aegis_directory::api::{self, unix_now_ms as unix_ms};
use aegis_directory::{TrustedAuthority, Verifier};
use aegis_testkit::NetworkPlan;
use anyhow::{Context as _, bail};

/// The name of the node with identity `id`.
pub fn name_of(plan: &NetworkPlan, id: &aegis_mix_packet::NodeId) -> anyhow::Result<String> {
    plan.node_with_identity(&hex::encode(id.0))
        .map(|i| plan.nodes[i].name.clone())
        .context("a listed node is not one of ours")
}

/// The libp2p listen port of the node named `name`.
pub fn listen_port(plan: &NetworkPlan, name: &str) -> anyhow::Result<u16> {
    plan.node_named(name)
        .map(|i| plan.nodes[i].listen.port())
        .with_context(|| format!("no node {name}"))
}

/// The configuration file of the last gateway started: the node whose
/// identity the launcher's faults speak with.
pub fn last_gateway(plan: &NetworkPlan) -> anyhow::Result<PathBuf> {
    (0..plan.nodes.len())
        .rev()
        .find(|&i| plan.nodes[i].role == aegis_directory::Role::Gateway)
        .map(|i| plan.node_config_path(i))
        .context("no gateway")
}

/// The address of `path` (`/health`, `/metrics`) on the metrics listener of
/// the node named `name`.
pub fn node_url(plan: &NetworkPlan, name: &str, path: &str) -> anyhow::Result<String> {
    plan.node_named(name)
        .map(|i| format!("http://{}{path}", plan.nodes[i].metrics))
        .with_context(|| format!("no node {name}"))
}

/// Waits until `health` answers 200 (the node holds the current document
/// and is listed in it), at most `timeout`.
pub async fn wait_healthy(
    http: &reqwest::Client,
    health: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let up = http
            .get(health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not healthy within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The current consensus from `authority`, verified.
pub async fn current_document(
    http: &reqwest::Client,
    authority: &TrustedAuthority,
    verifier: &Verifier,
) -> anyhow::Result<aegis_directory::SignedConsensus> {
    let bytes = http
        .get(api::url(&authority.url, api::DOCUMENT_CURRENT))
        .send()
        .await?
        .bytes()
        .await?;
    verifier
        .verify_bytes(&bytes, None, unix_ms())
        .context("no verified consensus")
}
