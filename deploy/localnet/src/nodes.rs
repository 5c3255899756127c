//! The launched nodes as the faults see them: their configuration files,
//! ports and addresses, their health, and the current document.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aegis_directory::api::{self, unix_now_ms as unix_ms};
use aegis_directory::{TrustedAuthority, Verifier};
use anyhow::{Context as _, bail};

/// Each node's name, configuration file and metrics port.
pub type NodeConfigs = [(String, PathBuf, u16)];

/// Node identity (hex) → (name, libp2p listen port).
pub type NodeIds = HashMap<String, (String, u16)>;

/// The name of the node with identity `id`.
pub fn name_of(node_ids: &NodeIds, id: &aegis_mix_packet::NodeId) -> anyhow::Result<String> {
    node_ids
        .get(&hex::encode(id.0))
        .map(|(name, _)| name.clone())
        .context("a listed node is not one of ours")
}

/// The libp2p listen port of the node named `name`.
pub fn listen_port(node_ids: &NodeIds, name: &str) -> anyhow::Result<u16> {
    node_ids
        .values()
        .find(|(n, _)| n == name)
        .map(|(_, port)| *port)
        .with_context(|| format!("no listen port for {name}"))
}

/// The configuration file of the last gateway started: the node whose
/// identity the launcher's faults speak with.
pub fn last_gateway(node_configs: &NodeConfigs) -> anyhow::Result<PathBuf> {
    node_configs
        .iter()
        .rev()
        .find(|(name, ..)| name.starts_with("gateway-"))
        .map(|(_, path, _)| path.clone())
        .context("no gateway")
}

/// The address of `path` (`/health`, `/metrics`) on the metrics port of the
/// node named `name`.
pub fn node_url(node_configs: &NodeConfigs, name: &str, path: &str) -> anyhow::Result<String> {
    node_configs
        .iter()
        .find(|(n, ..)| n == name)
        .map(|(_, _, port)| format!("http://127.0.0.1:{port}{path}"))
        .with_context(|| format!("no metrics port for {name}"))
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
