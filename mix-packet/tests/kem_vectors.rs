//! The KEM packet format's test vector (`tests/vectors/kem-packet.txt`):
//! one packet of the post-quantum geometry, built from a seeded RNG over
//! five nodes with fixed keys, and what each hop makes of it. Another
//! implementation checks itself against the file: the hop secrets and
//! header bytes let it verify its header processing without an ML-KEM of
//! its own (`scripts/check_kem_vector.py` does, in Python).
//!
//! `AEGIS_WRITE_VECTORS=1 cargo test -p aegis-mix-packet --test kem_vectors`
//! rewrites the file after a deliberate format change.

#![allow(clippy::unwrap_used, missing_docs)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use aegis_mix_packet::kem::HybridSecret;
use aegis_mix_packet::{
    Destination, Geometry, Hop, HopDelays, MailboxId, NodeId, Processed, ReplyBlock, Route,
    SphinxPublicKey, SphinxSecret, peel_hybrid,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/kem-packet.txt");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds the vector's packet and writes down every input and every hop's
/// result, in the file's format.
fn vector() -> String {
    let geometry = Geometry::PQ;
    let mut out = String::new();
    writeln!(
        out,
        "# KEM packet format, version 1: one packet of geometry {} (header {} bytes, payload {}).",
        geometry.name,
        geometry.header_len(),
        geometry.payload_len
    )
    .unwrap();
    writeln!(
        out,
        "# Built by ReplyBlock::new + wrap from ChaCha20Rng::from_seed(rng_seed); draws in order:"
    )
    .unwrap();
    writeln!(
        out,
        "# delivery tag (16), then per hop the X-Wing eseed (64), then the last hop's padding."
    )
    .unwrap();
    writeln!(
        out,
        "# Per hop: the node's X-Wing seed and id, the shared secret its decapsulation gives,"
    )
    .unwrap();
    writeln!(
        out,
        "# what the hop reads, and SHA-256 of the packet it sends on (or of the final payload)."
    )
    .unwrap();
    let seed = [0x5a; 32];
    writeln!(out, "rng_seed = {}", hex(&seed)).unwrap();
    let nodes: Vec<(NodeId, HybridSecret)> = (1..=5u8)
        .map(|i| (NodeId([0x10 + i; 32]), HybridSecret::from_seed(&[i; 32])))
        .collect();
    let hops: Vec<Hop> = nodes
        .iter()
        .map(|(id, key)| Hop {
            kem_key: Some(Arc::new(key.public().clone())),
            ..Hop::sphinx(*id, SphinxPublicKey::from(&SphinxSecret::from([0u8; 32])))
        })
        .collect();
    let route = Route::new(hops, &geometry).unwrap();
    let delays = HopDelays::fixed(&(1..=5).map(Duration::from_millis).collect::<Vec<_>>());
    let mailbox = MailboxId([0xaa; 32]);
    let view: Vec<u8> = (0..geometry.payload_len).map(|i| (i % 251) as u8).collect();
    writeln!(out, "destination = {}", hex(&mailbox.0)).unwrap();
    writeln!(
        out,
        "payload = (i mod 251) for i in 0..{}",
        geometry.payload_len
    )
    .unwrap();
    let mut rng = ChaCha20Rng::from_seed(seed);
    let block = ReplyBlock::new(
        &mut rng,
        &geometry,
        &route,
        &delays,
        Destination::Mailbox(mailbox),
    )
    .unwrap();
    let mut packet = block.wrap(&geometry, &view).unwrap();
    writeln!(out, "packet_sha256 = {}", hex(&Sha256::digest(&packet))).unwrap();
    writeln!(out, "header = {}", hex(&packet[..geometry.header_len()])).unwrap();
    for (i, (id, key)) in nodes.iter().enumerate() {
        writeln!(out).unwrap();
        writeln!(out, "hop = {i}").unwrap();
        writeln!(out, "node_seed = {}", hex(key.seed())).unwrap();
        writeln!(out, "node_id = {}", hex(&id.0)).unwrap();
        let mut ct = [0u8; aegis_mix_packet::kem::xwing::CIPHERTEXT_LEN];
        ct.copy_from_slice(&packet[..aegis_mix_packet::kem::xwing::CIPHERTEXT_LEN]);
        writeln!(
            out,
            "shared_secret = {}",
            hex(key.decapsulate(&ct).as_slice())
        )
        .unwrap();
        let peeled = peel_hybrid(&geometry, &packet, key).unwrap();
        writeln!(out, "replay_tag = {}", hex(&peeled.replay_tag().0)).unwrap();
        match peeled.unwrap().unwrap() {
            Processed::Forward {
                next_hop,
                delay,
                packet: next,
                ..
            } => {
                writeln!(out, "next_hop = {}", hex(&next_hop.0)).unwrap();
                writeln!(out, "delay_ns = {}", delay.as_nanos()).unwrap();
                writeln!(out, "out_sha256 = {}", hex(&Sha256::digest(&next))).unwrap();
                packet = next;
            }
            Processed::Final {
                destination,
                delivery_tag,
                payload,
            } => {
                let Destination::Mailbox(m) = destination else {
                    panic!("the vector ends at a mailbox")
                };
                writeln!(out, "final_destination = {}", hex(&m.0)).unwrap();
                writeln!(out, "delivery_tag = {}", hex(&delivery_tag)).unwrap();
                assert_eq!(payload, view, "the last hop holds the sender's view");
                writeln!(out, "payload_sha256 = {}", hex(&Sha256::digest(&payload))).unwrap();
            }
        }
    }
    out
}

#[test]
fn the_kem_packet_matches_its_stored_vector() {
    let built = vector();
    if std::env::var_os("AEGIS_WRITE_VECTORS").is_some() {
        std::fs::write(PATH, &built).unwrap();
    }
    let stored = std::fs::read_to_string(PATH).unwrap();
    assert!(
        built == stored,
        "the KEM packet format changed: compare with {PATH} and bump kem::FORMAT_VERSION if it is meant to"
    );
}

/// The vector agrees with a second implementation of the header's
/// processing, written in Python from docs/protocol.md
/// (`scripts/check_kem_vector.py`; Debian's python3-cryptography gives it
/// ChaCha20).
#[test]
fn a_second_implementation_processes_the_vectors_header() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/check_kem_vector.py"
    );
    let has_cryptography = |python: &str| {
        std::process::Command::new(python)
            .args(["-c", "import cryptography"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let python = ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| has_cryptography(p))
        .expect("python3 with the cryptography package (Debian: python3-cryptography)");
    let out = std::process::Command::new(python)
        .args([script, PATH])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
