//! One node forwarding pre-built packets over loopback with zero delay.
//!
//! A local network (one authority, one mix per layer, one gateway) is
//! started in this process. The measured node, the layer-1 mix, is then
//! restarted as its own process: the `aegis-node` binary, run from the
//! configuration and data an operator's node would have. The benchmark
//! stands in for the mix's two neighbours: it feeds frames to it over a link
//! authenticated as the gateway, and receives what it forwards over a link
//! authenticated as the layer-2 mix (which it stopped and whose address it
//! took over).
//!
//! It measures in two placements, each with a fresh start of the node:
//!
//! * `dedicated` — the node's process runs on cores of its own (all but
//!   one), the benchmark and the rest of the network on the remaining core,
//!   as a node and its neighbours run on different machines;
//! * `shared` — nothing is pinned: the node, its neighbours' links and the
//!   rest of the network share every core.
//!
//! Each placement reports, in one JSON line (figures explained in
//! `docs/benchmarks.md`):
//!
//! * `round_rates`, `round_ratios`, `ratio_to_cores_x_bare` — packets the
//!   node forwarded, wire to wire, per second in each of fifteen saturated
//!   rounds, and as a ratio to `node cores × bare unwrap rate`, the bare
//!   `sphinx-packet` unwrap rate of one thread on one of the node's cores,
//!   probed right before and right after each round; the median;
//! * `node_cpu_efficiency` — packets per CPU second of the whole node
//!   process (`/proc/PID/task/*/schedstat`), as a ratio to the bare rate: what the node spends per packet
//!   against a bare unwrap, wherever it runs;
//! * `crypto_cpu_efficiency` — the same for the crypto threads alone;
//! * `link_alone_frames_per_s` — the same frames over one link with no node
//!   between, on the benchmark's cores: what the feeder and sink can carry;
//! * `latency_p50_ms` / `latency_p99_ms` — the time a single packet spends
//!   in the node (sent one at a time, wire to wire, over loopback).
//!
//! The network runs the Sphinx format, or with `AEGIS_BENCH_FORMAT=pq` the
//! post-quantum KEM format (the node then unwraps one X-Wing hybrid KEM
//! per packet); the bare rate is always that of a Sphinx unwrap of the
//! standard geometry, so the ratios of the two runs compare directly.
//!
//! Linux only: it places processes with `taskset` and reads CPU time from
//! `/proc`. Run: `cargo bench -p aegis-node --bench throughput`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use aegis_link::Host;
use aegis_link::MIX_PROTOCOL;
use aegis_link::{Multiaddr, PeerId};
use aegis_mix_packet::{
    Body, Geometry, HopDelays, LoopId, MailboxId, NodeId, SphinxPublicKey, SphinxSecret,
    build_mailbox_packet,
};
use aegis_node::config::NodeConfig;
use aegis_node::peer_id_of;
use aegis_testkit::{LocalNet, LocalNetSpec};
use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
use serde_json::json;
use sphinx_packet::SphinxPacket;
use tokio::sync::{mpsc, watch};

mod process;

use aegis_testkit::percentile;
use process::{NodeProcess, Prober, cpu_seconds, median, place};

/// The geometry of the bare baseline.
const BARE: Geometry = Geometry::STANDARD;

/// The geometry the network runs: `AEGIS_BENCH_FORMAT` (`sphinx`, the
/// default, or `pq`).
fn network_geometry() -> Geometry {
    let name = std::env::var("AEGIS_BENCH_FORMAT").unwrap_or_else(|_| "sphinx".into());
    let format = aegis_mix_packet::PacketFormat::from_name(&name)
        .unwrap_or_else(|| panic!("AEGIS_BENCH_FORMAT={name}: expected sphinx or pq"));
    Geometry::of_format(format)
}
/// Packets per placement for the saturated rounds (`AEGIS_BENCH_PACKETS`
/// overrides).
/// The test profile builds packets about four times slower: it gets fewer,
/// so that the run stays inside the epochs whose keys the node holds.
const SATURATION_PACKETS: usize = if cfg!(debug_assertions) {
    3_500
} else {
    10_500
};
const LATENCY_PACKETS: usize = 300;
/// Saturation rounds per placement (the median is reported): many short
/// rounds, each between two short probes of the bare rate, follow the
/// machine's speed more closely than a few long ones.
const ROUNDS: usize = 15;
/// How long each probe of the bare rate runs.
const PROBE: Duration = Duration::from_millis(300);

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
                .with_payload_size(BARE.payload_len)
                .build_packet(b"cover", &route, &destination, &delays)
                .unwrap()
                .to_bytes()
        })
        .collect();
    Bare { packets, secret }
}

/// Bare `sphinx-packet` unwraps per second on the calling thread, over
/// `time`.
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

/// The benchmark's stand-ins for the node's neighbours.
struct Harness {
    source: Host,
    arrivals: mpsc::UnboundedReceiver<Instant>,
    sink_peer: PeerId,
    sink_addr: Multiaddr,
    node_peer: PeerId,
    node_addr: Multiaddr,
}

impl Harness {
    /// Forgets arrivals of the nodes' own loop cover that passed meanwhile.
    fn forget_arrivals(&mut self) {
        while self.arrivals.try_recv().is_ok() {}
    }

    /// Waits for `count` arrivals (or two seconds without one); returns
    /// how many came and when the last did.
    async fn await_arrivals(&mut self, count: usize, since: Instant) -> (usize, Instant) {
        let (mut arrived, mut last) = (0, since);
        while arrived < count {
            match tokio::time::timeout(Duration::from_secs(2), self.arrivals.recv()).await {
                Ok(Some(at)) => {
                    arrived += 1;
                    last = at;
                }
                _ => break,
            }
        }
        (arrived, last)
    }

    /// Writes `frames` on `stream` as fast as it takes them while counting
    /// the arrivals at the sink (until as many arrived, or two seconds
    /// passed without one). Returns the stream, the arrivals, and the time
    /// from the first write to the last arrival.
    async fn send_and_count(
        &mut self,
        mut stream: aegis_link::Stream,
        frames: &[Vec<u8>],
    ) -> (aegis_link::Stream, usize, f64) {
        let frames = frames.to_vec();
        let count = frames.len();
        let started = Instant::now();
        let writer = tokio::spawn(async move {
            for frame in frames {
                stream.write_all(&frame).await.unwrap();
            }
            stream.flush().await.unwrap();
            stream
        });
        let (arrived, last) = self.await_arrivals(count, started).await;
        let stream = writer.await.unwrap();
        (stream, arrived, last.duration_since(started).as_secs_f64())
    }

    /// Frames straight from the feeder to the sink, no node between them.
    async fn link_alone(&mut self, frames: &[Vec<u8>]) -> f64 {
        self.source
            .add_addresses(self.sink_peer, vec![self.sink_addr.clone()]);
        let direct = self
            .source
            .open(self.sink_peer, MIX_PROTOCOL)
            .await
            .unwrap();
        self.forget_arrivals();
        let (_, arrived, elapsed) = self.send_and_count(direct, frames).await;
        arrived as f64 / elapsed
    }
}

/// What one placement measured.
struct Placement {
    name: &'static str,
    /// CPUs of the node process (taskset list), or all.
    node_cpus: Option<String>,
    node_cores: usize,
    /// CPUs of the benchmark's own threads, or all.
    harness_cpus: Option<String>,
    /// The machine's cores.
    all_cores: usize,
}

async fn measure(
    placement: &Placement,
    node_config: &NodeConfig,
    epoch: u64,
    harness: &mut Harness,
    prober: &Prober,
    frames: &[Vec<u8>],
) -> serde_json::Value {
    let all_cpus = format!("0-{}", placement.all_cores - 1);
    let own = std::process::id();
    place(
        own,
        placement.harness_cpus.as_deref().unwrap_or(&all_cpus),
        true,
    );
    let node = NodeProcess::start(node_config, placement.node_cpus.as_deref(), epoch).await;
    let node_cpus = placement.node_cpus.clone().unwrap_or(all_cpus);
    let (latency_frames, load_frames) = frames.split_at(LATENCY_PACKETS);
    let link_rate = harness.link_alone(load_frames).await;
    eprintln!(
        "[{}] node started; link alone: {link_rate:.0} frames/s",
        placement.name
    );

    harness
        .source
        .add_addresses(harness.node_peer, vec![harness.node_addr.clone()]);
    let mut stream = harness
        .source
        .open(harness.node_peer, MIX_PROTOCOL)
        .await
        .unwrap();

    // Latency: one packet at a time, wire to wire.
    let mut latencies = Vec::new();
    for (i, frame) in latency_frames.iter().enumerate() {
        if i == 20 && latencies.is_empty() {
            panic!(
                "no packet came out of the node (if the epoch its packets were built for \
                 ended meanwhile, run with a smaller AEGIS_BENCH_PACKETS)"
            );
        }
        harness.forget_arrivals();
        let sent = Instant::now();
        stream.write_all(frame).await.unwrap();
        stream.flush().await.unwrap();
        if let Ok(Some(at)) =
            tokio::time::timeout(Duration::from_secs(2), harness.arrivals.recv()).await
        {
            latencies.push(at.duration_since(sent).as_secs_f64() * 1_000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);

    // Throughput: rounds of frames written as fast as the link takes them,
    // each timed from the first write to the last forwarded packet out of
    // the node (other nodes' loop cover crossing it counts too: a few
    // packets a second).
    let (mut rates, mut ratios, mut node_cpu, mut crypto_cpu, mut bares) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // The bare rate on the node's cores right before and right after each
    // round (the probe after one round is the probe before the next), so
    // both see the machine in the same state.
    let mut bare_before = prober.measure(&node_cpus).await;
    for load in load_frames.chunks(load_frames.len().div_ceil(ROUNDS)) {
        harness.forget_arrivals();
        let (node_before, crypto_before) = (
            cpu_seconds(node.pid, ""),
            cpu_seconds(node.pid, "aegis-crypto"),
        );
        let count = load.len();
        let (returned, arrived, elapsed) = harness.send_and_count(stream, load).await;
        stream = returned;
        let node_seconds = cpu_seconds(node.pid, "") - node_before;
        let crypto_seconds = cpu_seconds(node.pid, "aegis-crypto") - crypto_before;
        let bare_after = prober.measure(&node_cpus).await;
        let bare = (bare_before + bare_after) / 2.0;
        bare_before = bare_after;
        let rate = arrived as f64 / elapsed;
        rates.push(rate);
        ratios.push(rate / (placement.node_cores as f64 * bare));
        node_cpu.push(arrived as f64 / node_seconds / bare);
        crypto_cpu.push(arrived as f64 / crypto_seconds / bare);
        bares.push(bare);
        eprintln!(
            "[{}] round: {arrived} of {count} packets out in {elapsed:.2} s; bare {bare:.0}/s; node CPU {node_seconds:.2} s (crypto threads {crypto_seconds:.2} s)",
            placement.name
        );
    }
    let metrics = node.scrape().await.expect("the node's /metrics");
    let report = json!({
        "node_cpus": node_cpus,
        "node_cores": placement.node_cores,
        "harness_cpus": placement.harness_cpus,
        "bare_unwrap_per_s": bares.iter().map(|b| b.round()).collect::<Vec<_>>(),
        "round_rates": rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
        "node_packets_per_s": median(&rates).round(),
        "round_ratios": ratios,
        "ratio_to_cores_x_bare": median(&ratios),
        "node_cpu_efficiency": median(&node_cpu),
        "crypto_cpu_efficiency": median(&crypto_cpu),
        "link_alone_frames_per_s": link_rate.round(),
        "latency_p50_ms": percentile(&latencies, 0.5),
        "latency_p99_ms": percentile(&latencies, 0.99),
        "latency_samples": latencies.len(),
        "node_received": metrics.value("aegis_node_received_total"),
        "node_forwarded": metrics.value("aegis_node_forwarded_total"),
        "node_dropped": json!(metrics.dropped()),
    });
    drop(stream);
    node.stop().await;
    report
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `n` frames along `route`, built on every core (building is the slow part
/// of a run, and the packets must reach the node while it still holds the
/// key of the epoch they are built for).
fn build_frames(
    geometry: &Geometry,
    topology: &aegis_node::Topology,
    route: &[NodeId],
    n: usize,
    cores: usize,
) -> Vec<Vec<u8>> {
    let route = topology.hops(geometry, route).unwrap();
    let delays = HopDelays::fixed(&[Duration::ZERO; 5]);
    let sealing = SphinxPublicKey::from(&SphinxSecret::from([5u8; 32]));
    let per_thread = n.div_ceil(cores);
    std::thread::scope(|scope| {
        let builders: Vec<_> = (0..n)
            .step_by(per_thread)
            .map(|first| {
                let (route, delays, sealing) = (&route, &delays, &sealing);
                scope.spawn(move || {
                    let mut rng = rand::rng();
                    (first..n.min(first + per_thread))
                        .map(|i| {
                            build_mailbox_packet(
                                &mut rng,
                                geometry,
                                route,
                                delays,
                                MailboxId([3; 32]),
                                sealing,
                                &Body::Loop(LoopId([(i % 251) as u8; 16])),
                            )
                            .unwrap()
                            .to_frame(geometry)
                            .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        builders
            .into_iter()
            .flat_map(|b| b.join().unwrap())
            .collect()
    })
}

fn key_of(config: &NodeConfig) -> ed25519_dalek::SigningKey {
    aegis_directory::config::load_key(&config.data_dir.join(aegis_node::config::KEY_FILE)).unwrap()
}

async fn run(dir: &Path) {
    let geometry = network_geometry();
    let cores = available_cores();
    let bare_set = bare_packets();
    let bare = bare_unwrap_rate(&bare_set, Duration::from_secs(2));
    eprintln!("bare unwrap: {bare:.0}/s per core; starting a local network");
    let prober = Prober::start(bare_set);

    let spec = LocalNetSpec {
        // Long enough that building the packets and both placements fit in
        // the epochs whose keys the node holds.
        epoch_length_ms: 60_000,
        workers: 0,
        line_rate: 5_000,
        // What an operator runs with (the tests snapshot every second).
        filter_snapshot_secs: 60,
        geometry: geometry.clone(),
        ..LocalNetSpec::default()
    };
    let begun = Instant::now();
    let mut net = LocalNet::start(dir, &spec).await.unwrap();
    let topology = net.wait_ready(Duration::from_secs(150)).await.unwrap();
    eprintln!(
        "network ready (epoch {}) after {:.0} s",
        topology.epoch,
        begun.elapsed().as_secs_f64()
    );
    let gateway = net.gateways()[0];
    let index_of = |id: NodeId| (0..3).find(|&i| net.node(i).unwrap().id() == id).unwrap();
    let l1 = topology.layers[0][0];
    let l2 = topology.layers[1][0];
    let (l1_index, l2_index) = (index_of(l1), index_of(l2));
    let node_config = net.nodes[l1_index].config.clone();
    let l2_addr: Multiaddr = net.nodes[l2_index].config.listen.parse().unwrap();
    let (gateway_key, l2_key) = (
        key_of(&net.nodes[gateway].config),
        key_of(&net.nodes[l2_index].config),
    );
    // The measured node leaves the process; the benchmark takes the layer-2
    // mix's place.
    net.stop_node(l1_index).await;
    net.stop_node(l2_index).await;

    let (_stop, stop_rx) = watch::channel(false);
    let (sink, _t1) = Host::start(&l2_key, Some(l2_addr.clone()), stop_rx.clone()).unwrap();
    let (source, _t2) = Host::start(&gateway_key, None, stop_rx).unwrap();
    let mut incoming = sink.accept(MIX_PROTOCOL).unwrap();
    let (arrivals_tx, arrivals) = mpsc::unbounded_channel::<Instant>();
    let frame_len = geometry.frame_len();
    tokio::spawn(async move {
        while let Some((_, mut stream)) = incoming.next().await {
            let tx = arrivals_tx.clone();
            tokio::spawn(async move {
                let mut frame = vec![0u8; frame_len];
                while stream.read_exact(&mut frame).await.is_ok() {
                    let _ = tx.send(Instant::now());
                }
            });
        }
    });
    let mut harness = Harness {
        source,
        arrivals,
        sink_peer: peer_id_of(&l2.0).unwrap(),
        sink_addr: l2_addr,
        node_peer: peer_id_of(&l1.0).unwrap(),
        node_addr: node_config.listen.parse().unwrap(),
    };

    let gateway_id = net.nodes[gateway].running.as_ref().unwrap().id();
    let route = [l1, l2, topology.layers[2][0], gateway_id, gateway_id];
    let per_placement = std::env::var("AEGIS_BENCH_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SATURATION_PACKETS)
        + LATENCY_PACKETS;
    let mut placements = Vec::new();
    if cores >= 2 {
        placements.push(Placement {
            name: "dedicated",
            node_cpus: Some(format!("1-{}", cores - 1)),
            node_cores: cores - 1,
            harness_cpus: Some("0".to_owned()),
            all_cores: cores,
        });
    } else {
        eprintln!("one core: the node cannot have cores of its own; measuring shared only");
    }
    placements.push(Placement {
        name: "shared",
        node_cpus: None,
        node_cores: cores,
        harness_cpus: None,
        all_cores: cores,
    });
    // A replayed packet is dropped, and the node keeps its replay filter
    // across restarts: each placement gets packets of its own.
    let frames = build_frames(
        &geometry,
        &topology,
        &route,
        per_placement * placements.len(),
        cores,
    );
    eprintln!(
        "{} packets built; {:.0} s since the network started",
        frames.len(),
        begun.elapsed().as_secs_f64()
    );
    let mut reports = serde_json::Map::new();
    for (placement, frames) in placements.iter().zip(frames.chunks(per_placement)) {
        let report = measure(
            placement,
            &node_config,
            topology.epoch,
            &mut harness,
            &prober,
            frames,
        )
        .await;
        reports.insert(placement.name.to_owned(), report);
    }
    println!(
        "{}",
        json!({
            "cores": cores,
            "packet_format": geometry.format.name(),
            "frame_len": geometry.frame_len(),
            "bare_unwrap_per_s_at_start": bare.round(),
            "placements": reports,
        })
    );
    net.shutdown().await;
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(dir.path()));
}
