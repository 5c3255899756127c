//! What the sparse post-quantum ratchet costs, against the Double Ratchet
//! alone, in one run: time per message (encrypt and decrypt, the ML-KEM
//! operations of each epoch spread over its messages), bytes per message
//! and fragments per message; and how many messages an epoch takes to
//! advance, by loss rate.
//!
//! Prints one JSON object. Run with
//! `cargo bench -p aegis-client --bench pq_ratchet`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use aegis_client::edge::pqxdh::Version;
use aegis_client::edge::ratchet::{Session, fresh_pair};
use aegis_client::edge::spqr::Section;
use aegis_client::envelope::pq_budget;
use aegis_mix_packet::Geometry;
use aegis_testkit::percentile;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Messages timed per version and block; the versions alternate in blocks.
const BLOCK: usize = 500;
const BLOCKS: usize = 6;
/// A short text message.
const TEXT: &[u8] = b"on my way, see you at eight at the usual place";

fn sessions(seed: u64, version: Version) -> (ChaCha20Rng, Session, Session) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (a, b) = fresh_pair(&mut rng, version).unwrap();
    (rng, a, b)
}

/// The post-quantum budget `conversation::seal` gives a plaintext.
fn budget(session: &Session, plaintext: &[u8]) -> usize {
    pq_budget(
        &Geometry::STANDARD,
        1 + session.overhead() + plaintext.len(),
    )
}

/// One message from `from` to `to`, timed: microseconds.
fn one(rng: &mut ChaCha20Rng, from: &mut Session, to: &mut Session) -> f64 {
    let budget = budget(from, TEXT);
    let start = Instant::now();
    let m = from.encrypt(rng, TEXT, budget).unwrap();
    to.decrypt(rng, &m).unwrap();
    start.elapsed().as_secs_f64() * 1e6
}

/// One message each way, timed: microseconds per message.
fn exchange(rng: &mut ChaCha20Rng, a: &mut Session, b: &mut Session) -> [f64; 2] {
    [one(rng, a, b), one(rng, b, a)]
}

/// Messages written (by a side chosen at random each time) until the
/// epoch both sides are in advances, each message lost with `loss`.
fn messages_per_epoch(seed: u64, loss: f64, shards: Option<usize>, epochs: u64) -> Vec<f64> {
    let (mut rng, mut a, mut b) = sessions(seed, Version::V2);
    let mut net = ChaCha20Rng::seed_from_u64(seed + 1);
    let first = a.encrypt(&mut rng, TEXT, 0).unwrap();
    b.decrypt(&mut rng, &first).unwrap();
    let (mut written, mut last, mut reached) = (0usize, 0usize, 0u64);
    let mut counts = Vec::new();
    while reached < epochs && written < 100_000 {
        let from_a = net.random::<bool>();
        let (from, to) = if from_a {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let budget = shards.map_or_else(|| budget(from, TEXT), Section::len_with);
        let m = from.encrypt(&mut rng, TEXT, budget).unwrap();
        written += 1;
        if net.random::<f64>() >= loss {
            to.decrypt(&mut rng, &m).unwrap();
        }
        let epoch = a.pq_epoch().unwrap().min(b.pq_epoch().unwrap());
        if epoch > reached {
            counts.push((written - last) as f64);
            last = written;
            reached = epoch;
        }
    }
    counts
}

fn main() {
    let geometry = Geometry::STANDARD;
    let per_fragment = geometry.fragment_data_len();
    let (mut rng1, mut a1, mut b1) = sessions(1, Version::V1);
    let (mut rng2, mut a2, mut b2) = sessions(2, Version::V2);
    let (mut v1, mut v2) = (Vec::new(), Vec::new());
    for _ in 0..BLOCKS {
        for _ in 0..BLOCK {
            v1.extend(exchange(&mut rng1, &mut a1, &mut b1));
        }
        for _ in 0..BLOCK {
            v2.extend(exchange(&mut rng2, &mut a2, &mut b2));
        }
    }
    v1.sort_by(f64::total_cmp);
    v2.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let median = |v: &[f64]| percentile(v, 0.5).unwrap_or(f64::NAN);
    let m1 = a1.encrypt(&mut rng1, TEXT, 0).unwrap();
    let budget2 = budget(&a2, TEXT);
    let m2 = a2.encrypt(&mut rng2, TEXT, budget2).unwrap();
    let kilobytes = vec![7u8; 10 * 1024];
    let k1 = a1.encrypt(&mut rng1, &kilobytes, 0).unwrap();
    let budget_k = budget(&a2, &kilobytes);
    let k2 = a2.encrypt(&mut rng2, &kilobytes, budget_k).unwrap();
    let fragments = |len: usize| (1 + len).div_ceil(per_fragment);

    let mut advance = Vec::new();
    for (label, shards) in [("short_text", None), ("two_shards", Some(2))] {
        for loss in [0.0, 0.1, 0.3, 0.5] {
            let mut counts = messages_per_epoch(7, loss, shards, 40);
            counts.sort_by(f64::total_cmp);
            advance.push(serde_json::json!({
                "budget": label,
                "loss": loss,
                "epochs": counts.len(),
                "median_messages": percentile(&counts, 0.5),
                "p90_messages": percentile(&counts, 0.9),
                "max_messages": counts.last(),
            }));
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "pq_ratchet",
            "per_message_us": {
                "v1_median": median(&v1),
                "v2_median": median(&v2),
                "v1_mean": mean(&v1),
                "v2_mean": mean(&v2),
                "ratio_median": median(&v2) / median(&v1),
                "ratio_mean": mean(&v2) / mean(&v1),
                "messages": v1.len(),
                "v2_epochs_reached": a2.pq_epoch(),
            },
            "bytes": {
                "short_text_v1": m1.len(),
                "short_text_v2": m2.len(),
                "short_text_fragments_v1": fragments(m1.len()),
                "short_text_fragments_v2": fragments(m2.len()),
                "ten_kib_v1": k1.len(),
                "ten_kib_v2": k2.len(),
                "ten_kib_fragments_v1": fragments(k1.len()),
                "ten_kib_fragments_v2": fragments(k2.len()),
            },
            "messages_per_epoch": advance,
        })
    );
}
