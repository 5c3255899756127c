//! One node forwarding pre-built packets over loopback with zero delay.
//!
//! A local network (one authority, one mix per layer, one gateway) is
//! started in this process. The benchmark then stands in for the mix's two
//! neighbours: it feeds frames to the layer-1 mix over a link authenticated
//! as the gateway, and receives what the mix forwards over a link
//! authenticated as the layer-2 mix (which it stopped and whose address it
//! took over). It reports, as one JSON line (figures explained in
//! `docs/benchmarks.md`):
//!
//! * `node_round_rates`, `round_ratios`, `ratio_to_cores_x_bare` — packets
//!   the node fully processed (queued for the next hop, or dropped) per
//!   second in each of seven saturated rounds, and as a ratio to
//!   `cores × bare unwrap rate`, the bare `sphinx-packet` unwrap rate of one
//!   thread measured right before each round; the median;
//! * `worker_stage_ratios` — the same ratio up to the moment the crypto
//!   workers had taken every frame of a round;
//! * `crypto_cpu_efficiency` — packets per CPU second of the crypto threads,
//!   as a ratio to the bare rate;
//! * `link_alone_frames_per_s` — one link with no node between;
//! * `latency_p50_ms` / `latency_p99_ms` — the time a single packet spends
//!   in the node (sent one at a time, wire to wire, over loopback).
//!
//! Run: `cargo bench -p aegis-node --bench throughput`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use aegis_mix_packet::{
    Body, Geometry, HopDelays, LoopId, MailboxId, NodeId, SphinxPublicKey, SphinxSecret,
    build_mailbox_packet,
};
use aegis_node::access::MIX_PROTOCOL;
use aegis_node::links::Host;
use aegis_node::localnet::{LocalNet, LocalNetSpec};
use aegis_node::metrics::DropReason;
use aegis_node::topology::peer_id_of;
use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
use sphinx_packet::SphinxPacket;
use tokio::sync::watch;

const G: Geometry = Geometry::STANDARD;
/// Packets for the saturated phase (`AEGIS_BENCH_PACKETS` overrides).
const SATURATION_PACKETS: usize = 7_000;
const LATENCY_PACKETS: usize = 100;
/// Saturation rounds (the median is reported).
const ROUNDS: usize = 7;

/// Pre-built packets and the key to unwrap them with, for the bare rate.
struct Bare {
    packets: Vec<Vec<u8>>,
    secret: SphinxSecret,
}

fn bare_packets() -> Bare {
    let mut rng = rand::rng();
    let mut bytes = [0u8; 32];
    rand::Rng::fill_bytes(&mut rng, &mut bytes);
    let secret = SphinxSecret::from(bytes);
    let public = SphinxPublicKey::from(&secret);
    let route: Vec<sphinx_packet::route::Node> = (0..5)
        .map(|i| {
            sphinx_packet::route::Node::new(
                sphinx_packet::route::NodeAddressBytes::from_bytes([i; 32]),
                public,
            )
        })
        .collect();
    let destination = sphinx_packet::route::Destination::new(
        sphinx_packet::route::DestinationAddressBytes::from_bytes([9; 32]),
        [0; 16],
    );
    let delays = vec![sphinx_packet::header::delays::Delay::new_from_nanos(0); 5];
    let packets: Vec<Vec<u8>> = (0..500)
        .map(|_| {
            sphinx_packet::SphinxPacketBuilder::new()
                .with_payload_size(G.payload_len)
                .build_packet(b"cover", &route, &destination, &delays)
                .unwrap()
                .to_bytes()
        })
        .collect();
    Bare { packets, secret }
}

/// Bare `sphinx-packet` unwraps per second on one thread, over `time`.
fn bare_unwrap_rate(bare: &Bare, time: Duration) -> f64 {
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < time {
        for p in &bare.packets {
            let packet = SphinxPacket::from_bytes(p).unwrap();
            std::hint::black_box(packet.process(&bare.secret).unwrap());
            n += 1;
        }
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// CPU seconds used so far by this process's threads whose name starts
/// with `prefix` (Linux; clock ticks of 1/100 s).
fn thread_cpu_seconds(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3; utime and
        // stime are fields 14 and 15.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
    }
    ticks as f64 / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bare_set = bare_packets();
    let bare = bare_unwrap_rate(&bare_set, Duration::from_secs(3));
    eprintln!("bare unwrap: {bare:.0}/s per core; starting a local network");

    let dir = tempfile::tempdir().unwrap();
    let spec = LocalNetSpec {
        // Long enough that building the packets and the run fit in the
        // epochs whose keys the node holds.
        epoch_length_ms: 60_000,
        workers: 0,
        line_rate: 5_000,
        // What an operator runs with (the tests snapshot every second).
        filter_snapshot_secs: 60,
        ..LocalNetSpec::default()
    };
    let mut net = LocalNet::start(dir.path(), &spec).await.unwrap();
    let topology = net.wait_ready(Duration::from_secs(60)).await.unwrap();
    eprintln!("network ready (epoch {})", topology.epoch);
    let gateway = net.gateways()[0];
    let index_of = |id: NodeId| (0..3).find(|&i| net.node(i).unwrap().id() == id).unwrap();
    let l1 = topology.layers[0][0];
    let l2 = topology.layers[1][0];
    let (l1_index, l2_index) = (index_of(l1), index_of(l2));
    let l1_addr = net.node(l1_index).unwrap().listen.clone();
    let l2_addr = net.node(l2_index).unwrap().listen.clone();
    let key_of = |i: usize| {
        aegis_directory::config::load_key(
            &net.nodes[i]
                .config
                .data_dir
                .join(aegis_node::config::KEY_FILE),
        )
        .unwrap()
    };
    let (gateway_key, l2_key) = (key_of(gateway), key_of(l2_index));
    net.stop_node(l2_index).await;

    let (_stop, stop_rx) = watch::channel(false);
    let (sink, _t1) = Host::start(&l2_key, Some(l2_addr.clone()), stop_rx.clone()).unwrap();
    let (source, _t2) = Host::start(&gateway_key, None, stop_rx).unwrap();
    let mut incoming = sink.accept(MIX_PROTOCOL).unwrap();
    let (arrivals_tx, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    tokio::spawn(async move {
        while let Some((_, mut stream)) = incoming.next().await {
            let tx = arrivals_tx.clone();
            tokio::spawn(async move {
                let mut frame = vec![0u8; G.frame_len()];
                while stream.read_exact(&mut frame).await.is_ok() {
                    let _ = tx.send(Instant::now());
                }
            });
        }
    });

    let gateway_id = net.node(gateway).unwrap().id();
    let route = topology
        .hops(&G, &[l1, l2, topology.layers[2][0], gateway_id, gateway_id])
        .unwrap();
    let delays = HopDelays::fixed(&[Duration::ZERO; 5]);
    let mut rng = rand::rng();
    let sealing = SphinxPublicKey::from(&SphinxSecret::from([5u8; 32]));
    let saturation = std::env::var("AEGIS_BENCH_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SATURATION_PACKETS);
    let frames: Vec<Vec<u8>> = (0..saturation + LATENCY_PACKETS)
        .map(|i| {
            build_mailbox_packet(
                &mut rng,
                &G,
                topology.epoch,
                &route,
                &delays,
                MailboxId([3; 32]),
                &sealing,
                &Body::Loop(LoopId([(i % 251) as u8; 16])),
            )
            .unwrap()
            .to_frame(&G)
            .unwrap()
        })
        .collect();
    let (latency_frames, load_frames) = frames.split_at(LATENCY_PACKETS);
    eprintln!("{} packets built", frames.len());

    // The link alone: the same frames straight from the feeder to the sink,
    // no node between them (what one libp2p link carries here).
    let sink_peer = peer_id_of(&l2.0).unwrap();
    source.add_addresses(sink_peer, vec![l2_addr.clone()]);
    let mut direct = source.open(sink_peer, MIX_PROTOCOL).await.unwrap();
    while arrivals.try_recv().is_ok() {}
    let direct_frames: Vec<Vec<u8>> = load_frames.to_vec();
    let direct_count = direct_frames.len();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        for frame in direct_frames {
            direct.write_all(&frame).await.unwrap();
        }
        direct.flush().await.unwrap();
        direct
    });
    let mut arrived = 0;
    let mut last_arrival = started;
    while arrived < direct_count {
        match tokio::time::timeout(Duration::from_secs(2), arrivals.recv()).await {
            Ok(Some(at)) => {
                arrived += 1;
                last_arrival = at;
            }
            _ => break,
        }
    }
    let link_rate = arrived as f64 / last_arrival.duration_since(started).as_secs_f64();
    drop(writer.await);
    eprintln!("link alone: {link_rate:.0} frames/s");

    let peer = peer_id_of(&l1.0).unwrap();
    source.add_addresses(peer, vec![l1_addr]);
    let mut stream = source.open(peer, MIX_PROTOCOL).await.unwrap();

    // Latency: one packet at a time, wire to wire.
    let mut latencies = Vec::new();
    for (i, frame) in latency_frames.iter().enumerate() {
        if i == 20 && latencies.is_empty() {
            panic!("no packet came out of the node");
        }
        // Forget arrivals of the nodes' own loop cover that passed meanwhile.
        while arrivals.try_recv().is_ok() {}
        let sent = Instant::now();
        stream.write_all(frame).await.unwrap();
        stream.flush().await.unwrap();
        if let Ok(Some(at)) = tokio::time::timeout(Duration::from_secs(2), arrivals.recv()).await {
            latencies.push(at.duration_since(sent).as_secs_f64() * 1_000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    eprintln!(
        "latency measured over {} packets; saturating",
        latencies.len()
    );

    // Throughput: as fast as the link takes them.
    let node = net.node(l1_index).unwrap();
    let processed = |n: &aegis_node::RunningNode| {
        let m = n.metrics();
        m.forwarded.get()
            + m.dropped_for(DropReason::egress_full)
            + m.dropped_for(DropReason::replay)
            + m.dropped_for(DropReason::mix_full)
    };
    // Seven rounds, each a seventh of the load as fast as the link takes it,
    // timed from the first write to the last packet processed; the median
    // round is reported (the machine is shared and noisy).
    let mut rates = Vec::new();
    let mut done = 0;
    let rounds: Vec<Vec<Vec<u8>>> = load_frames
        .chunks(load_frames.len().div_ceil(ROUNDS))
        .map(|c| c.to_vec())
        .collect();
    let mut ratios = Vec::new();
    let mut per_worker_cpu = Vec::new();
    let mut worker_stage = Vec::new();
    let round_packets = rounds[0].len();
    for load in rounds {
        // The bare rate right before the round, so both see the machine in
        // the same state.
        let bare_now = bare_unwrap_rate(&bare_set, Duration::from_secs(1));
        let before = processed(node);
        let received_before = node.metrics().received.get();
        let (crypto_before, tokio_before) = (
            thread_cpu_seconds("aegis-crypto"),
            thread_cpu_seconds("tokio-rt"),
        );
        let started = Instant::now();
        let mut received_done = None;
        let mut drained = None;
        let mut max_pool = 0;
        let writer = tokio::spawn(async move {
            for frame in load {
                stream.write_all(&frame).await.unwrap();
            }
            stream.flush().await.unwrap();
            stream
        });
        // The round ends when the node has processed as many packets as
        // the round sent (the other nodes' loop cover crossing this node
        // meanwhile counts too, a few packets a second), or when nothing
        // happened for two seconds.
        let mut last = before;
        let mut last_change = Instant::now();
        let target = before + round_packets as u64;
        while last < target && last_change.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let now = processed(node);
            let m = node.metrics();
            if received_done.is_none() && m.received.get() - received_before >= round_packets as u64
            {
                received_done = Some(started.elapsed().as_secs_f64());
            }
            max_pool = max_pool.max(m.mix_pool.get());
            if drained.is_none() && received_done.is_some() && m.ingress_depth.get() == 0 {
                drained = Some(started.elapsed().as_secs_f64());
            }
            if now != last {
                last = now;
                last_change = Instant::now();
            }
        }
        let elapsed = last_change.duration_since(started).as_secs_f64();
        let crypto_cpu = thread_cpu_seconds("aegis-crypto") - crypto_before;
        let tokio_cpu = thread_cpu_seconds("tokio-rt") - tokio_before;
        stream = writer.await.unwrap();
        let round_rate = (last - before) as f64 / elapsed;
        per_worker_cpu.push((last - before) as f64 / crypto_cpu / bare_now);
        if let Some(drained) = drained {
            worker_stage.push(round_packets as f64 / drained / (cores as f64 * bare_now));
        }
        rates.push(round_rate);
        ratios.push(round_rate / (cores as f64 * bare_now));
        eprintln!(
            "round: {} packets in {elapsed:.2} s (all received after {:.2} s, workers' queue empty after {:.2} s, mix pool up to {max_pool}); bare {bare_now:.0}/s; CPU: crypto threads {crypto_cpu:.2} s, tokio threads {tokio_cpu:.2} s",
            last - before,
            received_done.unwrap_or(f64::NAN),
            drained.unwrap_or(f64::NAN)
        );
        // Let the stragglers of this round pass before the next one.
        tokio::time::sleep(Duration::from_millis(300)).await;
        done += last - before;
    }
    rates.sort_by(f64::total_cmp);
    ratios.sort_by(f64::total_cmp);
    per_worker_cpu.sort_by(f64::total_cmp);
    worker_stage.sort_by(f64::total_cmp);
    let rate = rates[rates.len() / 2];
    let ratio = ratios[ratios.len() / 2];
    let ingress_dropped = node.metrics().dropped_for(DropReason::ingress_full);
    println!(
        "{}",
        serde_json::json!({
            "cores": cores,
            "bare_unwrap_per_s": bare.round(),
            "node_round_rates": rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
            "node_packets_per_s": rate.round(),
            "ratio_to_cores_x_bare": ratio,
            "round_ratios": ratios,
            "crypto_cpu_efficiency": per_worker_cpu.get(per_worker_cpu.len() / 2),
            "worker_stage_ratios": worker_stage,
            "link_alone_frames_per_s": link_rate.round(),
            "ratio_to_link_alone": rate / link_rate,
            "processed": done,
            "ingress_full_drops": ingress_dropped,
            "latency_p50_ms": percentile(&latencies, 0.5),
            "latency_p99_ms": percentile(&latencies, 0.99),
            "latency_samples": latencies.len(),
        })
    );
    net.shutdown().await;
}
