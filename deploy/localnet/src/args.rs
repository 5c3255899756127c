//! The launcher's command line.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "aegis-localnet",
    version,
    about = "Run a whole AegisLink network with two chatting clients, on loopback or with every host in a network namespace of its own"
)]
pub struct Args {
    /// Directory authorities.
    #[arg(long, default_value_t = 3)]
    pub authorities: usize,
    /// Mix nodes per layer (three layers).
    #[arg(long, default_value_t = 2)]
    pub mixes_per_layer: usize,
    /// Gateways.
    #[arg(long, default_value_t = 2)]
    pub gateways: usize,
    /// Epoch length in milliseconds.
    #[arg(long, default_value_t = 6_000)]
    pub epoch_ms: u64,
    /// Mixing strategy the consensus publishes.
    #[arg(long, value_enum, default_value_t = Mixing::Poisson)]
    pub mixing: Mixing,
    /// Mean per-hop delay 1/μ in milliseconds (Poisson mixing).
    #[arg(long, default_value_t = 50.0)]
    pub mean_delay_ms: f64,
    /// Timed pool: milliseconds between flushes.
    #[arg(long, default_value_t = 200)]
    pub pool_interval_ms: u64,
    /// Timed pool: packets always kept back.
    #[arg(long, default_value_t = 2)]
    pub pool_min: u32,
    /// Timed pool: fraction of the excess sent per flush, in (0, 1].
    #[arg(long, default_value_t = 0.7)]
    pub pool_fraction: f64,
    /// Threshold pool: pool size that triggers a flush.
    #[arg(long, default_value_t = 4)]
    pub pool_threshold: u32,
    /// Client real-or-loop rate λP, packets/s.
    #[arg(long, default_value_t = 10.0)]
    pub lambda_p: f64,
    /// Client loop cover rate λL, packets/s.
    #[arg(long, default_value_t = 2.0)]
    pub lambda_l: f64,
    /// Client drop cover rate λD, packets/s.
    #[arg(long, default_value_t = 2.0)]
    pub lambda_d: f64,
    /// How clients schedule their packets, as the consensus publishes it:
    /// Loopix's Poisson streams, or one packet every 1/(λP+λL+λD) seconds.
    #[arg(long, value_enum, default_value_t = Shaping::Poisson)]
    pub shaping: Shaping,
    /// The packet format the consensus names: Sphinx, or the post-quantum
    /// format with a hybrid KEM (X25519 and ML-KEM-768) at every hop.
    #[arg(long, value_enum, default_value_t = PacketFormat::Sphinx)]
    pub packet_format: PacketFormat,
    /// Node loop cover rate λM, packets/s.
    #[arg(long, default_value_t = 1.0)]
    pub lambda_m: f64,
    /// Seconds between messages (the clients take turns).
    #[arg(long, default_value_t = 1.0)]
    pub message_interval: f64,
    /// Seconds between mailbox pulls.
    #[arg(long, default_value_t = 0.5)]
    pub pull_interval: f64,
    /// Stop after this many seconds (default: run until Ctrl-C; 300 with --until).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Exit 0 as soon as this many messages were delivered exactly once
    /// (non-zero if the duration passes first).
    #[arg(long, value_name = "N-messages")]
    pub until: Option<u64>,
    /// Working directory (kept); by default a temporary one, removed at
    /// exit. A directory an earlier run left is used again: the same keys,
    /// databases and profiles (`network.json` describes the network).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Give every authority, node and client a network namespace of its
    /// own with its own address on a private bridge (10.77.0.0/24), as
    /// separate machines would have. Needs root, `unshare` and `ip`; all
    /// of it vanishes when the launcher exits.
    #[arg(long)]
    pub netns: bool,
    /// Run every authority, node and client in a container of its own with
    /// its own address on a private Docker network (10.78.0.0/24), from
    /// deploy/docker/compose.yml and images built from the programs next
    /// to this one (deploy/docker/build-images.sh). Needs Docker and
    /// Compose; 3 authorities, 2 mixes per layer and 2 gateways. The
    /// containers are removed at exit, their output kept in
    /// logs/containers.log.
    #[arg(long)]
    pub containers: bool,
    /// With --containers and --dir: build the images, write the plan and
    /// the compose environment, print the command that starts the
    /// network, and exit.
    #[arg(long)]
    pub plan_only: bool,
    /// Fault (with --netns or --containers): cut the first client's
    /// gateway off the network this many seconds into the traffic, and
    /// connect it again `--disconnect-for` seconds later.
    #[arg(long, value_name = "SECONDS")]
    pub disconnect_gateway_at: Option<f64>,
    /// How long the --disconnect-gateway-at fault lasts, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 15.0)]
    pub disconnect_for: f64,
    /// Do not build the binaries first (use the ones next to this program).
    #[arg(long)]
    pub no_build: bool,
    /// Fault: stop the first authority this many seconds into the traffic.
    #[arg(long, value_name = "SECONDS")]
    pub stop_authority_at: Option<f64>,
    /// Fault: kill (SIGKILL) the first mix this many seconds into the traffic.
    #[arg(long, value_name = "SECONDS")]
    pub kill_mix_at: Option<f64>,
    /// Fault: restart the first client's gateway this many seconds into
    /// the traffic.
    #[arg(long, value_name = "SECONDS")]
    pub restart_gateway_at: Option<f64>,
    /// Fault: for five seconds from this many seconds into the traffic, a
    /// peer authenticated as the last gateway floods a layer-1 mix with
    /// garbage frames and replays of one packet.
    #[arg(long, value_name = "SECONDS")]
    pub flood_at: Option<f64>,
    /// Fault: this many seconds into the traffic, send one packet to a
    /// layer-1 mix from a link authenticated as the last gateway, kill the
    /// mix with SIGKILL before its replay filter is saved, restart it, and
    /// send the same packet again: the replay must be refused (counted as
    /// a `replay` drop).
    #[arg(long, value_name = "SECONDS")]
    pub replay_after_kill_at: Option<f64>,
    /// Fault: this many seconds into the traffic, upload 500 descriptors
    /// signed by fresh node keys to every authority (which list only the
    /// launcher's own nodes); the refusals are in the report.
    #[arg(long, value_name = "SECONDS")]
    pub descriptor_flood_at: Option<f64>,
    /// Fault: this many seconds into the traffic, the first authority's key
    /// falls into an attacker's hands: the launcher stops that authority
    /// and answers at its address with a signed rogue clock, a rogue
    /// `/status` and forged documents signed by that key alone, then
    /// restarts a mix, which must come back on the honest clock.
    #[arg(long, value_name = "SECONDS")]
    pub rogue_authority_at: Option<f64>,
    /// Fault: this many seconds into the traffic, cut every link between
    /// a layer-2 mix and the layer-1 mixes for 30 s (an n−1 attacker
    /// holding back its honest input); the report says when its loop alarm
    /// was raised.
    /// Runs the whole network in a private network namespace (root,
    /// `unshare`, `ip` and `iptables` needed).
    #[arg(long, value_name = "SECONDS")]
    pub n_minus_one_at: Option<f64>,
    /// Seconds the clients run with cover traffic only before the first
    /// message.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub quiet_for: f64,
    /// Put a wire observer in front of every node and client link and
    /// write what it saw (sizes per link, client emission rates with and
    /// without messages) to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub observe: Option<PathBuf>,
    /// Write the run's final figures (messages, latencies, cover, node
    /// drops by reason) as JSON to this file: what tests and tools read.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// Client shaping (see `ClientShaping` in the directory crate).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Shaping {
    /// Three independent Poisson streams at λP, λL and λD.
    Poisson,
    /// One real-or-loop packet at fixed intervals, at λP + λL + λD.
    ConstantRate,
}

/// Packet formats (see `PacketFormat` in the packet crate).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketFormat {
    /// Sphinx over X25519.
    Sphinx,
    /// One X-Wing hybrid KEM per hop.
    Pq,
}

/// Mixing strategies (see `MixingStrategy` in the directory crate).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Mixing {
    /// Continuous-time mixing with sender-chosen exponential delays.
    Poisson,
    /// A timed dynamic pool.
    TimedPool,
    /// A threshold pool.
    ThresholdPool,
}

impl Args {
    /// Refuses combinations that cannot work.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.containers {
            for (given, flag) in [
                (self.netns, "--netns"),
                (self.observe.is_some(), "--observe"),
                (self.n_minus_one_at.is_some(), "--n-minus-one-at"),
                (self.rogue_authority_at.is_some(), "--rogue-authority-at"),
            ] {
                anyhow::ensure!(!given, "{flag} does not work with --containers");
            }
            anyhow::ensure!(
                (self.authorities, self.mixes_per_layer, self.gateways) == (3, 2, 2),
                "the compose file runs 3 authorities, 2 mixes per layer and 2 gateways"
            );
        }
        anyhow::ensure!(
            !self.plan_only || (self.containers && self.dir.is_some()),
            "--plan-only needs --containers and --dir (where the plan is kept)"
        );
        if self.netns {
            for (given, flag) in [
                (self.observe.is_some(), "--observe"),
                (self.n_minus_one_at.is_some(), "--n-minus-one-at"),
                (self.rogue_authority_at.is_some(), "--rogue-authority-at"),
            ] {
                anyhow::ensure!(
                    !given,
                    "{flag} works on loopback only (its taps and rules use loopback ports); leave out --netns"
                );
            }
        } else if !self.containers {
            anyhow::ensure!(
                self.disconnect_gateway_at.is_none(),
                "--disconnect-gateway-at needs --netns or --containers (hosts with links of their own)"
            );
        }
        Ok(())
    }

    /// The packet geometry the consensus names.
    pub fn geometry(&self) -> aegis_mix_packet::Geometry {
        aegis_mix_packet::Geometry::of_format(match self.packet_format {
            PacketFormat::Sphinx => aegis_mix_packet::PacketFormat::Sphinx,
            PacketFormat::Pq => aegis_mix_packet::PacketFormat::Kem,
        })
    }

    /// The client shaping the consensus publishes.
    pub fn client_shaping(&self) -> aegis_directory::ClientShaping {
        match self.shaping {
            Shaping::Poisson => aegis_directory::ClientShaping::Poisson,
            Shaping::ConstantRate => aegis_directory::ClientShaping::ConstantRate,
        }
    }

    /// The mixing strategy the consensus publishes.
    pub fn mixing_strategy(&self) -> aegis_directory::MixingStrategy {
        use aegis_directory::MixingStrategy;
        match self.mixing {
            Mixing::Poisson => MixingStrategy::Poisson {
                mean_delay_ms: self.mean_delay_ms,
            },
            Mixing::TimedPool => MixingStrategy::TimedPool {
                interval_ms: self.pool_interval_ms,
                min_pool: self.pool_min,
                fraction: self.pool_fraction,
            },
            Mixing::ThresholdPool => MixingStrategy::ThresholdPool {
                threshold: self.pool_threshold,
            },
        }
    }
}
