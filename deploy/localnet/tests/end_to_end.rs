//! The local network as separate processes: authorities, three mix layers,
//! gateways and two clients; every message sent is delivered exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

fn launch(extra: &[&str], message_interval: &str) {
    let mut args = vec![
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
        message_interval,
        "--until",
        "12",
        "--duration",
        "170",
    ];
    args.extend_from_slice(extra);
    let output = Command::new(env!("CARGO_BIN_EXE_aegis-localnet"))
        .args(&args)
        .output()
        .expect("the launcher runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "launcher failed ({extra:?})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    if !extra.is_empty() {
        assert!(
            stderr.contains("fault:"),
            "the fault was injected: {stderr}"
        );
    }
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.contains("duplicates 0"), "{last}");
}

#[test]
fn every_message_is_delivered_exactly_once() {
    launch(&[], "0.5");
}

#[test]
fn a_mix_killed_during_traffic_loses_nothing() {
    launch(&["--kill-mix-at", "2"], "0.5");
}

#[test]
fn a_gateway_restarted_during_traffic_keeps_its_messages() {
    launch(&["--restart-gateway-at", "2"], "0.5");
}

#[test]
fn one_authority_stopped_while_epochs_rotate() {
    // One message a second: the run spans several 4 s epochs, each with a
    // consensus made by the two remaining authorities and new Sphinx keys.
    launch(&["--stop-authority-at", "1"], "1");
}
