//! Whole-network tests without sockets: clients, gateways and mixes on a
//! virtual clock, running the protocol's own code with real Sphinx packets.

use std::time::Duration;

use aegis_mix_packet::Geometry;
use aegis_proto::MessageStatus;
use aegis_sim::{Harness, HarnessConfig};

const MINUTE: Duration = Duration::from_secs(60);

fn message(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| tag ^ (i as u8)).collect()
}

/// The scripted run: client 0 writes to client 1 while client 1 is offline
/// for an hour; a layer-2 mix is lost (and left out of the next epoch's
/// consensus) and client 1's gateway restarts in the meantime; client 1
/// comes back and answers.
fn scripted_run(seed: u64) -> Harness {
    scripted_run_in(HarnessConfig {
        seed,
        ..HarnessConfig::default()
    })
}

/// [`scripted_run`] over the network `config` describes.
fn scripted_run_in(config: HarnessConfig) -> Harness {
    let mut net = Harness::new(config).expect("harness");
    net.run_for(MINUTE / 2);
    net.set_online(1, false);
    // Three fragments: the message needs every one of them.
    net.send(0, 1, message(0xA5, 4_000)).expect("queue");
    net.run_for(5 * MINUTE);
    let lost = net.mixes(1)[0];
    net.stop_node(lost);
    net.run_for(MINUTE);
    net.next_epoch(&[lost]);
    net.run_for(24 * MINUTE);
    net.restart_gateway(1);
    net.run_for(30 * MINUTE);
    net.set_online(1, true);
    net.run_for(10 * MINUTE);
    net.send(1, 0, message(0x3C, 500)).expect("queue");
    net.run_for(10 * MINUTE);
    net
}

#[test]
fn a_message_to_a_recipient_offline_for_an_hour_arrives_exactly_once() {
    check_scripted_run(&scripted_run(7));
}

#[test]
fn in_the_kem_packet_format_the_offline_recipient_gets_the_message_exactly_once() {
    // The consensus names the post-quantum geometry: every node holds an
    // X-Wing key per epoch and every packet, acks and loops included, is a
    // KEM packet.
    let mut config = HarnessConfig {
        seed: 7,
        ..HarnessConfig::default()
    };
    config.parameters.geometry_hash = Geometry::PQ.hash();
    let net = scripted_run_in(config);
    assert_eq!(net.geometry(), &Geometry::PQ);
    check_scripted_run(&net);
}

#[test]
fn parameters_naming_an_unknown_geometry_are_refused() {
    let mut config = HarnessConfig::default();
    config.parameters.geometry_hash = [7; 32];
    assert!(matches!(
        Harness::new(config),
        Err(aegis_sim::HarnessError::UnknownGeometry)
    ));
}

/// What the scripted run must show whatever the packet format.
fn check_scripted_run(net: &Harness) {
    assert_eq!(
        net.delivered(1),
        [message(0xA5, 4_000)],
        "the message, once"
    );
    assert_eq!(net.delivered(0), [message(0x3C, 500)], "the answer, once");
    for client in [0, 1] {
        let shown: Vec<MessageStatus> = net.statuses(client).iter().map(|s| s.1).collect();
        assert!(
            !shown.contains(&MessageStatus::Failed),
            "client {client} was shown {shown:?}"
        );
        assert_eq!(
            shown.last(),
            Some(&MessageStatus::Delivered),
            "client {client} learns of the delivery"
        );
    }
    let stats = net.stats();
    assert!(stats.lost > 0, "the stopped mix lost packets: {stats:?}");
    assert!(
        stats.drop_cover > 0 && stats.node_loops_returned > 0,
        "{stats:?}"
    );
    assert_eq!(stats.replays, 0, "nothing replays in an honest network");
    // The sender retransmitted while the recipient was away, but backed off:
    // over an hour at the first timeout would be hundreds of transmissions.
    let sender = net.client_stats(0);
    assert!(sender.real_sent < 80, "{sender:?}");
}

#[test]
fn the_same_seed_gives_the_same_transcript() {
    let run = |seed| {
        let mut net = Harness::new(HarnessConfig {
            seed,
            ..HarnessConfig::default()
        })
        .expect("harness");
        net.send(0, 1, message(1, 3_000)).expect("queue");
        net.run_for(2 * MINUTE);
        net.send(1, 0, message(2, 100)).expect("queue");
        net.run_for(2 * MINUTE);
        (net.transcript().to_vec(), net.stats(), net.client_stats(0))
    };
    let first = run(11);
    assert_eq!(first, run(11));
    assert_ne!(first.2, run(12).2, "another seed, another schedule");
    assert!(
        first.0.iter().any(|l| l.what.contains("received")),
        "{:?}",
        first.0
    );
}

#[test]
fn lossy_links_lose_what_they_should_and_every_message_still_arrives_once() {
    const LOSS: f64 = 0.1;
    let mut net = Harness::new(HarnessConfig {
        seed: 5,
        link_loss: LOSS,
        ..HarnessConfig::default()
    })
    .expect("harness");
    let sent: Vec<Vec<u8>> = (0..4u8).map(|i| message(i, 2_500)).collect();
    for m in &sent {
        net.send(0, 1, m.clone()).expect("queue");
    }
    net.send(1, 0, message(9, 300)).expect("queue");
    net.run_for(90 * MINUTE);

    let stats = net.stats();
    // The losses follow the configured rate: a binomial count within four
    // standard deviations of n·p.
    let n = stats.link_frames as f64;
    let sd = (n * LOSS * (1.0 - LOSS)).sqrt();
    assert!(n > 1_000.0, "{stats:?}");
    assert!(
        (stats.link_lost as f64 - n * LOSS).abs() < 4.0 * sd,
        "{} of {} frames lost, expected about {:.0}",
        stats.link_lost,
        stats.link_frames,
        n * LOSS
    );
    // A fragment crosses five links and its SURB-ACK five more, so a single
    // try succeeds only (0.9^10 ≈ 35 %) of the time; retransmission makes
    // up for it, and duplicates are recognised.
    let mut received = net.delivered(1).to_vec();
    received.sort();
    assert_eq!(received, sent, "every message exactly once");
    assert_eq!(net.delivered(0), [message(9, 300)]);
    for client in [0, 1] {
        let shown: Vec<MessageStatus> = net.statuses(client).iter().map(|s| s.1).collect();
        assert!(!shown.contains(&MessageStatus::Failed), "{shown:?}");
    }
    let sender = net.client_stats(0);
    assert!(
        sender.real_sent > 4 * 2,
        "losses were made up by retransmissions: {sender:?}"
    );
}

#[test]
fn a_link_loss_that_is_not_a_probability_is_refused() {
    for loss in [-0.1, 1.5, f64::NAN] {
        let config = HarnessConfig {
            link_loss: loss,
            ..HarnessConfig::default()
        };
        assert!(Harness::new(config).is_err(), "{loss}");
    }
}

#[test]
fn an_anonymous_writer_is_answered_over_its_reply_blocks_each_used_once() {
    let mut net = Harness::new(HarnessConfig {
        seed: 77,
        ..HarnessConfig::default()
    })
    .expect("harness");
    net.run_for(MINUTE / 2);
    // Client 0 writes to client 1 anonymously: client 1 gets reply blocks
    // and never client 0's address.
    let blocks = net.give_reply_blocks(0, 1, 4);
    assert_eq!(blocks.len(), 4);
    let answer = message(0x42, 2_000);
    let id = net
        .reply_over_blocks(1, &blocks, answer.clone())
        .expect("queue");
    net.run_for(2 * MINUTE);
    assert_eq!(net.delivered(0), &[answer][..], "the answer arrives once");
    assert!(
        net.statuses(1).contains(&(id, MessageStatus::Delivered)),
        "the writer's forward acknowledgements reach the replier: {:?}",
        net.statuses(1)
    );
    // Two fragments, two blocks used (no loss, no retransmission).
    assert_eq!(net.reply_blocks_left(1), 2);
    // A block is never used twice: a message needing more fragments than
    // blocks are left sends what it can and then waits.
    let _ = net
        .reply_over_blocks(1, &blocks[..1], message(0x43, 5_000))
        .expect("queue");
    net.run_for(2 * MINUTE);
    assert_eq!(net.reply_blocks_left(1), 0);
    assert_eq!(
        net.delivered(0).len(),
        1,
        "an incomplete answer is not delivered"
    );
}
