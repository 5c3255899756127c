//! A whole network in one process on loopback — directory authorities, mix
//! nodes and gateways configured as an operator would configure them — for
//! tests, benchmarks and experiments: the in-process runner of a
//! [`NetworkPlan`]. (The `aegis-localnet` launcher runs plans as separate
//! processes, or in network namespaces.)

use aegis_directory::api::unix_now_ms as now_ms;
use std::net::TcpListener as StdListener;
use std::path::Path;
use std::time::Duration;

use aegis_directory::config::Config as AuthorityFileConfig;
use aegis_directory::server::{RunningAuthority, spawn};
use aegis_directory::{Fetcher, Role, Schedule, TrustedAuthority};

use crate::plan::{Hosts, NetworkPlan, NodeTuning, Shape};

use aegis_node::{NodeConfig, RunningNode};
use aegis_proto::Topology;

/// A free loopback TCP port (bound and released), never the same one twice
/// in this process: libp2p listeners allow port sharing, so two nodes handed
/// the same port would both bind it and split its connections.
pub fn free_port() -> std::io::Result<u16> {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..1_000 {
        let port = StdListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if !handed.contains(&port) {
            handed.push(port);
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no unused loopback port"))
}

/// Sizes and timing of a local network.
#[derive(Debug, Clone)]
pub struct LocalNetSpec {
    /// Directory authorities.
    pub authorities: usize,
    /// Mix nodes (placed in the three layers by the consensus).
    pub mixes: usize,
    /// Gateways.
    pub gateways: usize,
    /// Epoch length in milliseconds (at least 1000).
    pub epoch_length_ms: u64,
    /// Crypto workers per node (0: one per core).
    pub workers: usize,
    /// Packets per second each replay filter is sized for.
    pub line_rate: u64,
    /// Seconds between replay-filter snapshots.
    pub filter_snapshot_secs: u64,
    /// The packet geometry (and so the packet format) the consensus names.
    pub geometry: aegis_mix_packet::Geometry,
}

impl Default for LocalNetSpec {
    fn default() -> Self {
        LocalNetSpec {
            authorities: 1,
            mixes: 3,
            gateways: 1,
            epoch_length_ms: 4_000,
            workers: 1,
            line_rate: 200,
            filter_snapshot_secs: 1,
            geometry: test_geometry(),
        }
    }
}

/// The packet format `AEGIS_TEST_PACKET_FORMAT` names (`sphinx` or `pq`),
/// if it is set: every test network of a suite (in process, as processes,
/// in containers) runs in it, so a whole suite runs in the post-quantum
/// format on request.
///
/// # Panics
/// If the variable names no packet format (a typo must not quietly run
/// the suite in the other format).
pub fn test_packet_format() -> Option<aegis_mix_packet::PacketFormat> {
    let name = std::env::var("AEGIS_TEST_PACKET_FORMAT").ok()?;
    let format = aegis_mix_packet::PacketFormat::from_name(&name)
        .unwrap_or_else(|| panic!("AEGIS_TEST_PACKET_FORMAT={name}: expected `sphinx` or `pq`"));
    Some(format)
}

/// The geometry a test network gets unless the test names one: that of
/// [`test_packet_format`], else the standard one.
pub fn test_geometry() -> aegis_mix_packet::Geometry {
    test_packet_format().map_or(aegis_mix_packet::Geometry::STANDARD, |format| {
        aegis_mix_packet::Geometry::of_format(format)
    })
}

/// One authority of a local network.
pub struct AuthoritySlot {
    /// Its configuration.
    pub config: AuthorityFileConfig,
    /// Its public key.
    pub public_key: [u8; 32],
    /// Its base URL.
    pub url: String,
    /// The running server, if started.
    pub running: Option<RunningAuthority>,
}

/// One node of a local network.
pub struct NodeSlot {
    /// Its configuration.
    pub config: NodeConfig,
    /// The running node, if started.
    pub running: Option<RunningNode>,
}

/// A running local network.
pub struct LocalNet {
    /// The authorities.
    pub authorities: Vec<AuthoritySlot>,
    /// The nodes: mixes first, then gateways.
    pub nodes: Vec<NodeSlot>,
    /// The epoch clock.
    pub schedule: Schedule,
    /// What was started.
    pub plan: NetworkPlan,
}

impl LocalNet {
    /// Plans the network under `base` ([`NetworkPlan`], on loopback),
    /// writes every configuration and starts everything.
    pub async fn start(base: &Path, spec: &LocalNetSpec) -> anyhow::Result<LocalNet> {
        let shape = Shape {
            authorities: spec.authorities,
            mixes: spec.mixes,
            gateways: spec.gateways,
            epoch_length_ms: spec.epoch_length_ms,
        };
        let mut plan = NetworkPlan::create(base, shape, Hosts::Loopback, now_ms())?;
        plan.parameters.lambda_m = 1.0;
        plan.set_geometry(&spec.geometry);
        plan.tuning = NodeTuning {
            workers: Some(spec.workers),
            line_rate: Some(spec.line_rate),
            filter_snapshot_secs: Some(spec.filter_snapshot_secs),
        };
        plan.write(base)?;
        LocalNet::start_plan(plan).await
    }

    /// Starts every authority and node of a written plan.
    pub async fn start_plan(plan: NetworkPlan) -> anyhow::Result<LocalNet> {
        let mut authorities = Vec::new();
        for (i, host) in plan.authorities.iter().enumerate() {
            authorities.push(AuthoritySlot {
                config: plan.authority_config(i)?,
                public_key: aegis_directory::parse_key(&host.public_key)?,
                url: format!("http://{}", host.listen),
                running: None,
            });
        }
        let nodes = (0..plan.nodes.len())
            .map(|i| {
                Ok(NodeSlot {
                    config: plan.node_config(i)?,
                    running: None,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut net = LocalNet {
            authorities,
            nodes,
            schedule: plan.schedule(),
            plan,
        };
        for i in 0..net.authorities.len() {
            net.start_authority(i).await?;
        }
        for i in 0..net.nodes.len() {
            net.start_node(i).await?;
        }
        Ok(net)
    }

    /// Starts (or restarts) authority `i`.
    pub async fn start_authority(&mut self, i: usize) -> anyhow::Result<()> {
        let slot = &mut self.authorities[i];
        let listener = tokio::net::TcpListener::bind(slot.config.listen).await?;
        slot.running = Some(spawn(slot.config.clone(), listener).await?);
        Ok(())
    }

    /// Stops authority `i`.
    pub async fn stop_authority(&mut self, i: usize) {
        if let Some(running) = self.authorities[i].running.take() {
            running.shutdown().await;
        }
    }

    /// Starts (or restarts) node `i` with its configuration and data.
    pub async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let slot = &mut self.nodes[i];
        slot.running = Some(RunningNode::start(slot.config.clone()).await?);
        Ok(())
    }

    /// Stops node `i` gracefully.
    pub async fn stop_node(&mut self, i: usize) {
        if let Some(running) = self.nodes[i].running.take() {
            running.shutdown().await;
        }
    }

    /// The running node `i`.
    pub fn node(&self, i: usize) -> Option<&RunningNode> {
        self.nodes[i].running.as_ref()
    }

    /// Indices of the gateways.
    pub fn gateways(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].config.role == Role::Gateway)
            .collect()
    }

    /// The configured authorities, as clients and nodes pin them.
    pub fn trusted(&self) -> Vec<TrustedAuthority> {
        self.nodes
            .first()
            .map(|n| n.config.authorities.clone())
            .unwrap_or_default()
    }

    /// A fetcher verifying against this network's authorities.
    pub fn fetcher(&self) -> anyhow::Result<Fetcher> {
        Ok(Fetcher::for_authorities(
            &self.trusted(),
            Duration::from_secs(5),
        )?)
    }

    /// Waits until the current epoch's consensus lists every running node
    /// and every running node holds it; returns its topology.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<Topology> {
        let deadline = tokio::time::Instant::now() + timeout;
        let fetcher = self.fetcher()?;
        loop {
            let epoch = self.schedule.epoch_at(now_ms());
            if let Ok(document) = fetcher.fetch(Some(epoch), now_ms()).await {
                let topology = Topology::new(document);
                let running: Vec<&RunningNode> = self
                    .nodes
                    .iter()
                    .filter_map(|n| n.running.as_ref())
                    .collect();
                let all_listed = running.iter().all(|n| topology.node(&n.id()).is_some());
                let all_hold = running
                    .iter()
                    .all(|n| n.consensus_epoch().is_some_and(|e| e >= epoch));
                if all_listed && all_hold {
                    return Ok(topology);
                }
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the network did not become ready in {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops every node and authority.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i).await;
        }
        for i in 0..self.authorities.len() {
            self.stop_authority(i).await;
        }
    }
}
