//! Endpoint tests on a test network, without sockets.

use super::*;
use crate::delivery::{InboxConfig, MessageStatus, OutboxConfig};
use crate::testnet;
use aegis_directory::{ClientShaping, NetworkParameters, Role};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// An endpoint on a one-mix-per-layer test network, and a recipient
/// address whose acknowledgements never come back.
fn endpoint(rng: &mut ChaCha20Rng, shaping: Option<ShapingConfig>) -> (Endpoint<u8>, Address) {
    endpoint_under(rng, NetworkParameters::standard(3_600_000), shaping)
}

/// [`endpoint`] under a consensus publishing `parameters`.
fn endpoint_under(
    rng: &mut ChaCha20Rng,
    parameters: NetworkParameters,
    shaping: Option<ShapingConfig>,
) -> (Endpoint<u8>, Address) {
    let nodes: Vec<_> = (0..4)
        .map(|i| {
            let role = if i == 0 { Role::Gateway } else { Role::Mix };
            testnet::node(rng, role, 1, i, 1_000)
        })
        .collect();
    let mixes = std::array::from_fn(|l| vec![nodes[l + 1].descriptor(1)]);
    let document = testnet::consensus(rng, 1, parameters, mixes, vec![nodes[0].descriptor(1)]);
    let topology = Arc::new(Topology::new(document));
    let gateway = nodes[0].id();
    let own = Own {
        gateway,
        mailbox: MailboxId([1; 32]),
        sealing: SphinxSecret::from([2; 32]),
    };
    let address = Address {
        gateway,
        mailbox: MailboxId([3; 32]),
        mailbox_key: SphinxPublicKey::from(&SphinxSecret::from([4; 32])),
    };
    let endpoint = Endpoint::new(
        rng,
        EndpointConfig {
            shaping,
            ..EndpointConfig::default()
        },
        Geometry::STANDARD,
        own,
        topology,
        Outbox::new(OutboxConfig::default()),
        Inbox::new(InboxConfig::default()),
        Duration::ZERO,
    );
    (endpoint, address)
}

/// Runs the endpoint from `from` to `to` as its driver would, pulling
/// empty mailboxes; returns the frames it sent and when it pulled.
fn drive(
    rng: &mut ChaCha20Rng,
    endpoint: &mut Endpoint<u8>,
    from: Duration,
    to: Duration,
) -> (usize, Vec<Duration>) {
    let (mut frames, mut pulls) = (0, Vec::new());
    let mut now = from;
    while now < to {
        endpoint.handle_timeout(rng, now);
        while endpoint.poll_transmit().is_some() {
            frames += 1;
        }
        endpoint.prepare(rng, now);
        if let Some(ack) = endpoint.poll_pull(now) {
            pulls.push(now);
            endpoint.handle_pulled(rng, Vec::new(), now);
            assert!(ack.is_empty(), "nothing arrived, nothing to acknowledge");
        }
        now = endpoint.poll_timeout().max(now + Duration::from_micros(1));
    }
    (frames, pulls)
}

/// Acknowledgements owed: waiting, or prepared for the next real slot.
fn owed(endpoint: &Endpoint<u8>) -> usize {
    endpoint.acks.len() + endpoint.shaper.queued()
}

/// What the gateway stores for the endpoint when someone sends it one
/// fragment (of a two-fragment message `message_id`) with a SURB-ACK back
/// to a mailbox of theirs.
fn fragment_delivery(
    rng: &mut ChaCha20Rng,
    endpoint: &Endpoint<u8>,
    message_id: [u8; 16],
) -> Vec<u8> {
    let topology = endpoint.topology().clone();
    let gateway = topology.gateways[0];
    let geometry = Geometry::STANDARD;
    let back = topology.route(rng, &geometry, gateway, gateway).unwrap();
    let delays = HopDelays::fixed(&[Duration::ZERO; 5]);
    let sender = SphinxPublicKey::from(&SphinxSecret::from([8; 32]));
    let (surb_ack, _key) =
        SurbAck::new(rng, &geometry, &back, &delays, MailboxId([9; 32]), sender).unwrap();
    let body = Body::Fragment {
        fragment: aegis_mix_packet::Fragment {
            message_id: aegis_mix_packet::MessageId(message_id),
            index: 0,
            count: 2,
            data: vec![1; 10],
        },
        surb_ack,
    };
    // What the gateway stores for this client: a tag and the sealed box.
    let own = SphinxPublicKey::from(&SphinxSecret::from([2; 32]));
    let view = aegis_mix_packet::sealed::seal(rng, &own, &body.encode(&geometry).unwrap()).unwrap();
    aegis_mix_packet::join_delivery(&[5; 16], &view)
}

#[test]
fn a_fragment_delivered_twice_is_acknowledged_once() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let (mut endpoint, _) = endpoint(&mut rng, None);
    let delivery = fragment_delivery(&mut rng, &endpoint, [4; 16]);
    // Delivered twice in one pull, and once more later (the gateway did
    // not see the pull that acknowledged it).
    endpoint.handle_pulled(
        &mut rng,
        vec![([1; 8], delivery.clone()), ([2; 8], delivery.clone())],
        Duration::from_secs(1),
    );
    endpoint.handle_pulled(&mut rng, vec![([3; 8], delivery)], Duration::from_secs(2));
    assert_eq!(owed(&endpoint), 1, "the reply block was used once");
}

#[test]
fn a_flood_of_fragments_takes_at_most_every_other_real_slot() {
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let fast = ShapingConfig::ConstantRate {
        interval: Duration::from_millis(10),
    };
    let (mut endpoint, address) = endpoint(&mut rng, Some(fast));
    // Someone holding the card fills the mailbox: 200 fragments, each
    // owed an acknowledgement.
    let flood: Vec<([u8; 8], Vec<u8>)> = (0..200u8)
        .map(|i| ([i; 8], fragment_delivery(&mut rng, &endpoint, [i; 16])))
        .collect();
    endpoint.handle_pulled(&mut rng, flood, Duration::ZERO);
    assert_eq!(owed(&endpoint), 200);
    // The client's own message of four fragments (3 × 1,533 bytes and a
    // bit) is every fragment sent within eight real slots, not after the
    // 200 acknowledgements.
    let local = endpoint
        .queue(&mut rng, 1, address, vec![7; 5_000], Duration::ZERO)
        .unwrap();
    let mut now = Duration::ZERO;
    let sent_at = loop {
        endpoint.handle_timeout(&mut rng, now);
        while endpoint.poll_transmit().is_some() {}
        endpoint.prepare(&mut rng, now);
        if endpoint.poll_pull(now).is_some() {
            endpoint.handle_pulled(&mut rng, Vec::new(), now);
        }
        let sent = std::iter::from_fn(|| endpoint.poll_event()).any(|e| {
            matches!(e, EndpointEvent::Status(s) if s.local_id == local && s.status == MessageStatus::Sent)
        });
        if sent {
            break endpoint.stats().real_sent;
        }
        assert!(now < Duration::from_secs(10), "own message never sent");
        now = endpoint.poll_timeout().max(now + Duration::from_micros(1));
    };
    assert!(sent_at <= 8, "own fragments waited {sent_at} real slots");
    // The acknowledgements still all leave, in the slots between.
    drive(&mut rng, &mut endpoint, now, now + Duration::from_secs(5));
    assert_eq!(owed(&endpoint), 0);
    assert!(endpoint.stats().real_sent >= 204);
}

#[test]
fn the_schedule_and_the_pulls_do_not_depend_on_what_is_queued() {
    let run = |queue: bool| {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let (mut endpoint, address) = endpoint(&mut rng, None);
        if queue {
            let mut other = ChaCha20Rng::seed_from_u64(99);
            endpoint
                .queue(&mut other, 1, address, vec![7; 5_000], Duration::ZERO)
                .unwrap();
        }
        drive(
            &mut rng,
            &mut endpoint,
            Duration::ZERO,
            Duration::from_secs(60),
        )
    };
    let (idle_frames, idle_pulls) = run(false);
    let (busy_frames, busy_pulls) = run(true);
    assert_eq!(idle_frames, busy_frames, "one frame per slot either way");
    assert_eq!(idle_pulls, busy_pulls, "pulls on the same grid");
    // λP + λL + λD = 14 packets a second for a minute.
    assert!((700..=980).contains(&idle_frames), "{idle_frames}");
    // The grid: 8 / (2 (λP + λL)) = 0.33 s apart, exactly.
    let gaps: Vec<Duration> = idle_pulls.windows(2).map(|w| w[1] - w[0]).collect();
    let interval = Duration::from_secs_f64(8.0 / 24.0);
    assert!(gaps.iter().all(|g| *g == interval), "{gaps:?}");
}

#[test]
fn a_consensus_asking_for_a_constant_rate_gets_one_frame_per_fixed_interval() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let mut parameters = NetworkParameters::standard(3_600_000);
    parameters.shaping = ClientShaping::ConstantRate;
    let (mut endpoint, _) = endpoint_under(&mut rng, parameters, None);
    let mut sent = Vec::new();
    let mut now = Duration::ZERO;
    while now < Duration::from_secs(60) {
        endpoint.handle_timeout(&mut rng, now);
        while endpoint.poll_transmit().is_some() {
            sent.push(now);
        }
        endpoint.prepare(&mut rng, now);
        if endpoint.poll_pull(now).is_some() {
            endpoint.handle_pulled(&mut rng, Vec::new(), now);
        }
        now = endpoint.poll_timeout().max(now + Duration::from_micros(1));
    }
    // λP + λL + λD = 14: one frame every 1/14 s, no more, no less.
    assert!((839..=841).contains(&sent.len()), "{}", sent.len());
    let interval = Duration::from_secs_f64(1.0 / 14.0);
    for gap in sent.windows(2).map(|w| w[1] - w[0]) {
        let off = gap.abs_diff(interval);
        assert!(off < Duration::from_micros(2), "{gap:?}");
    }
    // Every idle slot is a loop: the mailbox fills at 14 a second, so a
    // pull of eight comes every 8 / (2 · 14) s.
    assert_eq!(
        endpoint.pull_interval(),
        Duration::from_secs_f64(8.0 / 28.0)
    );
}

#[test]
fn retransmissions_back_off_and_a_silent_recipient_is_still_tried_hours_later() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    // One slot every 10 s keeps five hours to a few thousand packets.
    let slow = ShapingConfig::ConstantRate {
        interval: Duration::from_secs(10),
    };
    let (mut endpoint, address) = endpoint(&mut rng, Some(slow));
    let local = endpoint
        .queue(&mut rng, 1, address, vec![9; 100], Duration::ZERO)
        .unwrap();
    let hour = Duration::from_secs(3_600);
    // An hour without an acknowledgement: a handful of transmissions,
    // not one per timeout of the first attempt's length.
    drive(&mut rng, &mut endpoint, Duration::ZERO, hour);
    let sent_in_an_hour = endpoint.stats().real_sent;
    assert!((8..=11).contains(&sent_in_an_hour), "{sent_in_an_hour}");
    let mut statuses = Vec::new();
    while let Some(event) = endpoint.poll_event() {
        if let EndpointEvent::Status(s) = event {
            statuses.push(s.status);
        }
    }
    assert_eq!(statuses, [MessageStatus::Sent], "not failed after an hour");
    // Hours later it is still trying, about once an hour (the outbox gives
    // up only after a week by default).
    drive(&mut rng, &mut endpoint, hour, 5 * hour);
    let failed = std::iter::from_fn(|| endpoint.poll_event()).any(|e| {
        matches!(e, EndpointEvent::Status(s) if s.local_id == local && s.status == MessageStatus::Failed)
    });
    assert!(!failed, "failed within five hours");
    let sent = endpoint.stats().real_sent;
    assert!(
        (sent_in_an_hour + 3..=sent_in_an_hour + 5).contains(&sent),
        "{sent} after five hours, {sent_in_an_hour} after one"
    );
}

#[test]
fn a_prepared_slot_is_emitted_without_building_anything() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let even = ShapingConfig::Poisson {
        payload_rate: 20.0,
        loop_rate: 10.0,
        drop_rate: 10.0,
    };
    let (mut endpoint, address) = endpoint(&mut rng, Some(even));
    endpoint
        .queue(&mut rng, 1, address, vec![7; 40_000], Duration::ZERO)
        .unwrap();
    let flood: Vec<([u8; 8], Vec<u8>)> = (0..40u8)
        .map(|i| ([i; 8], fragment_delivery(&mut rng, &endpoint, [i; 16])))
        .collect();
    endpoint.handle_pulled(&mut rng, flood, Duration::ZERO);
    let mut kinds = std::collections::BTreeMap::new();
    let mut now = Duration::ZERO;
    for _ in 0..400 {
        endpoint.prepare(&mut rng, now);
        now = endpoint.poll_timeout().max(now);
        // Emitting draws nothing from the RNG: every packet that leaves
        // was built before its slot, whatever its kind.
        let before = rng.clone();
        endpoint.handle_timeout(&mut rng, now);
        assert_eq!(rng, before, "a packet was built at its slot");
        while let Some((_, kind)) = endpoint.poll_transmit_kind() {
            *kinds.entry(kind).or_insert(0) += 1;
        }
        if let Some(ack) = endpoint.poll_pull(now) {
            drop(ack);
            endpoint.handle_pulled(&mut rng, Vec::new(), now);
        }
        now += Duration::from_micros(1);
    }
    for kind in [
        PacketKind::Fragment,
        PacketKind::Ack,
        PacketKind::Loop,
        PacketKind::Drop,
    ] {
        assert!(kinds.get(&kind).is_some_and(|&n| n > 20), "{kinds:?}");
    }
}
