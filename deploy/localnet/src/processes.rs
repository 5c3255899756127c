//! Starting, stopping and faulting the network's processes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

pub struct Proc {
    /// Its name in logs and faults.
    pub name: String,
    /// The running process.
    pub child: Child,
    /// How to start it again (logged processes only).
    pub command: Option<(PathBuf, Vec<String>)>,
}

/// Every child process; stopped with SIGTERM, then killed.
#[derive(Default)]
pub struct Procs(pub Vec<Proc>);

impl Procs {
    /// Fails if a process that should be running has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for p in &mut self.0 {
            if let Ok(Some(status)) = p.child.try_wait() {
                bail!("{} exited unexpectedly ({status})", p.name);
            }
        }
        Ok(())
    }

    pub async fn stop_all(&mut self) {
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

pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("no directory for this program")
}

pub fn build_binaries() -> anyhow::Result<()> {
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

pub async fn run_to_end(
    bin: &Path,
    args: &[String],
    env: &[(&str, &str)],
) -> anyhow::Result<String> {
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
pub fn printed(out: &str, label: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|v| v.trim().to_owned())
}

pub fn spawn_logged(
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
pub enum Fault {
    Stop,
    Kill,
    Restart,
    /// SIGKILL, then start again (a crash and a supervisor's restart).
    KillRestart,
}

pub async fn inject(
    procs: &mut Procs,
    name: &str,
    fault: Fault,
    logs: &Path,
) -> anyhow::Result<()> {
    let index = procs
        .0
        .iter()
        .position(|p| p.name == name)
        .with_context(|| format!("no process {name}"))?;
    let mut proc = procs.0.remove(index);
    match fault {
        Fault::Kill | Fault::KillRestart => {
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
    if let (Fault::Restart | Fault::KillRestart, Some((bin, args))) = (fault, proc.command) {
        let log_name = format!("{name}-restarted");
        spawn_logged(procs, &log_name, &bin, &args, logs)?;
        if let Some(p) = procs.0.last_mut() {
            p.name = name.to_owned();
        }
    }
    Ok(())
}
