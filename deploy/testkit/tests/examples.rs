//! The example configurations in `deploy/examples/` are what the programs
//! load: each parses and passes the programs' own checks, so an example
//! never drifts from the configuration format.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use aegis_directory::Role;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

#[test]
fn the_authority_example_loads() {
    let config = aegis_directory::config::Config::load(&example("aegis-dir.toml")).unwrap();
    assert_eq!(
        config.peers.len(),
        2,
        "two peers of a three-authority network"
    );
    assert!(matches!(
        config.admission,
        aegis_directory::Admission::Allowlist { .. }
    ));
}

#[test]
fn the_node_examples_load() {
    for (file, role) in [
        ("aegis-node-mix.toml", Role::Mix),
        ("aegis-node-gateway.toml", Role::Gateway),
    ] {
        let config = aegis_node::NodeConfig::load(&example(file)).unwrap();
        assert_eq!(config.role, role, "{file}");
        assert_eq!(config.authorities.len(), 3, "{file}");
        assert!(
            !config.public_addresses.is_empty(),
            "{file}: a dialable address"
        );
    }
}

#[test]
fn every_file_in_the_examples_folder_is_one_of_these() {
    let mut names: Vec<String> = std::fs::read_dir(example(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "aegis-dir.toml",
            "aegis-node-gateway.toml",
            "aegis-node-mix.toml"
        ]
    );
}
