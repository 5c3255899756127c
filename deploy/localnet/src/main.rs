//! `aegis-localnet`: a whole AegisLink network on loopback.
//!
//! Starts directory authorities (`aegis-dir`), mix nodes and gateways
//! (`aegis-node`) and two clients (`aegis serve`) as separate processes,
//! each configured with its own `init` command as an operator or a user
//! would; the clients exchange real messages with cover traffic on, and a
//! live summary shows what happens. Ctrl-C stops everything.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aegis_directory::Verifier;
use aegis_directory::config::{Config as AuthorityConfig, PeerConfig};
use aegis_node::localnet::free_port;
use anyhow::{Context as _, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

mod observer;

#[derive(Parser, Debug)]
#[command(
    name = "aegis-localnet",
    version,
    about = "Run a whole AegisLink network on loopback with two chatting clients"
)]
struct Args {
    /// Directory authorities.
    #[arg(long, default_value_t = 3)]
    authorities: usize,
    /// Mix nodes per layer (three layers).
    #[arg(long, default_value_t = 2)]
    mixes_per_layer: usize,
    /// Gateways.
    #[arg(long, default_value_t = 2)]
    gateways: usize,
    /// Epoch length in milliseconds.
    #[arg(long, default_value_t = 6_000)]
    epoch_ms: u64,
    /// Mixing strategy the consensus publishes.
    #[arg(long, value_enum, default_value_t = Mixing::Poisson)]
    mixing: Mixing,
    /// Mean per-hop delay 1/μ in milliseconds (Poisson mixing).
    #[arg(long, default_value_t = 50.0)]
    mean_delay_ms: f64,
    /// Timed pool: milliseconds between flushes.
    #[arg(long, default_value_t = 200)]
    pool_interval_ms: u64,
    /// Timed pool: packets always kept back.
    #[arg(long, default_value_t = 2)]
    pool_min: u32,
    /// Timed pool: fraction of the excess sent per flush, in (0, 1].
    #[arg(long, default_value_t = 0.7)]
    pool_fraction: f64,
    /// Threshold pool: pool size that triggers a flush.
    #[arg(long, default_value_t = 4)]
    pool_threshold: u32,
    /// Client real-or-loop rate λP, packets/s.
    #[arg(long, default_value_t = 10.0)]
    lambda_p: f64,
    /// Client loop cover rate λL, packets/s.
    #[arg(long, default_value_t = 2.0)]
    lambda_l: f64,
    /// Client drop cover rate λD, packets/s.
    #[arg(long, default_value_t = 2.0)]
    lambda_d: f64,
    /// Node loop cover rate λM, packets/s.
    #[arg(long, default_value_t = 1.0)]
    lambda_m: f64,
    /// Seconds between messages (the clients take turns).
    #[arg(long, default_value_t = 1.0)]
    message_interval: f64,
    /// Seconds between mailbox pulls.
    #[arg(long, default_value_t = 0.5)]
    pull_interval: f64,
    /// Stop after this many seconds (default: run until Ctrl-C; 300 with --until).
    #[arg(long)]
    duration: Option<u64>,
    /// Exit 0 as soon as this many messages were delivered exactly once
    /// (non-zero if the duration passes first).
    #[arg(long, value_name = "N-messages")]
    until: Option<u64>,
    /// Working directory (kept); by default a temporary one, removed at exit.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Do not build the binaries first (use the ones next to this program).
    #[arg(long)]
    no_build: bool,
    /// Fault: stop the first authority this many seconds into the traffic.
    #[arg(long, value_name = "SECONDS")]
    stop_authority_at: Option<f64>,
    /// Fault: kill (SIGKILL) the first mix this many seconds into the traffic.
    #[arg(long, value_name = "SECONDS")]
    kill_mix_at: Option<f64>,
    /// Fault: restart the first client's gateway this many seconds into
    /// the traffic.
    #[arg(long, value_name = "SECONDS")]
    restart_gateway_at: Option<f64>,
    /// Fault: for five seconds from this many seconds into the traffic, a
    /// peer authenticated as the last gateway floods a layer-1 mix with
    /// garbage frames and replays of one packet.
    #[arg(long, value_name = "SECONDS")]
    flood_at: Option<f64>,
    /// Seconds the clients run with cover traffic only before the first
    /// message.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    quiet_for: f64,
    /// Put a wire observer in front of every node and client link and
    /// write what it saw (sizes per link, client emission rates with and
    /// without messages) to this JSON file.
    #[arg(long, value_name = "FILE")]
    observe: Option<PathBuf>,
}

/// Mixing strategies (see `MixingStrategy` in the directory crate).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Mixing {
    /// Continuous-time mixing with sender-chosen exponential delays.
    Poisson,
    /// A timed dynamic pool.
    TimedPool,
    /// A threshold pool.
    ThresholdPool,
}

impl Args {
    fn mixing_strategy(&self) -> aegis_directory::MixingStrategy {
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

struct Proc {
    name: String,
    child: Child,
    /// How to start it again (logged processes only).
    command: Option<(PathBuf, Vec<String>)>,
}

/// Every child process; stopped with SIGTERM, then killed.
#[derive(Default)]
struct Procs(Vec<Proc>);

impl Procs {
    /// Fails if a process that should be running has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        for p in &mut self.0 {
            if let Ok(Some(status)) = p.child.try_wait() {
                bail!("{} exited unexpectedly ({status})", p.name);
            }
        }
        Ok(())
    }

    async fn stop_all(&mut self) {
        for p in &self.0 {
            if let Some(pid) = p.child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
        }
        for p in &mut self.0 {
            if tokio::time::timeout(Duration::from_secs(8), p.child.wait())
                .await
                .is_err()
            {
                eprintln!("{} did not stop in time; killing it", p.name);
                let _ = p.child.kill().await;
            }
        }
        self.0.clear();
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("no directory for this program")
}

fn build_binaries() -> anyhow::Result<()> {
    let Ok(cargo) = std::env::var("CARGO") else {
        return Ok(());
    };
    eprintln!("building aegis-dir, aegis-node and aegis…");
    let mut command = std::process::Command::new(cargo);
    command.args([
        "build",
        "--bin",
        "aegis-dir",
        "--bin",
        "aegis-node",
        "--bin",
        "aegis",
    ]);
    // Build the programs with the profile this launcher was built with,
    // so they land next to it.
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let status = command.status()?;
    if !status.success() {
        bail!("building the binaries failed");
    }
    Ok(())
}

async fn run_to_end(bin: &Path, args: &[String], env: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut cmd = Command::new(bin);
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .await
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            bin.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The value of the first line of `out` that starts with `label`.
fn printed(out: &str, label: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|v| v.trim().to_owned())
}

fn spawn_logged(
    procs: &mut Procs,
    name: &str,
    bin: &Path,
    args: &[String],
    logs: &Path,
) -> anyhow::Result<()> {
    let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    procs.0.push(Proc {
        name: name.to_owned(),
        child,
        command: Some((bin.to_path_buf(), args.to_vec())),
    });
    Ok(())
}

/// What a fault does to a process.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Stop,
    Kill,
    Restart,
}

async fn inject(procs: &mut Procs, name: &str, fault: Fault, logs: &Path) -> anyhow::Result<()> {
    let index = procs
        .0
        .iter()
        .position(|p| p.name == name)
        .with_context(|| format!("no process {name}"))?;
    let mut proc = procs.0.remove(index);
    match fault {
        Fault::Kill => {
            let _ = proc.child.kill().await;
        }
        Fault::Stop | Fault::Restart => {
            if let Some(pid) = proc.child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            if tokio::time::timeout(Duration::from_secs(8), proc.child.wait())
                .await
                .is_err()
            {
                let _ = proc.child.kill().await;
            }
        }
    }
    eprintln!("fault: {fault:?} {name}");
    if let (Fault::Restart, Some((bin, args))) = (fault, proc.command) {
        let log_name = format!("{name}-restarted");
        spawn_logged(procs, &log_name, &bin, &args, logs)?;
        if let Some(p) = procs.0.last_mut() {
            p.name = name.to_owned();
        }
    }
    Ok(())
}

struct ClientProc {
    name: &'static str,
    peer: &'static str,
    stdin: ChildStdin,
}

#[derive(Default)]
struct Tally {
    sent: u64,
    delivered: u64,
    failed: u64,
    received: HashSet<String>,
    duplicates: u64,
    latencies: Vec<f64>,
    queued_at: HashMap<(String, u64), Instant>,
    texts: HashMap<(String, u64), String>,
    cover: BTreeMap<String, (u64, u64, u64, u64)>,
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied()
}

fn fmt_secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.2}s"))
}

async fn node_drops(http: &reqwest::Client, metrics: &[String]) -> BTreeMap<String, u64> {
    let mut drops = BTreeMap::new();
    for url in metrics {
        let Ok(r) = http.get(url).send().await else {
            continue;
        };
        let Ok(text) = r.text().await else { continue };
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("aegis_node_dropped_total{reason=\"")
                && let Some((reason, value)) = rest.split_once("\"} ")
                && let Ok(v) = value.trim().parse::<f64>()
            {
                *drops.entry(reason.to_owned()).or_insert(0) += v as u64;
            }
        }
    }
    drops
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.no_build {
        build_binaries()?;
    }
    let bins = bin_dir()?;
    let (dir_path, temp) = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            (d.canonicalize()?, None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("aegis-localnet-")
                .tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let logs = dir_path.join("logs");
    std::fs::create_dir_all(&logs)?;
    let mut procs = Procs::default();
    let result = run(&args, &bins, &dir_path, &logs, &mut procs).await;
    eprintln!("stopping every process…");
    procs.stop_all().await;
    match &result {
        Ok(true) => eprintln!("done."),
        Ok(false) => eprintln!("stopped before reaching the goal."),
        Err(e) => eprintln!("error: {e:#}\nlogs: {}", logs.display()),
    }
    // A run that failed keeps its files, so the logs it points to exist.
    let failed = !matches!(result, Ok(true));
    if args.dir.is_some() || failed {
        if let Some(temp) = temp {
            let _ = temp.keep();
        }
        eprintln!("files kept in {}", dir_path.display());
    }
    match result {
        Ok(true) => Ok(()),
        Ok(false) => std::process::exit(1),
        Err(e) => Err(e),
    }
}

async fn run(
    args: &Args,
    bins: &Path,
    dir: &Path,
    logs: &Path,
    procs: &mut Procs,
) -> anyhow::Result<bool> {
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")?);
    spinner.enable_steady_tick(Duration::from_millis(120));
    let aegis_dir = bins.join("aegis-dir");
    let aegis_node = bins.join("aegis-node");
    let aegis = bins.join("aegis");

    // Authorities: init each, then tell each about the others.
    spinner.set_message(format!("initialising {} authorities", args.authorities));
    let genesis = unix_ms();
    let mut authorities = Vec::new();
    for i in 0..args.authorities {
        let data = dir.join(format!("authority-{i}"));
        let port = free_port()?;
        let out = run_to_end(
            &aegis_dir,
            &[
                "init".into(),
                "--data-dir".into(),
                data.display().to_string(),
                "--name".into(),
                format!("authority-{i}"),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--epoch-length-ms".into(),
                args.epoch_ms.to_string(),
                "--genesis-unix-ms".into(),
                genesis.to_string(),
            ],
            &[],
        )
        .await?;
        let key = printed(&out, "public key: ").context("aegis-dir init printed no key")?;
        authorities.push((
            format!("authority-{i}"),
            key,
            format!("http://127.0.0.1:{port}"),
            data.join("aegis-dir.toml"),
        ));
    }
    for (name, _, _, path) in &authorities {
        let mut config = AuthorityConfig::load(path)?;
        config.peers = authorities
            .iter()
            .filter(|(n, ..)| n != name)
            .map(|(n, k, u, _)| PeerConfig {
                name: n.clone(),
                public_key: k.clone(),
                url: u.clone(),
            })
            .collect();
        config.parameters.mixing = args.mixing_strategy();
        config.parameters.lambda_p = args.lambda_p;
        config.parameters.lambda_l = args.lambda_l;
        config.parameters.lambda_d = args.lambda_d;
        config.parameters.lambda_m = args.lambda_m;
        config.check()?;
        std::fs::write(path, config.to_documented_toml()?)?;
    }
    spinner.set_message("starting authorities");
    for (name, _, _, path) in &authorities {
        spawn_logged(
            procs,
            name,
            &aegis_dir,
            &["run".into(), "--config".into(), path.display().to_string()],
            logs,
        )?;
    }
    let authority_flags: Vec<String> = authorities
        .iter()
        .flat_map(|(_, k, u, _)| ["--authority".to_owned(), format!("{u}={k}")])
        .collect();

    // Nodes.
    let mixes = 3 * args.mixes_per_layer;
    let mut metrics_urls = Vec::new();
    spinner.set_message(format!(
        "initialising {mixes} mix nodes and {} gateways",
        args.gateways
    ));
    let mut node_configs = Vec::new();
    // Node identity (hex) → (name, libp2p listen port).
    let mut node_ids: HashMap<String, (String, u16)> = HashMap::new();
    let origin = Instant::now();
    let mut taps = Vec::new();
    for i in 0..mixes + args.gateways {
        let (role, name) = if i < mixes {
            ("mix", format!("mix-{i}"))
        } else {
            ("gateway", format!("gateway-{}", i - mixes))
        };
        let data = dir.join(&name);
        let metrics_port = free_port()?;
        let listen_port = free_port()?;
        let mut init_args: Vec<String> = vec![
            "init".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--role".into(),
            role.into(),
            "--listen".into(),
            format!("/ip4/127.0.0.1/tcp/{listen_port}"),
            "--metrics-listen".into(),
            format!("127.0.0.1:{metrics_port}"),
        ];
        if args.observe.is_some() {
            // Others reach this node through the observer's tap.
            let tap =
                observer::Tap::start(&name, FRAME_LEN, free_port()?, listen_port, origin).await?;
            init_args.push("--public-address".into());
            init_args.push(format!("/ip4/127.0.0.1/tcp/{}", tap.port));
            taps.push(tap);
        }
        init_args.extend(authority_flags.iter().cloned());
        let out = run_to_end(&aegis_node, &init_args, &[]).await?;
        let identity =
            printed(&out, "identity: ").context("aegis-node init printed no identity")?;
        node_ids.insert(identity, (name.clone(), listen_port));
        metrics_urls.push(format!("http://127.0.0.1:{metrics_port}/metrics"));
        node_configs.push((name, data.join("aegis-node.toml"), metrics_port));
    }
    spinner.set_message("starting nodes");
    for (name, path, _) in &node_configs {
        spawn_logged(
            procs,
            name,
            &aegis_node,
            &["run".into(), "--config".into(), path.display().to_string()],
            logs,
        )?;
    }

    // Wait for a consensus listing everyone, held by every node.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let verifier = Verifier::new(
        authorities
            .iter()
            .filter_map(|(_, k, ..)| hex::decode(k).ok()?.try_into().ok()),
    );
    let started = Instant::now();
    let ready_deadline = started + Duration::from_secs(60 + 4 * args.epoch_ms / 1_000);
    loop {
        let mut listed = 0;
        if let Ok(r) = http
            .get(format!("{}/v1/document/current", authorities[0].2))
            .send()
            .await
            && let Ok(bytes) = r.bytes().await
            && let Ok(doc) = verifier.verify_bytes(&bytes, None, unix_ms())
        {
            listed = doc.body.mixes().count() + doc.body.gateways.len();
        }
        let mut healthy = 0;
        for (_, _, port) in &node_configs {
            if let Ok(r) = http
                .get(format!("http://127.0.0.1:{port}/health"))
                .send()
                .await
                && r.status().is_success()
            {
                healthy += 1;
            }
        }
        spinner.set_message(format!(
            "waiting for the consensus: {listed}/{} nodes listed, {healthy} serving",
            node_configs.len()
        ));
        if listed == node_configs.len() && healthy == node_configs.len() {
            break;
        }
        if Instant::now() > ready_deadline {
            bail!("the network did not form in time");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Clients.
    spinner.set_message("creating the clients' profiles");
    let env = [("AEGIS_PASSPHRASE", "localnet passphrase")];
    let mut cards = HashMap::new();
    let mut client_gateways = HashMap::new();
    for name in ["alice", "bob"] {
        let profile = dir.join(name).display().to_string();
        let mut a = vec!["--profile".to_owned(), profile.clone(), "init".into()];
        a.extend(authority_flags.iter().cloned());
        let out = run_to_end(&aegis, &a, &env).await?;
        let gateway = printed(&out, "your gateway: ")
            .and_then(|id| node_ids.get(&id))
            .context("aegis init named no gateway of this network")?;
        client_gateways.insert(name, gateway.clone());
        let card = run_to_end(
            &aegis,
            &["--profile".into(), profile, "contact".into(), "show".into()],
            &env,
        )
        .await?;
        cards.insert(name, card.trim().to_owned());
    }
    for (me, peer) in [("alice", "bob"), ("bob", "alice")] {
        run_to_end(
            &aegis,
            &[
                "--profile".into(),
                dir.join(me).display().to_string(),
                "contact".into(),
                "add".into(),
                peer.into(),
                cards[peer].clone(),
            ],
            &env,
        )
        .await?;
    }
    spinner.set_message("starting the clients");
    let (events_tx, mut events) = mpsc::channel::<(String, serde_json::Value)>(1_024);
    let mut clients = Vec::new();
    let mut client_taps = Vec::new();
    for (me, peer) in [("alice", "bob"), ("bob", "alice")] {
        let log = std::fs::File::create(logs.join(format!("{me}.log")))?;
        let mut client_args = vec![
            "--profile".to_owned(),
            dir.join(me).display().to_string(),
            "--pull-interval".into(),
            args.pull_interval.to_string(),
        ];
        if args.observe.is_some() {
            let gateway_port = client_gateways[me].1;
            let tap =
                observer::Tap::start(me, ACCESS_UNIT, free_port()?, gateway_port, origin).await?;
            client_args.push("--gateway-address".into());
            client_args.push(format!("/ip4/127.0.0.1/tcp/{}", tap.port));
            client_taps.push(tap);
        }
        client_args.push("serve".into());
        let mut child = Command::new(&aegis)
            .args(&client_args)
            .env("AEGIS_PASSPHRASE", "localnet passphrase")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().context("client stdin")?;
        let stdout = child.stdout.take().context("client stdout")?;
        let tx = events_tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = tx.send((me.to_owned(), v)).await;
                }
            }
        });
        procs.0.push(Proc {
            name: me.to_owned(),
            child,
            command: None,
        });
        clients.push(ClientProc {
            name: me,
            peer,
            stdin,
        });
    }
    spinner.finish_with_message(format!(
        "network up in {:.0?}: {} authorities, {mixes} mixes in 3 layers, {} gateways, 2 clients; logs in {}",
        started.elapsed(),
        args.authorities,
        args.gateways,
        logs.display()
    ));

    let duration = args
        .duration
        .or(args.until.map(|_| 300))
        .map(Duration::from_secs);
    let run_started = Instant::now();
    let mut tally = Tally::default();
    let mut next_message = Instant::now() + Duration::from_secs_f64(args.quiet_for.max(0.0));
    let quiet_end = next_message.duration_since(origin).as_secs_f64();
    let mut next_summary = Instant::now() + Duration::from_secs(2);
    let mut turn = 0usize;
    let mut counter = 0u64;
    let mut faults: Vec<(f64, &str, Fault)> = [
        (args.stop_authority_at, "authority-0", Fault::Stop),
        (args.kill_mix_at, "mix-0", Fault::Kill),
        (
            args.restart_gateway_at,
            client_gateways["alice"].0.as_str(),
            Fault::Restart,
        ),
    ]
    .into_iter()
    .filter_map(|(at, name, fault)| at.map(|at| (at, name, fault)))
    .collect();
    let mut flood_at = args.flood_at;
    let (_flood_stop, flood_stop_rx) = tokio::sync::watch::channel(false);
    loop {
        let elapsed = run_started.elapsed().as_secs_f64();
        while let Some(i) = faults.iter().position(|(at, ..)| *at <= elapsed) {
            let (_, name, fault) = faults.remove(i);
            inject(procs, name, fault, logs).await?;
        }
        if flood_at.is_some_and(|at| at <= elapsed) {
            flood_at = None;
            let flooder = node_configs
                .iter()
                .rev()
                .find(|(name, ..)| name.starts_with("gateway-"))
                .map(|(_, path, _)| path.clone())
                .context("no gateway to flood as")?;
            let document = http
                .get(format!(
                    "{}/v1/document/current",
                    authorities[1 % authorities.len()].2
                ))
                .send()
                .await?
                .bytes()
                .await?;
            let document = verifier
                .verify_bytes(&document, None, unix_ms())
                .context("no verified consensus to flood with")?;
            let stop = flood_stop_rx.clone();
            tokio::spawn(async move {
                match flood(&flooder, document, stop).await {
                    Ok((target, frames)) => {
                        eprintln!("fault: Flood {target}: {frames} garbage and replayed frames")
                    }
                    Err(error) => eprintln!("flood failed: {error:#}"),
                }
            });
        }
        let wake = next_message.min(next_summary);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(args.until.is_none()),
            _ = tokio::time::sleep_until(wake.into()) => {}
            Some((who, event)) = events.recv() => handle_event(&mut tally, &who, &event),
        }
        let now = Instant::now();
        if now >= next_message {
            next_message = now + Duration::from_secs_f64(args.message_interval.max(0.01));
            let want_more = args.until.is_none_or(|n| tally.sent < n);
            if want_more {
                let count = clients.len();
                let c = &mut clients[turn % count];
                turn += 1;
                counter += 1;
                let text = format!("message {counter} from {}", c.name);
                let line = serde_json::json!({"send": {"to": c.peer, "text": text}});
                c.stdin.write_all(format!("{line}\n").as_bytes()).await?;
                tally.texts.insert((c.name.to_owned(), counter), text);
                tally.sent += 1;
            }
        }
        if now >= next_summary {
            next_summary = now + Duration::from_secs(2);
            for c in &mut clients {
                c.stdin.write_all(b"\"stats\"\n").await?;
            }
            let drops = node_drops(&http, &metrics_urls).await;
            print_summary(&tally, &drops, run_started.elapsed());
        }
        if let Some(n) = args.until
            && tally.received.len() as u64 >= n
            && tally.delivered >= n
        {
            write_observation(args, &taps, &client_taps, quiet_end, origin)?;
            let drops = node_drops(&http, &metrics_urls).await;
            print_summary(&tally, &drops, run_started.elapsed());
            if tally.duplicates > 0 {
                bail!("{} messages were delivered twice", tally.duplicates);
            }
            procs.check_alive()?;
            return Ok(true);
        }
        if duration.is_some_and(|d| run_started.elapsed() >= d) {
            write_observation(args, &taps, &client_taps, quiet_end, origin)?;
            let drops = node_drops(&http, &metrics_urls).await;
            print_summary(&tally, &drops, run_started.elapsed());
            return Ok(args.until.is_none());
        }
    }
}

/// Floods a layer-1 mix for five seconds from a link authenticated as the
/// gateway whose configuration is at `flooder`: one good packet, then
/// alternately a replay of it and a frame of random bytes (right length,
/// right epoch), as fast as the link takes them. Returns the target's
/// identity and the frames sent.
async fn flood(
    flooder: &Path,
    document: aegis_directory::SignedConsensus,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(String, u64)> {
    use aegis_mix_packet::{
        Body, Frame, Geometry, HopDelays, LoopId, MailboxId, SphinxPublicKey, SphinxSecret,
        build_mailbox_packet,
    };
    use futures::AsyncWriteExt as _;
    use rand::{Rng as _, RngExt as _, SeedableRng as _};

    const G: Geometry = Geometry::STANDARD;
    let config = aegis_node::NodeConfig::load(flooder)?;
    let key =
        aegis_directory::config::load_key(&config.data_dir.join(aegis_node::config::KEY_FILE))?;
    let topology = aegis_node::Topology::new(document);
    let target = *topology.layers[0].first().context("no layer-1 mix")?;
    let gateway = *topology.gateways.first().context("no gateway")?;
    let route = topology.hops(
        &G,
        &[
            target,
            topology.layers[1][0],
            topology.layers[2][0],
            gateway,
            gateway,
        ],
    )?;
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    let sealing = SphinxPublicKey::from(&SphinxSecret::from(rng.random::<[u8; 32]>()));
    let (mailbox, loop_id) = (MailboxId(rng.random()), LoopId(rng.random()));
    let good = build_mailbox_packet(
        &mut rng,
        &G,
        topology.epoch,
        &route,
        &HopDelays::fixed(&[Duration::ZERO; 5]),
        mailbox,
        &sealing,
        &Body::Loop(loop_id),
    )?
    .to_frame(&G)?;
    let (host, _task) = aegis_node::links::Host::start(&key, None, stop)?;
    let entry = topology.node(&target).context("target not listed")?;
    host.add_addresses(entry.peer, entry.addresses.clone());
    let mut stream = host
        .open(entry.peer, aegis_node::access::MIX_PROTOCOL)
        .await
        .map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let mut frames = 0u64;
    let mut noise = vec![0u8; G.packet_len()];
    while started.elapsed() < Duration::from_secs(5) {
        let frame = if frames.is_multiple_of(2) {
            good.clone()
        } else {
            rng.fill_bytes(&mut noise);
            Frame::encode(&G, topology.epoch, &noise)?
        };
        stream.write_all(&frame).await?;
        frames += 1;
        if frames.is_multiple_of(64) {
            stream.flush().await?;
        }
    }
    stream.flush().await?;
    Ok((hex::encode(target.0), frames))
}

/// Bytes per write on links between nodes: one link frame.
const FRAME_LEN: usize = aegis_mix_packet::Geometry::STANDARD.frame_len();
/// Bytes per write on a client's link: a length-prefixed access cell.
const ACCESS_UNIT: usize = 4 + aegis_node::access::cell_len(FRAME_LEN);

/// Writes what the wire observer saw, if one was asked for, and prints its
/// gist.
fn write_observation(
    args: &Args,
    taps: &[observer::Tap],
    client_taps: &[observer::Tap],
    quiet_end: f64,
    origin: Instant,
) -> anyhow::Result<()> {
    let Some(path) = &args.observe else {
        return Ok(());
    };
    let end = origin.elapsed().as_secs_f64();
    let links: Vec<_> = taps
        .iter()
        .chain(client_taps)
        .map(observer::link_report)
        .collect();
    let clients: Vec<_> = client_taps
        .iter()
        .map(|t| observer::emission_report(t, quiet_end, end))
        .collect();
    println!("what a wire observer saw:");
    for l in &links {
        println!(
            "  {:<10} {} connections; units of {} bytes: {} in, {} out; irregular after set-up: {} in, {} out",
            l.label,
            l.connections,
            l.unit,
            l.to_listener.units,
            l.to_dialer.units,
            l.to_listener.irregular,
            l.to_dialer.irregular
        );
    }
    for c in &clients {
        println!(
            "  {:<10} emits {:.1}/s with cover only, {:.1}/s with messages; gap distributions differ by {:.3} (0.1 % level: {:.3})",
            c.label, c.quiet.rate, c.busy.rate, c.ks_distance, c.ks_critical
        );
    }
    let report = serde_json::json!({ "links": links, "clients": clients });
    std::fs::write(path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn handle_event(tally: &mut Tally, who: &str, event: &serde_json::Value) {
    let kind = event["event"].as_str().unwrap_or("");
    match kind {
        "queued" => {
            if let Some(id) = event["id"].as_u64() {
                tally.queued_at.insert((who.to_owned(), id), Instant::now());
            }
        }
        "status" => {
            let (Some(id), Some(status)) = (event["id"].as_u64(), event["status"].as_str()) else {
                return;
            };
            match status {
                "delivered" => {
                    tally.delivered += 1;
                    if let Some(at) = tally.queued_at.remove(&(who.to_owned(), id)) {
                        tally.latencies.push(at.elapsed().as_secs_f64());
                    }
                }
                "failed" => tally.failed += 1,
                _ => {}
            }
        }
        "message" => {
            let text = event["text"].as_str().unwrap_or("").to_owned();
            if !tally.received.insert(text) {
                tally.duplicates += 1;
            }
        }
        "stats" => {
            let g = |k: &str| event[k].as_u64().unwrap_or(0);
            tally.cover.insert(
                who.to_owned(),
                (
                    g("real_sent"),
                    g("loops_sent"),
                    g("drops_sent"),
                    g("loops_returned"),
                ),
            );
        }
        "error" => eprintln!("{who}: {}", event["message"]),
        _ => {}
    }
}

fn print_summary(tally: &Tally, drops: &BTreeMap<String, u64>, elapsed: Duration) {
    let mut lat = tally.latencies.clone();
    lat.sort_by(f64::total_cmp);
    let (real, loops, dropc, returned) = tally.cover.values().fold((0, 0, 0, 0), |a, v| {
        (a.0 + v.0, a.1 + v.1, a.2 + v.2, a.3 + v.3)
    });
    let ratio = if real > 0 {
        format!("{:.1}", (loops + dropc) as f64 / real as f64)
    } else {
        "-".into()
    };
    let drops_text = if drops.is_empty() {
        "none".to_owned()
    } else {
        drops
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "[{:>4}s] messages sent {} delivered {} received {} failed {} duplicates {} | \
         latency p50 {} p90 {} p99 {} | packets real {real} cover {} (cover/real {ratio}), loops back {returned}/{loops} | node drops: {drops_text}",
        elapsed.as_secs(),
        tally.sent,
        tally.delivered,
        tally.received.len(),
        tally.failed,
        tally.duplicates,
        fmt_secs(percentile(&lat, 0.5)),
        fmt_secs(percentile(&lat, 0.9)),
        fmt_secs(percentile(&lat, 0.99)),
        loops + dropc,
    );
}
