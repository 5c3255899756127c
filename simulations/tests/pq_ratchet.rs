//! The client's post-quantum ratchet under the delays the simulated mixnet
//! produces: the `acks` scenario (reliable delivery over links that lose
//! 3 % of packets, so the tail holds retransmissions) gives the
//! write-to-mailbox latency distribution; two real version-2 sessions then
//! write to each other with every message delayed by a draw from it plus
//! the wait for the recipient's next pull, so messages arrive late and out
//! of order as they would, and some are lost outright on top.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use aegis_client::edge::pqxdh::Version;
use aegis_client::edge::ratchet::{Session, fresh_pair};
use aegis_client::edge::spqr::Section;
use aegis_client::envelope::pq_budget;
use aegis_mix_packet::Geometry;
use aegis_sim::{Report, Scenario, run};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Exp};

/// The scenario's write-to-mailbox latency CDF, `(seconds, fraction)`,
/// and its pull interval (8 / (2 (λP + λL)), as the client's default).
fn simulated_latency() -> (Vec<(f64, f64)>, f64) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/acks.toml");
    let scenario = Scenario::load(&path).unwrap();
    let Report::Network(report) = run(&scenario, &mut |_| {}).unwrap() else {
        panic!("expected a network report");
    };
    assert!(
        report.latency.count > 1_000,
        "{} samples",
        report.latency.count
    );
    (report.latency_cdf, 8.0 / (2.0 * (2.0 + 0.2)))
}

/// A draw from an empirical CDF.
fn draw(cdf: &[(f64, f64)], rng: &mut ChaCha20Rng) -> f64 {
    let u: f64 = rng.random();
    cdf.iter()
        .find(|(_, f)| *f >= u)
        .or(cdf.last())
        .map_or(0.0, |(x, _)| *x)
}

fn sessions(seed: u64) -> (ChaCha20Rng, Session, Session) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (a, b) = fresh_pair(&mut rng, Version::V2).unwrap();
    (rng, a, b)
}

struct InFlight {
    arrives: f64,
    to_bob: bool,
    bytes: Vec<u8>,
}

const TEXT: &[u8] = b"a short text";

/// Both sides write at random (Poisson, one message a second each);
/// `loss` of the messages never arrive. Messages written before each
/// epoch both sides reached, and arrived messages that did not decrypt.
fn conversation(
    latency: &(Vec<(f64, f64)>, f64),
    seed: u64,
    loss: f64,
    shards: Option<usize>,
    messages: usize,
) -> (Vec<usize>, usize) {
    let (cdf, pull) = latency;
    let (mut rng, mut alice, mut bob) = sessions(seed);
    let mut net = ChaCha20Rng::seed_from_u64(seed ^ 0x5EED);
    let gap = Exp::new(2.0).unwrap();
    let (mut now, mut written, mut failed) = (0.0, 0, 0);
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut advanced_at = Vec::new();
    while written < messages {
        now += gap.sample(&mut net);
        in_flight.sort_by(|a, b| b.arrives.total_cmp(&a.arrives));
        while in_flight.last().is_some_and(|m| m.arrives <= now) {
            let m = in_flight.pop().unwrap();
            let to = if m.to_bob { &mut bob } else { &mut alice };
            if to.decrypt(&mut rng, &m.bytes).is_err() {
                failed += 1;
            }
        }
        let epoch = alice.pq_epoch().unwrap().min(bob.pq_epoch().unwrap()) as usize;
        while advanced_at.len() < epoch {
            advanced_at.push(written);
        }
        // Alice writes first: Bob's session cannot send before it received.
        let to_bob = written == 0 || net.random::<bool>();
        let from = if to_bob { &mut alice } else { &mut bob };
        let budget = shards.map_or_else(
            || pq_budget(&Geometry::STANDARD, 1 + from.overhead() + TEXT.len()),
            Section::len_with,
        );
        let Ok(bytes) = from.encrypt(&mut rng, TEXT, budget) else {
            continue;
        };
        written += 1;
        if net.random::<f64>() < loss {
            continue;
        }
        in_flight.push(InFlight {
            arrives: now + draw(cdf, &mut net) + net.random_range(0.0..*pull),
            to_bob,
            bytes,
        });
    }
    (advanced_at, failed)
}

/// Messages per epoch advance.
fn gaps(advanced_at: &[usize]) -> Vec<usize> {
    std::iter::once(advanced_at[0])
        .chain(advanced_at.windows(2).map(|w| w[1] - w[0]))
        .collect()
}

#[test]
fn through_the_simulated_mixnet_the_epoch_still_advances() {
    let latency = simulated_latency();
    let at = |q: f64| {
        latency
            .0
            .iter()
            .find(|(_, f)| *f >= q)
            .map_or(0.0, |(x, _)| *x)
    };
    println!(
        "simulated write-to-mailbox latency: median {:.2} s, 99th percentile {:.2} s",
        at(0.5),
        at(0.99)
    );
    // Seen with these seeds: 41 epochs in 600 messages, median 14 and at
    // most 24 messages each; with a fifth lost, 32 epochs, median 18, at
    // most 29; two shards a message, 5 epochs, median 105, at most 110.
    for (loss, shards, most) in [
        (0.0, None, 40),
        (0.2, None, 60),
        // Two shards a message: 19 messages for the key, 17 for the
        // ciphertext, each from the right side.
        (0.2, Some(2), 220),
    ] {
        let (advanced_at, failed) = conversation(&latency, 22, loss, shards, 600);
        assert_eq!(failed, 0, "every message that arrived decrypted");
        assert!(advanced_at.len() >= 2, "loss {loss}: {advanced_at:?}");
        let gaps = gaps(&advanced_at);
        let worst = gaps.iter().max().copied().unwrap_or(0);
        let mut sorted = gaps.clone();
        sorted.sort_unstable();
        println!(
            "loss {loss}, shards {shards:?}: {} epochs in 600 messages, median {}, at most {worst}",
            gaps.len(),
            sorted[sorted.len() / 2]
        );
        assert!(
            worst <= most,
            "loss {loss}: an epoch took {worst} messages ({gaps:?})"
        );
    }
}
