//! `aegis-localnet`: a whole AegisLink network on one machine.
//!
//! Plans the network (`aegis_testkit::NetworkPlan`: the configuration files
//! and keys an operator would have), starts directory authorities
//! (`aegis-dir`), mix nodes and gateways (`aegis-node`) from them and two
//! clients (`aegis serve`) as separate processes — on loopback, with
//! `--netns` each host in a network namespace of its own, or with
//! `--containers` each host in a container (`deploy/docker/compose.yml`,
//! the clients kept online by `aegis daemon`) — and lets the
//! clients exchange real messages with cover traffic on while a live summary
//! shows what happens. Ctrl-C stops everything.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aegis_directory::TrustedAuthority;
use aegis_testkit::free_port;
use aegis_testkit::processes::{Fault, Proc, Procs, bin_dir, build_binaries, run_to_end};
use anyhow::{Context as _, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::ChildStdin;
use tokio::sync::mpsc;

mod args;
mod flood;
mod isolate;
mod network;
mod nodes;
mod observer;
mod report;
mod rogue;

use args::Args;
use network::{CLIENTS, Network};
use nodes::{current_document, last_gateway, node_url, wait_healthy};
use report::{Tally, handle_event, node_drops, print_summary, summed_by_reason};

struct ClientProc {
    name: &'static str,
    peer: &'static str,
    stdin: ChildStdin,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.check()?;
    if (args.n_minus_one_at.is_some() || args.netns) && !aegis_testkit::netns::isolated() {
        // Packet filter rules and network namespaces: only inside
        // namespaces of the launcher's own, which vanish with it.
        std::process::exit(aegis_testkit::netns::isolate()?);
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
    spinner.set_message("planning the network");
    let mut net = Network::plan(args, dir, Instant::now()).await?;
    if args.containers {
        spinner.set_message("building the container images");
        net.make_containers(args, bins, dir).await?;
        if args.plan_only {
            spinner.finish_and_clear();
            let compose = net.compose.as_ref().context("no compose environment")?;
            println!(
                "images built and the network planned in {}; start it with\n  {}",
                dir.display(),
                compose.command_line(&["up", "--detach"]).join(" ")
            );
            return Ok(true);
        }
    }
    let result = run_network(args, bins, dir, logs, procs, &mut net, &spinner).await;
    net.tear_down(procs, logs).await;
    result
}

/// Starts the planned network, its clients and the faults asked for, and
/// runs the traffic to its end.
async fn run_network(
    args: &Args,
    bins: &Path,
    dir: &Path,
    logs: &Path,
    procs: &mut Procs,
    net: &mut Network,
    spinner: &ProgressBar,
) -> anyhow::Result<bool> {
    let aegis = bins.join("aegis");
    let origin = net.origin;
    net.make_hosts()?;
    let mixes = net
        .plan
        .nodes
        .iter()
        .filter(|n| n.role == aegis_directory::Role::Mix)
        .count();
    spinner.set_message("starting authorities and nodes");
    net.start_servers(procs, bins, logs).await?;
    let metrics_urls = net.metrics_urls();
    let authority_metrics = net.authority_metrics();
    let authorities = net.authorities.clone();
    let authority_flags = net.plan.authority_flags()?;
    let verifier = net.verifier();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let formed_within = Duration::from_secs(60 + 4 * net.plan.epoch_length_ms / 1_000);
    net.wait_formed(&http, spinner, formed_within).await?;
    spinner.set_message("starting the clients' containers");
    net.start_clients(dir, formed_within).await?;

    // Clients.
    spinner.set_message("creating the clients' profiles");
    let env = [("AEGIS_PASSPHRASE", network::PASSPHRASE)];
    let mut cards = HashMap::new();
    let mut client_gateways = HashMap::new();
    for name in CLIENTS {
        let profile = net.profile(dir, name).display().to_string();
        let place = net.place(name).await?;
        if !net.profile(dir, name).exists() {
            let mut a = vec!["--profile".to_owned(), profile.clone(), "init".into()];
            a.extend(authority_flags.iter().cloned());
            run_to_end(&place, &aegis, &a, &env).await?;
        }
        let shown = run_to_end(
            &place,
            &aegis,
            &[
                "--profile".into(),
                profile.clone(),
                "contact".into(),
                "show".into(),
                "--json".into(),
            ],
            &env,
        )
        .await?;
        let shown: serde_json::Value =
            serde_json::from_str(&shown).context("`aegis contact show --json` printed no JSON")?;
        let gateway = shown["gateway"]
            .as_str()
            .and_then(|id| net.plan.node_with_identity(id))
            .context("the client's gateway is not one of this network's")?;
        client_gateways.insert(name, net.plan.nodes[gateway].name.clone());
        let card = shown["card"].as_str().context("no card")?;
        cards.insert(name, card.to_owned());
    }
    for (me, peer) in [("alice", "bob"), ("bob", "alice")] {
        let profile = net.profile(dir, me).display().to_string();
        let place = net.place(me).await?;
        let known = run_to_end(
            &place,
            &aegis,
            &[
                "--profile".into(),
                profile.clone(),
                "contact".into(),
                "list".into(),
            ],
            &env,
        )
        .await?;
        if known.lines().any(|l| l.split('\t').next() == Some(peer)) {
            continue;
        }
        run_to_end(
            &place,
            &aegis,
            &[
                "--profile".into(),
                profile,
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
            net.profile(dir, me).display().to_string(),
            "--pull-interval".into(),
            args.pull_interval.to_string(),
        ];
        if args.observe.is_some() {
            let gateway = net
                .plan
                .node_named(&client_gateways[me])
                .context("the client's gateway")?;
            let gateway_port = net.plan.nodes[gateway].listen.port();
            let tap = observer::Tap::start(
                me,
                access_unit(&args.geometry()),
                free_port()?,
                gateway_port,
                origin,
            )
            .await?;
            client_args.push("--gateway-address".into());
            client_args.push(format!("/ip4/127.0.0.1/tcp/{}", tap.port));
            client_taps.push(tap);
        }
        client_args.push("serve".into());
        let mut child = net
            .place(me)
            .await?
            .command(&aegis, &client_args)
            .env("AEGIS_PASSPHRASE", network::PASSPHRASE)
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
    let where_ = if args.containers {
        format!(
            "each host in its own container on {}.0/24",
            network::CONTAINER_SUBNET.map(|o| o.to_string()).join(".")
        )
    } else if args.netns {
        format!(
            "each host in its own namespace on {}.0/24",
            network::SUBNET.map(|o| o.to_string()).join(".")
        )
    } else {
        "on loopback".to_owned()
    };
    spinner.finish_with_message(format!(
        "network up in {:.0?} {where_}: {} authorities, {mixes} mixes in 3 layers, {} gateways, 2 clients; logs in {}",
        origin.elapsed(),
        net.authorities.len(),
        net.plan.nodes.len() - mixes,
        logs.display()
    ));
    let genesis = net.plan.genesis_unix_ms;
    let epoch_ms = net.plan.epoch_length_ms;

    let duration = args
        .duration
        .or(args.until.map(|_| 300))
        .map(Duration::from_secs);
    let run_started = Instant::now();
    let mut tally = Tally::default();
    let mut next_message = Instant::now() + Duration::from_secs_f64(args.quiet_for.max(0.0));
    let quiet_end = next_message.duration_since(origin).as_secs_f64();
    let mut next_summary = Instant::now() + Duration::from_secs(2);
    // The nodes' drops, scraped beside the loop: a node cut off the network
    // makes each scrape wait for its timeout, which must not hold up the
    // messages and the clients' events.
    let (drops_tx, drops) = tokio::sync::watch::channel(std::collections::BTreeMap::new());
    let scraper = {
        let http = http.clone();
        let urls = metrics_urls.clone();
        tokio::spawn(async move {
            loop {
                if drops_tx.send(node_drops(&http, &urls).await).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };
    let _stop_scraper = AbortOnDrop(scraper);
    let mut turn = 0usize;
    let mut counter = 0u64;
    let mut faults: Vec<(f64, &str, Fault)> = [
        (args.stop_authority_at, "authority-0", Fault::Stop),
        (args.kill_mix_at, "mix-0", Fault::Kill),
        (
            args.restart_gateway_at,
            client_gateways["alice"].as_str(),
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
    let mut link_change = args.disconnect_gateway_at.map(|at| (at, false));
    let mut rogue: Option<rogue::Outcome> = None;
    let mut n_minus_one: Option<isolate::Attack> = None;
    let mut descriptor_flood = None;
    let (_flood_stop, flood_stop_rx) = tokio::sync::watch::channel(false);
    loop {
        let elapsed = run_started.elapsed().as_secs_f64();
        while let Some(i) = faults.iter().position(|(at, ..)| *at <= elapsed) {
            let (_, name, fault) = faults.remove(i);
            net.inject(procs, name, fault, logs).await?;
        }
        // The gateway's link goes down at the fault's time and back up
        // `--disconnect-for` seconds later.
        if let Some((at, connected)) = link_change
            && at <= elapsed
        {
            let gateway = &client_gateways["alice"];
            net.set_connected(gateway, connected).await?;
            if connected {
                eprintln!("fault: {gateway} connected again");
                link_change = None;
            } else {
                eprintln!(
                    "fault: {gateway} cut off the network for {} s",
                    args.disconnect_for
                );
                link_change = Some((elapsed + args.disconnect_for, true));
            }
        }
        if flood_at.is_some_and(|at| at <= elapsed) {
            flood_at = None;
            let flooder = last_gateway(&net.plan)?;
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
            let sender = last_gateway(&net.plan)?;
            let document = current_document(&http, &authorities[0].1, &verifier).await?;
            let probe = flood::Probe::new(&sender, document, flood_stop_rx.clone())?;
            let name = nodes::name_of(&net.plan, &probe.target)?;
            let health = node_url(&net.plan, &name, aegis_directory::api::HEALTH)?;
            probe.send_good().await?;
            net.inject(procs, &name, Fault::KillRestart, logs).await?;
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
                epoch_length_ms: epoch_ms,
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
            n_minus_one = Some(isolate::Attack::start(document, &net.plan)?);
        }
        if rogue_at.is_some_and(|at| at <= elapsed) {
            rogue_at = None;
            let honest = aegis_directory::Schedule {
                genesis_ms: genesis,
                epoch_length_ms: epoch_ms,
            };
            let takeover = rogue::Takeover {
                procs,
                logs,
                http: &http,
                authorities: &authorities,
                verifier: &verifier,
                plan: &net.plan,
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
            let drops = drops.borrow().clone();
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
            write_observation(args, net, &client_taps, quiet_end, origin)?;
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
            net.check_alive(procs).await?;
            return Ok(true);
        }
    }
}

/// Stops a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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

/// Bytes per write on a client's link: a length-prefixed access cell
/// carrying one link frame of the network's geometry.
fn access_unit(geometry: &aegis_mix_packet::Geometry) -> usize {
    4 + aegis_mix_packet::access::cell_len(geometry.frame_len())
}

/// Writes what the wire observer saw, if one was asked for, and prints its
/// gist.
fn write_observation(
    args: &Args,
    net: &Network,
    client_taps: &[observer::Tap],
    quiet_end: f64,
    origin: Instant,
) -> anyhow::Result<()> {
    let Some(path) = &args.observe else {
        return Ok(());
    };
    let end = origin.elapsed().as_secs_f64();
    // A constant-rate client's slot period, from the rates the network
    // runs with (a reused --dir keeps its own).
    let p = &net.plan.parameters;
    let period = 1.0 / (p.lambda_p + p.lambda_l + p.lambda_d);
    let links: Vec<_> = net
        .taps
        .iter()
        .chain(client_taps)
        .map(observer::link_report)
        .collect();
    let clients: Vec<_> = client_taps
        .iter()
        .map(|t| observer::emission_report(t, quiet_end, end, period))
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
            "  {:<10} emits {:.1}/s with cover only, {:.1}/s with messages (gap CV {:.2} and {:.2}; phase R on {:.0} ms slots {:.2} and {:.2}); gap distributions differ by {:.3} (0.1 % level: {:.3})",
            c.label,
            c.quiet.rate,
            c.busy.rate,
            c.quiet.gap_cv,
            c.busy.gap_cv,
            1_000.0 * period,
            c.quiet.phase_r,
            c.busy.phase_r,
            c.ks_distance,
            c.ks_critical
        );
    }
    let report = serde_json::json!({ "links": links, "clients": clients });
    std::fs::write(path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
