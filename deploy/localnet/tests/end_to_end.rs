//! The local network as separate processes: authorities, three mix layers,
//! gateways and two clients; every message sent is delivered exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn every_message_is_delivered_exactly_once() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_aegis-localnet"))
        .args([
            "--no-build",
            "--authorities",
            "3",
            "--mixes-per-layer",
            "2",
            "--gateways",
            "2",
            "--epoch-ms",
            "4000",
            "--message-interval",
            "0.5",
            "--until",
            "8",
            "--duration",
            "150",
        ])
        .output()
        .expect("the launcher runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "launcher failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.contains("duplicates 0"), "{last}");
    assert!(started.elapsed() < Duration::from_secs(200));
}
