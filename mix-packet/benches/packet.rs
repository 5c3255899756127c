//! Packet creation and per-hop processing through `aegis-mix-packet` and
//! through bare `sphinx-packet`, measured in the same run.
//!
//! Besides criterion's per-function figures, a paired measurement alternates
//! the bare and the AegisLink hop in rounds and prints the ratio of their
//! medians as JSON on the last line, so machine noise hits both alike.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use aegis_mix_packet::{
    Body, EpochKey, EpochKeys, Geometry, LoopId, ReplayFilter, SphinxSecret, build_mailbox_packet,
    process_frame,
};
use common::{EPOCH, TestMailbox, TestNet};
use criterion::{Criterion, criterion_group};
use sphinx_packet::header::delays::Delay;
use sphinx_packet::route::{Destination, DestinationAddressBytes, Node, NodeAddressBytes};
use sphinx_packet::{SphinxPacket, SphinxPacketBuilder};

const POOL: usize = 512;

struct Setup {
    net: TestNet,
    bob: TestMailbox,
    bare_route: Vec<Node>,
    bare_destination: Destination,
    frames: Vec<Vec<u8>>,
    bare_packets: Vec<Vec<u8>>,
}

fn setup() -> Setup {
    let mut net = TestNet::new(1, 5);
    let bob = TestMailbox::new(&mut net.rng);
    let bare_route: Vec<Node> = net
        .nodes
        .iter()
        .map(|n| Node::new(NodeAddressBytes::from_bytes(n.id.0), n.public(EPOCH)))
        .collect();
    let bare_destination = Destination::new(DestinationAddressBytes::from_bytes(bob.id.0), [7; 16]);
    let geometry = net.geometry.clone();
    let route = net.route(&[0, 1, 2, 3, 4]);
    let delays = aegis_mix_packet::HopDelays::fixed(&[Duration::ZERO; 5]);
    let frames = (0..POOL)
        .map(|i| {
            build_mailbox_packet(
                &mut net.rng,
                &geometry,
                EPOCH,
                &route,
                &delays,
                bob.id,
                &bob.public(),
                &Body::Loop(LoopId([i as u8; 16])),
            )
            .unwrap()
            .to_frame(&geometry)
            .unwrap()
        })
        .collect();
    let bare_packets = (0..POOL)
        .map(|_| bare_build(&bare_route, &bare_destination).to_bytes())
        .collect();
    Setup {
        net,
        bob,
        bare_route,
        bare_destination,
        frames,
        bare_packets,
    }
}

fn bare_build(route: &[Node], destination: &Destination) -> SphinxPacket {
    SphinxPacketBuilder::new()
        .with_payload_size(Geometry::STANDARD.payload_len)
        .build_packet(b"cover", route, destination, &[Delay::new_from_nanos(0); 5])
        .unwrap()
}

fn fresh_keys(s: &mut Setup) -> EpochKeys {
    let secret = s.net.nodes[0].keys.get(EPOCH).unwrap().secret.clone();
    let mut keys = EpochKeys::new();
    // sized like a node's filter: a 20-minute epoch at ~12k packets/s
    keys.insert(
        EPOCH,
        EpochKey::new(
            secret,
            ReplayFilter::with_capacity(&mut s.net.rng, 15_000_000, 1e-5),
        ),
    );
    keys
}

fn bare_hop(bytes: &[u8], key: &SphinxSecret) -> Vec<u8> {
    let packet = SphinxPacket::from_bytes(bytes).unwrap();
    match packet.process(key).unwrap().data {
        sphinx_packet::ProcessedPacketData::ForwardHop {
            next_hop_packet, ..
        } => next_hop_packet.to_bytes(),
        _ => unreachable!(),
    }
}

fn our_hop(geometry: &Geometry, frame: &[u8], keys: &mut EpochKeys) -> Vec<u8> {
    match process_frame(geometry, frame, keys).unwrap().1 {
        aegis_mix_packet::Processed::Forward { packet, .. } => packet,
        _ => unreachable!(),
    }
}

fn benches(c: &mut Criterion) {
    let mut s = setup();
    let geometry = s.net.geometry.clone();
    let key = s.net.nodes[0].keys.get(EPOCH).unwrap().secret.clone();

    let mut create = c.benchmark_group("create_5_hop");
    create.bench_function("bare_sphinx", |b| {
        b.iter(|| bare_build(&s.bare_route, &s.bare_destination))
    });
    let route = s.net.route(&[0, 1, 2, 3, 4]);
    let delays = aegis_mix_packet::HopDelays::fixed(&[Duration::ZERO; 5]);
    let bob_id = s.bob.id;
    let bob_key = s.bob.public();
    create.bench_function("aegis_loop_packet", |b| {
        b.iter(|| {
            build_mailbox_packet(
                &mut s.net.rng,
                &geometry,
                EPOCH,
                &route,
                &delays,
                bob_id,
                &bob_key,
                &Body::Loop(LoopId([1; 16])),
            )
            .unwrap()
        })
    });
    create.finish();

    let mut hop = c.benchmark_group("process_hop");
    hop.bench_function("bare_sphinx", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % POOL;
            bare_hop(&s.bare_packets[i], &key)
        })
    });
    hop.bench_function("aegis_frame", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut keys = fresh_keys(&mut s);
            for i in 0..iters as usize {
                if i > 0 && i % POOL == 0 {
                    keys = fresh_keys(&mut s); // new filter: the pool's tags are fresh again
                }
                let start = Instant::now();
                std::hint::black_box(our_hop(&geometry, &s.frames[i % POOL], &mut keys));
                total += start.elapsed();
            }
            total
        })
    });
    hop.finish();
}

/// Alternates rounds of bare and AegisLink hops; returns medians in µs.
fn paired(s: &mut Setup) -> (f64, f64) {
    let geometry = s.net.geometry.clone();
    let key = s.net.nodes[0].keys.get(EPOCH).unwrap().secret.clone();
    let (mut bare, mut ours) = (vec![], vec![]);
    for _round in 0..8 {
        let mut keys = fresh_keys(s);
        for i in 0..POOL {
            let t = Instant::now();
            std::hint::black_box(bare_hop(&s.bare_packets[i], &key));
            bare.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            std::hint::black_box(our_hop(&geometry, &s.frames[i], &mut keys));
            ours.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    (median(&mut bare), median(&mut ours))
}

criterion_group!(group, benches);

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    let mut s = setup();
    let (bare, ours) = paired(&mut s);
    println!(
        "{{\"bench\":\"process_hop_paired\",\"bare_sphinx_us\":{bare:.2},\"aegis_us\":{ours:.2},\"ratio\":{:.3},\"target_ratio\":1.10}}",
        ours / bare
    );
}
