//! The programs' `init` commands, as an operator or a script runs them:
//! `--json` says what was made in a form tools read, and the files made are
//! the ones the programs then load.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::process::Command;

/// A program built next to the launcher.
fn program(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_aegis-localnet"))
        .parent()
        .unwrap()
        .join(name)
}

fn run_json(name: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(program(name)).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn init_with_json_reports_the_authority_and_the_node_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let authority_dir = dir.path().join("a");
    let made = run_json(
        "aegis-dir",
        &[
            "init",
            "--data-dir",
            authority_dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:7911",
            "--peer",
            &format!("http://127.0.0.1:7912={}", "b2".repeat(32)),
            "--peer",
            &format!("http://127.0.0.1:7913/={}", "b3".repeat(32)),
            "--json",
        ],
    );
    let config =
        aegis_directory::config::Config::load(&PathBuf::from(made["config"].as_str().unwrap()))
            .unwrap();
    assert_eq!(made["url"], "http://127.0.0.1:7911");
    let peers: Vec<(&str, &str)> = config
        .peers
        .iter()
        .map(|p| (p.name.as_str(), p.authority.url.as_str()))
        .collect();
    assert_eq!(peers.len(), 2);
    assert_eq!(peers[0], ("127.0.0.1:7912", "http://127.0.0.1:7912"));
    assert_eq!(config.peers[1].authority.public_key, [0xb3; 32]);
    let key =
        aegis_directory::config::load_key(&config.data_dir.join(aegis_directory::config::KEY_FILE))
            .unwrap();
    assert_eq!(
        made["public_key"],
        hex::encode(key.verifying_key().to_bytes())
    );

    let authority = format!(
        "{}={}",
        made["url"].as_str().unwrap(),
        made["public_key"].as_str().unwrap()
    );
    let node_dir = dir.path().join("m");
    let made = run_json(
        "aegis-node",
        &[
            "init",
            "--data-dir",
            node_dir.to_str().unwrap(),
            "--role",
            "gateway",
            "--listen",
            "/ip4/127.0.0.1/tcp/4111",
            "--authority",
            &authority,
            "--json",
        ],
    );
    let node =
        aegis_node::NodeConfig::load(&PathBuf::from(made["config"].as_str().unwrap())).unwrap();
    assert_eq!(node.role, aegis_directory::Role::Gateway);
    assert_eq!(node.authorities.len(), 1);
    let key = aegis_node::node::load_or_create_identity(&node).unwrap();
    assert_eq!(
        made["identity"],
        hex::encode(key.verifying_key().to_bytes())
    );

    // A second init over the same folder refuses, and says so.
    let again = Command::new(program("aegis-node"))
        .args([
            "init",
            "--data-dir",
            node_dir.to_str().unwrap(),
            "--role",
            "mix",
        ])
        .args(["--authority", &authority, "--json"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}
