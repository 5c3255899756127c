//! Gateway limits that hold: a client takes a slot only after a valid
//! hello, limits belong to the mailbox (a second connection replaces the
//! first), and handshakes in progress are capped; each refusal is counted
//! with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use aegis_link::access::read_message;
use aegis_link::{ACCESS_PROTOCOL, GatewaySession, Host, SessionError};
use aegis_mix_packet::Geometry;
use aegis_mix_packet::access::ServerMessage;
use aegis_node::gateway::max_pending_hellos;
use aegis_node::metrics::AccessRefusal;
use aegis_node::peer_id_of;
use aegis_testkit::{LocalNet, LocalNetSpec};
use ed25519_dalek::SigningKey;
use tokio::sync::watch;

const G: Geometry = Geometry::STANDARD;
const GATEWAY: usize = 3;

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_follow_mailboxes_and_every_refusal_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    // The geometry the test's sizes are of, whatever
    // AEGIS_TEST_PACKET_FORMAT says.
    let spec = LocalNetSpec {
        geometry: G,
        ..LocalNetSpec::default()
    };
    let mut net = LocalNet::start(dir.path(), &spec).await.unwrap();
    net.stop_node(GATEWAY).await;
    net.nodes[GATEWAY].config.max_clients = 1;
    net.start_node(GATEWAY).await.unwrap();
    net.wait_ready(Duration::from_secs(30)).await.unwrap();
    let gateway = net.node(GATEWAY).unwrap();
    let gateway_id = gateway.id().0;
    let peer = peer_id_of(&gateway_id).unwrap();

    let (_stop, stop_rx) = watch::channel(false);
    let (host, _task) = Host::start(&SigningKey::from_bytes(&[42; 32]), None, stop_rx).unwrap();
    host.add_addresses(peer, vec![gateway.listen.clone()]);
    let attach = |key: SigningKey| {
        let host = host.clone();
        async move {
            let stream = host.open(peer, ACCESS_PROTOCOL).await.unwrap();
            GatewaySession::attach(stream, &gateway_id, &key, G.frame_len()).await
        }
    };

    // A stranger that never says hello takes no slot.
    let silent = host.open(peer, ACCESS_PROTOCOL).await.unwrap();
    let alice = SigningKey::from_bytes(&[1; 32]);
    let mut first = attach(alice.clone()).await.unwrap();
    first.pull(&[]).await.unwrap();

    // The one slot is Alice's: Bob is refused, and counted.
    let bob = attach(SigningKey::from_bytes(&[2; 32])).await;
    assert!(matches!(bob, Err(SessionError::Refused(ref r)) if r == "gateway full"));
    assert_eq!(
        gateway.metrics().refused_for(AccessRefusal::gateway_full),
        1
    );

    // Alice reconnecting takes her own slot over; the old session ends.
    let mut second = attach(alice).await.unwrap();
    second.pull(&[]).await.unwrap();
    assert_eq!(gateway.metrics().refused_for(AccessRefusal::replaced), 1);
    assert!(
        first.pull(&[]).await.is_err(),
        "the replaced session still runs"
    );
    drop(silent);

    // Handshakes in progress are capped: strangers who never say hello
    // beyond the cap are turned away at once. Each stream's first message
    // is read before the next is opened: the host drops inbound streams
    // that arrive faster than the gateway accepts them, uncounted.
    let cap = max_pending_hellos(1);
    let (mut held, mut busy) = (Vec::new(), 0);
    for _ in 0..cap + 16 {
        if busy == 3 {
            break;
        }
        let mut stream = host.open(peer, ACCESS_PROTOCOL).await.unwrap();
        let first = tokio::time::timeout(
            Duration::from_secs(5),
            read_message::<_, ServerMessage>(&mut stream, 0),
        )
        .await;
        match first {
            Ok(Ok(ServerMessage::Challenge { .. })) => held.push(stream),
            Ok(Ok(ServerMessage::Refused { reason })) => {
                assert_eq!(reason, "gateway busy");
                assert!(held.len() + 1 >= cap, "refused below the cap");
                busy += 1;
            }
            // Dropped by the host before the gateway saw it: try again.
            Ok(Err(SessionError::Io(_))) => {}
            Ok(other) => panic!("unexpected first message: {other:?}"),
            Err(_) => panic!("no first message in time"),
        }
    }
    assert_eq!(busy, 3, "handshakes over the cap are refused");
    assert!(held.len() <= cap, "{} handshakes held", held.len());
    eventually("each refusal is counted", || {
        gateway
            .metrics()
            .refused_for(AccessRefusal::handshake_limit)
            >= 3
    })
    .await;
    // Alice's session is unaffected.
    second.pull(&[]).await.unwrap();
    drop(held);
    net.shutdown().await;
}
