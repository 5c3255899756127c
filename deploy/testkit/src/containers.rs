//! Hosts in containers: a plan's authorities, nodes and clients each in a
//! container of its own with its planned address on a private Docker
//! network, started from `deploy/docker/compose.yml` with the images
//! `deploy/docker/build-images.sh` makes (no registry needed).
//!
//! The compose file runs one shape — three authorities, six mixes, two
//! gateways, the clients `alice` and `bob` — and takes everything that
//! differs between plans (the plan's folder, its subnet, the authorities'
//! keys, the gateways' identities, the owner of the files) from the
//! environment file [`Compose::write`] puts beside the plan.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, bail};

use crate::plan::{Hosts, NetworkPlan};
use crate::processes::{Fault, Place, STOP_GRACE, run_to_end};

/// The compose file of the test network.
pub const COMPOSE_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker/compose.yml");
/// The script that builds the images.
pub const BUILD_IMAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker/build-images.sh");
/// The environment file written beside a plan.
pub const COMPOSE_ENV: &str = "compose.env";
/// The clients the compose file runs, in order: client `i` holds its
/// mailbox at gateway `i` and has the plan's client address `i`.
pub const CLIENTS: [&str; 2] = ["alice", "bob"];
/// Authorities, mixes and gateways the compose file runs.
pub const SHAPE: (usize, usize, usize) = (3, 6, 2);

/// Builds `aegislink/{base,aegis-dir,aegis-node,aegis}:TAG` from the
/// programs in `bins`.
pub async fn build_images(bins: &Path, tag: &str) -> anyhow::Result<()> {
    let args = [
        BUILD_IMAGES.to_owned(),
        bins.display().to_string(),
        tag.to_owned(),
    ];
    run_to_end(&Place::Here, Path::new("bash"), &args, &[])
        .await
        .context("building the container images")
        .map(drop)
}

/// What a test network in containers is run with.
#[derive(Clone, Debug)]
pub struct Settings<'a> {
    /// The compose project, which names the containers and the network.
    pub project: &'a str,
    /// The images' tag.
    pub tag: &'a str,
    /// The clients' profile passphrase.
    pub passphrase: &'a str,
    /// Seconds between the clients' mailbox pulls.
    pub pull_interval: f64,
}

/// A test network run by Docker Compose.
#[derive(Debug)]
pub struct Compose {
    /// The compose program and its leading arguments (`docker compose`
    /// or `docker-compose`), found once.
    program: Vec<String>,
    project: String,
    env_file: PathBuf,
    /// The plan's folder: every client's folder is in it.
    dir: PathBuf,
    /// The services, with their planned addresses.
    services: Vec<(String, IpAddr)>,
    /// Services stopped by a fault and not started since.
    stopped: BTreeSet<String>,
}

impl Compose {
    /// Checks that `plan` is the shape the compose file runs, makes the
    /// clients' folders and writes the environment file for it in `dir`.
    /// The containers run as the owner of `dir`, so the plan's files stay
    /// theirs.
    pub fn write(plan: &NetworkPlan, dir: &Path, settings: &Settings) -> anyhow::Result<Compose> {
        let Settings {
            project,
            tag,
            passphrase,
            pull_interval,
        } = *settings;
        let Hosts::Subnet([a, b, c]) = plan.hosts else {
            bail!("containers need a plan with a subnet of its own");
        };
        let mixes = plan
            .nodes
            .iter()
            .filter(|n| n.role == aegis_directory::Role::Mix)
            .count();
        let shape = (plan.authorities.len(), mixes, plan.nodes.len() - mixes);
        if shape != SHAPE {
            bail!(
                "the compose file runs {} authorities, {} mixes and {} gateways; this plan has {}, {} and {}",
                SHAPE.0,
                SHAPE.1,
                SHAPE.2,
                shape.0,
                shape.1,
                shape.2
            );
        }
        let mut services = Vec::new();
        for (i, authority) in plan.authorities.iter().enumerate() {
            same_place(&authority.data_dir, dir, &authority.name)?;
            services.push((format!("authority-{i}"), authority.listen.ip()));
        }
        for node in &plan.nodes {
            same_place(&node.data_dir, dir, &node.name)?;
            services.push((node.name.clone(), node.listen.ip()));
        }
        for (i, client) in CLIENTS.iter().enumerate() {
            std::fs::create_dir_all(dir.join(client))?;
            services.push(((*client).to_owned(), plan.hosts.client_address(i)?));
        }
        let owner = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
        let mut env = vec![
            format!("COMPOSE_PROJECT_NAME={project}"),
            format!("AEGISLINK_NETWORK={project}"),
            format!("AEGISLINK_DIR={}", dir.display()),
            format!("AEGISLINK_PREFIX={a}.{b}.{c}"),
            format!("AEGISLINK_TAG={tag}"),
            format!("AEGISLINK_UID={}", owner.uid()),
            format!("AEGISLINK_GID={}", owner.gid()),
            format!("AEGISLINK_PASSPHRASE={passphrase}"),
            format!("AEGISLINK_PULL_INTERVAL={pull_interval}"),
        ];
        for (i, authority) in plan.trusted()?.iter().enumerate() {
            env.push(format!("AEGISLINK_AUTHORITY_{i}={authority}"));
        }
        for (i, gateway) in plan
            .nodes
            .iter()
            .filter(|n| n.role == aegis_directory::Role::Gateway)
            .enumerate()
        {
            env.push(format!("AEGISLINK_GATEWAY_{i}={}", gateway.identity));
        }
        let env_file = dir.join(COMPOSE_ENV);
        std::fs::write(&env_file, env.join("\n") + "\n")
            .with_context(|| format!("writing {}", env_file.display()))?;
        Ok(Compose {
            program: compose_program(),
            project: project.to_owned(),
            env_file,
            dir: dir.to_owned(),
            services,
            stopped: BTreeSet::new(),
        })
    }

    /// The command that runs this network's compose with `args`:
    /// `docker compose` where the plugin is installed, else the
    /// standalone `docker-compose`.
    pub fn command_line(&self, args: &[&str]) -> Vec<String> {
        let mut line = self.program.clone();
        line.extend(
            [
                "--env-file",
                &self.env_file.display().to_string(),
                "--project-name",
                &self.project,
                "--file",
                COMPOSE_FILE,
            ]
            .map(str::to_owned),
        );
        line.extend(args.iter().map(|a| (*a).to_owned()));
        line
    }

    async fn compose(&self, args: &[&str]) -> anyhow::Result<String> {
        let line = self.command_line(args);
        run(&line).await
    }

    /// Starts `services` (with what they depend on), waiting for the
    /// conditions the compose file names.
    pub async fn up(&self, services: &[&str]) -> anyhow::Result<()> {
        let mut args = vec!["up", "--detach", "--no-build"];
        args.extend_from_slice(services);
        self.compose(&args).await.map(drop)
    }

    /// The authorities and nodes, by service name.
    pub fn servers(&self) -> Vec<&str> {
        self.services
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| !CLIENTS.contains(name))
            .collect()
    }

    /// Client `name`'s folder (its profile is `profile` in it, as the
    /// compose file sets `AEGIS_PROFILE`).
    pub fn client_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The container running `service`.
    pub async fn container(&self, service: &str) -> anyhow::Result<String> {
        let id = self.compose(&["ps", "--quiet", service]).await?;
        let id = id.trim();
        if id.is_empty() {
            bail!("no container runs {service}");
        }
        Ok(id.to_owned())
    }

    /// Where `service`'s commands run: its container.
    pub async fn place(&self, service: &str) -> anyhow::Result<Place> {
        Ok(Place::Container(self.container(service).await?))
    }

    /// Does `fault` to `service`: SIGTERM with a grace period, SIGKILL, or
    /// either followed by a start, as a supervisor would.
    pub async fn inject(&mut self, service: &str, fault: Fault) -> anyhow::Result<()> {
        let grace = STOP_GRACE.as_secs().to_string();
        match fault {
            Fault::Stop => {
                self.compose(&["stop", "--timeout", &grace, service])
                    .await?;
            }
            Fault::Kill => {
                self.compose(&["kill", "-s", "SIGKILL", service]).await?;
            }
            Fault::Restart => {
                self.compose(&["restart", "--timeout", &grace, service])
                    .await?;
            }
            Fault::KillRestart => {
                self.compose(&["kill", "-s", "SIGKILL", service]).await?;
                self.compose(&["start", service]).await?;
            }
        }
        if matches!(fault, Fault::Stop | Fault::Kill) {
            self.stopped.insert(service.to_owned());
        }
        eprintln!("fault: {fault:?} {service} (container)");
        Ok(())
    }

    /// Cuts `service`'s container off the network, or connects it again
    /// with its planned address.
    pub async fn set_connected(&self, service: &str, connected: bool) -> anyhow::Result<()> {
        let id = self.container(service).await?;
        let ip = self
            .services
            .iter()
            .find(|(name, _)| name == service)
            .map(|(_, ip)| ip.to_string())
            .with_context(|| format!("no service {service}"))?;
        let line: Vec<String> = if connected {
            [
                "docker",
                "network",
                "connect",
                "--ip",
                &ip,
                &self.project,
                &id,
            ]
            .map(str::to_owned)
            .to_vec()
        } else {
            ["docker", "network", "disconnect", &self.project, &id]
                .map(str::to_owned)
                .to_vec()
        };
        run(&line).await.map(drop)
    }

    /// Fails if a service that should be running is not.
    pub async fn check_running(&self) -> anyhow::Result<()> {
        for (service, _) in &self.services {
            if self.stopped.contains(service) {
                continue;
            }
            let id = self.container(service).await?;
            let state = run(&[
                "docker".into(),
                "inspect".into(),
                "--format".into(),
                "{{.State.Status}} {{.State.ExitCode}}".into(),
                id,
            ])
            .await?;
            let state = state.trim();
            if !state.starts_with("running") {
                bail!("{service}'s container is not running ({state})");
            }
        }
        Ok(())
    }

    /// Writes every container's output to `path`.
    pub async fn save_logs(&self, path: &Path) -> anyhow::Result<()> {
        let text = self
            .compose(&["logs", "--no-color", "--timestamps"])
            .await?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Stops and removes every container and the network (the plan's
    /// files stay).
    pub async fn down(&self) -> anyhow::Result<()> {
        let grace = STOP_GRACE.as_secs().to_string();
        self.compose(&["down", "--remove-orphans", "--timeout", &grace])
            .await
            .map(drop)
    }
}

/// Whether `data_dir` is `dir/NAME`, the folder the compose file mounts.
fn same_place(data_dir: &Path, dir: &Path, name: &str) -> anyhow::Result<()> {
    if data_dir != dir.join(name) {
        bail!(
            "{name}'s folder is {}, not {}: the compose file mounts the plan's folder only",
            data_dir.display(),
            dir.join(name).display()
        );
    }
    Ok(())
}

/// `docker compose` where the plugin answers, else `docker-compose`.
fn compose_program() -> Vec<String> {
    let plugin = std::process::Command::new("docker")
        .args(["compose", "version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if plugin {
        vec!["docker".into(), "compose".into()]
    } else {
        vec!["docker-compose".into()]
    }
}

/// Runs `line` here to its end ([`run_to_end`]).
async fn run(line: &[String]) -> anyhow::Result<String> {
    let (program, args) = line.split_first().context("an empty command")?;
    run_to_end(&Place::Here, Path::new(program), args, &[]).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Shape;

    fn settings() -> Settings<'static> {
        Settings {
            project: "aegislink-test",
            tag: "t",
            passphrase: "pass",
            pull_interval: 0.5,
        }
    }

    fn shape() -> Shape {
        Shape {
            authorities: SHAPE.0,
            mixes: SHAPE.1,
            gateways: SHAPE.2,
            epoch_length_ms: 6_000,
        }
    }

    /// The compose file's services, addresses and mounts are the plan's:
    /// read from the file itself, not from this module.
    #[test]
    fn the_compose_file_runs_the_plan_it_is_written_for() {
        let dir = tempfile::tempdir().unwrap();
        let plan =
            NetworkPlan::create(dir.path(), shape(), Hosts::Subnet([10, 78, 0]), 1_000).unwrap();
        let compose = Compose::write(&plan, dir.path(), &settings()).unwrap();
        let env = std::fs::read_to_string(dir.path().join(COMPOSE_ENV)).unwrap();
        assert!(env.contains("AEGISLINK_PREFIX=10.78.0\n"), "{env}");
        assert!(
            env.contains(&format!("AEGISLINK_GATEWAY_1={}\n", plan.nodes[7].identity)),
            "{env}"
        );

        let file = std::fs::read_to_string(COMPOSE_FILE).unwrap();
        let file = file
            .replace("${AEGISLINK_PREFIX:-10.78.0}", "10.78.0")
            .replace("${AEGISLINK_DIR:?}", &dir.path().display().to_string());
        for (service, ip) in &compose.services {
            // The service's lines: from `  NAME:` to the next line indented
            // by two spaces or less.
            let header = format!("  {service}:");
            let body: String = file
                .lines()
                .skip_while(|line| *line != header)
                .skip(1)
                .take_while(|line| line.is_empty() || line.starts_with("   "))
                .map(|line| format!("{line}\n"))
                .collect();
            assert!(!body.is_empty(), "no service {service} in the compose file");
            assert!(
                body.contains(&format!("ipv4_address: {ip}\n")),
                "{service} at {ip}: {body}"
            );
            let folder = dir.path().join(service).display().to_string();
            assert!(
                body.contains(&format!("\"{folder}:{folder}\"")),
                "{service} mounts {folder}: {body}"
            );
            if let Some(i) = plan.node_named(service) {
                let config = plan.node_config_path(i).display().to_string();
                assert!(body.contains(&config), "{service} runs {config}: {body}");
            }
        }
        let mut servers = compose.servers();
        servers.sort_unstable();
        assert_eq!(servers.len(), 11);
    }

    #[test]
    fn a_plan_of_another_shape_or_on_loopback_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let loopback = NetworkPlan::create(dir.path(), shape(), Hosts::Loopback, 1_000).unwrap();
        assert!(Compose::write(&loopback, dir.path(), &settings()).is_err());
        let dir = tempfile::tempdir().unwrap();
        let small = Shape {
            mixes: 3,
            ..shape()
        };
        let plan =
            NetworkPlan::create(dir.path(), small, Hosts::Subnet([10, 78, 0]), 1_000).unwrap();
        let error = Compose::write(&plan, dir.path(), &settings()).unwrap_err();
        assert!(error.to_string().contains("6 mixes"), "{error}");
    }
}
