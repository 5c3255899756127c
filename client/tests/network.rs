//! Two clients exchange messages through real nodes on loopback: one
//! message needs several fragments, the recipient is offline at first, and
//! a mix dies during traffic; everything arrives exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::time::Duration;

use aegis_client::api::{Client, ClientConfig, Event};
use aegis_client::profile::Profile;
use aegis_client::store::Argon2Params;
use aegis_client::{ContactId, LocalId, MessageStatus};
use aegis_directory::TrustedAuthority;
use aegis_testkit::{LocalNet, LocalNetSpec};
use tokio::sync::mpsc;

fn config() -> ClientConfig {
    ClientConfig {
        pull_interval: Duration::from_millis(200),
        ..ClientConfig::default()
    }
}

/// Collects events until `done` says so or the timeout passes.
async fn collect(
    events: &mut mpsc::Receiver<Event>,
    log: &mut Vec<Event>,
    timeout: Duration,
    done: impl Fn(&[Event]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(log) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(e)) => log.push(e),
            _ => panic!("timed out; events so far: {log:#?}"),
        }
    }
}

fn delivered(log: &[Event], id: LocalId) -> bool {
    log.iter().any(|e| {
        matches!(e, Event::Status { local_id, status: MessageStatus::Delivered, .. } if *local_id == id)
    })
}

fn bodies(log: &[Event]) -> Vec<Vec<u8>> {
    log.iter()
        .filter_map(|e| match e {
            Event::Message { body, .. } => Some(body.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_clients_talk_through_the_mixnet() {
    let dir = tempfile::tempdir().unwrap();
    let spec = LocalNetSpec {
        authorities: 1,
        mixes: 6,
        gateways: 2,
        epoch_length_ms: 4_000,
        ..LocalNetSpec::default()
    };
    let mut net = LocalNet::start(dir.path(), &spec).await.unwrap();
    let topology = net.wait_ready(Duration::from_secs(40)).await.unwrap();
    let authorities: Vec<TrustedAuthority> = net.trusted();
    let mut rng = rand::rng();
    let alice = Profile::create(
        &mut rng,
        &dir.path().join("alice"),
        b"alice passphrase",
        Argon2Params::insecure_fast(),
        topology.gateways[0],
        authorities.clone(),
    )
    .unwrap();
    let bob = Profile::create(
        &mut rng,
        &dir.path().join("bob"),
        b"bob passphrase",
        Argon2Params::insecure_fast(),
        topology.gateways[1],
        authorities,
    )
    .unwrap();
    let bob_id: ContactId = alice.add_contact("bob", &bob.card().encode()).unwrap();
    let alice_id: ContactId = bob.add_contact("alice", &alice.card().encode()).unwrap();

    // Bob is offline: Alice's messages wait in his mailbox.
    let (alice_client, mut alice_events) = Client::start(alice, config()).await.unwrap();
    let small = alice_client
        .send(bob_id, b"hello bob".to_vec())
        .await
        .unwrap();
    let large_body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let large = alice_client.send(bob_id, large_body.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (bob_client, mut bob_events) = Client::start(bob, config()).await.unwrap();
    let mut bob_log = Vec::new();
    collect(
        &mut bob_events,
        &mut bob_log,
        Duration::from_secs(60),
        |log| bodies(log).len() >= 2,
    )
    .await;
    let got = bodies(&bob_log);
    assert!(got.contains(&b"hello bob".to_vec()));
    assert!(
        got.contains(&large_body),
        "the multi-fragment message arrives whole"
    );
    let mut alice_log = Vec::new();
    collect(
        &mut alice_events,
        &mut alice_log,
        Duration::from_secs(60),
        |log| delivered(log, small) && delivered(log, large),
    )
    .await;

    // Bob answers in the session Alice started.
    bob_client
        .send(alice_id, b"hi alice".to_vec())
        .await
        .unwrap();
    collect(
        &mut alice_events,
        &mut alice_log,
        Duration::from_secs(60),
        |log| bodies(log).contains(&b"hi alice".to_vec()),
    )
    .await;

    // A mix dies during traffic: retransmission over other routes delivers
    // everything, and nothing twice.
    let victim = (0..spec.mixes)
        .find(|&i| {
            net.node(i)
                .is_some_and(|n| topology.layers[1].contains(&n.id()))
        })
        .unwrap();
    net.stop_node(victim).await;
    let mut ids = Vec::new();
    for i in 0..3u8 {
        ids.push(
            alice_client
                .send(bob_id, format!("after the failure {i}").into_bytes())
                .await
                .unwrap(),
        );
    }
    collect(
        &mut alice_events,
        &mut alice_log,
        Duration::from_secs(120),
        |log| ids.iter().all(|id| delivered(log, *id)),
    )
    .await;
    collect(
        &mut bob_events,
        &mut bob_log,
        Duration::from_secs(30),
        |log| bodies(log).len() >= 5,
    )
    .await;
    // Give late duplicates a chance to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while let Ok(e) = bob_events.try_recv() {
        bob_log.push(e);
    }
    let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
    for b in bodies(&bob_log) {
        *counts.entry(b).or_default() += 1;
    }
    assert_eq!(counts.len(), 5, "five distinct messages");
    assert!(counts.values().all(|&n| n == 1), "each exactly once");

    let bob = bob_client.shutdown().await.unwrap();
    let received = |p: &Profile| {
        p.messages()
            .unwrap()
            .iter()
            .filter(|m| m.sent.is_none())
            .count()
    };
    assert_eq!(received(&bob), 5, "stored once each");
    assert_eq!(bob.messages().unwrap().len(), 6, "and the one Bob sent");
    // After a restart, late copies are still recognised: nothing new arrives.
    let (bob_client, mut bob_events) = Client::start(bob, config()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    while let Ok(e) = bob_events.try_recv() {
        assert!(
            !matches!(e, Event::Message { .. }),
            "delivered again: {e:?}"
        );
    }
    let bob = bob_client.shutdown().await.unwrap();
    assert_eq!(received(&bob), 5);
    let stats = alice_client.stats().await.unwrap();
    assert!(
        stats.loops_sent > 0 && stats.drops_sent > 0,
        "cover traffic flows"
    );
    alice_client.shutdown().await.unwrap();
    net.shutdown().await;
}
