//! The client as people live with it, over real nodes on loopback: the
//! `aegis daemon` keeps a profile online while commands return at once,
//! and a recipient offline for ten minutes gets a message exactly once,
//! its sender never seeing it fail. The two tests run side by side.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use aegis_client::api::{Client, ClientConfig, Event};
use aegis_client::profile::Profile;
use aegis_client::store::Argon2Params;
use aegis_client::{ContactId, MessageStatus};
use aegis_testkit::{LocalNet, LocalNetSpec};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

const AEGIS: &str = env!("CARGO_BIN_EXE_aegis");

fn config() -> ClientConfig {
    ClientConfig {
        pull_interval: Duration::from_millis(200),
        ..ClientConfig::default()
    }
}

/// A network of one authority, three layers of two mixes and two gateways,
/// with epochs of `epoch_length_ms`.
async fn network(dir: &Path, epoch_length_ms: u64) -> LocalNet {
    let spec = LocalNetSpec {
        authorities: 1,
        mixes: 6,
        gateways: 2,
        epoch_length_ms,
        ..LocalNetSpec::default()
    };
    LocalNet::start(dir, &spec).await.unwrap()
}

/// Alice at the first gateway, Bob at the second, each the other's contact.
async fn profiles(dir: &Path, net: &LocalNet) -> (Profile, Profile, ContactId, ContactId) {
    let topology = net.wait_ready(Duration::from_secs(60)).await.unwrap();
    let create = |name: &str, gateway| {
        Profile::create(
            &mut rand::rng(),
            &dir.join(name),
            format!("{name} passphrase").as_bytes(),
            Argon2Params::insecure_fast(),
            gateway,
            net.trusted(),
        )
        .unwrap()
    };
    let alice = create("alice", topology.gateways[0]);
    let bob = create("bob", topology.gateways[1]);
    let bob_id = alice.add_contact("bob", &bob.card().encode()).unwrap();
    let alice_id = bob.add_contact("alice", &alice.card().encode()).unwrap();
    (alice, bob, bob_id, alice_id)
}

/// Runs `aegis --profile PROFILE ARGS…` to the end; its standard output.
async fn aegis(profile: &Path, passphrase: &str, args: &[&str]) -> String {
    let out = Command::new(AEGIS)
        .arg("--profile")
        .arg(profile)
        .args(args)
        .env("AEGIS_PASSPHRASE", passphrase)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "aegis {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Waits for a message event with `body`; panics after `timeout`.
async fn message(events: &mut mpsc::Receiver<Event>, body: &[u8], timeout: Duration) {
    tokio::time::timeout(timeout, async {
        loop {
            match events.recv().await {
                Some(Event::Message { body: b, .. }) if b == body => return,
                Some(_) => {}
                None => panic!("the client stopped"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{:?} did not arrive", String::from_utf8_lossy(body)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_daemon_keeps_the_profile_online_and_commands_return_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), 4_000).await;
    let (alice, bob, _, alice_id) = profiles(dir.path(), &net).await;
    let alice_path = dir.path().join("alice");
    drop(alice);

    let mut daemon = Command::new(AEGIS)
        .arg("--profile")
        .arg(&alice_path)
        .args(["--pull-interval", "0.2", "daemon"])
        .env("AEGIS_PASSPHRASE", "alice passphrase")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let socket = aegis_client::control::socket_path(&alice_path);
    let started = tokio::time::Instant::now();
    while aegis_client::daemon::Connection::open(&socket)
        .await
        .is_none()
    {
        assert!(started.elapsed() < Duration::from_secs(60), "no daemon");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the owner may open the socket");

    // The daemon holds the profile: commands go through it and need no
    // passphrase (a wrong one proves it is not used).
    let contacts = aegis(&alice_path, "wrong", &["contact", "list"]).await;
    assert!(contacts.starts_with("bob\t"), "{contacts}");

    // `send` returns once queued, long before delivery.
    let (bob_client, mut bob_events) = Client::start(bob, config()).await.unwrap();
    let queued = aegis(
        &alice_path,
        "wrong",
        &["send", "bob", "hello through the daemon"],
    )
    .await;
    assert!(queued.starts_with("queued #"), "{queued}");
    message(
        &mut bob_events,
        b"hello through the daemon",
        Duration::from_secs(60),
    )
    .await;
    let started = tokio::time::Instant::now();
    loop {
        let status = aegis(&alice_path, "wrong", &["status"]).await;
        if status.contains("delivered]") {
            assert!(
                status.contains("to bob: hello through the daemon"),
                "{status}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never delivered: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // `inbox --follow` shows what arrives while it runs.
    let mut follow = Command::new(AEGIS)
        .arg("--profile")
        .arg(&alice_path)
        .args(["inbox", "--follow"])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    // The history comes first; then Bob writes.
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("hello through the daemon") {
            break;
        }
    }
    bob_client
        .send(alice_id, b"bob answers".to_vec())
        .await
        .unwrap();
    let arrived = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.ends_with("bob: bob answers") {
                return line;
            }
        }
        panic!("inbox --follow ended");
    })
    .await
    .expect("the answer was not shown");
    assert!(arrived.starts_with('#'), "{arrived}");
    follow.kill().await.unwrap();

    // `serve` speaks its protocol through the daemon, events included, and
    // ends with its input while the daemon stays online.
    let mut serve = Command::new(AEGIS)
        .arg("--profile")
        .arg(&alice_path)
        .arg("serve")
        .env("AEGIS_PASSPHRASE", "wrong")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = serve.stdin.take().unwrap();
    input
        .write_all(b"{\"send\":{\"to\":\"bob\",\"text\":\"sent through serve\"}}\n")
        .await
        .unwrap();
    let mut replies = BufReader::new(serve.stdout.take().unwrap()).lines();
    let mut id = None;
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = replies.next_line().await.unwrap() {
            let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
            match reply["event"].as_str() {
                Some("queued") => id = reply["id"].as_u64(),
                Some("status") if reply["status"] == "delivered" && reply["id"].as_u64() == id => {
                    return;
                }
                _ => {}
            }
        }
        panic!("serve ended");
    })
    .await
    .expect("serve reported no delivery");
    assert!(id.is_some(), "serve answered the send with its id");
    message(
        &mut bob_events,
        b"sent through serve",
        Duration::from_secs(10),
    )
    .await;
    drop(input);
    let ended = tokio::time::timeout(Duration::from_secs(10), serve.wait())
        .await
        .expect("serve ends with its input")
        .unwrap();
    assert!(ended.success());
    assert!(
        aegis_client::daemon::Connection::open(&socket)
            .await
            .is_some(),
        "the daemon is still online"
    );

    // Stopped, the daemon gives the profile back: commands open it again.
    aegis_testkit::processes::terminate(&daemon);
    let status = tokio::time::timeout(Duration::from_secs(30), daemon.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert!(!socket.exists(), "the socket is removed");
    let history = aegis(
        &alice_path,
        "alice passphrase",
        &["inbox", "--with", "bob", "--wait", "0"],
    )
    .await;
    assert!(history.contains("bob: bob answers"), "{history}");
    bob_client.shutdown().await.unwrap();
    net.shutdown().await;
}

/// Seconds the recipient stays offline (`AEGIS_OFFLINE_SECS`, default ten
/// minutes as the client's promise says).
fn offline_for() -> Duration {
    let secs = std::env::var("AEGIS_OFFLINE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recipient_offline_for_ten_minutes_gets_the_message_once() {
    let dir = tempfile::tempdir().unwrap();
    // Four-second epochs: the SURB-ACKs of the copies that waited in Bob's
    // mailbox were built on keys long gone when he comes back (a SURB-ACK
    // lives as long as its route's keys, one to two epochs), so Alice
    // learns of the delivery from her next retransmission, which her
    // back-off schedules within about as long again as Bob was away.
    let net = network(dir.path(), 4_000).await;
    let (alice, bob, bob_id, _) = profiles(dir.path(), &net).await;
    let offline = offline_for();

    let (client, mut events) = Client::start(alice, config()).await.unwrap();
    let id = client
        .send(bob_id, b"while you were away".to_vec())
        .await
        .unwrap();
    // Bob stays offline; Alice's client restarts half-way (its outbox is
    // saved) and never reports the message failed.
    let mut statuses = Vec::new();
    let mut client = Some(client);
    for half in 0..2 {
        let until = tokio::time::Instant::now() + offline / 2;
        while let Ok(Some(event)) = tokio::time::timeout_at(until, events.recv()).await {
            if let Event::Status {
                local_id, status, ..
            } = event
                && local_id == id
            {
                statuses.push(status);
            }
        }
        if half == 0 {
            let alice = client.take().unwrap().shutdown().await.unwrap();
            let (c, e) = Client::start(alice, config()).await.unwrap();
            (client, events) = (Some(c), e);
        }
    }
    assert!(
        !statuses.contains(&MessageStatus::Failed),
        "failed while the recipient was offline: {statuses:?}"
    );
    assert!(!statuses.contains(&MessageStatus::Delivered));

    // Bob comes back: the message arrives once, Alice sees it delivered.
    let (bob_client, mut bob_events) = Client::start(bob, config()).await.unwrap();
    message(
        &mut bob_events,
        b"while you were away",
        Duration::from_secs(60),
    )
    .await;
    tokio::time::timeout(offline + Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Some(Event::Status {
                    local_id,
                    status: MessageStatus::Delivered,
                    ..
                }) if local_id == id => return,
                Some(Event::Status {
                    status: MessageStatus::Failed,
                    ..
                }) => panic!("failed"),
                Some(_) => {}
                None => panic!("the client stopped"),
            }
        }
    })
    .await
    .expect("never delivered");
    // Late copies (every retransmission waited in the mailbox) are
    // recognised: nothing arrives twice.
    tokio::time::sleep(Duration::from_secs(5)).await;
    while let Ok(event) = bob_events.try_recv() {
        assert!(!matches!(event, Event::Message { .. }), "twice: {event:?}");
    }
    let bob = bob_client.shutdown().await.unwrap();
    let received: Vec<_> = bob
        .messages()
        .unwrap()
        .into_iter()
        .filter(|m| m.sent.is_none())
        .collect();
    assert_eq!(received.len(), 1, "stored once");
    client.unwrap().shutdown().await.unwrap();
    net.shutdown().await;
}
