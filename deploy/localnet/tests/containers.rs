//! The test network in containers (`deploy/docker/compose.yml`, images from
//! `deploy/docker/build-images.sh`): every authority, node and client in a
//! container of its own with its own address on a private Docker network.
//! Messages flow exactly once while a mix container is killed and the first
//! client's gateway is cut off the network and connected again; afterwards
//! nothing of the network is left in Docker.
//!
//! Needs a Docker engine and Compose. Where there is none, the test fails
//! and says so; `AEGIS_SKIP_CONTAINERS=1` skips it explicitly.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

/// The compose project the launcher runs (`network::PROJECT`).
const PROJECT: &str = "aegislink-localnet";

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs")
}

#[test]
fn a_network_in_containers_delivers_every_message_once_through_a_mix_kill_and_a_gateway_cut() {
    if std::env::var_os("AEGIS_SKIP_CONTAINERS").is_some() {
        eprintln!("skipped: AEGIS_SKIP_CONTAINERS is set");
        return;
    }
    assert!(
        Command::new("docker")
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success()),
        "this test needs a running Docker engine (set AEGIS_SKIP_CONTAINERS=1 to skip it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    // `AEGIS_TEST_PACKET_FORMAT=pq` runs the network in the post-quantum
    // format, as it does the rest of the system suite.
    let format_args = aegis_testkit::test_packet_format()
        .map(|f| vec!["--packet-format", f.name()])
        .unwrap_or_default();
    let output = Command::new(env!("CARGO_BIN_EXE_aegis-localnet"))
        .args(format_args)
        .args([
            "--containers",
            "--no-build",
            "--report",
            report.to_str().unwrap(),
            "--epoch-ms",
            "4000",
            "--message-interval",
            "0.5",
            "--until",
            "20",
            "--duration",
            "240",
            "--kill-mix-at",
            "4",
            "--disconnect-gateway-at",
            "8",
            "--disconnect-for",
            "12",
        ])
        .output()
        .expect("the launcher runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "launcher failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("fault: Kill mix-0 (container)"), "{stderr}");
    assert!(stderr.contains("cut off the network"), "{stderr}");
    assert!(stderr.contains("connected again"), "{stderr}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["duplicates"], 0, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(report["received"].as_u64().unwrap() >= 20, "{report}");
    assert!(report["delivered"].as_u64().unwrap() >= 20, "{report}");

    // Torn down: no container and no network of the project remain.
    let label = format!("label=com.docker.compose.project={PROJECT}");
    let left = docker(&["ps", "--all", "--quiet", "--filter", &label]);
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "containers left behind"
    );
    let network = docker(&["network", "inspect", PROJECT]);
    assert!(!network.status.success(), "the network was left behind");
}
