//! The local network as separate processes: authorities, three mix layers,
//! gateways and two clients; every message sent is delivered exactly once,
//! under faults too, and a wire observer sees one size and one schedule.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::sync::Mutex;

/// One network at a time: each is thirteen processes, and launchers running
/// side by side pick their loopback ports without knowing of each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs the launcher until 12 messages arrived; returns its JSON report.
fn launch(extra: &[&str], message_interval: &str) -> serde_json::Value {
    launch_until(extra, message_interval, "12")
}

/// [`launch`], ending once `until` messages were delivered.
fn launch_until(extra: &[&str], message_interval: &str, until: &str) -> serde_json::Value {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut args = vec![
        "--report",
        report.to_str().unwrap(),
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
        until,
        "--duration",
        "170",
    ];
    args.extend_from_slice(extra);
    // `AEGIS_TEST_PACKET_FORMAT=pq` runs every network of the suite in the
    // post-quantum format (the tests named for it do so always).
    if let Some(format) = aegis_testkit::test_packet_format()
        && !extra.contains(&"--packet-format")
    {
        args.extend(["--packet-format", format.name()]);
    }
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
    if extra.iter().any(|a| a.ends_with("-at")) {
        assert!(
            stderr.contains("fault:"),
            "the fault was injected: {stderr}"
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["duplicates"], 0, "{report}");
    assert!(
        report["received"].as_u64().unwrap() >= until.parse::<u64>().unwrap(),
        "{report}"
    );
    assert_eq!(report["failed"], 0, "{report}");
    report
}

/// [`launch`] with a wire observer that sees `quiet_for` seconds of cover
/// only, then a message every half second; returns what it saw.
fn observe(extra: &[&str], quiet_for: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("observer.json");
    let mut args = extra.to_vec();
    args.extend([
        "--observe",
        path.to_str().unwrap(),
        "--quiet-for",
        quiet_for,
    ]);
    launch(&args, "0.5");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The units a tap's wire carried both ways, once it is checked that after
/// the handshakes no more than a few messages per connection (stream
/// negotiations) were of another size.
fn regular_units(link: &serde_json::Value) -> u64 {
    let connections = link["connections"].as_u64().unwrap();
    let mut units = 0;
    for direction in ["to_listener", "to_dialer"] {
        let d = &link[direction];
        units += d["units"].as_u64().unwrap();
        assert!(
            d["irregular"].as_u64().unwrap() <= 4 * connections,
            "{}: messages of other sizes: {link}",
            link["label"]
        );
    }
    units
}

#[test]
fn every_message_is_delivered_exactly_once() {
    launch(&[], "0.5");
}

#[test]
fn every_message_is_delivered_exactly_once_through_timed_pool_mixes() {
    launch(&["--mixing", "timed-pool"], "0.5");
}

#[test]
fn a_mix_killed_during_traffic_loses_nothing() {
    launch(&["--kill-mix-at", "2"], "0.5");
}

#[test]
fn a_packet_replayed_after_its_mix_was_killed_is_refused() {
    // The mix saves its replay filter only once a minute; the packet is
    // replayed a few seconds after the kill, so only the tag journal can
    // refuse it.
    let report = launch(&["--replay-after-kill-at", "2"], "0.5");
    let replays = report["node_drops"]["replay"].as_u64().unwrap_or(0);
    assert!(replays >= 1, "{report}");
}

#[test]
fn a_descriptor_flood_from_strangers_changes_nothing() {
    // The authorities list only the launcher's nodes: every stranger's
    // descriptor is refused before its signature is checked, and the
    // messages flow as before.
    let report = launch(&["--descriptor-flood-at", "1"], "0.5");
    let not_allowed = report["descriptors_refused"]["not_allowed"]
        .as_u64()
        .unwrap_or(0);
    // 500 descriptors to each of the three authorities.
    assert_eq!(not_allowed, 1_500, "{report}");
}

#[test]
fn a_rogue_authority_with_a_stolen_key_changes_nothing() {
    // One message a second over several 4 s epochs; 2 s in, authority-0's
    // key answers as a rogue and mix-1 restarts while it does.
    let report = launch(&["--rogue-authority-at", "2"], "1");
    let rogue = &report["rogue_authority"];
    assert_eq!(rogue["restarted_on_honest_clock"], true, "{report}");
    assert!(
        rogue["rogue_clocks_served"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert!(
        rogue["forged_documents_served"].as_u64().unwrap() >= 1,
        "{report}"
    );
}

/// The arguments of both n−1 runs: loops at 4/s, so the alarm's warm-up
/// (40 loops) is over in 10 s; messages for about 40 s.
const LOOPS_FAST: &[&str] = &["--lambda-m", "4"];

/// Whether this machine lets the launcher make namespaces of its own (root
/// and `unshare`); where it cannot, the test says so and stops, as the
/// container test does without a Docker engine.
fn can_unshare() -> bool {
    let can = Command::new("unshare")
        .args(["--net", "--mount", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !can {
        eprintln!(
            "SKIPPED: this machine cannot create a network namespace (root and unshare needed)"
        );
    }
    can
}

#[test]
fn with_every_host_in_its_own_namespace_a_gateway_cut_off_and_back_loses_nothing() {
    if !can_unshare() {
        return;
    }
    // Each authority, node and client has its own address on a private
    // bridge; 3 s in, the first client's gateway is cut off for 10 s.
    let report = launch(
        &[
            "--netns",
            "--disconnect-gateway-at",
            "3",
            "--disconnect-for",
            "10",
        ],
        "0.5",
    );
    assert_eq!(report["failed"], 0, "{report}");
}

#[test]
fn a_network_started_again_in_its_folder_keeps_its_keys_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("net");
    let folder_arg = folder.to_str().unwrap();
    launch_until(&["--dir", folder_arg], "0.5", "6");
    let plan = std::fs::read_to_string(folder.join("network.json")).unwrap();
    assert!(folder.join("alice").is_dir(), "alice's profile is kept");
    // The same folder again: the same network (keys, genesis, profiles and
    // contacts), which carries messages again.
    launch_until(&["--dir", folder_arg], "0.5", "6");
    assert_eq!(
        std::fs::read_to_string(folder.join("network.json")).unwrap(),
        plan,
        "the plan is reused, not remade"
    );
}

#[test]
fn an_n_minus_one_attack_on_a_mix_raises_its_loop_alarm_and_loses_no_message() {
    // Every link between a layer-2 mix and layer 1 is cut 15 s in, for
    // 30 s: its loops, which come home through layer 1, stop coming back.
    // Its alarm must be raised within 30 s (a 10 s loop deadline, then
    // enough lost loops to be implausible under 5 % loss), and
    // retransmission still delivers every message exactly once.
    // The fault needs a network namespace of the launcher's own.
    if !can_unshare() {
        return;
    }
    let mut args = LOOPS_FAST.to_vec();
    args.extend(["--n-minus-one-at", "15"]);
    let report = launch_until(&args, "0.5", "80");
    let n1 = &report["n_minus_one"];
    assert_eq!(n1["cut_for_s"], 30.0, "{report}");
    let after = n1["alarm_after_s"].as_f64();
    assert!(after.is_some_and(|s| s <= 30.0), "{report}");
    assert!(report["loop_alarms"].as_u64().unwrap() >= 1, "{report}");
}

#[test]
fn a_clean_run_as_long_as_the_n_minus_one_run_raises_no_loop_alarm() {
    let report = launch_until(LOOPS_FAST, "0.5", "80");
    assert_eq!(report["loop_alarms"], 0, "{report}");
}

#[test]
fn a_gateway_restarted_during_traffic_keeps_its_messages() {
    launch(&["--restart-gateway-at", "2"], "0.5");
}

#[test]
fn a_flood_of_garbage_and_replays_at_a_mix_is_counted_while_messages_flow() {
    let report = launch(&["--flood-at", "1"], "0.5");
    let count = |reason: &str| report["node_drops"][reason].as_u64().unwrap_or(0);
    // Replays are caught by the replay filter; random frames fail the
    // header MAC. Either may also meet a full ingress queue first.
    assert!(count("replay") > 100, "{report}");
    assert!(count("bad_header") > 100, "{report}");
}

#[test]
fn one_authority_stopped_while_epochs_rotate() {
    // One message a second: the run spans several 4 s epochs, each with a
    // consensus made by the two remaining authorities and new Sphinx keys.
    launch(&["--stop-authority-at", "1"], "1");
}

#[test]
fn in_the_post_quantum_format_a_mix_killed_during_traffic_loses_nothing() {
    launch(&["--packet-format", "pq", "--kill-mix-at", "2"], "0.5");
}

#[test]
fn in_the_post_quantum_format_a_packet_replayed_after_its_mix_was_killed_is_refused() {
    let report = launch(
        &["--packet-format", "pq", "--replay-after-kill-at", "2"],
        "0.5",
    );
    let replays = report["node_drops"]["replay"].as_u64().unwrap_or(0);
    assert!(replays >= 1, "{report}");
}

#[test]
fn in_the_post_quantum_format_every_wire_carries_units_of_the_kem_packet_size() {
    let report = observe(&["--packet-format", "pq"], "5");
    // Between nodes a unit is one link frame; between a client and its
    // gateway one length-prefixed access cell holding such a frame.
    let geometry = aegis_mix_packet::Geometry::PQ;
    let frame = geometry.frame_len() as u64;
    let cell = 4 + aegis_mix_packet::access::cell_len(geometry.frame_len()) as u64;
    let links = report["links"].as_array().unwrap();
    let mut units = 0;
    for link in links {
        let unit = link["unit"].as_u64().unwrap();
        let label = link["label"].as_str().unwrap();
        let client = label.starts_with("alice") || label.starts_with("bob");
        assert_eq!(unit, if client { cell } else { frame }, "{link}");
        units += regular_units(link);
    }
    assert!(units > 300, "the observer saw traffic: {units} units");
}

#[test]
fn a_wire_observer_sees_one_size_and_an_unchanged_schedule() {
    // Twenty seconds of cover only, then a message every half second.
    let report = observe(&[], "20");

    // Sizes: on every wire, after the connection's handshakes, each Noise
    // message carries whole units (link frames between nodes, access cells
    // between a client and its gateway) and yamux control frames, nothing
    // else — but for the protocol negotiation of a stream opened on an
    // existing connection (a few per connection at most).
    let links = report["links"].as_array().unwrap();
    assert_eq!(links.len(), 6 + 2 + 2, "a tap per node and per client");
    let mut units = 0;
    for link in links {
        units += regular_units(link);
        for direction in ["to_listener", "to_dialer"] {
            let d = &link[direction];
            // Stream negotiations are a few dozen bytes, never packet-sized.
            for len in d["irregular_lengths"].as_array().unwrap() {
                assert!(len.as_u64().unwrap() < 100, "{}: {link}", link["label"]);
            }
        }
    }
    assert!(units > 1_000, "the observer saw traffic: {units} units");

    // Schedule: each client emits at the same rate, with the same gaps,
    // whether or not it has messages: λP + λL + λD = 14 packets/s and three
    // pulls a second with the launcher's defaults (a pull of eight at least
    // twice as often as λP + λL = 12 packets/s fill the mailbox).
    for client in report["clients"].as_array().unwrap() {
        let quiet = client["quiet"]["rate"].as_f64().unwrap();
        let busy = client["busy"]["rate"].as_f64().unwrap();
        let expected = 17.0;
        for rate in [quiet, busy] {
            assert!(
                (rate - expected).abs() <= 0.25 * expected,
                "{client}: {rate}/s against {expected}/s"
            );
        }
        assert!(
            client["ks_distance"].as_f64().unwrap() < client["ks_critical"].as_f64().unwrap(),
            "{client}: the gaps between emissions changed with messages"
        );
        // Poisson streams: gaps as irregular as exponential ones (CV 1;
        // the pulls' fixed grid lowers it a little), and no phase on the
        // 1/14 s slot period (Rayleigh's test does not reject uniform
        // phases at the 0.1 % level).
        for window in ["quiet", "busy"] {
            let cv = client[window]["gap_cv"].as_f64().unwrap();
            assert!(cv > 0.75, "{client}: gap CV {cv} in the {window} window");
            let p = client[window]["phase_p"].as_f64().unwrap();
            assert!(p > 1e-3, "{client}: phases on the slot period, p = {p}");
        }
    }
}

#[test]
fn under_constant_rate_shaping_a_wire_observer_sees_fixed_intervals_with_or_without_messages() {
    let report = observe(&["--shaping", "constant-rate"], "20");
    // One packet every 1/14 s (λP + λL + λD = 14) and 3.5 pulls a second:
    // at a constant rate every idle slot is a loop, so the mailbox fills at
    // 14 packets a second and a pull of eight comes twice as often as that
    // needs. The units keep one phase on the 1/14 s slot period (a pull
    // leaves every fourth slot, with it): Rayleigh's test rejects uniform
    // phases far beyond the 0.1 % level, where Poisson streams do not (see
    // the test above). Gaps are one slot, or about 0 for the pull that
    // leaves with a slot (a fifth of the units), so their CV is
    // √(0.2 · 0.8) / 0.8 = 0.5 (exponential gaps: 1).
    for client in report["clients"].as_array().unwrap() {
        for window in ["quiet", "busy"] {
            let rate = client[window]["rate"].as_f64().unwrap();
            assert!((rate - 17.5).abs() <= 0.25 * 17.5, "{client}: {rate}/s");
            let p = client[window]["phase_p"].as_f64().unwrap();
            assert!(p < 1e-6, "{client}: no phase on the slot period, p = {p}");
            let cv = client[window]["gap_cv"].as_f64().unwrap();
            assert!(
                (cv - 0.5).abs() < 0.15,
                "{client}: gap CV {cv} in the {window} window"
            );
        }
        assert!(
            client["ks_distance"].as_f64().unwrap() < client["ks_critical"].as_f64().unwrap(),
            "{client}: the gaps between emissions changed with messages"
        );
    }
}
