//! Real nodes on loopback: a packet crosses the mix layers to a gateway
//! mailbox and is pulled by its owner; bad input of every kind is dropped
//! and counted while good traffic keeps flowing; restarts keep mailboxes
//! and replay filters; a full egress queue drops instead of growing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use aegis_link::{ACCESS_PROTOCOL, GatewaySession, Host, MIX_PROTOCOL};
use aegis_mix_packet::access::mailbox_id_for;
use aegis_mix_packet::{
    Body, Frame, Geometry, Hop, HopDelays, LoopId, NodeId, OutgoingPacket, Route, SphinxPublicKey,
    SphinxSecret, build_mailbox_packet, open_delivery, split_delivery,
};
use aegis_node::metrics::DropReason;
use aegis_node::peer_id_of;
use aegis_node::{RunningNode, Topology};
use aegis_testkit::{LocalNet, LocalNetSpec};
use ed25519_dalek::SigningKey;
use futures::AsyncWriteExt as _;
use rand::Rng as _;
use tokio::sync::watch;

const G: Geometry = Geometry::STANDARD;
// Mixes 0..3 (one per layer), gateway 3.
const GATEWAY: usize = 3;

struct Owner {
    key: SigningKey,
    sealing: SphinxSecret,
    /// The network's geometry, which its packets are built in.
    geometry: Geometry,
}

impl Owner {
    fn new(geometry: Geometry) -> Self {
        let mut rng = rand::rng();
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut sealing = [0u8; 32];
        rng.fill_bytes(&mut sealing);
        Owner {
            key: SigningKey::from_bytes(&seed),
            sealing: SphinxSecret::from(sealing),
            geometry,
        }
    }

    fn packet(&self, route: &Route, id: u8) -> OutgoingPacket {
        let delays = HopDelays::fixed(&vec![Duration::from_millis(5); route.hops().len()]);
        build_mailbox_packet(
            &mut rand::rng(),
            &self.geometry,
            route,
            &delays,
            mailbox_id_for(&self.key.verifying_key().to_bytes()),
            &SphinxPublicKey::from(&self.sealing),
            &Body::Loop(LoopId([id; 16])),
        )
        .unwrap()
    }
}

fn layer_of(topology: &Topology, node: NodeId) -> usize {
    topology
        .layers
        .iter()
        .position(|l| l.contains(&node))
        .unwrap()
}

fn through_mixes(topology: &Topology, gateway: NodeId, geometry: &Geometry) -> Route {
    let mixes: Vec<NodeId> = topology.layers.iter().map(|l| l[0]).collect();
    topology
        .hops(geometry, &[gateway, mixes[0], mixes[1], mixes[2], gateway])
        .unwrap()
}

async fn attach(host: &Host, gateway: &RunningNode, owner: &Owner) -> GatewaySession {
    let peer = peer_id_of(&gateway.id().0).unwrap();
    host.add_addresses(peer, vec![gateway.listen.clone()]);
    let stream = host.open(peer, ACCESS_PROTOCOL).await.unwrap();
    GatewaySession::attach(
        stream,
        &gateway.id().0,
        &owner.key,
        owner.geometry.frame_len(),
    )
    .await
    .unwrap()
}

/// Pulls until `want` loop ids have arrived (acknowledging them) or the
/// timeout passes; returns the ids seen.
async fn pull_loops(
    session: &mut GatewaySession,
    owner: &Owner,
    want: usize,
    timeout: Duration,
) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut ids = Vec::new();
    while seen.len() < want && tokio::time::Instant::now() < deadline {
        let entries = session.pull(&ids).await.unwrap();
        ids.clear();
        for e in entries {
            let (_tag, payload) = split_delivery(&owner.geometry, &e.payload).unwrap();
            match open_delivery(&owner.geometry, &owner.sealing, payload).unwrap() {
                Body::Loop(LoopId(id)) => seen.push(id[0]),
                other => panic!("unexpected body {other:?}"),
            }
            ids.push(e.id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The last batch is acknowledged with one more pull (whatever it
    // brings stays stored: it is not acknowledged).
    session.pull(&ids).await.unwrap();
    seen
}

async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn packets_cross_real_nodes_and_bad_input_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let spec = LocalNetSpec {
        authorities: 1,
        mixes: 3,
        gateways: 1,
        epoch_length_ms: 4_000,
        // The Sphinx format, whatever AEGIS_TEST_PACKET_FORMAT says (the
        // KEM format's test is below).
        geometry: G,
        ..LocalNetSpec::default()
    };
    let mut net = LocalNet::start(dir.path(), &spec).await.unwrap();
    // The gateway's egress queues are tiny so that one can be filled.
    net.stop_node(GATEWAY).await;
    net.nodes[GATEWAY].config.egress_queue = 4;
    net.start_node(GATEWAY).await.unwrap();
    let topology = net.wait_ready(Duration::from_secs(30)).await.unwrap();
    let gateway_id = net.node(GATEWAY).unwrap().id();

    let (_stop, stop_rx) = watch::channel(false);
    let (host, _task) = Host::start(&SigningKey::from_bytes(&[42; 32]), None, stop_rx).unwrap();
    let owner = Owner::new(G);
    let mut session = attach(&host, net.node(GATEWAY).unwrap(), &owner).await;

    // 1. A packet crosses gateway → 3 mixes → gateway and is pulled.
    let route = through_mixes(&topology, gateway_id, &G);
    let first = owner.packet(&route, 1);
    let first_frame = first.to_frame(&G).unwrap();
    session.send(first_frame.clone()).await.unwrap();
    assert_eq!(
        pull_loops(&mut session, &owner, 1, Duration::from_secs(10)).await,
        vec![1]
    );

    // 2. Bad input, interleaved with good packets.
    let gateway = net.node(GATEWAY).unwrap();
    session.send(first_frame.clone()).await.unwrap(); // replay
    // A well-formed frame around random bytes.
    let mut noise = vec![0u8; G.packet_len()];
    rand::rng().fill_bytes(&mut noise);
    session
        .send(Frame::encode(&G, &noise).unwrap())
        .await
        .unwrap();
    // Pure garbage: random bytes of frame length.
    let mut garbage = vec![0u8; G.frame_len()];
    rand::rng().fill_bytes(&mut garbage);
    garbage[0] = 0xEE;
    session.send(garbage).await.unwrap();
    let mut fake_key = [0u8; 32];
    rand::rng().fill_bytes(&mut fake_key);
    let mut hops = route.hops().to_vec();
    hops[1] = Hop::sphinx(
        NodeId([7; 32]),
        SphinxPublicKey::from(&SphinxSecret::from(fake_key)),
    );
    let to_nowhere = owner.packet(&Route::new(hops, &G).unwrap(), 9);
    session
        .send(to_nowhere.to_frame(&G).unwrap())
        .await
        .unwrap();
    let second = owner.packet(&route, 2);
    session.send(second.to_frame(&G).unwrap()).await.unwrap();
    assert_eq!(
        pull_loops(&mut session, &owner, 1, Duration::from_secs(10)).await,
        vec![2]
    );
    let m = gateway.metrics();
    assert_eq!(m.dropped_for(DropReason::replay), 1);
    assert_eq!(m.dropped_for(DropReason::unknown_next_hop), 1);
    assert_eq!(m.dropped_for(DropReason::bad_header), 1);
    assert_eq!(m.dropped_for(DropReason::malformed_frame), 1);

    // 2b. Hops keep their place: a route that visits the layer-1 mix twice
    // is dropped (at the layer-2 mix, which may only forward to layer 3)
    // and counted; good packets keep flowing.
    let layer = |i: usize| topology.layers[i][0];
    let twice = topology
        .hops(&G, &[gateway_id, layer(0), layer(1), layer(0), gateway_id])
        .unwrap();
    let looping = owner.packet(&twice, 3);
    session.send(looping.to_frame(&G).unwrap()).await.unwrap();
    let fourth = owner.packet(&route, 4);
    session.send(fourth.to_frame(&G).unwrap()).await.unwrap();
    assert_eq!(
        pull_loops(&mut session, &owner, 1, Duration::from_secs(10)).await,
        vec![4]
    );
    let out_of_order = || {
        (0..GATEWAY)
            .map(|i| {
                net.node(i)
                    .unwrap()
                    .metrics()
                    .dropped_for(DropReason::hop_order)
            })
            .sum::<u64>()
    };
    eventually(
        "the out-of-order hop is counted",
        Duration::from_secs(5),
        || out_of_order() == 1,
    )
    .await;
    let gateway = net.node(GATEWAY).unwrap();

    // 3. /metrics: aggregate only.
    let text = reqwest::get(format!("http://{}/metrics", gateway.metrics_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("aegis_node_stored_total 3"), "{text}");
    // The only labels: drop and refusal reasons, histogram buckets, the
    // direction of link bytes, and the build's version and role.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some((_, labels)) = line.split_once('{') {
            let labels = labels.split_once('}').map_or(labels, |(l, _)| l);
            for pair in labels.split(',') {
                let key = pair.split_once('=').map_or(pair, |(k, _)| k);
                assert!(
                    ["reason", "le", "direction", "version", "role"].contains(&key),
                    "per-peer label in {line}"
                );
            }
        }
    }
    let health = reqwest::get(format!("http://{}/health", gateway.metrics_addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // Packets are built for the current epoch's keys (old keys are erased).
    let topology = net.wait_ready(Duration::from_secs(30)).await.unwrap();

    // 4. A mix restarted keeps its replay filter: inject a frame straight
    // into the layer-1 mix (over a link authenticated as the gateway), let
    // it deliver, restart the mix, inject it again.
    let mix1 = topology.layers[0][0];
    let mix1_index = (0..3).find(|&i| net.node(i).unwrap().id() == mix1).unwrap();
    assert_eq!(layer_of(&topology, mix1), 0);
    let gateway_key = aegis_directory::config::load_key(
        &net.nodes[GATEWAY]
            .config
            .data_dir
            .join(aegis_node::config::KEY_FILE),
    )
    .unwrap();
    let (_stop2, stop_rx2) = watch::channel(false);
    let (as_gateway, _task2) = Host::start(&gateway_key, None, stop_rx2).unwrap();
    // Entering at layer 1, the route is one hop shorter than a client's.
    let mix_hops: Vec<Hop> = [
        topology.layers[0][0],
        topology.layers[1][0],
        topology.layers[2][0],
        gateway_id,
    ]
    .iter()
    .map(|id| topology.node(id).unwrap().hop(topology.epoch).unwrap())
    .collect();
    let direct = owner.packet(&Route::cycle(mix_hops, &G).unwrap(), 3);
    let direct_frame = direct.to_frame(&G).unwrap();
    // Fixed ports: the address stays the same across the restart.
    let mix1_addr = net.node(mix1_index).unwrap().listen.clone();
    let inject = |frame: Vec<u8>| {
        let host = as_gateway.clone();
        let peer = peer_id_of(&mix1.0).unwrap();
        let addr = mix1_addr.clone();
        async move {
            host.add_addresses(peer, vec![addr]);
            let mut stream = host.open(peer, MIX_PROTOCOL).await.unwrap();
            stream.write_all(&frame).await.unwrap();
            stream.flush().await.unwrap();
            stream
        }
    };
    let _s = inject(direct_frame.clone()).await;
    assert_eq!(
        pull_loops(&mut session, &owner, 1, Duration::from_secs(10)).await,
        vec![3]
    );
    net.stop_node(mix1_index).await;
    net.start_node(mix1_index).await.unwrap();
    net.wait_ready(Duration::from_secs(30)).await.unwrap();
    let mut s2 = inject(direct_frame.clone()).await;
    let restarted = net.node(mix1_index).unwrap();
    eventually(
        "the restarted mix counts the replay",
        Duration::from_secs(10),
        || restarted.metrics().dropped_for(DropReason::replay) == 1,
    )
    .await;

    // 4b. A flood of garbage and replays at the mix while good packets
    // cross it: the good ones arrive, every bad frame is counted.
    let topology = net.wait_ready(Duration::from_secs(30)).await.unwrap();
    let route = through_mixes(&topology, gateway_id, &G);
    const FLOOD: u64 = 600;
    let flood = tokio::spawn(async move {
        let mut noise = vec![0u8; G.packet_len()];
        for i in 0..FLOOD {
            let frame = if i % 2 == 0 {
                rand::rng().fill_bytes(&mut noise);
                Frame::encode(&G, &noise).unwrap()
            } else {
                direct_frame.clone()
            };
            s2.write_all(&frame).await.unwrap();
        }
        s2.flush().await.unwrap();
        s2
    });
    for id in 10..13u8 {
        let p = owner.packet(&route, id);
        session.send(p.to_frame(&G).unwrap()).await.unwrap();
    }
    let mut good = pull_loops(&mut session, &owner, 3, Duration::from_secs(20)).await;
    good.sort();
    assert_eq!(good, vec![10, 11, 12], "good traffic keeps flowing");
    let _s2 = flood.await.unwrap();
    let restarted = net.node(mix1_index).unwrap();
    eventually(
        "every flooded frame is counted",
        Duration::from_secs(20),
        || {
            let m = restarted.metrics();
            m.dropped_for(DropReason::bad_header)
                + m.dropped_for(DropReason::replay)
                + m.dropped_for(DropReason::ingress_full)
                == FLOOD + 1
        },
    )
    .await;

    // 5. A gateway restarted keeps undelivered packets.
    let stored_before = net.node(GATEWAY).unwrap().metrics().stored.get();
    let third = owner.packet(&route, 4);
    session.send(third.to_frame(&G).unwrap()).await.unwrap();
    let gw = net.node(GATEWAY).unwrap();
    eventually("the packet is stored", Duration::from_secs(10), || {
        gw.metrics().stored.get() > stored_before
    })
    .await;
    drop(session);
    net.stop_node(GATEWAY).await;
    net.start_node(GATEWAY).await.unwrap();
    let mut session = attach(&host, net.node(GATEWAY).unwrap(), &owner).await;
    assert_eq!(
        pull_loops(&mut session, &owner, 1, Duration::from_secs(10)).await,
        vec![4]
    );

    // 6. A full egress queue drops instead of growing: stop the first mix
    // and send more packets its way than the queue holds.
    net.stop_node(mix1_index).await;
    for i in 0..30u8 {
        let p = owner.packet(&route, 100 + i);
        session.send(p.to_frame(&G).unwrap()).await.unwrap();
    }
    let gw = net.node(GATEWAY).unwrap();
    eventually(
        "the egress queue overflows",
        Duration::from_secs(10),
        || gw.metrics().dropped_for(DropReason::egress_full) >= 20,
    )
    .await;
    assert!(gw.metrics().egress_depth.get() <= 4);

    drop(session);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_the_kem_format_packets_cross_real_nodes_and_bad_ones_are_counted() {
    const PQ: Geometry = Geometry::PQ;
    let dir = tempfile::tempdir().unwrap();
    let spec = LocalNetSpec {
        geometry: PQ,
        ..LocalNetSpec::default()
    };
    let mut net = LocalNet::start(dir.path(), &spec).await.unwrap();
    let topology = net.wait_ready(Duration::from_secs(30)).await.unwrap();
    assert_eq!(topology.document.body.parameters.geometry_hash, PQ.hash());
    // Every listed node published X-Wing keys for the epoch.
    for id in topology.layers.iter().flatten().chain(&topology.gateways) {
        let entry = topology.node(id).unwrap();
        assert!(entry.kem_key(topology.epoch).is_some(), "{id:?}");
    }
    let gateway_id = net.node(GATEWAY).unwrap().id();
    let (_stop, stop_rx) = watch::channel(false);
    let (host, _task) = Host::start(&SigningKey::from_bytes(&[43; 32]), None, stop_rx).unwrap();
    let owner = Owner::new(PQ);
    let mut session = attach(&host, net.node(GATEWAY).unwrap(), &owner).await;

    let route = through_mixes(&topology, gateway_id, &PQ);
    assert!(route.hops().iter().all(|h| h.kem_key.is_some()));
    let first = owner.packet(&route, 1).to_frame(&PQ).unwrap();
    assert_eq!(first.len(), PQ.frame_len());
    session.send(first.clone()).await.unwrap();
    assert_eq!(
        pull_loops(&mut session, &owner, 1, Duration::from_secs(10)).await,
        vec![1]
    );

    // A replay, a packet with one bit of its KEM ciphertext flipped, and
    // garbage of frame length; then a good packet still crosses.
    session.send(first).await.unwrap();
    let mut flipped = owner.packet(&route, 2).to_frame(&PQ).unwrap();
    flipped[100] ^= 0x10;
    session.send(flipped).await.unwrap();
    let mut garbage = vec![0u8; PQ.frame_len()];
    rand::rng().fill_bytes(&mut garbage);
    garbage[0] = 0xEE;
    session.send(garbage).await.unwrap();
    let third = owner.packet(&route, 3).to_frame(&PQ).unwrap();
    session.send(third).await.unwrap();
    assert_eq!(
        pull_loops(&mut session, &owner, 1, Duration::from_secs(10)).await,
        vec![3]
    );
    let m = net.node(GATEWAY).unwrap().metrics();
    assert_eq!(m.dropped_for(DropReason::replay), 1);
    assert_eq!(m.dropped_for(DropReason::bad_header), 1);
    assert_eq!(m.dropped_for(DropReason::malformed_frame), 1);

    // A node restarted keeps its X-Wing keys: packets built for the keys
    // it published before the restart still cross it (each try a fresh
    // packet: the gateway refuses a resent one as a replay).
    let layer_1 = (0..GATEWAY)
        .find(|&i| net.node(i).unwrap().id() == topology.layers[0][0])
        .unwrap();
    net.stop_node(layer_1).await;
    net.start_node(layer_1).await.unwrap();
    let mut arrived = Vec::new();
    for id in 4..10 {
        let frame = owner.packet(&route, id).to_frame(&PQ).unwrap();
        session.send(frame).await.unwrap();
        arrived = pull_loops(&mut session, &owner, 1, Duration::from_secs(3)).await;
        if !arrived.is_empty() {
            break;
        }
    }
    assert_eq!(arrived.len(), 1, "a packet crossed the restarted node");
    net.shutdown().await;
}
