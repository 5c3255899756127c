//! `aegis-localnet`: a whole AegisLink network on loopback.
//!
//! Starts directory authorities (`aegis-dir`), mix nodes and gateways
//! (`aegis-node`) and two clients (`aegis serve`) as separate processes,
//! each configured with its own `init` command as an operator or a user
//! would; the clients exchange real messages with cover traffic on, and a
//! live summary shows what happens. Ctrl-C stops everything.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aegis_directory::api::{self, unix_now_ms as unix_ms};
use aegis_directory::config::{Config as AuthorityConfig, PeerConfig};
use aegis_directory::{TrustedAuthority, Verifier};
use aegis_testkit::free_port;
use anyhow::{Context as _, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;

mod args;
mod flood;
mod isolate;
mod nodes;
mod observer;
mod processes;
mod report;
mod rogue;

use args::Args;
use nodes::{current_document, last_gateway, node_url, wait_healthy};
use processes::{
    Fault, Proc, Procs, bin_dir, build_binaries, inject, printed, run_to_end, spawn_logged,
};
use report::{Tally, handle_event, node_drops, print_summary, summed_by_reason};

struct ClientProc {
    name: &'static str,
    peer: &'static str,
    stdin: ChildStdin,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.n_minus_one_at.is_some() && !isolate::in_private_netns() {
        // The fault changes packet filter rules: only in a namespace of
        // the launcher's own, which vanishes with it.
        std::process::exit(isolate::reexec()?);
    }
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
            TrustedAuthority {
                url: format!("http://127.0.0.1:{port}"),
                public_key: aegis_directory::parse_key(&key)?,
            },
            data.join("aegis-dir.toml"),
        ));
    }
    let authority_metrics: Vec<String> = authorities
        .iter()
        .map(|(_, a, _)| api::url(&a.url, api::METRICS))
        .collect();
    let authority_flags: Vec<String> = authorities
        .iter()
        .flat_map(|(_, authority, _)| ["--authority".to_owned(), authority.to_string()])
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
    for (name, _, path) in &authorities {
        let mut config = AuthorityConfig::load(path)?;
        config.peers = authorities
            .iter()
            .filter(|(n, ..)| n != name)
            .map(|(n, authority, _)| PeerConfig {
                name: n.clone(),
                authority: authority.clone(),
            })
            .collect();
        config.parameters.mixing = args.mixing_strategy();
        config.parameters.lambda_p = args.lambda_p;
        config.parameters.lambda_l = args.lambda_l;
        config.parameters.lambda_d = args.lambda_d;
        config.parameters.lambda_m = args.lambda_m;
        // As in production: only the network's own nodes are listed.
        config.admission = aegis_directory::Admission::Allowlist {
            nodes: node_ids
                .keys()
                .map(|id| aegis_directory::parse_key(id))
                .collect::<Result<_, _>>()?,
        };
        config.check()?;
        std::fs::write(path, config.to_documented_toml()?)?;
    }
    spinner.set_message("starting authorities");
    for (name, _, path) in &authorities {
        spawn_logged(
            procs,
            name,
            &aegis_dir,
            &["run".into(), "--config".into(), path.display().to_string()],
            logs,
        )?;
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
    let verifier = Verifier::new(authorities.iter().map(|(_, a, _)| a.public_key));
    let started = Instant::now();
    let ready_deadline = started + Duration::from_secs(60 + 4 * args.epoch_ms / 1_000);
    loop {
        let mut listed = 0;
        if let Ok(r) = http
            .get(api::url(&authorities[0].1.url, api::DOCUMENT_CURRENT))
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
    let mut replay_at = args.replay_after_kill_at;
    let mut descriptor_flood_at = args.descriptor_flood_at;
    let mut n_minus_one_at = args.n_minus_one_at;
    let mut rogue_at = args.rogue_authority_at;
    let mut rogue: Option<rogue::Outcome> = None;
    let mut n_minus_one: Option<isolate::Attack> = None;
    let mut descriptor_flood = None;
    let (_flood_stop, flood_stop_rx) = tokio::sync::watch::channel(false);
    loop {
        let elapsed = run_started.elapsed().as_secs_f64();
        while let Some(i) = faults.iter().position(|(at, ..)| *at <= elapsed) {
            let (_, name, fault) = faults.remove(i);
            inject(procs, name, fault, logs).await?;
        }
        if flood_at.is_some_and(|at| at <= elapsed) {
            flood_at = None;
            let flooder = last_gateway(&node_configs)?;
            let document =
                current_document(&http, &authorities[1 % authorities.len()].1, &verifier).await?;
            let stop = flood_stop_rx.clone();
            tokio::spawn(async move {
                match flood::flood(&flooder, document, stop).await {
                    Ok((target, frames)) => {
                        eprintln!("fault: Flood {target}: {frames} garbage and replayed frames")
                    }
                    Err(error) => eprintln!("flood failed: {error:#}"),
                }
            });
        }
        if replay_at.is_some_and(|at| at <= elapsed) {
            replay_at = None;
            let sender = last_gateway(&node_configs)?;
            let document = current_document(&http, &authorities[0].1, &verifier).await?;
            let probe = flood::Probe::new(&sender, document, flood_stop_rx.clone())?;
            let (name, _) = node_ids
                .get(&hex::encode(probe.target.0))
                .cloned()
                .context("the layer-1 mix is not one of ours")?;
            let health = node_url(&node_configs, &name, "/health")?;
            probe.send_good().await?;
            inject(procs, &name, Fault::KillRestart, logs).await?;
            wait_healthy(&http, &health, Duration::from_secs(30))
                .await
                .with_context(|| format!("{name} did not come back after the kill"))?;
            probe.send_good().await?;
            eprintln!("fault: replayed a packet {name} forwarded before it was killed");
        }
        if descriptor_flood_at.is_some_and(|at| at <= elapsed) {
            descriptor_flood_at = None;
            let trusted: Vec<TrustedAuthority> =
                authorities.iter().map(|(_, a, _)| a.clone()).collect();
            let schedule = aegis_directory::Schedule {
                genesis_ms: genesis,
                epoch_length_ms: args.epoch_ms,
            };
            descriptor_flood = Some(tokio::spawn(async move {
                match flood::descriptor_flood(trusted, schedule, 500).await {
                    Ok((sent, refused)) => eprintln!(
                        "fault: descriptor flood: {refused} of {sent} uploads from strangers refused"
                    ),
                    Err(error) => eprintln!("descriptor flood failed: {error:#}"),
                }
            }));
        }
        if n_minus_one_at.is_some_and(|at| at <= elapsed) {
            n_minus_one_at = None;
            let document = current_document(&http, &authorities[0].1, &verifier).await?;
            n_minus_one = Some(isolate::Attack::start(document, &node_ids, &node_configs)?);
        }
        if rogue_at.is_some_and(|at| at <= elapsed) {
            rogue_at = None;
            let honest = aegis_directory::Schedule {
                genesis_ms: genesis,
                epoch_length_ms: args.epoch_ms,
            };
            let takeover = rogue::Takeover {
                procs,
                logs,
                http: &http,
                authorities: &authorities,
                verifier: &verifier,
                node_configs: &node_configs,
                honest,
            };
            rogue = Some(takeover.run().await?);
        }
        if let Some(attack) = &mut n_minus_one {
            attack.poll(&http).await?;
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
            print_summary(&tally.report(&drops, run_started.elapsed()));
        }
        let reached = args
            .until
            .is_some_and(|n| tally.received.len() as u64 >= n && tally.delivered >= n);
        let timed_out = duration.is_some_and(|d| run_started.elapsed() >= d);
        if reached || timed_out {
            // The report counts the authorities' refusals: let the flood end.
            if let Some(flood) = descriptor_flood.take() {
                let _ = flood.await;
            }
            write_observation(args, &taps, &client_taps, quiet_end, origin)?;
            finish(
                args,
                &tally,
                &http,
                &metrics_urls,
                &authority_metrics,
                run_started.elapsed(),
                report::Faults {
                    n_minus_one: n_minus_one.map(isolate::Attack::report),
                    rogue_authority: rogue.map(rogue::Outcome::report),
                },
            )
            .await?;
            if !reached {
                return Ok(args.until.is_none());
            }
            if tally.duplicates > 0 {
                bail!("{} messages were delivered twice", tally.duplicates);
            }
            procs.check_alive()?;
            return Ok(true);
        }
    }
}

/// The last summary, and the JSON report if one was asked for.
async fn finish(
    args: &Args,
    tally: &Tally,
    http: &reqwest::Client,
    metrics_urls: &[String],
    authority_metrics: &[String],
    elapsed: Duration,
    faults: report::Faults,
) -> anyhow::Result<()> {
    let mut report = tally.report(&node_drops(http, metrics_urls).await, elapsed);
    report.loop_alarms = report::loop_alarms(http, metrics_urls).await;
    report.n_minus_one = faults.n_minus_one;
    report.rogue_authority = faults.rogue_authority;
    report.descriptors_refused = summed_by_reason(
        http,
        authority_metrics,
        "aegis_dir_descriptors_rejected_total",
    )
    .await;
    print_summary(&report);
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Bytes per write on links between nodes: one link frame.
const FRAME_LEN: usize = aegis_mix_packet::Geometry::STANDARD.frame_len();
/// Bytes per write on a client's link: a length-prefixed access cell.
const ACCESS_UNIT: usize = 4 + aegis_mix_packet::access::cell_len(FRAME_LEN);

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
