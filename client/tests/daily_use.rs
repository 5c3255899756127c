//! The client as people live with it, over real nodes on loopback: the
//! `aegis daemon` keeps a profile online while commands return at once; a
//! recipient offline for ten minutes gets a message exactly once, its
//! sender never seeing it fail; a file of a megabyte arrives intact and a
//! call is set up and ended between two daemons. The tests run side by
//! side.
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

/// Starts `aegis daemon` for the profile at `path` and waits until its
/// socket answers.
async fn start_daemon(path: &Path, passphrase: &str) -> tokio::process::Child {
    let daemon = Command::new(AEGIS)
        .arg("--profile")
        .arg(path)
        .args(["--pull-interval", "0.2", "daemon"])
        .env("AEGIS_PASSPHRASE", passphrase)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let socket = aegis_client::control::socket_path(path);
    let started = tokio::time::Instant::now();
    while aegis_client::daemon::Connection::open(&socket)
        .await
        .is_none()
    {
        assert!(started.elapsed() < Duration::from_secs(60), "no daemon");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daemon
}

/// Runs `aegis --profile PROFILE ARGS…` (through its daemon) to the end
/// within `limit`; its exit status, standard output and standard error.
async fn aegis_within(profile: &Path, args: &[&str], limit: Duration) -> (bool, String, String) {
    let child = Command::new(AEGIS)
        .arg("--profile")
        .arg(profile)
        .args(args)
        .env("AEGIS_PASSPHRASE", "the daemon holds the profile")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("aegis {args:?} took longer than {limit:?}"))
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
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

    let mut daemon = start_daemon(&alice_path, "alice passphrase").await;
    let socket = aegis_client::control::socket_path(&alice_path);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_megabyte_file_arrives_intact_and_a_call_is_set_up_between_two_daemons() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), 4_000).await;
    let (alice, bob, _, _) = profiles(dir.path(), &net).await;
    drop((alice, bob));
    let (alice_path, bob_path) = (dir.path().join("alice"), dir.path().join("bob"));
    let mut alice_daemon = start_daemon(&alice_path, "alice passphrase").await;
    let mut bob_daemon = start_daemon(&bob_path, "bob passphrase").await;

    // One mebibyte of bytes no text encoding would leave alone.
    let data: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = dir.path().join("report.bin");
    std::fs::write(&file, &data).unwrap();
    let file_arg = file.to_str().unwrap();
    // `send --file` through the daemon: queued, then a progress bar until
    // every fragment is acknowledged.
    let (ok, out, err) = aegis_within(
        &alice_path,
        &["send", "bob", "--file", file_arg],
        Duration::from_secs(900),
    )
    .await;
    assert!(ok, "send --file failed: {out}\n{err}");
    assert!(out.starts_with("queued #"), "{out}");
    assert!(err.contains("100 % ("), "no complete progress bar: {err}");
    assert!(err.contains("delivered"), "{err}");

    // Bob's history names the file; `save` writes it, byte for byte, and
    // never over an existing file.
    let (ok, inbox, _) = aegis_within(&bob_path, &["inbox"], Duration::from_secs(30)).await;
    assert!(ok);
    let line = inbox
        .lines()
        .find(|l| l.contains("[file report.bin (application/octet-stream, 1.05 MB)"))
        .unwrap_or_else(|| panic!("no file in the inbox: {inbox}"));
    let seq = line[1..].split_whitespace().next().unwrap().to_owned();
    let saved = dir.path().join("saved");
    std::fs::create_dir(&saved).unwrap();
    let saved_arg = saved.to_str().unwrap();
    let (ok, out, err) = aegis_within(
        &bob_path,
        &["save", &seq, saved_arg],
        Duration::from_secs(30),
    )
    .await;
    assert!(ok, "{out}{err}");
    assert_eq!(std::fs::read(saved.join("report.bin")).unwrap(), data);
    let mode = std::fs::metadata(saved.join("report.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "a saved file is its owner's only");
    let (ok, _, err) = aegis_within(
        &bob_path,
        &["save", &seq, saved_arg],
        Duration::from_secs(30),
    )
    .await;
    assert!(!ok && err.contains("exists"), "saved over a file: {err}");

    // A call: Bob waits for Alice's; Alice hangs up two seconds after it
    // connects. Each side sees the other's candidate.
    let callee = tokio::spawn({
        let bob_path = bob_path.clone();
        async move {
            aegis_within(
                &bob_path,
                &["call", "--answer", "alice", "--wait", "300"],
                Duration::from_secs(400),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok, caller, err) = aegis_within(
        &alice_path,
        &["call", "bob", "--hold", "2"],
        Duration::from_secs(400),
    )
    .await;
    assert!(ok, "the call failed: {caller}\n{err}");
    let (ok, answered, err) = callee.await.unwrap();
    assert!(ok, "answering failed: {answered}\n{err}");
    for expected in [
        "calling bob",
        "connected",
        "candidate from bob",
        "call ended",
    ] {
        assert!(caller.contains(expected), "{expected:?} not in {caller}");
    }
    for expected in [
        "call from alice",
        "connected",
        "candidate from alice",
        "call ended (hung up by alice)",
    ] {
        assert!(
            answered.contains(expected),
            "{expected:?} not in {answered}"
        );
    }
    // Signals are not history: the inbox holds the file only.
    let (_, inbox, _) = aegis_within(&bob_path, &["inbox"], Duration::from_secs(30)).await;
    assert_eq!(inbox.lines().count(), 1, "{inbox}");

    for daemon in [&mut alice_daemon, &mut bob_daemon] {
        aegis_testkit::processes::terminate(daemon);
        let status = tokio::time::timeout(Duration::from_secs(30), daemon.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success());
    }
    net.shutdown().await;
}

/// microsocks (Debian's SOCKS5 server) on a free port of 127.0.0.1, its
/// outgoing connections leaving from 127.0.0.2.
async fn microsocks() -> (tokio::process::Child, std::net::SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("microsocks")
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-b",
            "127.0.0.2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("microsocks (Debian's microsocks; scripts/prerequisites.sh installs it)");
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return (child, address);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("microsocks did not start");
}

/// Remote IPv4 addresses of the established TCP connections whose local
/// port is `port` (the kernel's table, `/proc/net/tcp`).
fn peers_of_port(port: u16) -> Vec<std::net::Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
            let local_port = u16::from_str_radix(local.split(':').nth(1)?, 16).ok()?;
            let remote_ip = u32::from_str_radix(remote.split(':').next()?, 16).ok()?;
            // 01: established; addresses are in the kernel's byte order.
            (*state == "01" && local_port == port)
                .then(|| std::net::Ipv4Addr::from(remote_ip.to_le_bytes()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn through_a_socks5_proxy_the_gateway_sees_only_the_proxys_address() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), 4_000).await;
    let (alice, bob, bob_id, alice_id) = profiles(dir.path(), &net).await;
    let topology = net.wait_ready(Duration::from_secs(60)).await.unwrap();
    let gateway_port: u16 = topology
        .node(&alice.gateway)
        .unwrap()
        .addresses
        .iter()
        .find_map(|a| a.rsplit_once("/tcp/")?.1.split('/').next()?.parse().ok())
        .unwrap();
    let (mut proxy, proxy_address) = microsocks().await;
    let through_proxy = ClientConfig {
        proxy: Some(aegis_link::Socks5Proxy {
            address: proxy_address,
            credentials: None,
        }),
        ..config()
    };
    let started = tokio::time::Instant::now();
    let (alice_client, mut alice_events) =
        Client::start(alice, through_proxy.clone()).await.unwrap();
    let attach = started.elapsed();
    let (bob_client, mut bob_events) = Client::start(bob, config()).await.unwrap();
    alice_client
        .send(bob_id, b"sent through the proxy".to_vec())
        .await
        .unwrap();
    message(
        &mut bob_events,
        b"sent through the proxy",
        Duration::from_secs(60),
    )
    .await;
    bob_client
        .send(alice_id, b"and answered".to_vec())
        .await
        .unwrap();
    message(&mut alice_events, b"and answered", Duration::from_secs(60)).await;
    // Alice's gateway holds a connection from the proxy's outgoing
    // address; Alice's client has no transport but the proxy.
    let peers = peers_of_port(gateway_port);
    assert!(
        peers.contains(&std::net::Ipv4Addr::new(127, 0, 0, 2)),
        "no connection from the proxy at the gateway: {peers:?}"
    );
    // What the proxy costs: loops' round trips, through it and direct, in
    // the same network at the same time.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (proxied, direct) = (
        alice_client.stats().await.unwrap(),
        bob_client.stats().await.unwrap(),
    );
    eprintln!(
        "through the proxy: attached in {attach:?}, loop round trip median {:?} ms \
         ({} loops back); direct: {:?} ms ({} loops back)",
        proxied.loop_rtt_p50_ms,
        proxied.loops_returned,
        direct.loop_rtt_p50_ms,
        direct.loops_returned
    );
    assert!(
        proxied.loops_returned > 0,
        "no loop came back through the proxy"
    );

    // With the proxy gone, the client cannot start, and says why.
    let alice = alice_client.shutdown().await.unwrap();
    proxy.kill().await.unwrap();
    let failed = Client::start(alice, through_proxy).await;
    let error = failed.err().expect("started without its proxy").to_string();
    assert!(
        error.contains(&proxy_address.to_string()),
        "the error does not name the proxy: {error}"
    );
    bob_client.shutdown().await.unwrap();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_gateway_move_what_waited_at_the_old_gateway_still_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), 4_000).await;
    let (alice, mut bob, bob_id, _) = profiles(dir.path(), &net).await;
    let topology = net.wait_ready(Duration::from_secs(60)).await.unwrap();
    let (old, new) = (bob.gateway, topology.gateways[0]);
    assert_ne!(old, new);

    // Alice writes while Bob is offline, then goes offline herself: the
    // message waits in Bob's mailbox at his gateway, and no one will send
    // it again.
    let (alice_client, mut alice_events) = Client::start(alice, config()).await.unwrap();
    let id = alice_client
        .send(bob_id, b"waiting at the old gateway".to_vec())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match alice_events.recv().await.unwrap() {
                Event::Status {
                    local_id,
                    status: MessageStatus::Sent,
                    ..
                } if local_id == id => return,
                _ => {}
            }
        }
    })
    .await
    .expect("never sent");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let alice = alice_client.shutdown().await.unwrap();

    // Bob moves to the other gateway before he comes online: his client
    // drains the old mailbox too.
    bob.move_gateway(new).unwrap();
    assert_eq!(bob.previous_gateway().unwrap().map(|(g, _)| g), Some(old));
    let (bob_client, mut bob_events) = Client::start(bob, config()).await.unwrap();
    message(
        &mut bob_events,
        b"waiting at the old gateway",
        Duration::from_secs(60),
    )
    .await;

    // Alice comes back, gets Bob's new card inside their conversation;
    // once she has acknowledged it and the old mailbox stays empty, Bob's
    // client leaves the old gateway.
    let (alice_client, _alice_events) = Client::start(alice, config()).await.unwrap();
    let started = tokio::time::Instant::now();
    loop {
        let previous = bob_client
            .with_profile(|p| p.previous_gateway().unwrap())
            .await
            .unwrap();
        if previous.is_none() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the old gateway is still drained"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bob_client.shutdown().await.unwrap();
    alice_client.shutdown().await.unwrap();
    net.shutdown().await;
}

/// Waits for a message event with `body`; returns it.
async fn message_event(events: &mut mpsc::Receiver<Event>, body: &[u8]) -> Event {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Some(event @ Event::Message { .. })
                    if matches!(&event, Event::Message { body: b, .. } if b == body) =>
                {
                    return event;
                }
                Some(_) => {}
                None => panic!("the client stopped"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{:?} did not arrive", String::from_utf8_lossy(body)))
}

/// Waits until message `id` is delivered.
async fn delivered(events: &mut mpsc::Receiver<Event>, id: aegis_client::LocalId) {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Some(Event::Status {
                    local_id,
                    status: MessageStatus::Delivered,
                    ..
                }) if local_id == id => return,
                Some(_) => {}
                None => panic!("the client stopped"),
            }
        }
    })
    .await
    .expect("never delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_anonymous_message_is_answered_over_its_reply_blocks() {
    let dir = tempfile::tempdir().unwrap();
    // Reply blocks live as long as their epoch's keys: twenty-second
    // epochs leave the answer time to come.
    let net = network(dir.path(), 20_000).await;
    let (alice, bob, bob_id, _) = profiles(dir.path(), &net).await;
    let (alice_client, mut alice_events) = Client::start(alice, config()).await.unwrap();
    let (bob_client, mut bob_events) = Client::start(bob, config()).await.unwrap();

    let id = alice_client
        .send_anonymous(bob_id, b"guess who".to_vec())
        .await
        .unwrap();
    let Event::Message {
        from,
        name,
        seq,
        thread,
        request,
        ..
    } = message_event(&mut bob_events, b"guess who").await
    else {
        unreachable!()
    };
    let thread = thread.expect("an anonymous thread");
    assert_eq!(from, aegis_client::profile::thread_contact(&thread));
    assert!(name.starts_with("anonymous-") && !request, "{name}");
    // Bob learns no contact: his contacts are what they were.
    let contacts = bob_client.contacts().await.unwrap();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    delivered(&mut alice_events, id).await;

    // Bob answers over the blocks; Alice reads it as Bob's reply to her
    // anonymous message, and Bob sees it delivered (Alice acknowledges
    // with packets to his address).
    let answer = bob_client.reply(seq, b"you, I bet".to_vec()).await.unwrap();
    let Event::Message {
        from,
        thread: in_thread,
        ..
    } = message_event(&mut alice_events, b"you, I bet").await
    else {
        unreachable!()
    };
    assert_eq!((from, in_thread), (bob_id, Some(thread)));
    delivered(&mut bob_events, answer).await;
    // A second answer takes further blocks; a message that is no
    // anonymous message cannot be answered this way.
    let again = bob_client
        .reply(seq, b"still there?".to_vec())
        .await
        .unwrap();
    message_event(&mut alice_events, b"still there?").await;
    delivered(&mut bob_events, again).await;
    assert!(bob_client.reply(seq + 100, b"x".to_vec()).await.is_err());

    // The same from the command line, Bob's daemon holding his profile:
    // the inbox says how to answer, `aegis reply` answers.
    drop(bob_client.shutdown().await.unwrap());
    let bob_path = dir.path().join("bob");
    let mut bob_daemon = start_daemon(&bob_path, "bob passphrase").await;
    alice_client
        .send_anonymous(bob_id, b"guess again".to_vec())
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let line = loop {
        let inbox = aegis(&bob_path, "unused", &["inbox"]).await;
        if let Some(line) = inbox.lines().find(|l| l.ends_with(": guess again")) {
            break line.to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{inbox}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        line.contains("(anonymous; answer with `aegis reply`)"),
        "{line}"
    );
    let seq = line[1..].split_whitespace().next().unwrap().to_owned();
    let queued = aegis(&bob_path, "unused", &["reply", &seq, "got it"]).await;
    assert!(queued.starts_with("queued #"), "{queued}");
    message_event(&mut alice_events, b"got it").await;
    aegis_testkit::processes::terminate(&bob_daemon);
    let stopped = tokio::time::timeout(Duration::from_secs(30), bob_daemon.wait()).await;
    assert!(stopped.unwrap().unwrap().success());
    alice_client.shutdown().await.unwrap();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_strangers_flood_stays_within_its_limits_while_the_victims_own_messages_leave() {
    use aegis_client::profile::{MAX_ANONYMOUS_THREADS, MAX_REQUEST_MESSAGES, thread_contact};
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path(), 4_000).await;
    let (alice, bob, _, alice_id) = profiles(dir.path(), &net).await;
    let topology = net.wait_ready(Duration::from_secs(60)).await.unwrap();
    // Two strangers hold Bob's card; Bob never added them.
    let bob_card = bob.card().encode();
    let mut strangers = Vec::new();
    for name in ["carol", "dave"] {
        let profile = Profile::create(
            &mut rand::rng(),
            &dir.path().join(name),
            b"stranger",
            Argon2Params::insecure_fast(),
            topology.gateways[0],
            net.trusted(),
        )
        .unwrap();
        let bob_id = profile.add_contact("bob", &bob_card).unwrap();
        let (client, events) = Client::start(profile, config()).await.unwrap();
        strangers.push((client, events, bob_id));
    }
    let (alice_client, mut alice_events) = Client::start(alice, config()).await.unwrap();
    let (bob_client, mut bob_events) = Client::start(bob, config()).await.unwrap();

    // The flood: Carol writes twenty messages as a contact request, and
    // both write thirty-four anonymous messages each (68 threads, four
    // more than Bob keeps).
    let (carol, _, carol_to_bob) = &strangers[0];
    for i in 0..20 {
        let body = format!("spam {i}").into_bytes();
        carol.send(*carol_to_bob, body).await.unwrap();
    }
    for (client, _, to_bob) in &strangers {
        for i in 0..34 {
            let body = format!("anonymous spam {i}").into_bytes();
            client.send_anonymous(*to_bob, body).await.unwrap();
        }
    }
    // Bob's own message leaves while the flood comes in.
    let mine = bob_client
        .send(alice_id, b"my own message".to_vec())
        .await
        .unwrap();
    message(
        &mut alice_events,
        b"my own message",
        Duration::from_secs(120),
    )
    .await;
    delivered(&mut bob_events, mine).await;

    // Once the strangers' messages are all acknowledged, Bob holds what
    // the limits allow and no more.
    for ((_, events, _), sent) in strangers.iter_mut().zip([54, 34]) {
        let mut acknowledged = 0;
        tokio::time::timeout(Duration::from_secs(600), async {
            while acknowledged < sent {
                if let Some(Event::Status {
                    status: MessageStatus::Delivered,
                    ..
                }) = events.recv().await
                {
                    acknowledged += 1;
                }
            }
        })
        .await
        .expect("the strangers' messages were not all acknowledged");
    }
    let (kept, threads, dropped) = bob_client
        .with_profile(|p| {
            let messages = p.messages().unwrap();
            let threads = messages
                .iter()
                .filter(|m| m.thread.is_some_and(|t| m.contact == thread_contact(&t)))
                .count();
            let requests: Vec<_> = p
                .contacts()
                .unwrap()
                .into_iter()
                .filter(|(_, r)| r.state == aegis_client::profile::ContactState::Request)
                .collect();
            assert_eq!(requests.len(), 1, "Carol is one contact request");
            let kept = p.received_from(&requests[0].0).unwrap();
            (kept, threads, p.requests_dropped().unwrap())
        })
        .await
        .unwrap();
    assert_eq!(kept, MAX_REQUEST_MESSAGES, "messages kept from the request");
    assert_eq!(threads, MAX_ANONYMOUS_THREADS, "anonymous threads kept");
    assert_eq!(
        dropped as usize,
        (20 - MAX_REQUEST_MESSAGES) + (68 - MAX_ANONYMOUS_THREADS),
        "what went beyond the limits is counted"
    );
    for (client, _, _) in strangers {
        client.shutdown().await.unwrap();
    }
    bob_client.shutdown().await.unwrap();
    alice_client.shutdown().await.unwrap();
    net.shutdown().await;
}
