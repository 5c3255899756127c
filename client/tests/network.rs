//! Two clients exchange messages through real nodes on loopback: one
//! message needs several fragments, the recipient is offline at first, and
//! a mix dies during traffic; everything arrives exactly once. A mailbox
//! entry served twice repeats no Sphinx header on the wire, and a client
//! follows the authority list the consensus names.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::time::Duration;

use aegis_client::api::{Client, ClientConfig, Event};
use aegis_client::profile::Profile;
use aegis_client::store::Argon2Params;
use aegis_client::{ContactId, LocalId, MessageStatus};
use aegis_directory::TrustedAuthority;
use aegis_node::metrics::DropReason;
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

/// A client initialised with two of the network's three authorities pins
/// the third from the consensus the first time it is online; once one of
/// the two it started with is gone, it still verifies the documents the
/// remaining two sign, while a profile that never refreshed its list
/// cannot start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_follows_the_authority_list_the_consensus_names() {
    let dir = tempfile::tempdir().unwrap();
    let spec = LocalNetSpec {
        authorities: 3,
        epoch_length_ms: 4_000,
        ..LocalNetSpec::default()
    };
    let mut net = LocalNet::start(dir.path(), &spec).await.unwrap();
    let topology = net.wait_ready(Duration::from_secs(60)).await.unwrap();
    let all: Vec<TrustedAuthority> = net
        .authorities
        .iter()
        .map(|a| TrustedAuthority {
            url: a.url.clone(),
            public_key: a.public_key,
        })
        .collect();
    let first_two = all[..2].to_vec();
    let create = |name: &str| {
        Profile::create(
            &mut rand::rng(),
            &dir.path().join(name),
            name.as_bytes(),
            Argon2Params::insecure_fast(),
            topology.gateways[0],
            first_two.clone(),
        )
        .unwrap()
    };
    let (following, stale) = (create("following"), create("stale"));

    let (client, _events) = Client::start(following, config()).await.unwrap();
    let following = client.shutdown().await.unwrap();
    assert!(
        TrustedAuthority::same_list(&following.authorities, &all),
        "pinned after a run: {:?}",
        following.authorities
    );
    drop(following);
    let reopened = Profile::open(&dir.path().join("following"), b"following").unwrap();
    assert!(
        TrustedAuthority::same_list(&reopened.authorities, &all),
        "the list is kept across restarts"
    );

    // Authority 0 leaves; wait for a document only the other two signed.
    net.stop_authority(0).await;
    let remaining =
        aegis_directory::Fetcher::for_authorities(&all[1..], Duration::from_secs(5)).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        if let Ok(doc) = remaining.fetch(None, now).await
            && doc
                .signatures
                .iter()
                .all(|s| s.authority != all[0].public_key)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no document without authority 0"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let refused = Client::start(stale, config()).await;
    assert!(
        refused.is_err(),
        "a client pinning authorities 0 and 1 accepted a document signed by 1 and 2"
    );
    let (client, _events) = Client::start(reopened, config())
        .await
        .expect("the refreshed list verifies what authorities 1 and 2 sign");
    client.shutdown().await.unwrap();
    net.shutdown().await;
}

/// Replay drops counted by every node of the network.
fn replays(net: &LocalNet) -> u64 {
    (0..net.nodes.len())
        .filter_map(|i| net.node(i))
        .map(|n| n.metrics().dropped_for(DropReason::replay))
        .sum()
}

/// Bob's gateway serves the entries of his last pull again (he stopped
/// before the pull that acknowledges them): the fragment arrives a second
/// time, gets no second ack from its reply block, and no node of the
/// network sees any Sphinx header twice; Alice's message is delivered
/// once (over this block's ack or, had it not left before Bob stopped,
/// a retransmission's) and Bob shows it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mailbox_entry_served_twice_repeats_no_header_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let spec = LocalNetSpec {
        authorities: 1,
        mixes: 3,
        gateways: 2,
        epoch_length_ms: 4_000,
        ..LocalNetSpec::default()
    };
    let net = LocalNet::start(dir.path(), &spec).await.unwrap();
    let topology = net.wait_ready(Duration::from_secs(40)).await.unwrap();
    let create = |name: &str, gateway| {
        Profile::create(
            &mut rand::rng(),
            &dir.path().join(name),
            name.as_bytes(),
            Argon2Params::insecure_fast(),
            gateway,
            net.trusted(),
        )
        .unwrap()
    };
    let alice = create("alice", topology.gateways[0]);
    let bob = create("bob", topology.gateways[1]);
    let bob_id = alice.add_contact("bob", &bob.card().encode()).unwrap();
    bob.add_contact("alice", &alice.card().encode()).unwrap();

    let (alice_client, mut alice_events) = Client::start(alice, config()).await.unwrap();
    let sent = alice_client.send(bob_id, b"once".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Bob stops as soon as the message is his: the pull that would
    // acknowledge its entry to the gateway (a third of a second later on
    // the pull grid the consensus's rates set) is not made.
    let (bob_client, mut bob_events) = Client::start(bob, ClientConfig::default()).await.unwrap();
    let mut bob_log = Vec::new();
    collect(
        &mut bob_events,
        &mut bob_log,
        Duration::from_secs(30),
        |log| !bodies(log).is_empty(),
    )
    .await;
    let bob = bob_client.shutdown().await.unwrap();

    // The ack id is saved as answered with the inbox at shutdown, whether
    // or not the ack itself left before it.
    let (bob_client, mut bob_events) = Client::start(bob, ClientConfig::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while bob_client.stats().await.unwrap().acks_withheld == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway did not serve the entry again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut alice_log = Vec::new();
    collect(
        &mut alice_events,
        &mut alice_log,
        Duration::from_secs(60),
        |log| delivered(log, sent),
    )
    .await;
    // Time for a second ack, had there been one, to cross the network.
    tokio::time::sleep(Duration::from_secs(3)).await;
    while let Ok(event) = bob_events.try_recv() {
        bob_log.push(event);
    }
    assert_eq!(bodies(&bob_log), vec![b"once".to_vec()], "shown once");
    assert_eq!(
        replays(&net),
        0,
        "a Sphinx header crossed the network twice"
    );
    while let Ok(event) = alice_events.try_recv() {
        alice_log.push(event);
    }
    let deliveries = alice_log
        .iter()
        .filter(|e| matches!(e, Event::Status { local_id, status: MessageStatus::Delivered, .. } if *local_id == sent))
        .count();
    assert_eq!(deliveries, 1, "delivered once");
    bob_client.shutdown().await.unwrap();
    alice_client.shutdown().await.unwrap();
    net.shutdown().await;
}
