//! Packets of every kind over the full route, and every way a packet can be bad.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use aegis_mix_packet::{
    Body, Destination, Fragment, Frame, Geometry, HopDelays, LoopId, MessageId, PacketError,
    PacketFormat, Processed, Reassembled, Reassembler, ReassemblyLimits, ReplyKey, build_ack,
    build_drop_cover, build_mailbox_packet, open_delivery, peel, peel_hybrid, split,
};
use common::{EPOCH, TestMailbox, TestNet};
use rand::seq::SliceRandom;
use std::time::Duration;

/// Runs each test in both packet formats: Sphinx (the standard geometry)
/// and the KEM format (the post-quantum geometry).
macro_rules! in_both_formats {
    ($(#[test] fn $name:ident($geometry:ident: Geometry) $body:block)*) => {$(
        mod $name {
            use super::*;

            fn run($geometry: Geometry) $body

            #[test]
            fn sphinx() {
                run(Geometry::STANDARD)
            }

            #[test]
            fn kem() {
                run(Geometry::PQ)
            }
        }
    )*};
}

/// Route positions: entry gateway 0, mixes 1..=3, exit gateway 4; the
/// return route starts at gateway 4 and ends at gateway 0.
const FORWARD: [usize; 5] = [0, 1, 2, 3, 4];
const BACKWARD: [usize; 5] = [4, 3, 2, 1, 0];

fn fragment_packet(
    net: &mut TestNet,
    alice: &TestMailbox,
    bob: &TestMailbox,
    fragment: Fragment,
) -> aegis_mix_packet::OutgoingPacket {
    fragment_packet_with_key(net, alice, bob, fragment).0
}

/// A fragment packet and the reply key alice keeps for its ack.
fn fragment_packet_with_key(
    net: &mut TestNet,
    alice: &TestMailbox,
    bob: &TestMailbox,
    fragment: Fragment,
) -> (aegis_mix_packet::OutgoingPacket, ReplyKey) {
    let back = net.route(&BACKWARD);
    let back_delays = net.delays(5);
    let route = net.route(&FORWARD);
    let delays = net.delays(5);
    let geometry = net.geometry.clone();
    common::fragment_packet(
        &mut net.rng,
        &geometry,
        (&route, &delays),
        (&back, &back_delays),
        alice,
        bob,
        fragment,
    )
}

fn final_payload(processed: Processed, expect: Destination) -> Vec<u8> {
    match processed {
        Processed::Final {
            destination,
            payload,
            ..
        } => {
            assert_eq!(destination, expect);
            payload
        }
        other => panic!("expected a final hop, got {other:?}"),
    }
}

in_both_formats! {
#[test]
fn fragment_crosses_the_route_and_its_ack_comes_back(geometry: Geometry) {
    let mut net = TestNet::in_geometry(geometry.clone(), 1, 5);
    let (alice, bob) = (
        TestMailbox::new(&mut net.rng),
        TestMailbox::new(&mut net.rng),
    );
    let message_id = MessageId::random(&mut net.rng);
    let fragment = Fragment {
        message_id,
        index: 0,
        count: 1,
        data: b"hello bob".to_vec(),
    };
    let (out, reply_key) = fragment_packet_with_key(&mut net, &alice, &bob, fragment.clone());
    assert_eq!(out.first_hop, net.nodes[0].id);

    let trace = net
        .deliver(out.first_hop, out.to_frame(&geometry).unwrap())
        .unwrap();
    assert_eq!(
        trace.hops_visited,
        FORWARD.iter().map(|&i| net.nodes[i].id).collect::<Vec<_>>()
    );
    assert!(
        trace.frame_lens.iter().all(|&l| l == geometry.frame_len()),
        "{:?}",
        trace.frame_lens
    );

    let payload = final_payload(trace.last, Destination::Mailbox(bob.id));
    let Body::Fragment {
        fragment: got,
        surb_ack,
    } = open_delivery(&geometry, &bob.secret, &payload).unwrap()
    else {
        panic!("expected a fragment")
    };
    assert_eq!(got, fragment);
    // only bob can open it
    assert_eq!(
        open_delivery(&geometry, &alice.secret, &payload).unwrap_err(),
        PacketError::PayloadAuthentication
    );

    let ack_id = surb_ack.ack_id;
    let ack = build_ack(&mut net.rng, &geometry, surb_ack).unwrap();
    assert_eq!(
        ack.first_hop, net.nodes[4].id,
        "the ack enters at bob's gateway"
    );
    assert_eq!(ack.packet.len(), out.packet.len());
    let trace = net
        .deliver(ack.first_hop, ack.to_frame(&geometry).unwrap())
        .unwrap();
    assert_eq!(
        trace.hops_visited,
        BACKWARD
            .iter()
            .map(|&i| net.nodes[i].id)
            .collect::<Vec<_>>()
    );
    let Processed::Final {
        destination,
        delivery_tag,
        payload,
    } = trace.last
    else {
        panic!("expected a final hop")
    };
    assert_eq!(destination, Destination::Mailbox(alice.id));
    // What alice's gateway stores is noise to it, and to anyone but alice:
    // the hops' layers are still on it. The tag finds alice's reply key.
    assert_eq!(&delivery_tag, reply_key.tag());
    assert_eq!(
        open_delivery(&geometry, &alice.secret, &payload).unwrap_err(),
        PacketError::PayloadAuthentication
    );
    let view = reply_key.open(&geometry, &payload).unwrap();
    match open_delivery(&geometry, &alice.secret, &view).unwrap() {
        Body::Ack(id) => assert_eq!(id, ack_id),
        other => panic!("expected an ack, got {other:?}"),
    }
}

#[test]
fn a_reply_block_given_away_carries_the_last_hops_seed_only(geometry: Geometry) {
    let mut net = TestNet::in_geometry(geometry.clone(), 12, 5);
    let (alice, bob) = (
        TestMailbox::new(&mut net.rng),
        TestMailbox::new(&mut net.rng),
    );
    let fragment = Fragment {
        message_id: MessageId::random(&mut net.rng),
        index: 0,
        count: 1,
        data: b"hi".to_vec(),
    };
    let (out, key) = fragment_packet_with_key(&mut net, &alice, &bob, fragment);
    let trace = net
        .deliver(out.first_hop, out.to_frame(&geometry).unwrap())
        .unwrap();
    let payload = final_payload(trace.last, Destination::Mailbox(bob.id));
    let Body::Fragment { surb_ack, .. } = open_delivery(&geometry, &bob.secret, &payload).unwrap()
    else {
        panic!("expected a fragment")
    };
    // On the wire inside the fragment: header, first hop and one seed.
    let mut encoded = Vec::new();
    surb_ack.encode(&mut encoded);
    assert_eq!(encoded.len(), geometry.surb_ack_len());
    assert_eq!(geometry.reply_block_len(), geometry.header_len() + 32 + 16);
    // The creator's key holds every hop's seed.
    assert_eq!(key.to_bytes().len(), 16 + 5 * 16);
    // Bob sends the ack; the hops' payloads along the way are none of the
    // values bob can compute (his wrapped payload and the view), so bob and
    // a hop cannot recognise the ack's payload in transit.
    let view_bob_chose = {
        // What bob's build_ack wraps: a sealed ack body, known to bob.
        let ack = build_ack(&mut net.rng, &geometry, surb_ack).unwrap();
        let (_, frames) = net
            .deliver_tracing(ack.first_hop, ack.to_frame(&geometry).unwrap())
            .unwrap();
        let header = aegis_mix_packet::constants::FRAME_HEADER_LEN + geometry.header_len();
        let sent_payload = ack.packet[geometry.header_len()..].to_vec();
        for (hop, (_, frame)) in frames.iter().enumerate().skip(1) {
            assert_ne!(frame[header..], sent_payload[..], "hop {hop}");
        }
        sent_payload
    };
    assert_eq!(view_bob_chose.len(), geometry.payload_len);
    // A key that is not the block's turns the stored payload into noise.
    let mut other = key.to_bytes();
    other[20] ^= 1;
    let other = ReplyKey::from_bytes(&other).unwrap();
    let payload = vec![5u8; geometry.payload_len];
    assert_ne!(
        other.open(&geometry, &payload).unwrap(),
        key.open(&geometry, &payload).unwrap()
    );
}

#[test]
fn loop_and_drop_cover_arrive_as_their_kind(geometry: Geometry) {
    let mut net = TestNet::in_geometry(geometry.clone(), 2, 5);
    let alice = TestMailbox::new(&mut net.rng);
    let route = net.route(&FORWARD);
    let delays = net.delays(1);
    let loop_id = LoopId([9; 16]);
    let out = build_mailbox_packet(
        &mut net.rng,
        &geometry,
        &route,
        &delays,
        alice.id,
        &alice.public(),
        &Body::Loop(loop_id),
    )
    .unwrap();
    let trace = net
        .deliver(out.first_hop, out.to_frame(&geometry).unwrap())
        .unwrap();
    let payload = final_payload(trace.last, Destination::Mailbox(alice.id));
    assert!(
        matches!(open_delivery(&geometry, &alice.secret, &payload).unwrap(), Body::Loop(id) if id == loop_id)
    );

    let drop = build_drop_cover(&mut net.rng, &geometry, &route, &delays).unwrap();
    assert_eq!(drop.packet.len(), out.packet.len());
    let trace = net
        .deliver(drop.first_hop, drop.to_frame(&geometry).unwrap())
        .unwrap();
    final_payload(trace.last, Destination::Drop);
}

#[test]
fn a_cycle_route_of_fewer_hops_arrives_and_looks_like_any_packet(geometry: Geometry) {
    let mut net = TestNet::in_geometry(geometry.clone(), 3, 5);
    let owner = TestMailbox::new(&mut net.rng);
    // A node loop: four hops, the last being the sender itself.
    let hops: Vec<_> = [1, 2, 3, 0]
        .iter()
        .map(|&i| net.nodes[i].hop(EPOCH))
        .collect();
    let route = aegis_mix_packet::Route::cycle(hops, &geometry).unwrap();
    let delays = HopDelays::sample_exponential(&mut net.rng, 4, Duration::from_millis(1));
    let out = build_mailbox_packet(
        &mut net.rng,
        &geometry,
        &route,
        &delays,
        owner.id,
        &owner.public(),
        &Body::Loop(LoopId([4; 16])),
    )
    .unwrap();
    let full = net.loop_packet(&FORWARD, &owner, 5);
    assert_eq!(out.packet.len(), full.packet.len());
    let trace = net
        .deliver(out.first_hop, out.to_frame(&geometry).unwrap())
        .unwrap();
    assert_eq!(trace.hops_visited.len(), 4);
    assert!(trace.frame_lens.iter().all(|&l| l == geometry.frame_len()));
    let payload = final_payload(trace.last, Destination::Mailbox(owner.id));
    assert!(matches!(
        open_delivery(&geometry, &owner.secret, &payload).unwrap(),
        Body::Loop(LoopId([4, ..]))
    ));
    // Too short or too long is refused.
    let one = vec![net.nodes[0].hop(EPOCH)];
    assert!(aegis_mix_packet::Route::cycle(one, &geometry).is_err());
    let six: Vec<_> = (0..6).map(|i| net.nodes[i % 5].hop(EPOCH)).collect();
    assert!(aegis_mix_packet::Route::cycle(six, &geometry).is_err());
}

#[test]
fn every_kind_has_one_size_and_a_fresh_look_at_every_hop(geometry: Geometry) {
    let mut net = TestNet::in_geometry(geometry.clone(), 3, 5);
    let (alice, bob) = (
        TestMailbox::new(&mut net.rng),
        TestMailbox::new(&mut net.rng),
    );
    let route = net.route(&FORWARD);
    let delays = net.delays(1);
    let frag = fragment_packet(
        &mut net,
        &alice,
        &bob,
        Fragment {
            message_id: MessageId([1; 16]),
            index: 0,
            count: 1,
            data: vec![],
        },
    );
    let lp = net.loop_packet(&FORWARD, &alice, 0);
    let drop = build_drop_cover(&mut net.rng, &geometry, &route, &delays).unwrap();
    let sizes: Vec<usize> = [&frag, &lp, &drop]
        .iter()
        .map(|p| p.to_frame(&geometry).unwrap().len())
        .collect();
    assert_eq!(sizes, vec![geometry.frame_len(); 3]);

    // A packet's bytes are unlinkable across a hop: no 16-byte window of the
    // input appears in the output.
    let frame = lp.to_frame(&geometry).unwrap();
    let mut keys = std::mem::take(&mut net.nodes[0].keys);
    let (_, out) =
        aegis_mix_packet::process_frame(&geometry, &frame, &mut keys, &net.live).unwrap();
    let Processed::Forward { packet, .. } = out else {
        panic!()
    };
    let input = &frame[aegis_mix_packet::constants::FRAME_HEADER_LEN..];
    for w in input.windows(16).step_by(16) {
        assert!(
            !packet.windows(16).any(|o| o == w),
            "input bytes survived the hop"
        );
    }
}

#[test]
fn hop_delays_are_the_senders_choice(geometry: Geometry) {
    let mut net = TestNet::in_geometry(geometry.clone(), 4, 5);
    let bob = TestMailbox::new(&mut net.rng);
    let route = net.route(&FORWARD);
    let delays = net.delays(20);
    let body = Body::Loop(LoopId([1; 16]));
    let out = build_mailbox_packet(
        &mut net.rng,
        &geometry,
        &route,
        &delays,
        bob.id,
        &bob.public(),
        &body,
    )
    .unwrap();
    let trace = net
        .deliver(out.first_hop, out.to_frame(&geometry).unwrap())
        .unwrap();
    // the last hop's delay is not forwarded (it delivers): compare the forwarding hops
    assert_eq!(trace.delays, delays.as_durations()[..4].to_vec());
}

#[test]
fn a_flipped_header_bit_fails_the_mac_at_the_first_hop(geometry: Geometry) {
    let mut net = TestNet::in_geometry(geometry.clone(), 5, 5);
    let bob = TestMailbox::new(&mut net.rng);
    let out = net.loop_packet(&FORWARD, &bob, 1);
    let key = net.nodes[0].keys.get(EPOCH).unwrap();
    let open = |packet: &[u8]| match geometry.format {
        PacketFormat::Sphinx => peel(&geometry, packet, &key.secret),
        PacketFormat::Kem => peel_hybrid(&geometry, packet, key.kem.as_ref().unwrap()),
    };
    // every bit of the header: α (or the ciphertext), γ and β
    for bit in 0..geometry.header_len() * 8 {
        let mut bad = out.packet.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        // the top bit of α is ignored by X25519, so it is refused by shape;
        // the KEM format's combiner hashes the X25519 point as sent
        let expected = if bit == 255 && geometry.format == PacketFormat::Sphinx {
            PacketError::NonCanonicalGroupElement
        } else {
            PacketError::HeaderAuthentication
        };
        assert_eq!(
            open(&bad).and_then(|p| p.unwrap()).err(),
            Some(expected),
            "bit {bit}"
        );
    }
}

#[test]
fn a_packet_whose_header_fails_its_mac_leaves_no_replay_tag(geometry: Geometry) {
    let mut net = TestNet::in_geometry(geometry.clone(), 8, 5);
    let bob = TestMailbox::new(&mut net.rng);
    let out = net.loop_packet(&FORWARD, &bob, 1);
    let frame = out.to_frame(&geometry).unwrap();
    // Same α or ciphertext (so the same replay tag), altered β: refused by
    // its MAC, and it must not make the genuine packet look replayed.
    let mut forged = out.packet.clone();
    forged[geometry.header_len() - 10] ^= 1;
    let forged = Frame::encode(&geometry, &forged).unwrap();
    assert_eq!(
        net.deliver(out.first_hop, forged.clone()).unwrap_err(),
        PacketError::HeaderAuthentication
    );
    net.deliver(out.first_hop, frame.clone()).unwrap();
    // Once the genuine packet is recorded, both copies are replays.
    assert_eq!(
        net.deliver(out.first_hop, frame).unwrap_err(),
        PacketError::Replayed
    );
    assert_eq!(
        net.deliver(out.first_hop, forged).unwrap_err(),
        PacketError::Replayed
    );
}

#[test]
fn a_flipped_payload_bit_is_caught_by_the_recipient(geometry: Geometry) {
    let mut net = TestNet::in_geometry(geometry.clone(), 6, 5);
    let bob = TestMailbox::new(&mut net.rng);
    let last = 8 * geometry.payload_len - 1;
    for bit in [0usize, 1000, 8 * 1024 + 3, last] {
        let out = net.loop_packet(&FORWARD, &bob, 1);
        let mut frame = out.to_frame(&geometry).unwrap();
        frame[aegis_mix_packet::constants::FRAME_HEADER_LEN + geometry.header_len() + bit / 8] ^= 1 << (bit % 8);
        let trace = net.deliver(out.first_hop, frame).unwrap();
        let payload = final_payload(trace.last, Destination::Mailbox(bob.id));
        assert_eq!(
            open_delivery(&geometry, &bob.secret, &payload).unwrap_err(),
            PacketError::PayloadAuthentication
        );
    }
}

#[test]
fn wrong_key_wrong_epoch_and_replay_each_have_their_error(geometry: Geometry) {
    let mut net = TestNet::in_geometry(geometry.clone(), 7, 6);
    let bob = TestMailbox::new(&mut net.rng);
    let out = net.loop_packet(&FORWARD, &bob, 1);
    let frame = out.to_frame(&geometry).unwrap();

    // node 5 is not on the route: its key does not open the header
    let stranger = net.nodes[5].id;
    assert_eq!(
        net.deliver(stranger, frame.clone()).unwrap_err(),
        PacketError::HeaderAuthentication
    );

    // a key the node holds for an epoch that is not live is not tried
    net.add_epoch(EPOCH + 1);
    net.add_epoch(EPOCH + 2);
    let ahead = net.loop_packet_for(EPOCH + 2, &FORWARD, &bob, 3);
    assert_eq!(
        net.deliver(ahead.first_hop, ahead.to_frame(&geometry).unwrap())
            .unwrap_err(),
        PacketError::HeaderAuthentication
    );

    // first delivery succeeds, the replay is refused at the first hop
    net.deliver(out.first_hop, frame.clone()).unwrap();
    assert_eq!(
        net.deliver(out.first_hop, frame).unwrap_err(),
        PacketError::Replayed
    );

    // erasing the epoch's key makes its packets unprocessable: the next
    // epoch's key, still live, does not open them
    let fresh = net.loop_packet(&FORWARD, &bob, 2);
    net.nodes[0].keys.erase_before(EPOCH + 1);
    assert_eq!(
        net.deliver(fresh.first_hop, fresh.to_frame(&geometry).unwrap())
            .unwrap_err(),
        PacketError::HeaderAuthentication
    );

    // with no live key at all the hop says so
    net.nodes[0].keys.erase_before(EPOCH + 3);
    assert_eq!(
        net.deliver(fresh.first_hop, fresh.to_frame(&geometry).unwrap())
            .unwrap_err(),
        PacketError::NoLiveKey
    );
}

#[test]
fn packets_of_two_consensus_epochs_differ_only_in_the_key_that_opens_them(geometry: Geometry) {
    let mut net = TestNet::in_geometry(geometry.clone(), 11, 5);
    net.add_epoch(EPOCH + 1);
    let bob = TestMailbox::new(&mut net.rng);
    let header = aegis_mix_packet::constants::FRAME_HEADER_LEN;
    for round in 0..8u8 {
        let old = net.loop_packet_for(EPOCH, &FORWARD, &bob, round);
        let new = net.loop_packet_for(EPOCH + 1, &FORWARD, &bob, round);
        let (old_trace, old_frames) = net
            .deliver_tracing(old.first_hop, old.to_frame(&geometry).unwrap())
            .unwrap();
        let (new_trace, new_frames) = net
            .deliver_tracing(new.first_hop, new.to_frame(&geometry).unwrap())
            .unwrap();
        // Both cross every hop, each opened by its own epoch's key.
        assert!(old_frames.iter().all(|(e, _)| *e == EPOCH));
        assert!(new_frames.iter().all(|(e, _)| *e == EPOCH + 1));
        assert_eq!(old_trace.hops_visited, new_trace.hops_visited);
        // On every link the two frames have one length, and the only bytes
        // that are not Sphinx output are the same constant version byte.
        for ((_, a), (_, b)) in old_frames.iter().zip(&new_frames) {
            assert_eq!(a.len(), b.len());
            assert_eq!(a[..header], b[..header]);
            assert_eq!(a[..header], [aegis_mix_packet::constants::FRAME_VERSION]);
        }
        for (trace, epoch) in [(old_trace, EPOCH), (new_trace, EPOCH + 1)] {
            let payload = final_payload(trace.last, Destination::Mailbox(bob.id));
            assert!(
                open_delivery(&geometry, &bob.secret, &payload).is_ok(),
                "epoch {epoch}"
            );
        }
    }
    // A hop holding only the other epoch's key cannot open the packet, and
    // refuses it exactly as it refuses random bytes.
    let old = net.loop_packet_for(EPOCH, &FORWARD, &bob, 99);
    net.live = vec![EPOCH + 1];
    assert_eq!(
        net.deliver(old.first_hop, old.to_frame(&geometry).unwrap())
            .unwrap_err(),
        PacketError::HeaderAuthentication
    );
    let mut noise = vec![0u8; geometry.packet_len()];
    rand::Rng::fill_bytes(&mut net.rng, &mut noise);
    noise[31] &= 0x7F;
    assert_eq!(
        net.deliver(old.first_hop, Frame::encode(&geometry, &noise).unwrap())
            .unwrap_err(),
        PacketError::HeaderAuthentication
    );
}

#[test]
fn malformed_frames_are_rejected_by_shape(geometry: Geometry) {
    let good = vec![aegis_mix_packet::constants::FRAME_VERSION; geometry.frame_len()];
    assert!(Frame::decode(&geometry, &good).is_ok());
    assert_eq!(
        Frame::decode(&geometry, &good[..good.len() - 1]),
        Err(PacketError::FrameLength {
            expected: geometry.frame_len(),
            got: geometry.frame_len() - 1
        })
    );
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(
        Frame::decode(&geometry, &long),
        Err(PacketError::FrameLength { .. })
    ));
    assert!(matches!(
        Frame::decode(&geometry, &[]),
        Err(PacketError::FrameLength { .. })
    ));
    // Version 1 (which carried the key epoch) and any other version.
    for version in [1u8, 3] {
        let mut other = good.clone();
        other[0] = version;
        assert_eq!(
            Frame::decode(&geometry, &other),
            Err(PacketError::UnsupportedFrameVersion(version))
        );
    }
}

#[test]
fn a_large_message_is_fragmented_delivered_out_of_order_and_reassembled_once(geometry: Geometry) {
    let mut net = TestNet::in_geometry(geometry.clone(), 8, 5);
    let (alice, bob) = (
        TestMailbox::new(&mut net.rng),
        TestMailbox::new(&mut net.rng),
    );
    let message: Vec<u8> = (0..geometry.fragment_data_len() * 3 + 17)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let message_id = MessageId::random(&mut net.rng);
    let fragments = split(&geometry, message_id, &message).unwrap();
    assert_eq!(fragments.len(), 4);

    let mut packets: Vec<_> = fragments
        .into_iter()
        .map(|f| fragment_packet(&mut net, &alice, &bob, f))
        .collect();
    // a retransmission of fragment 1 (new packet, same fragment)
    let again = {
        let payload = final_payload(
            net.deliver(
                packets[1].first_hop,
                packets[1].to_frame(&geometry).unwrap(),
            )
            .unwrap()
            .last,
            Destination::Mailbox(bob.id),
        );
        let Body::Fragment { fragment, .. } =
            open_delivery(&geometry, &bob.secret, &payload).unwrap()
        else {
            panic!()
        };
        fragment_packet(&mut net, &alice, &bob, fragment)
    };
    packets.push(again);
    packets.shuffle(&mut net.rng);

    let mut reassembler = Reassembler::new(ReassemblyLimits::default());
    let mut delivered = vec![];
    for (t, p) in packets.iter().enumerate() {
        let Ok(trace) = net.deliver(p.first_hop, p.to_frame(&geometry).unwrap()) else {
            continue; // packets[1]'s original was already delivered above: replay
        };
        let payload = final_payload(trace.last, Destination::Mailbox(bob.id));
        let Body::Fragment { fragment, .. } =
            open_delivery(&geometry, &bob.secret, &payload).unwrap()
        else {
            panic!()
        };
        match reassembler
            .insert(fragment, Duration::from_secs(t as u64))
            .unwrap()
        {
            Reassembled::Complete(id, m) => delivered.push((id, m)),
            Reassembled::Pending | Reassembled::Duplicate => {}
        }
    }
    assert_eq!(delivered, vec![(message_id, message)]);
    assert_eq!(reassembler.partial_messages(), 0);
}
}
