//! `aegis-node`: an AegisLink mix node or gateway.
//!
//! `aegis-node init --data-dir D --role mix|gateway --authority URL=KEY ...`
//! creates the identity key and a documented configuration file;
//! `aegis-node run --config F` runs the node until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use aegis_directory::Role;
use aegis_directory::TrustedAuthority;
use aegis_mix_packet::PacketFormat;
use aegis_node::config::{KEY_FILE, NodeConfig};
use aegis_node::node::load_or_create_identity;
use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "aegis-node", version, about = "AegisLink mix node and gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Mix,
    Gateway,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the identity key and write a configuration file.
    Init {
        /// Directory for the key, the database and the configuration.
        #[arg(long)]
        data_dir: PathBuf,
        /// Mix node or gateway.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// libp2p listen address.
        #[arg(long, default_value = "/ip4/0.0.0.0/tcp/4100")]
        listen: String,
        /// Address published for others to dial (repeatable); default: listen.
        #[arg(long = "public-address")]
        public_addresses: Vec<String>,
        /// Address of /metrics and /health.
        #[arg(long, default_value = "127.0.0.1:9100")]
        metrics_listen: SocketAddr,
        /// A directory authority as URL=HEXKEY (repeat for each).
        #[arg(long = "authority", required = true)]
        authorities: Vec<String>,
        /// The packet format the network's consensus names: `sphinx`, or
        /// `pq` for the hybrid KEM format (the node then publishes X-Wing
        /// keys).
        #[arg(long, default_value = "sphinx", value_parser = parse_format)]
        packet_format: PacketFormat,
        /// Print what was made as one JSON object (`config`, `identity`)
        /// instead of sentences, for scripts and tools.
        #[arg(long)]
        json: bool,
    },
    /// Run the node.
    Run {
        /// The configuration file written by `init`.
        #[arg(long)]
        config: PathBuf,
    },
    /// Ask the running node how it stands: identity, listed or not and
    /// why, epoch, keys held, links to neighbours (from its /health).
    Status {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Print /health's JSON as it is.
        #[arg(long)]
        json: bool,
    },
}

fn parse_format(name: &str) -> Result<PacketFormat, String> {
    PacketFormat::from_name(name).ok_or_else(|| format!("{name:?}: expected sphinx or pq"))
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
            role,
            listen,
            public_addresses,
            metrics_listen,
            authorities,
            packet_format,
            json,
        } => {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let data_dir = data_dir.canonicalize()?;
            let config_path = data_dir.join("aegis-node.toml");
            if config_path.exists() {
                bail!("{} already exists; not overwriting", config_path.display());
            }
            if data_dir.join(KEY_FILE).exists() {
                bail!("{} already holds an identity key", data_dir.display());
            }
            let authorities = authorities
                .iter()
                .map(|a| TrustedAuthority::parse(a))
                .collect::<Result<Vec<_>, _>>()?;
            let role = match role {
                RoleArg::Mix => Role::Mix,
                RoleArg::Gateway => Role::Gateway,
            };
            let mut config = NodeConfig::new(role, &data_dir, &listen, metrics_listen, authorities);
            config.public_addresses = public_addresses;
            config.packet_format = packet_format;
            config.check()?;
            let key = load_or_create_identity(&config)?;
            std::fs::write(&config_path, config.to_documented_toml()?)
                .with_context(|| format!("writing {}", config_path.display()))?;
            let identity = hex::encode(key.verifying_key().to_bytes());
            if json {
                let made = serde_json::json!({ "config": config_path, "identity": identity });
                println!("{made}");
                return Ok(());
            }
            println!("config:   {}", config_path.display());
            println!("identity: {identity}");
            Ok(())
        }
        Command::Status { config, json } => {
            let config = NodeConfig::load(&config)
                .with_context(|| format!("loading {}", config.display()))?;
            let mut addr = config.metrics_listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let url = format!("http://{addr}{}", aegis_directory::api::HEALTH);
            let runtime = tokio::runtime::Runtime::new()?;
            let health: serde_json::Value = runtime.block_on(async {
                let response = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(5))
                    .build()?
                    .get(&url)
                    .send()
                    .await
                    .with_context(|| {
                        format!("the node does not answer at {url}; is it running?")
                    })?;
                let body = response.bytes().await?;
                anyhow::Ok(serde_json::from_slice(&body).context("/health answered no JSON")?)
            })?;
            if json {
                println!("{health}");
                return Ok(());
            }
            let listed = health["listed"].as_bool().unwrap_or(false);
            println!("identity:  {}", health["identity"].as_str().unwrap_or("?"));
            println!("role:      {}", health["role"].as_str().unwrap_or("?"));
            match (listed, health["not_listed_because"].as_str()) {
                (true, _) => println!("listed:    yes"),
                (false, Some(why)) => println!("listed:    no: {why}"),
                (false, None) => println!("listed:    no"),
            }
            println!("epoch:     {}", health["epoch"]);
            println!("consensus: {}", health["consensus"]);
            println!("keys for:  {}", health["key_epochs"]);
            println!("links:     {}", health["links"]);
            if !listed {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Run { config } => {
            let config = NodeConfig::load(&config)
                .with_context(|| format!("loading {}", config.display()))?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let node = aegis_node::RunningNode::start(config).await?;
                aegis_directory::server::shutdown_signal().await;
                node.shutdown().await;
                anyhow::Ok(())
            })
        }
    }
}
