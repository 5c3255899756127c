//! The node's configuration file (TOML), written documented by
//! `aegis-node init`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aegis_directory::{Role, TrustedAuthority};
use aegis_mix_packet::PacketFormat;
use serde::{Deserialize, Serialize};

/// Name of the identity key file inside the data directory.
pub const KEY_FILE: &str = "identity.key";
/// Name of the database directory inside the data directory.
pub const DB_DIR: &str = "db";

/// Inbound connections kept for other nodes (a network lists at most 3,000
/// mixes and 1,000 gateways under open admission; allowlists are smaller).
pub const MAX_NODE_CONNECTIONS: usize = 8_192;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The TOML does not parse into a configuration.
    #[error("configuration: {0}")]
    Parse(String),
    /// A value is invalid.
    #[error("configuration value {0}")]
    Invalid(String),
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Mix or gateway.
    pub role: Role,
    /// Directory with the identity key and the database.
    pub data_dir: PathBuf,
    /// libp2p address the node listens on, e.g. `/ip4/0.0.0.0/tcp/4100`.
    pub listen: String,
    /// Addresses published in the descriptor (what others dial); the listen
    /// address if empty.
    #[serde(default)]
    pub public_addresses: Vec<String>,
    /// Address of the `/metrics` and `/health` HTTP endpoint.
    pub metrics_listen: SocketAddr,
    /// The directory authorities, all of them (threshold ⌊n/2⌋+1).
    pub authorities: Vec<TrustedAuthority>,
    /// The packet format the network runs (`"sphinx"` or `"pq"`): the
    /// geometry the consensus names must be this format's, and for `"pq"`
    /// the node generates and publishes an X-Wing key per epoch.
    #[serde(default)]
    pub packet_format: PacketFormat,
    /// Crypto worker threads; 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    /// Frames waiting for a crypto worker before new ones are dropped.
    #[serde(default = "default_ingress_queue")]
    pub ingress_queue: usize,
    /// Frames waiting per neighbour before new ones are dropped.
    #[serde(default = "default_egress_queue")]
    pub egress_queue: usize,
    /// Packets the mixing strategy may hold before new ones are dropped.
    #[serde(default = "default_mix_capacity")]
    pub mix_capacity: usize,
    /// Packets per second the replay filter is sized for (line rate).
    #[serde(default = "default_line_rate")]
    pub line_rate: u64,
    /// MiB all replay filters together may take, whatever the epoch length
    /// (the node holds one filter for each of six epochs).
    #[serde(default = "default_replay_filter_max_mb")]
    pub replay_filter_max_mb: u64,
    /// Seconds between replay-filter snapshots to disk.
    #[serde(default = "default_filter_snapshot_secs")]
    pub filter_snapshot_secs: u64,
    /// Gateway: hours an undelivered packet is kept.
    #[serde(default = "default_retention_hours")]
    pub mailbox_retention_hours: f64,
    /// Gateway: packets one mailbox may hold.
    #[serde(default = "default_mailbox_limit")]
    pub mailbox_limit: u32,
    /// Gateway: mailboxes that may hold packets at once.
    #[serde(default = "default_max_mailboxes")]
    pub max_mailboxes: usize,
    /// Gateway: clients attached at once.
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
    /// Gateway: a client may send this many times the published client
    /// rate λP + λL + λD (bursts up to 10 s of that rate).
    #[serde(default = "default_rate_slack")]
    pub client_rate_slack: f64,
    /// Inbound connections one source address may hold at once (open or
    /// in handshake); more are refused before their handshake.
    #[serde(default = "default_max_connections_per_source")]
    pub max_connections_per_source: usize,
}

fn default_ingress_queue() -> usize {
    8_192
}
fn default_egress_queue() -> usize {
    1_024
}
fn default_mix_capacity() -> usize {
    100_000
}
fn default_line_rate() -> u64 {
    2_000
}
fn default_replay_filter_max_mb() -> u64 {
    512
}
fn default_filter_snapshot_secs() -> u64 {
    60
}
fn default_retention_hours() -> f64 {
    72.0
}
fn default_mailbox_limit() -> u32 {
    10_000
}
fn default_max_mailboxes() -> usize {
    1_000_000
}
fn default_max_clients() -> usize {
    10_000
}
fn default_rate_slack() -> f64 {
    2.0
}
fn default_max_connections_per_source() -> usize {
    32
}

impl NodeConfig {
    /// A configuration with defaults.
    pub fn new(
        role: Role,
        data_dir: &Path,
        listen: &str,
        metrics_listen: SocketAddr,
        authorities: Vec<TrustedAuthority>,
    ) -> Self {
        NodeConfig {
            role,
            data_dir: data_dir.to_path_buf(),
            listen: listen.to_owned(),
            public_addresses: Vec::new(),
            metrics_listen,
            authorities,
            packet_format: PacketFormat::Sphinx,
            workers: 0,
            ingress_queue: default_ingress_queue(),
            egress_queue: default_egress_queue(),
            mix_capacity: default_mix_capacity(),
            line_rate: default_line_rate(),
            replay_filter_max_mb: default_replay_filter_max_mb(),
            filter_snapshot_secs: default_filter_snapshot_secs(),
            mailbox_retention_hours: default_retention_hours(),
            mailbox_limit: default_mailbox_limit(),
            max_mailboxes: default_max_mailboxes(),
            max_clients: default_max_clients(),
            client_rate_slack: default_rate_slack(),
            max_connections_per_source: default_max_connections_per_source(),
        }
    }

    /// The inbound connection caps: `max_connections_per_source` per
    /// address, and in all room for every client slot (gateways) and
    /// neighbour, and no more.
    pub fn connection_limits(&self) -> aegis_link::ConnectionLimits {
        aegis_link::ConnectionLimits {
            per_source: self.max_connections_per_source.max(1),
            total: match self.role {
                Role::Gateway => self.max_clients.saturating_add(MAX_NODE_CONNECTIONS),
                Role::Mix => MAX_NODE_CONNECTIONS,
            },
        }
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config: NodeConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Checks what TOML's types do not.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |what: &str| Err(ConfigError::Invalid(what.to_owned()));
        if self.listen.parse::<aegis_link::Multiaddr>().is_err() {
            return invalid("listen: not a multiaddress");
        }
        if self
            .public_addresses
            .iter()
            .any(|a| a.parse::<aegis_link::Multiaddr>().is_err())
        {
            return invalid("public_addresses: not a multiaddress");
        }
        if self.authorities.is_empty() {
            return invalid("authorities: at least one is needed");
        }
        for a in &self.authorities {
            a.check().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        self.check_reachable()?;
        if self.ingress_queue == 0 || self.egress_queue == 0 || self.mix_capacity == 0 {
            return invalid("queue sizes must be positive");
        }
        if self.line_rate == 0 || self.filter_snapshot_secs == 0 || self.replay_filter_max_mb == 0 {
            return invalid(
                "line_rate, filter_snapshot_secs and replay_filter_max_mb must be positive",
            );
        }
        if !(self.mailbox_retention_hours.is_finite() && self.mailbox_retention_hours > 0.0) {
            return invalid("mailbox_retention_hours must be positive");
        }
        if !(self.client_rate_slack.is_finite() && self.client_rate_slack >= 1.0) {
            return invalid("client_rate_slack must be at least 1");
        }
        Ok(())
    }

    /// Refuses to publish an address other nodes cannot dial: one that is
    /// not TCP over IP (this build dials nothing else, DNS names included),
    /// the unspecified address (`0.0.0.0`: every interface of this
    /// machine, which is where `listen` points by default), or a loopback
    /// address while an authority is elsewhere (loopback is for a network
    /// on one machine).
    fn check_reachable(&self) -> Result<(), ConfigError> {
        let test_network = self.authorities.iter().all(|a| url_is_loopback(&a.url));
        for address in self.published_addresses() {
            let Some(socket) = aegis_directory::tcp_address(&address) else {
                return Err(ConfigError::Invalid(format!(
                    "{address} cannot be published: nodes dial /ip4/A/tcp/P or /ip6/A/tcp/P addresses only (no DNS names)"
                )));
            };
            if socket.ip().is_unspecified() {
                return Err(ConfigError::Invalid(format!(
                    "{address} would be published, and no one can dial it: set public_addresses \
                     to the address others reach this machine at \
                     (aegis-node init --public-address /ip4/A/tcp/{})",
                    socket.port()
                )));
            }
            if socket.ip().is_loopback() && !test_network {
                return Err(ConfigError::Invalid(format!(
                    "{address} is a loopback address, which only this machine can dial, \
                     while the authorities are elsewhere: publish the machine's own address"
                )));
            }
        }
        Ok(())
    }

    /// The addresses to publish.
    pub fn published_addresses(&self) -> Vec<String> {
        if self.public_addresses.is_empty() {
            vec![self.listen.clone()]
        } else {
            self.public_addresses.clone()
        }
    }

    /// The file text, with a comment on every setting.
    pub fn to_documented_toml(&self) -> Result<String, ConfigError> {
        let body = toml::to_string(self).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let mut out = String::from(
            "# aegis-node configuration. Every setting is described in\n\
             # docs/operator-guide.md (\"Configuration reference\").\n\n",
        );
        for line in body.lines() {
            let key = line.split('=').next().unwrap_or("").trim();
            if let Some(help) = help_for(key) {
                out.push_str("# ");
                out.push_str(help);
                out.push('\n');
            }
            out.push_str(line);
            out.push('\n');
        }
        Ok(out)
    }
}

fn help_for(key: &str) -> Option<&'static str> {
    Some(match key {
        "role" => "\"Mix\" or \"Gateway\"; the consensus places mixes in a layer.",
        "data_dir" => {
            "Identity key and database. Back up identity.key; never copy it to a second node."
        }
        "listen" => "libp2p listen address for links and clients.",
        "packet_format" => {
            "\"sphinx\" or \"pq\" (hybrid KEM per hop): the format of the consensus's geometry."
        }
        "public_addresses" => {
            "Addresses others dial, published in the descriptor (default: listen)."
        }
        "metrics_listen" => "HTTP address of /metrics and /health. Keep it private.",
        "workers" => "Crypto worker threads; 0 = one per core.",
        "ingress_queue" => "Frames waiting for a worker before drops (ingress_full).",
        "egress_queue" => "Frames waiting per neighbour before drops (egress_full).",
        "mix_capacity" => "Packets held for mixing before drops (mix_full).",
        "line_rate" => "Packets/s the replay filter of one epoch is sized for.",
        "replay_filter_max_mb" => {
            "MiB all replay filters together may take, whatever the epoch length."
        }
        "filter_snapshot_secs" => "Seconds between replay-filter snapshots to disk.",
        "mailbox_retention_hours" => "Gateway: hours an unacknowledged packet is kept.",
        "mailbox_limit" => "Gateway: packets one mailbox may hold (then mailbox_full).",
        "max_mailboxes" => "Gateway: mailboxes holding packets at once (then mailboxes_full).",
        "max_clients" => "Gateway: clients attached at once.",
        "client_rate_slack" => "Gateway: multiple of the published client rate a client may send.",
        "max_connections_per_source" => {
            "Inbound connections one address may hold; more are refused before their handshake."
        }
        "[[authorities]]" => "A directory authority: base URL and pinned Ed25519 key (hex).",
        _ => return None,
    })
}

/// Whether an authority URL names this machine (`localhost` or a loopback
/// address): a network whose authorities all do is a test network.
fn url_is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(listen: &str, public: &[&str], authority: &str) -> NodeConfig {
        let mut config = NodeConfig::new(
            Role::Mix,
            Path::new("/var/lib/aegis-node"),
            listen,
            "127.0.0.1:9100".parse().unwrap(),
            vec![TrustedAuthority {
                url: authority.into(),
                public_key: [7; 32],
            }],
        );
        config.public_addresses = public.iter().map(|a| (*a).to_owned()).collect();
        config
    }

    #[test]
    fn only_addresses_others_can_dial_are_published() {
        let remote = "http://198.51.100.10:7900";
        // The trap: init's default listen address, nothing published.
        let error = with("/ip4/0.0.0.0/tcp/4100", &[], remote)
            .check()
            .unwrap_err()
            .to_string();
        assert!(error.contains("no one can dial it"), "{error}");
        assert!(
            error.contains("--public-address /ip4/A/tcp/4100"),
            "{error}"
        );
        // Listening everywhere is fine once a real address is published.
        with(
            "/ip4/0.0.0.0/tcp/4100",
            &["/ip4/203.0.113.20/tcp/4100"],
            remote,
        )
        .check()
        .unwrap();
        with("/ip6/::/tcp/4100", &["/ip6/2001:db8::20/tcp/4100"], remote)
            .check()
            .unwrap();
        // DNS names: this build cannot dial them.
        let error = with(
            "/ip4/0.0.0.0/tcp/4100",
            &["/dns4/mix.example/tcp/4100"],
            remote,
        )
        .check()
        .unwrap_err()
        .to_string();
        assert!(error.contains("no DNS names"), "{error}");
        // Loopback: only in a network on one machine.
        let error = with("/ip4/127.0.0.1/tcp/4100", &[], remote)
            .check()
            .unwrap_err()
            .to_string();
        assert!(error.contains("loopback"), "{error}");
        for local in [
            "http://127.0.0.1:7900",
            "http://localhost:7900",
            "http://[::1]:7900",
        ] {
            with("/ip4/127.0.0.1/tcp/4100", &[], local).check().unwrap();
        }
    }

    #[test]
    fn documented_file_round_trips() {
        let config = NodeConfig::new(
            Role::Gateway,
            Path::new("/var/lib/aegis-node"),
            "/ip4/127.0.0.1/tcp/4100",
            "127.0.0.1:9100".parse().unwrap(),
            vec![TrustedAuthority {
                url: "http://127.0.0.1:7900".into(),
                public_key: [0x11; 32],
            }],
        );
        let text = config.to_documented_toml().unwrap();
        assert!(text.contains("# \"Mix\" or \"Gateway\""));
        let back: NodeConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
        back.check().unwrap();
        let mut bad = config.clone();
        bad.listen = "127.0.0.1:4100".into();
        assert!(bad.check().is_err());
        let mut bad = config;
        bad.authorities[0].url = "127.0.0.1:7900".into();
        assert!(bad.check().is_err());
        let text = text.replace(&"11".repeat(32), "zz");
        assert!(toml::from_str::<NodeConfig>(&text).is_err());
    }
}
