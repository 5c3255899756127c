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
    let frames = net.loop_frames(&bob, POOL);
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

/// The hop's keys with a fresh filter for the packets' epoch, and the order
/// the hop tries them in: `decoys` other live epochs first (as at an epoch
/// boundary, when the packet was built under the previous consensus), then
/// the packets' epoch.
fn fresh_keys(s: &mut Setup, decoys: usize) -> (EpochKeys, Vec<u64>) {
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
    let mut order = Vec::new();
    for d in 0..decoys as u64 {
        let decoy = SphinxSecret::random_from_rng(&mut s.net.rng);
        let filter = ReplayFilter::with_capacity(&mut s.net.rng, 1_000, 1e-5);
        keys.insert(EPOCH + 1 + d, EpochKey::new(decoy, filter));
        order.push(EPOCH + 1 + d);
    }
    order.push(EPOCH);
    (keys, order)
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

fn our_hop(geometry: &Geometry, frame: &[u8], keys: &mut EpochKeys, order: &[u64]) -> Vec<u8> {
    match process_frame(geometry, frame, keys, order).unwrap().1 {
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
            let (mut keys, mut order) = fresh_keys(&mut s, 0);
            for i in 0..iters as usize {
                if i > 0 && i % POOL == 0 {
                    // new filter: the pool's tags are fresh again
                    (keys, order) = fresh_keys(&mut s, 0);
                }
                let start = Instant::now();
                std::hint::black_box(our_hop(&geometry, &s.frames[i % POOL], &mut keys, &order));
                total += start.elapsed();
            }
            total
        })
    });
    hop.finish();
}

/// Medians in µs of one round-robin run: the bare hop, and the AegisLink
/// hop with the packet's key tried first, second and third; and random
/// packets refused after one and after three keys.
struct Paired {
    bare: f64,
    first: f64,
    second: f64,
    third: f64,
    garbage_one: f64,
    garbage_three: f64,
}

/// Alternates bare and AegisLink hops packet by packet, over rounds of
/// fresh filters, so machine noise hits every case alike.
fn paired(s: &mut Setup) -> Paired {
    let geometry = s.net.geometry.clone();
    let key = s.net.nodes[0].keys.get(EPOCH).unwrap().secret.clone();
    let mut samples: [Vec<f64>; 6] = Default::default();
    let mut noise = vec![0u8; geometry.frame_len()];
    noise[0] = aegis_mix_packet::constants::FRAME_VERSION;
    let time = |v: &mut Vec<f64>, f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64() * 1e6);
    };
    for _round in 0..8 {
        let mut rings: Vec<(EpochKeys, Vec<u64>)> = (0..3).map(|d| fresh_keys(s, d)).collect();
        for i in 0..POOL {
            time(&mut samples[0], &mut || {
                std::hint::black_box(bare_hop(&s.bare_packets[i], &key));
            });
            for (d, (keys, order)) in rings.iter_mut().enumerate() {
                time(&mut samples[1 + d], &mut || {
                    std::hint::black_box(our_hop(&geometry, &s.frames[i], keys, order));
                });
            }
            rand::Rng::fill_bytes(&mut s.net.rng, &mut noise[1..]);
            noise[32] &= 0x7F;
            for (slot, d) in [(4, 0), (5, 2)] {
                let (keys, order) = &mut rings[d];
                time(&mut samples[slot], &mut || {
                    let refused = process_frame(&geometry, &noise, keys, order);
                    assert!(refused.is_err());
                });
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let [bare, first, second, third, garbage_one, garbage_three] = &mut samples;
    Paired {
        bare: median(bare),
        first: median(first),
        second: median(second),
        third: median(third),
        garbage_one: median(garbage_one),
        garbage_three: median(garbage_three),
    }
}

criterion_group!(group, benches);

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    let mut s = setup();
    let p = paired(&mut s);
    println!(
        "{{\"bench\":\"process_hop_paired\",\"bare_sphinx_us\":{:.2},\"aegis_us\":{:.2},\"ratio\":{:.3},\"target_ratio\":1.10,\
\"second_key_us\":{:.2},\"second_key_ratio\":{:.3},\"third_key_us\":{:.2},\"third_key_ratio\":{:.3},\
\"refused_one_key_us\":{:.2},\"refused_three_keys_us\":{:.2},\"refused_three_keys_ratio\":{:.3}}}",
        p.bare,
        p.first,
        p.first / p.bare,
        p.second,
        p.second / p.bare,
        p.third,
        p.third / p.bare,
        p.garbage_one,
        p.garbage_three,
        p.garbage_three / p.bare,
    );
}
