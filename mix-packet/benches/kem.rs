//! The KEM packet format against Sphinx, measured in one run: per-hop
//! processing and packet creation (paired: the cases alternate packet by
//! packet, so machine noise hits them alike), and bytes on the wire.
//! Prints one JSON object on the last line.
//!
//! `cargo bench -p aegis-mix-packet --bench kem`

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use aegis_mix_packet::kem::xwing::CIPHERTEXT_LEN;
use aegis_mix_packet::{
    Body, EpochKey, EpochKeys, Fragment, Geometry, HopDelays, LoopId, MessageId, Processed,
    ReplayFilter, build_mailbox_packet, process_frame,
};
use common::{EPOCH, TestMailbox, TestNet};
use sphinx_packet::header::delays::Delay;
use sphinx_packet::route::{Destination, DestinationAddressBytes, Node, NodeAddressBytes};
use sphinx_packet::{SphinxPacket, SphinxPacketBuilder};

const POOL: usize = 256;
const ROUNDS: usize = 8;

/// The first node's key of `EPOCH` with a fresh filter, sized like a
/// node's (a 20-minute epoch at ~12k packets/s).
fn fresh_keys(net: &mut TestNet) -> EpochKeys {
    let key = net.nodes[0].keys.get(EPOCH).unwrap();
    let (secret, kem) = (key.secret.clone(), key.kem.clone().unwrap());
    let mut keys = EpochKeys::new();
    let filter = ReplayFilter::with_capacity(&mut net.rng, 15_000_000, 1e-5);
    keys.insert(EPOCH, EpochKey::with_kem(secret, kem, filter));
    keys
}

fn hop(geometry: &Geometry, frame: &[u8], keys: &mut EpochKeys) -> Vec<u8> {
    match process_frame(geometry, frame, keys, &[EPOCH]).unwrap().1 {
        Processed::Forward { packet, .. } => packet,
        Processed::Final { .. } => unreachable!("five-hop packets"),
    }
}

fn bare_build(route: &[Node], destination: &Destination) -> SphinxPacket {
    SphinxPacketBuilder::new()
        .with_payload_size(Geometry::STANDARD.payload_len)
        .build_packet(b"cover", route, destination, &[Delay::new_from_nanos(0); 5])
        .unwrap()
}

/// A fragment packet as a client sends it: a SURB-ACK over the route back,
/// inside a packet over the route out (here the same five nodes).
fn fragment(
    rng: &mut rand_chacha::ChaCha20Rng,
    geometry: &Geometry,
    route: &aegis_mix_packet::Route,
    delays: &HopDelays,
    bob: &TestMailbox,
) -> aegis_mix_packet::OutgoingPacket {
    let fragment = Fragment {
        message_id: MessageId([3; 16]),
        index: 0,
        count: 1,
        data: vec![7; geometry.fragment_data_len()],
    };
    common::fragment_packet(
        rng,
        geometry,
        (route, delays),
        (route, delays),
        bob,
        bob,
        fragment,
    )
    .0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time(samples: &mut Vec<f64>, f: impl FnOnce()) {
    let t = Instant::now();
    f();
    samples.push(t.elapsed().as_secs_f64() * 1e6);
}

fn main() {
    // Every node holds keys in both formats; one net per geometry.
    let mut sphinx = TestNet::in_geometry(Geometry::STANDARD, 1, 5);
    let mut kem = TestNet::in_geometry(Geometry::PQ, 1, 5);
    let bob = TestMailbox::new(&mut kem.rng);
    let (gs, gk) = (sphinx.geometry.clone(), kem.geometry.clone());
    let sphinx_frames = sphinx.loop_frames(&bob, POOL);
    let kem_frames = kem.loop_frames(&bob, POOL);
    let bare_route: Vec<Node> = sphinx
        .nodes
        .iter()
        .map(|n| Node::new(NodeAddressBytes::from_bytes(n.id.0), n.public(EPOCH)))
        .collect();
    let bare_destination = Destination::new(DestinationAddressBytes::from_bytes(bob.id.0), [7; 16]);
    let bare_packets: Vec<Vec<u8>> = (0..POOL)
        .map(|_| bare_build(&bare_route, &bare_destination).to_bytes())
        .collect();
    let x25519 = sphinx.nodes[0].keys.get(EPOCH).unwrap().secret.clone();
    let xwing = kem.nodes[0].keys.get(EPOCH).unwrap().kem.clone().unwrap();

    // Per hop: bare sphinx-packet, our Sphinx hop, our KEM hop, and the
    // X-Wing decapsulation alone.
    let mut s: [Vec<f64>; 4] = Default::default();
    for _ in 0..ROUNDS {
        let mut sk = fresh_keys(&mut sphinx);
        let mut kk = fresh_keys(&mut kem);
        for i in 0..POOL {
            time(&mut s[0], || {
                let p = SphinxPacket::from_bytes(&bare_packets[i]).unwrap();
                std::hint::black_box(p.process(&x25519).unwrap());
            });
            time(&mut s[1], || {
                std::hint::black_box(hop(&gs, &sphinx_frames[i], &mut sk));
            });
            time(&mut s[2], || {
                std::hint::black_box(hop(&gk, &kem_frames[i], &mut kk));
            });
            let mut ct = [0u8; CIPHERTEXT_LEN];
            ct.copy_from_slice(&kem_frames[i][1..1 + CIPHERTEXT_LEN]);
            time(&mut s[3], || {
                std::hint::black_box(xwing.decapsulate(&ct));
            });
        }
    }
    let [bare_hop, sphinx_hop, kem_hop, decap] = s.each_mut().map(|v| median(v));

    // Creation of one five-hop loop packet, and of a fragment packet with
    // its SURB-ACK (two headers: what a client pays per fragment sent).
    let mut c: [Vec<f64>; 5] = Default::default();
    let (rs, rk) = (sphinx.route(&[0, 1, 2, 3, 4]), kem.route(&[0, 1, 2, 3, 4]));
    let delays = HopDelays::fixed(&[Duration::ZERO; 5]);
    let body = Body::Loop(LoopId([1; 16]));
    for _ in 0..ROUNDS * 32 {
        time(&mut c[0], || {
            std::hint::black_box(bare_build(&bare_route, &bare_destination));
        });
        let (rng, key) = (&mut sphinx.rng, bob.public());
        time(&mut c[1], || {
            std::hint::black_box(
                build_mailbox_packet(rng, &gs, &rs, &delays, bob.id, &key, &body).unwrap(),
            );
        });
        let rng = &mut kem.rng;
        time(&mut c[2], || {
            std::hint::black_box(
                build_mailbox_packet(rng, &gk, &rk, &delays, bob.id, &key, &body).unwrap(),
            );
        });
        for (slot, net, route) in [(3, &mut sphinx, &rs), (4, &mut kem, &rk)] {
            let geometry = net.geometry.clone();
            let rng = &mut net.rng;
            time(&mut c[slot], || {
                std::hint::black_box(fragment(rng, &geometry, route, &delays, &bob));
            });
        }
    }
    let [
        bare_create,
        sphinx_create,
        kem_create,
        sphinx_fragment,
        kem_fragment,
    ] = c.each_mut().map(|v| median(v));

    // Bytes: a fragment and its acknowledgement each travel as one frame.
    let per_byte = |g: &Geometry| 2.0 * g.frame_len() as f64 / g.fragment_data_len() as f64;
    println!(
        "{{\"bench\":\"kem_packet\",\
\"hop_bare_sphinx_us\":{bare_hop:.2},\"hop_aegis_sphinx_us\":{sphinx_hop:.2},\"hop_kem_us\":{kem_hop:.2},\
\"hop_kem_ratio_to_bare\":{:.3},\"target_hop_ratio\":1.5,\"xwing_decapsulation_us\":{decap:.2},\
\"create_bare_sphinx_us\":{bare_create:.2},\"create_aegis_sphinx_us\":{sphinx_create:.2},\"create_kem_us\":{kem_create:.2},\
\"create_kem_ratio_to_bare\":{:.3},\
\"fragment_sphinx_us\":{sphinx_fragment:.2},\"fragment_kem_us\":{kem_fragment:.2},\"fragment_kem_ratio_to_bare\":{:.3},\
\"frame_bytes_sphinx\":{},\"frame_bytes_kem\":{},\"frame_ratio\":{:.3},\
\"fragment_data_sphinx\":{},\"fragment_data_kem\":{},\
\"wire_bytes_per_payload_byte_sphinx\":{:.3},\"wire_bytes_per_payload_byte_kem\":{:.3},\
\"per_payload_byte_ratio\":{:.3},\"target_per_payload_byte_ratio\":3.0}}",
        kem_hop / bare_hop,
        kem_create / bare_create,
        kem_fragment / bare_create,
        gs.frame_len(),
        gk.frame_len(),
        gk.frame_len() as f64 / gs.frame_len() as f64,
        gs.fragment_data_len(),
        gk.fragment_data_len(),
        per_byte(&gs),
        per_byte(&gk),
        per_byte(&gk) / per_byte(&gs),
    );
}
