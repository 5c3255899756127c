//! The measured node as a process of its own, where it runs, what CPU time
//! it used, and what its `/metrics` say.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::*;

/// Places a process (`all_threads`) or one thread on the CPUs in `list`
/// (taskset's syntax, such as `1-3`).
pub(crate) fn place(id: u32, list: &str, all_threads: bool) {
    let mut command = std::process::Command::new("taskset");
    if all_threads {
        command.arg("-a");
    }
    let status = command
        .args(["-p", "-c", list, &id.to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("taskset (util-linux) is needed to place the node on its own cores");
    assert!(status.success(), "taskset -p -c {list} {id} failed");
}

/// The calling thread's id.
pub(crate) fn thread_id() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").unwrap();
    link.file_name().unwrap().to_str().unwrap().parse().unwrap()
}

/// A thread that measures the bare rate where it is told to run.
pub(crate) struct Prober {
    requests: std::sync::mpsc::Sender<(String, std::sync::mpsc::Sender<f64>)>,
}

impl Prober {
    pub(crate) fn start(bare: Bare) -> Prober {
        let (requests, rx) = std::sync::mpsc::channel::<(String, std::sync::mpsc::Sender<f64>)>();
        std::thread::spawn(move || {
            let me = thread_id();
            while let Ok((cpus, reply)) = rx.recv() {
                place(me, &cpus, false);
                let _ = reply.send(bare_unwrap_rate(&bare, PROBE));
            }
        });
        Prober { requests }
    }

    /// The bare rate of one thread on `cpus`, measured now for [`PROBE`].
    pub(crate) async fn measure(&self, cpus: &str) -> f64 {
        let (tx, rx) = std::sync::mpsc::channel();
        self.requests.send((cpus.to_owned(), tx)).unwrap();
        tokio::task::spawn_blocking(move || rx.recv().unwrap())
            .await
            .unwrap()
    }
}

/// CPU seconds used so far by the threads of process `pid` whose name
/// starts with `prefix` (all threads for an empty prefix), from the
/// scheduler's nanosecond count of each thread's time on a CPU.
pub(crate) fn cpu_seconds(pid: u32, prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return f64::NAN;
    };
    let mut nanos = 0u64;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let schedstat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        nanos += schedstat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    nanos as f64 / 1e9
}

pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The measured node, running as its own `aegis-node` process.
pub(crate) struct NodeProcess {
    child: tokio::process::Child,
    pub(crate) pid: u32,
    metrics_url: String,
    http: reqwest::Client,
}

impl NodeProcess {
    /// Starts `aegis-node run` from the configuration written into the
    /// node's data directory, on `cpus` if given, and waits until it holds
    /// the consensus of `epoch`.
    pub(crate) async fn start(config: &NodeConfig, cpus: Option<&str>, epoch: u64) -> NodeProcess {
        let path = config.data_dir.join("aegis-node.toml");
        std::fs::write(&path, config.to_documented_toml().unwrap()).unwrap();
        let binary = env!("CARGO_BIN_EXE_aegis-node");
        let mut command = match cpus {
            Some(list) => {
                let mut c = tokio::process::Command::new("taskset");
                c.args(["-c", list, binary]);
                c
            }
            None => tokio::process::Command::new(binary),
        };
        let log = std::fs::File::create(config.data_dir.join("node.log")).unwrap();
        let child = command
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let node = NodeProcess {
            child,
            pid,
            metrics_url: format!("http://{}/metrics", config.metrics_listen),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(m) = node.scrape().await
                && m.value("aegis_node_consensus_epoch").unwrap_or(0) >= epoch
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the node process did not take up the consensus; see {}",
                config.data_dir.join("node.log").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node
    }

    pub(crate) async fn scrape(&self) -> Option<aegis_node::metrics::MetricsText> {
        let response = self.http.get(&self.metrics_url).send().await.ok()?;
        Some(aegis_node::metrics::MetricsText(
            response.text().await.ok()?,
        ))
    }

    /// Stops the node as an operator would (SIGTERM), so it writes its
    /// keys and replay filters before the next placement starts it again.
    pub(crate) async fn stop(mut self) {
        aegis_testkit::processes::terminate(&self.child);
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
