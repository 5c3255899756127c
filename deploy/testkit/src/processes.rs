//! A network's programs as child processes: started with their output in
//! a log file, stopped with SIGTERM (then killed), faulted, restarted with
//! the same command. A process may run in a network namespace of its own
//! ([`Place::Namespace`]) or in a container ([`Place::Container`]), which
//! is how the launcher gives each host its own address.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How long a process gets to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(8);

/// Where a process runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// In the runner's own network namespace.
    Here,
    /// In the named network namespace (`ip netns exec NAME`).
    Namespace(String),
    /// In the running container with this id or name (`docker exec`),
    /// whose image holds the program under `/usr/local/bin`; the
    /// container's own environment applies.
    Container(String),
}

impl Place {
    /// A command running `bin` with `args` here or in the namespace.
    pub fn command(&self, bin: &Path, args: &[String]) -> Command {
        match self {
            Place::Here => {
                let mut command = Command::new(bin);
                command.args(args);
                command
            }
            Place::Namespace(name) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", name]).arg(bin).args(args);
                command
            }
            Place::Container(id) => {
                let program = bin.file_name().map_or_else(
                    || bin.to_path_buf(),
                    |name| Path::new("/usr/local/bin").join(name),
                );
                let mut command = Command::new("docker");
                command
                    .args(["exec", "--interactive", id])
                    .arg(program)
                    .args(args);
                command
            }
        }
    }
}

/// A started process.
pub struct Proc {
    /// Its name in logs and faults.
    pub name: String,
    /// The running process.
    pub child: Child,
    /// How to start it again (logged processes only).
    pub command: Option<Launch>,
}

/// What starts a logged process: where, which program, which arguments.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Where it runs.
    pub place: Place,
    /// The program.
    pub bin: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// Sends SIGTERM to `child`, if it still runs.
pub fn terminate(child: &Child) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

/// SIGTERM, then SIGKILL if `child` has not exited within [`STOP_GRACE`];
/// whether it stopped by itself.
pub async fn stop(child: &mut Child) -> bool {
    terminate(child);
    if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
        return true;
    }
    let _ = child.kill().await;
    false
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

    /// Stops every process: SIGTERM to all, then waits for each, killing
    /// those that do not stop in time.
    pub async fn stop_all(&mut self) {
        for p in &self.0 {
            terminate(&p.child);
        }
        for p in &mut self.0 {
            if tokio::time::timeout(STOP_GRACE, p.child.wait())
                .await
                .is_err()
            {
                eprintln!("{} did not stop in time; killing it", p.name);
                let _ = p.child.kill().await;
            }
        }
        self.0.clear();
    }

    /// Starts `launch` as `name`, its standard output and error in
    /// `logs/NAME.log`.
    pub fn spawn_logged(&mut self, name: &str, launch: Launch, logs: &Path) -> anyhow::Result<()> {
        let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
        let child = launch
            .place
            .command(&launch.bin, &launch.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.0.push(Proc {
            name: name.to_owned(),
            child,
            command: Some(launch),
        });
        Ok(())
    }

    /// Does `fault` to the process named `name`.
    pub async fn inject(&mut self, name: &str, fault: Fault, logs: &Path) -> anyhow::Result<()> {
        let index = self
            .0
            .iter()
            .position(|p| p.name == name)
            .with_context(|| format!("no process {name}"))?;
        let mut proc = self.0.remove(index);
        match fault {
            Fault::Kill | Fault::KillRestart => {
                let _ = proc.child.kill().await;
            }
            Fault::Stop | Fault::Restart => {
                stop(&mut proc.child).await;
            }
        }
        eprintln!("fault: {fault:?} {name}");
        if let (Fault::Restart | Fault::KillRestart, Some(launch)) = (fault, proc.command) {
            self.spawn_logged(&format!("{name}-restarted"), launch, logs)?;
            if let Some(p) = self.0.last_mut() {
                p.name = name.to_owned();
            }
        }
        Ok(())
    }
}

/// What a fault does to a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGTERM (then SIGKILL after [`STOP_GRACE`]).
    Stop,
    /// SIGKILL.
    Kill,
    /// A graceful stop, then start again.
    Restart,
    /// SIGKILL, then start again (a crash and a supervisor's restart).
    KillRestart,
}

/// The folder holding this program, where its sibling programs are built.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("no directory for this program")
}

/// Builds `aegis-dir`, `aegis-node` and `aegis` with the profile this
/// program was built with, when run by cargo (`CARGO` is set); else does
/// nothing.
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

/// Runs `bin` with `args` at `place` to its end; its standard output, or
/// an error with its standard error.
pub async fn run_to_end(
    place: &Place,
    bin: &Path,
    args: &[String],
    env: &[(&str, &str)],
) -> anyhow::Result<String> {
    let mut cmd = place.command(bin, args);
    cmd.stdin(Stdio::null());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stopped_process_gets_sigterm_and_a_restarted_one_runs_the_same_command() {
        let dir = tempfile::tempdir().unwrap();
        let mut procs = Procs::default();
        // A shell that says how it ended: SIGTERM is trapped and reported.
        let launch = Launch {
            place: Place::Here,
            bin: "sh".into(),
            args: vec![
                "-c".into(),
                "trap 'echo terminated; exit 0' TERM; echo started; while :; do sleep 0.05; done"
                    .into(),
            ],
        };
        procs.spawn_logged("p", launch, dir.path()).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        procs.inject("p", Fault::Restart, dir.path()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        procs.check_alive().unwrap();
        procs.stop_all().await;
        let first = std::fs::read_to_string(dir.path().join("p.log")).unwrap();
        assert_eq!(first, "started\nterminated\n");
        let second = std::fs::read_to_string(dir.path().join("p-restarted.log")).unwrap();
        assert_eq!(second, "started\nterminated\n");
    }

    /// The program and arguments `place` runs `bin ARG` with.
    fn command_line(place: &Place, bin: &str, arg: &str) -> Vec<String> {
        let command = place.command(Path::new(bin), &[arg.into()]);
        let std = command.as_std();
        std::iter::once(std.get_program())
            .chain(std.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_namespaced_command_runs_through_ip_netns_exec() {
        let place = Place::Namespace("aegis-m0".into());
        assert_eq!(
            command_line(&place, "/bin/aegis-node", "run"),
            ["ip", "netns", "exec", "aegis-m0", "/bin/aegis-node", "run"]
        );
    }

    #[test]
    fn a_command_in_a_container_runs_the_image_s_program_through_docker_exec() {
        let place = Place::Container("c0ffee".into());
        assert_eq!(
            command_line(&place, "/build/debug/aegis", "serve"),
            [
                "docker",
                "exec",
                "--interactive",
                "c0ffee",
                "/usr/local/bin/aegis",
                "serve"
            ]
        );
    }
}
