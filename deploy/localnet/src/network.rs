//! Bringing the network up: its plan (made, or found in `--dir` from an
//! earlier run), the authorities and nodes started from the plan's
//! configuration files — on loopback, each in a network namespace of its
//! own, or each in a container — and the wait until a consensus lists
//! everyone.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aegis_directory::api::{self, unix_now_ms as unix_ms};
use aegis_directory::{TrustedAuthority, Verifier};
use aegis_testkit::containers::{self, Compose, Settings};
use aegis_testkit::netns::Subnet;
use aegis_testkit::processes::{Fault, Launch, Place, Procs};
use aegis_testkit::{Hosts, NetworkPlan, Shape, free_port};
use anyhow::{Context as _, bail};
use indicatif::ProgressBar;

use crate::args::Args;
use crate::observer;

/// The subnet hosts get in `--netns` mode.
pub const SUBNET: [u8; 3] = [10, 77, 0];

/// The subnet of the Docker network in `--containers` mode.
pub const CONTAINER_SUBNET: [u8; 3] = [10, 78, 0];

/// The compose project (and network) of `--containers` mode.
pub const PROJECT: &str = "aegislink-localnet";

/// The tag of the images `--containers` mode builds and runs.
pub const IMAGE_TAG: &str = "local";

/// The clients' profile passphrase.
pub const PASSPHRASE: &str = "localnet passphrase";

/// The clients, in the order they are planned.
pub const CLIENTS: [&str; 2] = containers::CLIENTS;

/// A network brought up from its plan.
pub struct Network {
    /// The plan it runs.
    pub plan: NetworkPlan,
    /// Each host's namespace, in `--netns` mode.
    pub subnet: Option<Subnet>,
    /// The containers, in `--containers` mode.
    pub compose: Option<Compose>,
    /// Each authority's name, pinned key and configuration file.
    pub authorities: Vec<(String, TrustedAuthority, PathBuf)>,
    /// The observer's taps in front of the nodes, with `--observe`.
    pub taps: Vec<observer::Tap>,
    /// When the network was planned: the observer's time origin.
    pub origin: Instant,
}

impl Network {
    /// Makes the plan, or takes the one an earlier run left in `dir` (its
    /// keys and data are used again; the shape and rates given now
    /// replace the old ones only for a new plan), and writes every
    /// configuration file.
    pub async fn plan(args: &Args, dir: &Path, origin: Instant) -> anyhow::Result<Network> {
        let hosts = if args.containers {
            Hosts::Subnet(CONTAINER_SUBNET)
        } else if args.netns {
            Hosts::Subnet(SUBNET)
        } else {
            Hosts::Loopback
        };
        let mut plan = match NetworkPlan::load(dir)? {
            Some(plan) => {
                eprintln!(
                    "reusing the network in {} ({} authorities, {} nodes)",
                    dir.display(),
                    plan.authorities.len(),
                    plan.nodes.len()
                );
                if plan.hosts != hosts {
                    bail!(
                        "{} holds a network planned for hosts {:?}, not {hosts:?}: give the \
                         --netns or --containers it was made with, or use another --dir",
                        dir.display(),
                        plan.hosts
                    );
                }
                let planned = plan.geometry()?;
                if planned != args.geometry() {
                    bail!(
                        "{} holds a network of packet format {}: give --packet-format {} or use \
                         another --dir",
                        dir.display(),
                        planned.format.name(),
                        planned.format.name()
                    );
                }
                plan
            }
            None => {
                let shape = Shape {
                    authorities: args.authorities,
                    mixes: 3 * args.mixes_per_layer,
                    gateways: args.gateways,
                    epoch_length_ms: args.epoch_ms,
                };
                let mut plan = NetworkPlan::create(dir, shape, hosts, unix_ms())?;
                plan.parameters.mixing = args.mixing_strategy();
                plan.parameters.lambda_p = args.lambda_p;
                plan.parameters.lambda_l = args.lambda_l;
                plan.parameters.lambda_d = args.lambda_d;
                plan.parameters.shaping = args.client_shaping();
                plan.set_geometry(&args.geometry());
                plan.parameters.lambda_m = args.lambda_m;
                // As in production: only the network's own nodes are listed.
                plan.allowlist = true;
                plan
            }
        };
        let mut taps = Vec::new();
        for node in &mut plan.nodes {
            node.public = None;
            if args.observe.is_some() {
                // Others reach this node through the observer's tap.
                let tap = observer::Tap::start(
                    &node.name,
                    args.geometry().frame_len(),
                    free_port()?,
                    node.listen.port(),
                    origin,
                )
                .await?;
                node.public = Some(std::net::SocketAddr::from(([127, 0, 0, 1], tap.port)));
                taps.push(tap);
            }
        }
        plan.write(dir)?;
        let authorities = plan
            .authorities
            .iter()
            .zip(plan.trusted()?)
            .enumerate()
            .map(|(i, (host, trusted))| (host.name.clone(), trusted, plan.authority_config_path(i)))
            .collect();
        Ok(Network {
            plan,
            subnet: None,
            compose: None,
            authorities,
            taps,
            origin,
        })
    }

    /// In `--containers` mode, builds the images from the programs in
    /// `bins` and writes the compose file's environment beside the plan
    /// (see [`Compose::write`]); containers left by an earlier run are
    /// removed, unless only the plan is asked for (`--plan-only` leaves a
    /// running network alone).
    pub async fn make_containers(
        &mut self,
        args: &Args,
        bins: &Path,
        dir: &Path,
    ) -> anyhow::Result<()> {
        containers::build_images(bins, IMAGE_TAG).await?;
        let settings = Settings {
            project: PROJECT,
            tag: IMAGE_TAG,
            passphrase: PASSPHRASE,
            pull_interval: args.pull_interval,
        };
        let compose = Compose::write(&self.plan, dir, &settings)?;
        if !args.plan_only {
            compose.down().await?;
        }
        self.compose = Some(compose);
        Ok(())
    }

    /// In `--netns` mode, gives every authority, node and client a network
    /// namespace with its planned address.
    pub fn make_hosts(&mut self) -> anyhow::Result<()> {
        let Hosts::Subnet(prefix) = self.plan.hosts else {
            return Ok(());
        };
        if self.compose.is_some() {
            return Ok(());
        }
        let v4 = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => Ok(v4),
            IpAddr::V6(_) => bail!("a subnet host has an IPv6 address"),
        };
        let mut hosts: Vec<(String, Ipv4Addr)> = Vec::new();
        for a in &self.plan.authorities {
            hosts.push((a.name.clone(), v4(a.listen.ip())?));
        }
        for n in &self.plan.nodes {
            hosts.push((n.name.clone(), v4(n.listen.ip())?));
        }
        for (i, name) in CLIENTS.iter().enumerate() {
            hosts.push(((*name).to_owned(), v4(self.plan.hosts.client_address(i)?)?));
        }
        self.subnet = Some(Subnet::create(prefix, &hosts)?);
        Ok(())
    }

    /// Where host `name`'s programs run.
    pub async fn place(&self, name: &str) -> anyhow::Result<Place> {
        if let Some(compose) = &self.compose {
            return compose.place(name).await;
        }
        Ok(match &self.subnet {
            Some(subnet) => subnet.place(name),
            None => Place::Here,
        })
    }

    /// Client `name`'s profile: its own folder under `dir`, or in
    /// `--containers` mode the `profile` folder in it (the compose file's
    /// `AEGIS_PROFILE`, at the same path inside the container).
    pub fn profile(&self, dir: &Path, name: &str) -> PathBuf {
        match &self.compose {
            Some(compose) => compose.client_dir(name).join("profile"),
            None => dir.join(name),
        }
    }

    /// Starts every authority, then every node, from its configuration file.
    pub async fn start_servers(
        &self,
        procs: &mut Procs,
        bins: &Path,
        logs: &Path,
    ) -> anyhow::Result<()> {
        if let Some(compose) = &self.compose {
            return compose.up(&compose.servers()).await;
        }
        for (name, _, path) in &self.authorities {
            let launch = Launch {
                place: self.place(name).await?,
                bin: bins.join("aegis-dir"),
                args: vec!["run".into(), "--config".into(), path.display().to_string()],
            };
            procs.spawn_logged(name, launch, logs)?;
        }
        for (i, node) in self.plan.nodes.iter().enumerate() {
            let launch = Launch {
                place: self.place(&node.name).await?,
                bin: bins.join("aegis-node"),
                args: vec![
                    "run".into(),
                    "--config".into(),
                    self.plan.node_config_path(i).display().to_string(),
                ],
            };
            procs.spawn_logged(&node.name, launch, logs)?;
        }
        Ok(())
    }

    /// In `--containers` mode, starts the clients' containers (each makes
    /// its profile once, then runs `aegis daemon`) and waits until both
    /// daemons answer on their sockets; elsewhere nothing (the launcher
    /// makes the profiles and runs the clients itself).
    pub async fn start_clients(&self, dir: &Path, timeout: Duration) -> anyhow::Result<()> {
        let Some(compose) = &self.compose else {
            return Ok(());
        };
        compose.up(&CLIENTS).await?;
        let deadline = Instant::now() + timeout;
        for name in CLIENTS {
            // The daemon's socket is `profile.sock` beside the profile.
            let mut socket = self.profile(dir, name).into_os_string();
            socket.push(".sock");
            while tokio::net::UnixStream::connect(&socket).await.is_err() {
                if Instant::now() > deadline {
                    compose.check_running().await?;
                    bail!("{name}'s daemon did not open its socket in time");
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Ok(())
    }

    /// Does `fault` to the authority or node `name`: to its process, or in
    /// `--containers` mode to its container.
    pub async fn inject(
        &mut self,
        procs: &mut Procs,
        name: &str,
        fault: Fault,
        logs: &Path,
    ) -> anyhow::Result<()> {
        match &mut self.compose {
            Some(compose) => compose.inject(name, fault).await,
            None => procs.inject(name, fault, logs).await,
        }
    }

    /// Cuts host `name` off the network or connects it again.
    pub async fn set_connected(&self, name: &str, connected: bool) -> anyhow::Result<()> {
        if let Some(compose) = &self.compose {
            return compose.set_connected(name, connected).await;
        }
        self.subnet
            .as_ref()
            .context("cutting a host off needs --netns or --containers")?
            .set_connected(name, connected)
    }

    /// Fails if an authority, node or client that should run does not.
    pub async fn check_alive(&self, procs: &mut Procs) -> anyhow::Result<()> {
        procs.check_alive()?;
        if let Some(compose) = &self.compose {
            compose.check_running().await?;
        }
        Ok(())
    }

    /// Stops every process; in `--containers` mode saves the containers'
    /// output to `logs/containers.log` and removes them and their network.
    pub async fn tear_down(&self, procs: &mut Procs, logs: &Path) {
        procs.stop_all().await;
        if let Some(compose) = &self.compose {
            if let Err(error) = compose.save_logs(&logs.join("containers.log")).await {
                eprintln!("could not save the containers' logs: {error:#}");
            }
            if let Err(error) = compose.down().await {
                eprintln!("could not remove the containers: {error:#}");
            }
        }
    }

    /// The nodes' `/metrics` addresses.
    pub fn metrics_urls(&self) -> Vec<String> {
        self.plan
            .nodes
            .iter()
            .map(|n| format!("http://{}{}", n.metrics, api::METRICS))
            .collect()
    }

    /// The authorities' `/metrics` addresses.
    pub fn authority_metrics(&self) -> Vec<String> {
        self.authorities
            .iter()
            .map(|(_, a, _)| api::url(&a.url, api::METRICS))
            .collect()
    }

    /// A verifier for the network's documents.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.authorities.iter().map(|(_, a, _)| a.public_key))
    }

    /// Waits for a consensus listing every node, with every node serving.
    pub async fn wait_formed(
        &self,
        http: &reqwest::Client,
        spinner: &ProgressBar,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let verifier = self.verifier();
        let deadline = Instant::now() + timeout;
        let nodes = self.plan.nodes.len();
        loop {
            let mut listed = 0;
            if let Ok(r) = http
                .get(api::url(&self.authorities[0].1.url, api::DOCUMENT_CURRENT))
                .send()
                .await
                && let Ok(bytes) = r.bytes().await
                && let Ok(doc) = verifier.verify_bytes(&bytes, None, unix_ms())
            {
                listed = doc.body.mixes().count() + doc.body.gateways.len();
            }
            let mut healthy = 0;
            for node in &self.plan.nodes {
                if let Ok(r) = http
                    .get(format!("http://{}{}", node.metrics, api::HEALTH))
                    .send()
                    .await
                    && r.status().is_success()
                {
                    healthy += 1;
                }
            }
            spinner.set_message(format!(
                "waiting for the consensus: {listed}/{nodes} nodes listed, {healthy} serving"
            ));
            if listed == nodes && healthy == nodes {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the network did not form in time");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
