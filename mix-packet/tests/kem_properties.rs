//! Properties of the KEM packet format over random routes, payloads and
//! single-bit corruptions: every packet arrives once, every replay is
//! refused, every flipped bit is refused (in the header at the first hop,
//! in the payload by the recipient), and hostile bytes never panic a hop.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use aegis_mix_packet::{
    Body, Destination, Geometry, HopDelays, LoopId, PacketError, Processed, Route,
    build_mailbox_packet, open_delivery, peel_hybrid,
};
use common::{EPOCH, TestMailbox, TestNet};
use proptest::prelude::*;
use std::time::Duration;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_packet_arrives_once_and_any_flipped_bit_is_refused(
        seed in any::<u64>(),
        order in Just((0..5usize).collect::<Vec<_>>()).prop_shuffle(),
        hops in 2usize..=5,
        id in any::<[u8; 16]>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let mut net = TestNet::in_geometry(Geometry::PQ, seed, 5);
        let geometry = net.geometry.clone();
        let owner = TestMailbox::new(&mut net.rng);
        let route_hops = order[..hops].iter().map(|&i| net.nodes[i].hop(EPOCH)).collect();
        let route = Route::cycle(route_hops, &geometry).unwrap();
        let delays = HopDelays::sample_exponential(&mut net.rng, hops, Duration::from_millis(3));
        let out = build_mailbox_packet(
            &mut net.rng, &geometry, &route, &delays, owner.id, &owner.public(), &Body::Loop(LoopId(id)),
        ).unwrap();
        prop_assert_eq!(out.packet.len(), geometry.packet_len());
        let frame = out.to_frame(&geometry).unwrap();

        // One bit anywhere in the packet, on a copy delivered first.
        let bit = flip.index(geometry.packet_len() * 8);
        let mut bad = out.packet.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let bad = aegis_mix_packet::Frame::encode(&geometry, &bad).unwrap();
        match net.deliver(out.first_hop, bad) {
            Err(e) => {
                prop_assert!(bit < geometry.header_len() * 8, "payload bit {} refused by a hop: {:?}", bit, e);
                prop_assert_eq!(e, PacketError::HeaderAuthentication);
            }
            Ok(trace) => {
                prop_assert!(bit >= geometry.header_len() * 8, "header bit {} passed", bit);
                let Processed::Final { payload, .. } = trace.last else { panic!() };
                prop_assert_eq!(
                    open_delivery(&geometry, &owner.secret, &payload).unwrap_err(),
                    PacketError::PayloadAuthentication
                );
            }
        }

        // The genuine packet: once, whatever the corrupt copy did (a
        // payload-flipped copy shares its replay tags and went first).
        let first = net.deliver(out.first_hop, frame.clone());
        if bit < geometry.header_len() * 8 {
            let trace = first.unwrap();
            prop_assert_eq!(trace.hops_visited.len(), hops);
            let Processed::Final { destination, payload, .. } = trace.last else { panic!() };
            prop_assert_eq!(destination, Destination::Mailbox(owner.id));
            prop_assert!(matches!(
                open_delivery(&geometry, &owner.secret, &payload).unwrap(),
                Body::Loop(LoopId(got)) if got == id
            ));
        } else {
            prop_assert_eq!(first.unwrap_err(), PacketError::Replayed);
        }
        prop_assert_eq!(net.deliver(out.first_hop, frame).unwrap_err(), PacketError::Replayed);
    }

    #[test]
    fn hostile_bytes_never_panic_a_hop(bytes in proptest::collection::vec(any::<u8>(), 0..20_000), len_exact in any::<bool>()) {
        let net = TestNet::in_geometry(Geometry::PQ, 1, 1);
        let geometry = net.geometry.clone();
        let key = net.nodes[0].keys.get(EPOCH).unwrap().kem.as_ref().unwrap();
        let mut packet = bytes;
        if len_exact {
            packet.resize(geometry.packet_len(), 0x5a);
        }
        let result = peel_hybrid(&geometry, &packet, key).and_then(|p| p.unwrap());
        if packet.len() == geometry.packet_len() {
            prop_assert_eq!(result.unwrap_err(), PacketError::HeaderAuthentication);
        } else {
            let is_length_error = matches!(result, Err(PacketError::FrameLength { .. }));
            prop_assert!(is_length_error);
        }
        let _ = aegis_mix_packet::kem::HybridPublic::from_bytes(&packet);
    }
}
