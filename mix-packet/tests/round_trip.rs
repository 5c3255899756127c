//! Packets of every kind over the full route, and every way a packet can be bad.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use aegis_mix_packet::{
    Body, Destination, Fragment, Frame, Geometry, HopDelays, LoopId, MessageId, PacketError,
    Processed, Reassembled, Reassembler, ReassemblyLimits, SurbAck, build_ack, build_drop_cover,
    build_mailbox_packet, open_delivery, peel, split,
};
use common::{EPOCH, TestMailbox, TestNet};
use rand::seq::SliceRandom;
use std::time::Duration;

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
    let back = net.route(&BACKWARD);
    let back_delays = net.delays(5);
    let geometry = net.geometry.clone();
    let surb_ack = SurbAck::new(
        &mut net.rng,
        &geometry,
        EPOCH,
        &back,
        &back_delays,
        alice.id,
        alice.public(),
    )
    .unwrap();
    let route = net.route(&FORWARD);
    let delays = net.delays(5);
    let body = Body::Fragment { fragment, surb_ack };
    build_mailbox_packet(
        &mut net.rng,
        &geometry,
        EPOCH,
        &route,
        &delays,
        bob.id,
        &bob.public(),
        &body,
    )
    .unwrap()
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

#[test]
fn fragment_crosses_the_route_and_its_ack_comes_back() {
    let mut net = TestNet::new(1, 5);
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
    let out = fragment_packet(&mut net, &alice, &bob, fragment.clone());
    assert_eq!(out.first_hop, net.nodes[0].id);

    let geometry = net.geometry.clone();
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
    let payload = final_payload(trace.last, Destination::Mailbox(alice.id));
    match open_delivery(&geometry, &alice.secret, &payload).unwrap() {
        Body::Ack(id) => assert_eq!(id, ack_id),
        other => panic!("expected an ack, got {other:?}"),
    }
}

#[test]
fn loop_and_drop_cover_arrive_as_their_kind() {
    let mut net = TestNet::new(2, 5);
    let alice = TestMailbox::new(&mut net.rng);
    let geometry = net.geometry.clone();
    let route = net.route(&FORWARD);
    let delays = net.delays(1);
    let loop_id = LoopId([9; 16]);
    let out = build_mailbox_packet(
        &mut net.rng,
        &geometry,
        EPOCH,
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

    let drop = build_drop_cover(&mut net.rng, &geometry, EPOCH, &route, &delays).unwrap();
    assert_eq!(drop.packet.len(), out.packet.len());
    let trace = net
        .deliver(drop.first_hop, drop.to_frame(&geometry).unwrap())
        .unwrap();
    final_payload(trace.last, Destination::Drop);
}

#[test]
fn a_cycle_route_of_fewer_hops_arrives_and_looks_like_any_packet() {
    let mut net = TestNet::new(3, 5);
    let owner = TestMailbox::new(&mut net.rng);
    let geometry = net.geometry.clone();
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
        EPOCH,
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
fn every_kind_has_one_size_and_a_fresh_look_at_every_hop() {
    let mut net = TestNet::new(3, 5);
    let (alice, bob) = (
        TestMailbox::new(&mut net.rng),
        TestMailbox::new(&mut net.rng),
    );
    let geometry = net.geometry.clone();
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
    let drop = build_drop_cover(&mut net.rng, &geometry, EPOCH, &route, &delays).unwrap();
    let sizes: Vec<usize> = [&frag, &lp, &drop]
        .iter()
        .map(|p| p.to_frame(&geometry).unwrap().len())
        .collect();
    assert_eq!(sizes, vec![geometry.frame_len(); 3]);

    // A packet's bytes are unlinkable across a hop: no 16-byte window of the
    // input appears in the output.
    let frame = lp.to_frame(&geometry).unwrap();
    let mut keys = std::mem::take(&mut net.nodes[0].keys);
    let (_, out) = aegis_mix_packet::process_frame(&geometry, &frame, &mut keys).unwrap();
    let Processed::Forward { packet, .. } = out else {
        panic!()
    };
    let input = &frame[9..];
    for w in input.windows(16).step_by(16) {
        assert!(
            !packet.windows(16).any(|o| o == w),
            "input bytes survived the hop"
        );
    }
}

#[test]
fn hop_delays_are_the_senders_choice() {
    let mut net = TestNet::new(4, 5);
    let bob = TestMailbox::new(&mut net.rng);
    let geometry = net.geometry.clone();
    let route = net.route(&FORWARD);
    let delays = net.delays(20);
    let body = Body::Loop(LoopId([1; 16]));
    let out = build_mailbox_packet(
        &mut net.rng,
        &geometry,
        EPOCH,
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
fn a_flipped_header_bit_fails_the_mac_at_the_first_hop() {
    let mut net = TestNet::new(5, 5);
    let bob = TestMailbox::new(&mut net.rng);
    let geometry = net.geometry.clone();
    let out = net.loop_packet(&FORWARD, &bob, 1);
    let key = &net.nodes[0].keys.get(EPOCH).unwrap().secret;
    // every bit of the header: α, γ and β
    for bit in 0..aegis_mix_packet::constants::SPHINX_HEADER_LEN * 8 {
        let mut bad = out.packet.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        // the top bit of α is ignored by X25519, so it is refused by shape
        let expected = if bit == 255 {
            PacketError::NonCanonicalGroupElement
        } else {
            PacketError::HeaderAuthentication
        };
        assert_eq!(
            peel(&geometry, &bad, key).and_then(|p| p.unwrap()).err(),
            Some(expected),
            "bit {bit}"
        );
    }
}

#[test]
fn a_packet_whose_header_fails_its_mac_leaves_no_replay_tag() {
    let mut net = TestNet::new(8, 5);
    let bob = TestMailbox::new(&mut net.rng);
    let geometry = net.geometry.clone();
    let out = net.loop_packet(&FORWARD, &bob, 1);
    let frame = out.to_frame(&geometry).unwrap();
    // Same α (so the same replay tag), altered β: refused by its MAC, and
    // it must not make the genuine packet look replayed.
    let mut forged = out.packet.clone();
    forged[100] ^= 1;
    let forged = Frame::encode(&geometry, EPOCH, &forged).unwrap();
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
fn a_flipped_payload_bit_is_caught_by_the_recipient() {
    let mut net = TestNet::new(6, 5);
    let bob = TestMailbox::new(&mut net.rng);
    let geometry = net.geometry.clone();
    for bit in [0usize, 1000, 8 * 1024 + 3, 8 * 2048 - 1] {
        let out = net.loop_packet(&FORWARD, &bob, 1);
        let mut frame = out.to_frame(&geometry).unwrap();
        frame[9 + 348 + bit / 8] ^= 1 << (bit % 8);
        let trace = net.deliver(out.first_hop, frame).unwrap();
        let payload = final_payload(trace.last, Destination::Mailbox(bob.id));
        assert_eq!(
            open_delivery(&geometry, &bob.secret, &payload).unwrap_err(),
            PacketError::PayloadAuthentication
        );
    }
}

#[test]
fn wrong_key_wrong_epoch_and_replay_each_have_their_error() {
    let mut net = TestNet::new(7, 6);
    let bob = TestMailbox::new(&mut net.rng);
    let geometry = net.geometry.clone();
    let out = net.loop_packet(&FORWARD, &bob, 1);
    let frame = out.to_frame(&geometry).unwrap();

    // node 5 is not on the route: its key does not open the header
    let stranger = net.nodes[5].id;
    assert_eq!(
        net.deliver(stranger, frame.clone()).unwrap_err(),
        PacketError::HeaderAuthentication
    );

    // a frame naming an epoch the node has no key for
    let other_epoch = Frame::encode(&geometry, EPOCH + 1, &out.packet).unwrap();
    assert_eq!(
        net.deliver(out.first_hop, other_epoch).unwrap_err(),
        PacketError::UnknownEpoch(EPOCH + 1)
    );

    // the node holds a key for the named epoch, but the packet was built for another
    let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(99);
    let next = aegis_mix_packet::SphinxSecret::random_from_rng(&mut rng);
    net.nodes[0].keys.insert(
        EPOCH + 1,
        aegis_mix_packet::EpochKey::new(
            next,
            aegis_mix_packet::ReplayFilter::with_capacity(&mut rng, 10, 1e-3),
        ),
    );
    let mislabelled = Frame::encode(&geometry, EPOCH + 1, &out.packet).unwrap();
    assert_eq!(
        net.deliver(out.first_hop, mislabelled).unwrap_err(),
        PacketError::HeaderAuthentication
    );

    // first delivery succeeds, the replay is refused at the first hop
    net.deliver(out.first_hop, frame.clone()).unwrap();
    assert_eq!(
        net.deliver(out.first_hop, frame).unwrap_err(),
        PacketError::Replayed
    );

    // erasing the epoch's key makes its packets unprocessable
    let fresh = net.loop_packet(&FORWARD, &bob, 2);
    net.nodes[0].keys.erase_before(EPOCH + 1);
    assert_eq!(
        net.deliver(fresh.first_hop, fresh.to_frame(&geometry).unwrap())
            .unwrap_err(),
        PacketError::UnknownEpoch(EPOCH)
    );
}

#[test]
fn malformed_frames_are_rejected_by_shape() {
    let geometry = Geometry::STANDARD;
    let good = vec![1u8; geometry.frame_len()];
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
    let mut v2 = good;
    v2[0] = 2;
    assert_eq!(
        Frame::decode(&geometry, &v2),
        Err(PacketError::UnsupportedFrameVersion(2))
    );
}

#[test]
fn a_large_message_is_fragmented_delivered_out_of_order_and_reassembled_once() {
    let mut net = TestNet::new(8, 5);
    let (alice, bob) = (
        TestMailbox::new(&mut net.rng),
        TestMailbox::new(&mut net.rng),
    );
    let geometry = net.geometry.clone();
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
