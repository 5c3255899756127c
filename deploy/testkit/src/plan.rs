//! One description of a whole network: who runs, where each listens, the
//! epoch clock and the consensus parameters. A plan is made once (keys are
//! generated then), written out as the files an operator would have — each
//! authority's `aegis-dir.toml` and key, each node's `aegis-node.toml` and
//! identity key — and described in [`NETWORK_FILE`] for tools and tests.
//!
//! Every runner starts from a plan: the in-process one
//! ([`crate::inprocess::LocalNet`]), and the `aegis-localnet` launcher's
//! process and network-namespace runners. A folder that holds a written
//! plan is a network that can be started again with its keys and data
//! ([`NetworkPlan::load`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use aegis_directory::config::{Config as AuthorityConfig, ParametersConfig, PeerConfig};
use aegis_directory::{Admission, Role, Schedule, TrustedAuthority};
use aegis_mix_packet::Geometry;
use aegis_node::NodeConfig;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::free_port;

/// The file a written plan is described in, in its base folder.
pub const NETWORK_FILE: &str = "network.json";
/// An authority's configuration file, in its data folder.
pub const AUTHORITY_CONFIG: &str = "aegis-dir.toml";
/// A node's configuration file, in its data folder.
pub const NODE_CONFIG: &str = "aegis-node.toml";

/// Where a network's hosts live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hosts {
    /// Every listener on 127.0.0.1, each on a free port of its own.
    Loopback,
    /// Each host its own IPv4 address in `a.b.c.0/24` with the standard
    /// ports: authorities from `.10`, mixes from `.20`, gateways from
    /// `.100`, clients from `.200` ([`Hosts::client_address`]); `.1` is
    /// the host the runner itself reaches them from.
    Subnet([u8; 3]),
}

/// The standard ports of a host with its own address.
pub const AUTHORITY_PORT: u16 = 7900;
/// libp2p's port on a node with its own address.
pub const NODE_PORT: u16 = 4100;
/// `/metrics` and `/health` on a node with its own address.
pub const METRICS_PORT: u16 = 9100;

/// Hosts of each kind a subnet holds at most.
const SUBNET_AUTHORITIES: usize = 10;
const SUBNET_MIXES: usize = 80;
const SUBNET_GATEWAYS: usize = 50;
const SUBNET_CLIENTS: usize = 50;

impl Hosts {
    fn ip(self, first: u8, index: usize, most: usize, kind: &str) -> anyhow::Result<IpAddr> {
        match self {
            Hosts::Loopback => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Hosts::Subnet([a, b, c]) => {
                anyhow::ensure!(index < most, "a subnet holds at most {most} {kind}");
                Ok(IpAddr::V4(Ipv4Addr::new(a, b, c, first + index as u8)))
            }
        }
    }

    fn port(self, standard: u16) -> anyhow::Result<u16> {
        match self {
            Hosts::Loopback => Ok(free_port()?),
            Hosts::Subnet(_) => Ok(standard),
        }
    }

    /// The address of client `index` (loopback, or its own in a subnet).
    pub fn client_address(self, index: usize) -> anyhow::Result<IpAddr> {
        self.ip(200, index, SUBNET_CLIENTS, "clients")
    }
}

/// How many of each, and the epoch length.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Directory authorities.
    pub authorities: usize,
    /// Mix nodes (the consensus places them in the layers).
    pub mixes: usize,
    /// Gateways.
    pub gateways: usize,
    /// Epoch length in milliseconds (at least 1000).
    pub epoch_length_ms: u64,
}

/// Settings of every node that differ from an operator's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTuning {
    /// Crypto workers per node (0: one per core).
    pub workers: Option<usize>,
    /// Packets per second each replay filter is sized for.
    pub line_rate: Option<u64>,
    /// Seconds between replay-filter snapshots.
    pub filter_snapshot_secs: Option<u64>,
}

/// One authority of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorityHost {
    /// Its name (`authority-N`).
    pub name: String,
    /// Where its HTTP API listens.
    pub listen: SocketAddr,
    /// Its data folder: key, database, configuration.
    pub data_dir: PathBuf,
    /// Its public key (hex).
    pub public_key: String,
}

/// One node of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHost {
    /// Its name (`mix-N`, `gateway-N`).
    pub name: String,
    /// Mix or gateway.
    pub role: Role,
    /// Where libp2p listens.
    pub listen: SocketAddr,
    /// Where `/metrics` and `/health` are served.
    pub metrics: SocketAddr,
    /// The address others dial, if not `listen` (a tap in front of it).
    pub public: Option<SocketAddr>,
    /// Its data folder: key, database, configuration.
    pub data_dir: PathBuf,
    /// Its identity (hex).
    pub identity: String,
}

/// A whole network, as written to [`NETWORK_FILE`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPlan {
    /// Where the hosts live.
    pub hosts: Hosts,
    /// The first epoch's start (Unix ms).
    pub genesis_unix_ms: u64,
    /// Epoch length in milliseconds.
    pub epoch_length_ms: u64,
    /// The consensus parameters every authority votes for.
    pub parameters: ParametersConfig,
    /// Whether authorities list only this plan's nodes (as in production)
    /// or admit newcomers within limits.
    pub allowlist: bool,
    /// Node settings that differ from the defaults.
    pub tuning: NodeTuning,
    /// The authorities.
    pub authorities: Vec<AuthorityHost>,
    /// The nodes: mixes first, then gateways.
    pub nodes: Vec<NodeHost>,
}

impl NetworkPlan {
    /// Plans a network under `base` (one folder per host) and generates
    /// every key. Nothing else is written until [`NetworkPlan::write`].
    pub fn create(
        base: &Path,
        shape: Shape,
        hosts: Hosts,
        genesis_unix_ms: u64,
    ) -> anyhow::Result<NetworkPlan> {
        let mut authorities = Vec::new();
        for i in 0..shape.authorities {
            let name = format!("authority-{i}");
            let data_dir = base.join(&name);
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let key = aegis_directory::config::generate_key(
                &data_dir.join(aegis_directory::config::KEY_FILE),
            )?;
            let ip = hosts.ip(10, i, SUBNET_AUTHORITIES, "authorities")?;
            authorities.push(AuthorityHost {
                name,
                listen: SocketAddr::new(ip, hosts.port(AUTHORITY_PORT)?),
                data_dir,
                public_key: hex::encode(key.verifying_key().to_bytes()),
            });
        }
        let mut nodes = Vec::new();
        for i in 0..shape.mixes + shape.gateways {
            let (role, name, ip) = if i < shape.mixes {
                (
                    Role::Mix,
                    format!("mix-{i}"),
                    hosts.ip(20, i, SUBNET_MIXES, "mixes")?,
                )
            } else {
                let g = i - shape.mixes;
                let ip = hosts.ip(100, g, SUBNET_GATEWAYS, "gateways")?;
                (Role::Gateway, format!("gateway-{g}"), ip)
            };
            let data_dir = base.join(&name);
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let key = aegis_directory::config::generate_key(
                &data_dir.join(aegis_node::config::KEY_FILE),
            )?;
            nodes.push(NodeHost {
                name,
                role,
                listen: SocketAddr::new(ip, hosts.port(NODE_PORT)?),
                metrics: SocketAddr::new(ip, hosts.port(METRICS_PORT)?),
                public: None,
                data_dir,
                identity: hex::encode(key.verifying_key().to_bytes()),
            });
        }
        Ok(NetworkPlan {
            hosts,
            genesis_unix_ms,
            epoch_length_ms: shape.epoch_length_ms,
            parameters: ParametersConfig::standard(),
            allowlist: false,
            tuning: NodeTuning::default(),
            authorities,
            nodes,
        })
    }

    /// The plan written under `base` earlier, if there is one.
    pub fn load(base: &Path) -> anyhow::Result<Option<NetworkPlan>> {
        let path = base.join(NETWORK_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let plan =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Some(plan))
    }

    /// The epoch clock.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            genesis_ms: self.genesis_unix_ms,
            epoch_length_ms: self.epoch_length_ms,
        }
    }

    /// The packet geometry (and so the packet format) the plan's consensus
    /// names.
    pub fn geometry(&self) -> anyhow::Result<Geometry> {
        let hash = match &self.parameters.geometry_hash {
            Some(hash) => aegis_directory::parse_key(hash)?,
            None => Geometry::STANDARD.hash(),
        };
        Geometry::by_hash(&hash)
            .context("the plan names a packet geometry this build does not know")
    }

    /// Makes the consensus name `geometry` (the standard one is the
    /// authorities' default, left unwritten).
    pub fn set_geometry(&mut self, geometry: &Geometry) {
        self.parameters.geometry_hash =
            (*geometry != Geometry::STANDARD).then(|| hex::encode(geometry.hash()));
    }

    /// The authorities as nodes and clients pin them.
    pub fn trusted(&self) -> anyhow::Result<Vec<TrustedAuthority>> {
        self.authorities
            .iter()
            .map(|a| {
                Ok(TrustedAuthority {
                    url: format!("http://{}", a.listen),
                    public_key: aegis_directory::parse_key(&a.public_key)?,
                })
            })
            .collect()
    }

    /// `--authority URL=KEY` arguments for every authority, as the
    /// programs' `init` commands take them.
    pub fn authority_flags(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .trusted()?
            .iter()
            .flat_map(|a| ["--authority".to_owned(), a.to_string()])
            .collect())
    }

    /// Authority `i`'s configuration: its peers are the plan's other
    /// authorities; with [`NetworkPlan::allowlist`] it lists only the
    /// plan's nodes.
    pub fn authority_config(&self, i: usize) -> anyhow::Result<AuthorityConfig> {
        let host = &self.authorities[i];
        let mut config = AuthorityConfig::new(
            &host.name,
            host.listen,
            &host.data_dir,
            self.epoch_length_ms,
            self.genesis_unix_ms,
        );
        config.parameters = self.parameters.clone();
        config.peers = self
            .authorities
            .iter()
            .zip(self.trusted()?)
            .filter(|(other, _)| other.name != host.name)
            .map(|(other, authority)| PeerConfig {
                name: other.name.clone(),
                authority,
            })
            .collect();
        if self.allowlist {
            config.admission = Admission::Allowlist {
                nodes: self
                    .nodes
                    .iter()
                    .map(|n| aegis_directory::parse_key(&n.identity))
                    .collect::<Result<_, _>>()?,
            };
        }
        config.check()?;
        Ok(config)
    }

    /// Node `i`'s configuration.
    pub fn node_config(&self, i: usize) -> anyhow::Result<NodeConfig> {
        let host = &self.nodes[i];
        let multiaddr = |a: SocketAddr| format!("/ip4/{}/tcp/{}", a.ip(), a.port());
        let mut config = NodeConfig::new(
            host.role,
            &host.data_dir,
            &multiaddr(host.listen),
            host.metrics,
            self.trusted()?,
        );
        config.public_addresses = host.public.map(multiaddr).into_iter().collect();
        config.packet_format = self.geometry()?.format;
        if let Some(workers) = self.tuning.workers {
            config.workers = workers;
        }
        if let Some(rate) = self.tuning.line_rate {
            config.line_rate = rate;
        }
        if let Some(secs) = self.tuning.filter_snapshot_secs {
            config.filter_snapshot_secs = secs;
        }
        config.check()?;
        Ok(config)
    }

    /// Where authority `i`'s configuration file is written.
    pub fn authority_config_path(&self, i: usize) -> PathBuf {
        self.authorities[i].data_dir.join(AUTHORITY_CONFIG)
    }

    /// Where node `i`'s configuration file is written.
    pub fn node_config_path(&self, i: usize) -> PathBuf {
        self.nodes[i].data_dir.join(NODE_CONFIG)
    }

    /// Writes every configuration file, then [`NETWORK_FILE`] under `base`.
    pub fn write(&self, base: &Path) -> anyhow::Result<()> {
        for i in 0..self.authorities.len() {
            let path = self.authority_config_path(i);
            std::fs::write(&path, self.authority_config(i)?.to_documented_toml()?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        for i in 0..self.nodes.len() {
            let path = self.node_config_path(i);
            std::fs::write(&path, self.node_config(i)?.to_documented_toml()?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let path = base.join(NETWORK_FILE);
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The index of the node named `name`.
    pub fn node_named(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The index of the node whose identity is `identity` (hex).
    pub fn node_with_identity(&self, identity: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.identity == identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            authorities: 3,
            mixes: 6,
            gateways: 2,
            epoch_length_ms: 6_000,
        }
    }

    #[test]
    fn a_written_plan_reads_back_and_its_files_are_what_the_programs_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = NetworkPlan::create(dir.path(), shape(), Hosts::Loopback, 1_000).unwrap();
        plan.allowlist = true;
        plan.tuning.workers = Some(1);
        plan.write(dir.path()).unwrap();
        assert_eq!(NetworkPlan::load(dir.path()).unwrap(), Some(plan.clone()));

        let loaded = AuthorityConfig::load(&plan.authority_config_path(1)).unwrap();
        assert_eq!(loaded, plan.authority_config(1).unwrap());
        assert_eq!(loaded.peers.len(), 2, "every other authority is a peer");
        assert!(loaded.peers.iter().all(|p| p.name != "authority-1"));
        let Admission::Allowlist { nodes } = &loaded.admission else {
            panic!("an allowlist was planned");
        };
        assert_eq!(nodes.len(), 8);

        let node = NodeConfig::load(&plan.node_config_path(7)).unwrap();
        assert_eq!(node.role, Role::Gateway);
        assert_eq!(node.workers, 1);
        assert_eq!(node.authorities, plan.trusted().unwrap());
        // The key the plan generated is the one the node will run with.
        let key = aegis_node::node::load_or_create_identity(&node).unwrap();
        assert_eq!(
            hex::encode(key.verifying_key().to_bytes()),
            plan.nodes[7].identity
        );
    }

    #[test]
    fn loopback_hosts_get_ports_of_their_own_and_a_subnet_its_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let plan = NetworkPlan::create(dir.path(), shape(), Hosts::Loopback, 1_000).unwrap();
        let mut ports: Vec<u16> = plan.authorities.iter().map(|a| a.listen.port()).collect();
        for n in &plan.nodes {
            ports.extend([n.listen.port(), n.metrics.port()]);
        }
        let count = ports.len();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), count, "no port handed out twice");

        let dir = tempfile::tempdir().unwrap();
        let hosts = Hosts::Subnet([10, 77, 0]);
        let plan = NetworkPlan::create(dir.path(), shape(), hosts, 1_000).unwrap();
        let ips: Vec<String> = plan
            .authorities
            .iter()
            .map(|a| a.listen.to_string())
            .chain(plan.nodes.iter().map(|n| n.listen.to_string()))
            .collect();
        assert_eq!(
            ips,
            [
                "10.77.0.10:7900",
                "10.77.0.11:7900",
                "10.77.0.12:7900",
                "10.77.0.20:4100",
                "10.77.0.21:4100",
                "10.77.0.22:4100",
                "10.77.0.23:4100",
                "10.77.0.24:4100",
                "10.77.0.25:4100",
                "10.77.0.100:4100",
                "10.77.0.101:4100",
            ]
        );
        assert_eq!(hosts.client_address(1).unwrap().to_string(), "10.77.0.201");
        let too_many = Shape {
            authorities: 11,
            ..shape()
        };
        assert!(NetworkPlan::create(dir.path(), too_many, hosts, 1_000).is_err());
    }
}
