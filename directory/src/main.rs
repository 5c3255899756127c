//! `aegis-dir`: an AegisLink directory authority.
//!
//! `aegis-dir init --data-dir D` creates the authority key and a documented
//! configuration file; `aegis-dir run --config F` runs the authority.

use std::net::SocketAddr;
use std::path::PathBuf;

use aegis_directory::config::{self, Config, KEY_FILE};
use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "aegis-dir", version, about = "AegisLink directory authority")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum AdmissionArg {
    Allowlist,
    Open,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the authority key and write a configuration file.
    Init {
        /// Directory for the key, the database and the configuration.
        #[arg(long)]
        data_dir: PathBuf,
        /// Name of this authority.
        #[arg(long, default_value = "authority")]
        name: String,
        /// Address of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:7900")]
        listen: SocketAddr,
        /// Epoch length in milliseconds.
        #[arg(long, default_value_t = 20 * 60 * 1000)]
        epoch_length_ms: u64,
        /// Start of epoch 0 (Unix ms); defaults to now. All authorities must
        /// share it.
        #[arg(long)]
        genesis_unix_ms: Option<u64>,
        /// Which nodes to list: `allowlist` (only node keys added under
        /// [admission] nodes; for production) or `open` (anyone, incumbents
        /// first, newcomers up to a quota per round).
        #[arg(long, value_enum, default_value = "allowlist")]
        admission: AdmissionArg,
        /// Another authority of the network as URL=HEXKEY (repeat for each);
        /// it is written under [[peers]], named after its address.
        #[arg(long = "peer", value_name = "URL=HEXKEY")]
        peers: Vec<String>,
        /// Print what was made as one JSON object (`config`, `public_key`,
        /// `url`) instead of sentences, for scripts and tools.
        #[arg(long)]
        json: bool,
    },
    /// Run the authority.
    Run {
        /// The configuration file written by `init`.
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Init {
            data_dir,
            name,
            listen,
            epoch_length_ms,
            genesis_unix_ms,
            admission,
            peers,
            json,
        } => {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let data_dir = data_dir.canonicalize()?;
            let config_path = data_dir.join("aegis-dir.toml");
            if config_path.exists() {
                bail!("{} already exists; not overwriting", config_path.display());
            }
            let key = config::generate_key(&data_dir.join(KEY_FILE))?;
            let genesis = match genesis_unix_ms {
                Some(g) => g,
                None => aegis_directory::api::unix_now_ms(),
            };
            let mut config = Config::new(&name, listen, &data_dir, epoch_length_ms, genesis);
            for peer in &peers {
                let authority = aegis_directory::TrustedAuthority::parse(peer)
                    .with_context(|| format!("--peer {peer}"))?;
                let name = authority
                    .url
                    .split_once("://")
                    .map_or(authority.url.as_str(), |(_, rest)| rest)
                    .trim_end_matches('/')
                    .to_owned();
                config
                    .peers
                    .push(aegis_directory::config::PeerConfig { name, authority });
            }
            config.admission = match admission {
                AdmissionArg::Allowlist => aegis_directory::Admission::Allowlist {
                    nodes: Default::default(),
                },
                AdmissionArg::Open => aegis_directory::Admission::default(),
            };
            config.check()?;
            std::fs::write(&config_path, config.to_documented_toml()?)
                .with_context(|| format!("writing {}", config_path.display()))?;
            let public_key = hex::encode(key.verifying_key().to_bytes());
            if json {
                let made = serde_json::json!({
                    "config": config_path,
                    "public_key": public_key,
                    "url": format!("http://{listen}"),
                });
                println!("{made}");
                return Ok(());
            }
            println!("config:     {}", config_path.display());
            println!("public key: {public_key}");
            if peers.is_empty() {
                println!(
                    "Add the other authorities under [[peers]] (or init with --peer) before `aegis-dir run`."
                );
            }
            if matches!(admission, AdmissionArg::Allowlist) {
                println!(
                    "Admission is an allowlist: add each node's identity key under [admission] nodes."
                );
            }
            Ok(())
        }
        Command::Run { config } => {
            let config =
                Config::load(&config).with_context(|| format!("loading {}", config.display()))?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(aegis_directory::server::run(config))?;
            Ok(())
        }
    }
}
