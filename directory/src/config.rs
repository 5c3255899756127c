//! The authority's configuration file and key file.

use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::admission::Admission;
use crate::consensus::{ClientShaping, MixingStrategy, NetworkParameters, ParameterError};
use crate::schedule::Schedule;
use crate::trust::TrustedAuthority;

/// Why the configuration or key could not be used.
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
    #[error("config syntax: {0}")]
    Syntax(#[from] toml::de::Error),
    /// A value is invalid.
    #[error("config value: {0}")]
    Invalid(String),
    /// Parameters are out of range.
    #[error(transparent)]
    Parameters(#[from] ParameterError),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Another authority this one talks to: a name for logs beside the one
/// description of a trusted authority (`url`, `public_key` in hex).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PeerEntry", into = "PeerEntry")]
pub struct PeerConfig {
    /// A name for logs.
    pub name: String,
    /// Where it is and the key it signs with.
    pub authority: TrustedAuthority,
}

/// A `[[peers]]` entry as the file holds it: every key known, so a
/// misspelt one is an error rather than silently dropped (serde cannot
/// refuse unknown keys next to a flattened field).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerEntry {
    name: String,
    public_key: String,
    url: String,
}

impl TryFrom<PeerEntry> for PeerConfig {
    type Error = ConfigError;

    fn try_from(entry: PeerEntry) -> Result<Self, ConfigError> {
        Ok(PeerConfig {
            authority: TrustedAuthority {
                url: entry.url,
                public_key: parse_key(&entry.public_key)?,
            },
            name: entry.name,
        })
    }
}

impl From<PeerConfig> for PeerEntry {
    fn from(peer: PeerConfig) -> Self {
        PeerEntry {
            name: peer.name,
            public_key: hex::encode(peer.authority.public_key),
            url: peer.authority.url,
        }
    }
}

/// The network parameters as written in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParametersConfig {
    /// Mixing strategy and its parameters.
    pub mixing: MixingStrategy,
    /// Client real-or-loop rate λP, packets/s.
    pub lambda_p: f64,
    /// Client loop cover rate λL, packets/s.
    pub lambda_l: f64,
    /// Client drop cover rate λD, packets/s.
    pub lambda_d: f64,
    /// Node loop cover rate λM, packets/s.
    pub lambda_m: f64,
    /// Packet geometry hash in hex; the standard geometry if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry_hash: Option<String>,
    /// How clients schedule their packets (Poisson if absent).
    #[serde(default)]
    pub shaping: ClientShaping,
}

/// The whole configuration file. A key it does not know is an error, not
/// silently ignored: a misspelt `[[peer]]` would otherwise leave an
/// authority without peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This authority's name, for logs and status.
    pub name: String,
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Base URL clients and peers reach the API at, when it is not
    /// `http://{listen}` (behind a proxy, or listening on 0.0.0.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Directory holding the key file and the database.
    pub data_dir: PathBuf,
    /// Epoch length in milliseconds (20 minutes in production).
    pub epoch_length_ms: u64,
    /// Unix time in milliseconds at which epoch 0 began; identical on all
    /// authorities.
    pub genesis_unix_ms: u64,
    /// Dial a node's published addresses before taking its first
    /// descriptor, and refuse it (saying why) if none answers. Leave it on;
    /// only tests of an authority without real nodes turn it off.
    #[serde(default = "dial_back_default")]
    pub dial_back: bool,
    /// Network parameters this authority votes for.
    pub parameters: ParametersConfig,
    /// Which nodes this authority lists: `mode = "allowlist"` with
    /// `nodes = [hex keys]`, or `mode = "open"` with limits.
    #[serde(default)]
    pub admission: Admission,
    /// The other authorities.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
}

fn dial_back_default() -> bool {
    true
}

/// Name of the key file inside the data directory.
pub const KEY_FILE: &str = "authority.key";
/// Name of the database directory inside the data directory.
pub const DB_DIR: &str = "db";

/// Parses a 32-byte key from hex.
pub fn parse_key(hex_key: &str) -> Result<[u8; 32], ConfigError> {
    crate::parse_key(hex_key).map_err(|e| ConfigError::Invalid(e.to_string()))
}

impl ParametersConfig {
    /// Loopix-like defaults.
    pub fn standard() -> Self {
        let p = NetworkParameters::standard(0);
        ParametersConfig {
            mixing: p.mixing,
            lambda_p: p.lambda_p,
            lambda_l: p.lambda_l,
            lambda_d: p.lambda_d,
            lambda_m: p.lambda_m,
            geometry_hash: None,
            shaping: p.shaping,
        }
    }
}

impl Config {
    /// A configuration with defaults for a data directory.
    pub fn new(
        name: &str,
        listen: SocketAddr,
        data_dir: &Path,
        epoch_length_ms: u64,
        genesis_unix_ms: u64,
    ) -> Self {
        Config {
            name: name.to_owned(),
            listen,
            public_url: None,
            data_dir: data_dir.to_owned(),
            epoch_length_ms,
            genesis_unix_ms,
            dial_back: true,
            parameters: ParametersConfig::standard(),
            admission: Admission::default(),
            peers: Vec::new(),
        }
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = fs::read_to_string(path).map_err(io_error(path))?;
        let config: Config = toml::from_str(&text)?;
        config.check()?;
        Ok(config)
    }

    /// Checks values that TOML's types do not.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.network_parameters()?.validate()?;
        crate::check_epoch_length(self.epoch_length_ms)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for peer in &self.peers {
            peer.authority
                .check()
                .map_err(|e| ConfigError::Invalid(format!("peer {}: {e}", peer.name)))?;
        }
        // Any key will do: the list's shape does not depend on it.
        TrustedAuthority::check_list(&self.directory([0; 32]))
            .map_err(|e| ConfigError::Invalid(format!("public_url and peers: {e}")))
    }

    /// The epoch clock.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            genesis_ms: self.genesis_unix_ms,
            epoch_length_ms: self.epoch_length_ms,
        }
    }

    /// The parameters this authority votes for.
    pub fn network_parameters(&self) -> Result<NetworkParameters, ConfigError> {
        let p = &self.parameters;
        let geometry_hash = match &p.geometry_hash {
            Some(h) => parse_key(h)?,
            None => aegis_mix_packet::Geometry::STANDARD.hash(),
        };
        Ok(NetworkParameters {
            mixing: p.mixing,
            lambda_p: p.lambda_p,
            lambda_l: p.lambda_l,
            lambda_d: p.lambda_d,
            lambda_m: p.lambda_m,
            geometry_hash,
            epoch_length_ms: self.epoch_length_ms,
            shaping: p.shaping,
        })
    }

    /// The URL this authority names for itself.
    pub fn own_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The authorities this one names in its votes: itself (at
    /// [`Config::own_url`], with `own_key`) and every peer.
    pub fn directory(&self, own_key: [u8; 32]) -> Vec<TrustedAuthority> {
        let me = TrustedAuthority {
            url: self.own_url(),
            public_key: own_key,
        };
        TrustedAuthority::canonical_list(
            std::iter::once(me).chain(self.peers.iter().map(|p| p.authority.clone())),
        )
    }

    /// Peer public keys.
    pub fn peer_keys(&self) -> Vec<[u8; 32]> {
        self.peers.iter().map(|p| p.authority.public_key).collect()
    }

    /// The file text, with a comment on every setting.
    pub fn to_documented_toml(&self) -> Result<String, ConfigError> {
        let body = toml::to_string(self).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(format!("{CONFIG_HEADER}\n{body}"))
    }
}

const CONFIG_HEADER: &str = "\
# aegis-dir authority configuration (see docs/directory.md).
#
# name             this authority's name, for logs and the status page
# listen           address of the HTTP API (descriptor uploads, documents,
#                  authority-to-authority votes and signatures, /status, /metrics)
# public_url       optional; the base URL others reach the API at, when not
#                  http://<listen>. Votes name it, and documents carry the URLs
#                  a threshold of authorities agrees on, so clients follow it
# data_dir         holds authority.key (Ed25519 secret, mode 0600) and db/ (RocksDB)
# epoch_length_ms  epoch length P; every authority must use the same value
# genesis_unix_ms  start of epoch 0 in Unix milliseconds; identical everywhere
# dial_back        dial a new node's published addresses before listing it and
#                  refuse its descriptor (saying why) if none answers
#
# [parameters]     what this authority votes for; only values shared by a
#                  threshold of authorities enter the document
#   mixing         { Poisson = { mean_delay_ms } }
#                  or { TimedPool = { interval_ms, min_pool, fraction } }
#                  or { ThresholdPool = { threshold } }
#   lambda_p/l/d   client real-or-loop, loop and drop cover rates (packets/s)
#   lambda_m       node loop cover rate (packets/s)
#   geometry_hash  optional hex; defaults to the standard packet geometry
#   shaping        \"poisson\" (Loopix's three random streams, the default)
#                  or \"constant_rate\" (one packet every 1/(λP+λL+λD) s)
#
# [admission]      which nodes this authority lists:
#   mode = \"allowlist\", nodes = [\"<node identity, 64 hex digits>\", ...]
#                  only those nodes (what a production network runs), or
#   mode = \"open\", newcomers_per_round, mixes_per_layer, gateways
#                  anyone; nodes listed in the previous document always keep
#                  their place, newcomers only up to the quota per round
#
# [[peers]]        one block per other authority:
#   name, public_key (64 hex digits, printed by `aegis-dir init`),
#   url (base URL of its HTTP API)
";

/// Loads the authority key from `path`.
pub fn load_key(path: &Path) -> Result<SigningKey, ConfigError> {
    let bytes = Zeroizing::new(fs::read(path).map_err(io_error(path))?);
    let seed: Zeroizing<[u8; 32]> =
        Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
            ConfigError::Invalid(format!("{} is not a 32-byte key", path.display()))
        })?);
    Ok(SigningKey::from_bytes(&seed))
}

/// Generates a new authority key at `path`, readable by the owner only.
/// Refuses to overwrite an existing key.
pub fn generate_key(path: &Path) -> Result<SigningKey, ConfigError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(seed.as_mut());
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(seed.as_ref()).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn documented_config_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(
            "a1",
            "127.0.0.1:7900".parse().unwrap(),
            dir.path(),
            60_000,
            1_700_000_000_000,
        );
        config.peers.push(PeerConfig {
            name: "a2".into(),
            authority: TrustedAuthority {
                url: "http://127.0.0.1:7901".into(),
                public_key: [0x11; 32],
            },
        });
        config.parameters.mixing = MixingStrategy::TimedPool {
            interval_ms: 100,
            min_pool: 5,
            fraction: 0.5,
        };
        let path = dir.path().join("c.toml");
        fs::write(&path, config.to_documented_toml().unwrap()).unwrap();
        assert_eq!(Config::load(&path).unwrap(), config);
    }

    #[test]
    fn a_misspelt_key_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(
            "a1",
            "127.0.0.1:7900".parse().unwrap(),
            dir.path(),
            60_000,
            1_700_000_000_000,
        );
        let good = config.to_documented_toml().unwrap();
        let path = dir.path().join("c.toml");
        for (typo, word) in [
            // `[[peer]]` for `[[peers]]`: the authority would run alone.
            (
                "\n[[peer]]\nname = \"a2\"\nurl = \"http://127.0.0.1:7901\"\npublic_key = \"11\"\n",
                "peer",
            ),
            ("\nepoch_lenght_ms = 5\n", "epoch_lenght_ms"),
        ] {
            // Top-level keys go before the first table.
            let text = if word == "peer" {
                format!("{good}{typo}")
            } else {
                format!("{}{good}", typo.trim_start())
            };
            fs::write(&path, text).unwrap();
            let error = Config::load(&path).unwrap_err().to_string();
            assert!(error.contains(word), "{error}");
        }
        // An unknown key inside a [[peers]] entry.
        let peer = "\n[[peers]]\nname = \"a2\"\nurl = \"http://127.0.0.1:7901\"\npubkey = \"11\"\n";
        fs::write(&path, good.replace("peers = []\n", "") + peer).unwrap();
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(error.contains("pubkey"), "{error}");
        let text = good.replace("lambda_p", "lambda_q");
        fs::write(&path, text).unwrap();
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(error.contains("lambda_q"), "{error}");
    }

    #[test]
    fn key_file_is_private_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let key = generate_key(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_key(&path).unwrap().to_bytes(), key.to_bytes());
        assert!(generate_key(&path).is_err());
    }
}
