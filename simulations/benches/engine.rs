//! Simulator throughput as a ratio to a bare event-queue baseline measured
//! in the same run: `cargo bench -p aegis-sim --bench engine [-- SCENARIO]`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aegis_sim::{Scenario, run_network};

/// Push/pop pairs per second of a `BinaryHeap` holding `live` timed events:
/// the least work any discrete-event simulator does per event.
fn baseline(live: usize, ops: usize) -> f64 {
    let mut heap = BinaryHeap::with_capacity(live);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..live {
        heap.push(Reverse((
            Duration::from_nanos(next() % 1_000_000_000),
            i as u64,
            0u32,
        )));
    }
    let start = Instant::now();
    for i in 0..ops {
        let Reverse((t, _, _)) = heap.pop().unwrap();
        heap.push(Reverse((
            t + Duration::from_nanos(next() % 1_000_000_000),
            i as u64,
            1,
        )));
    }
    black_box(&heap);
    ops as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let arg = std::env::args().skip(1).find(|a| a.ends_with(".toml"));
    let path = arg.map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/small-mixnet.toml")
    });
    let Scenario::Network(s) = Scenario::load(&path).unwrap() else {
        panic!("{} is not a network scenario", path.display());
    };
    let base = baseline(300_000, 20_000_000);
    let (_, stats) = run_network(&s, &mut |_| {}).unwrap();
    let base_after = baseline(300_000, 20_000_000);
    let base = (base + base_after) / 2.0;
    println!(
        "scenario {} ({} clients, {} s simulated)",
        s.name, s.clients.count, s.duration_secs
    );
    println!("baseline BinaryHeap pop+push (300k live): {base:.0} /s");
    println!(
        "engine: {} events in {:.2} s = {:.0} events/s (ratio {:.3}); {:.0} packet-hops/s (ratio {:.3})",
        stats.events,
        stats.wall_secs,
        stats.events_per_sec,
        stats.events_per_sec / base,
        stats.packet_hops_per_sec,
        stats.packet_hops_per_sec / base
    );
}
