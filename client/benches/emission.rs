//! Whether the moment a packet leaves tells what it is.
//!
//! A client's packets leave on the traffic shaper's schedule, but each
//! leaves a little after its slot: the time to produce it. If that time
//! depends on the packet's kind — a fragment needs two Sphinx packets built
//! (its own and its SURB-ACK) and an outbox record written to disk, an
//! acknowledgement was built when its fragment arrived, cover needs one —
//! then an observer of the client's link who knows the schedule (or
//! watches long enough) learns which slots carried real traffic.
//!
//! The benchmark runs `aegis_proto::Endpoint` on a test network, slot after
//! slot, with a real encrypted store (RocksDB) under write load from
//! another thread, and times each emission from the slot to the frame in
//! hand, as the client's driver does it:
//!
//! * `at_slot` — the behaviour before packets were prepared ahead: each
//!   packet built when its slot comes, the outbox written (synced) before
//!   the next frame may leave;
//! * `prepared` — frames built ahead by `Endpoint::prepare` after the
//!   previous frame left, store writes handed to the store's writer thread;
//! * `released` — today's driver: as `prepared`, and the frame released
//!   [`RELEASE_HOLD`] after its slot began (`aegis_client::emission`), so
//!   the time is taken to the release.
//!
//! For each mode it prints, as one JSON line, the median and 90th
//! percentile per kind and the two-sample Kolmogorov–Smirnov test between
//! every pair of kinds (p > 0.05: no evidence the kinds differ). The modes
//! alternate in rounds, so machine load hits both alike.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aegis_client::emission::{RELEASE_HOLD, release_at};
use aegis_client::store::writer::Writer;
use aegis_client::store::{Argon2Params, Namespace, Store};
use aegis_directory::{NetworkParameters, Role};
use aegis_mix_packet::{
    Body, Fragment, Geometry, HopDelays, MailboxId, MessageId, SphinxPublicKey, SphinxSecret,
    SurbAck, join_delivery, sealed,
};
use aegis_proto::client::PacketKind;
use aegis_proto::delivery::{Inbox, InboxConfig, Outbox, OutboxConfig};
use aegis_proto::{Address, Endpoint, EndpointConfig, Own, ShapingConfig, Topology, testnet};
use aegis_testkit::{ks, percentile};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Emissions timed per mode and round.
const PER_ROUND: usize = 1_000;
/// Rounds per mode (the modes alternate).
const ROUNDS: usize = 4;
/// Real time between one slot's work and the next slot.
const PAUSE: Duration = Duration::from_millis(2);
/// Bytes of each write of the background load.
const LOAD_VALUE: usize = 16 * 1024;

struct Net {
    topology: Arc<Topology>,
    own: SphinxSecret,
    recipient: Address,
}

fn network(rng: &mut ChaCha20Rng) -> Net {
    let parameters = NetworkParameters::standard(3_600_000);
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
    Net {
        own: SphinxSecret::from([2; 32]),
        recipient: Address {
            gateway,
            mailbox: MailboxId([3; 32]),
            mailbox_key: SphinxPublicKey::from(&SphinxSecret::from([4; 32])),
        },
        topology,
    }
}

/// What the gateway would store for the endpoint: a one-fragment message
/// from a contact, with a SURB-ACK (so the endpoint owes an
/// acknowledgement).
fn incoming(rng: &mut ChaCha20Rng, net: &Net, id: u64) -> Vec<u8> {
    let geometry = Geometry::STANDARD;
    let gateway = net.topology.gateways[0];
    let back = net
        .topology
        .route(rng, &geometry, gateway, gateway)
        .unwrap();
    let delays = HopDelays::fixed(&[Duration::ZERO; 5]);
    let sender = SphinxPublicKey::from(&SphinxSecret::from([8; 32]));
    let (surb_ack, _) =
        SurbAck::new(rng, &geometry, &back, &delays, MailboxId([9; 32]), sender).unwrap();
    let mut message_id = [0u8; 16];
    message_id[..8].copy_from_slice(&id.to_be_bytes());
    let body = Body::Fragment {
        fragment: Fragment {
            message_id: MessageId(message_id),
            index: 0,
            count: 1,
            data: vec![1; 100],
        },
        surb_ack,
    };
    let own = SphinxPublicKey::from(&net.own);
    let view = sealed::seal(rng, &own, &body.encode(&geometry).unwrap()).unwrap();
    join_delivery(&[5; 16], &view)
}

/// How the emissions of a run are made.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Each packet built at its slot, the outbox written synced after it.
    AtSlot,
    /// Frames built ahead, store writes on the writer thread.
    Prepared,
    /// As `Prepared`, the frame released a fixed hold after its slot.
    Released,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::AtSlot, Mode::Prepared, Mode::Released];

    fn name(self) -> &'static str {
        match self {
            Mode::AtSlot => "at_slot",
            Mode::Prepared => "prepared",
            Mode::Released => "released",
        }
    }
}

/// What a run measured: microseconds from slot to frame by kind, and the
/// slots whose frame came after the release hold.
#[derive(Default)]
struct Timings {
    samples: BTreeMap<PacketKind, Vec<f64>>,
    overruns: usize,
}

/// Times `count` emissions of an endpoint in `mode`.
fn run(net: &Net, store: &Arc<Store>, mode: Mode, count: usize, seed: u64) -> Timings {
    let prepared = mode != Mode::AtSlot;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    // Equal rates for the three streams; a steady backlog of own fragments
    // and owed acknowledgements keeps real slots real.
    let shaping = ShapingConfig::Poisson {
        payload_rate: 50.0,
        loop_rate: 25.0,
        drop_rate: 25.0,
    };
    let mut endpoint = Endpoint::new(
        &mut rng,
        EndpointConfig {
            shaping: Some(shaping),
            prepare_ahead: prepared,
            ..EndpointConfig::default()
        },
        Geometry::STANDARD,
        Own {
            gateway: net.recipient.gateway,
            mailbox: MailboxId([1; 32]),
            sealing: net.own.clone(),
        },
        Arc::clone(&net.topology),
        Outbox::new(OutboxConfig::default()),
        Inbox::new(InboxConfig::default()),
        Duration::ZERO,
    );
    let writer = prepared.then(|| Writer::start(Arc::clone(store)));
    let mut timings = Timings::default();
    let mut timed = 0;
    let mut incoming_id = seed << 32;
    let mut now = Duration::ZERO;
    let (mut kinds, mut frames) = (Vec::with_capacity(8), Vec::with_capacity(8));
    while timed < count {
        // What the user and the contacts do between slots (not timed).
        if endpoint.outbox().len() < 32 {
            endpoint
                .queue(&mut rng, 1u8, net.recipient.clone(), vec![7; 4_000], now)
                .unwrap();
        }
        let pulled = endpoint.poll_pull(now).is_some();
        if pulled {
            let entries = (0..2)
                .map(|_| {
                    incoming_id += 1;
                    let mut id = [0u8; 8];
                    rng.fill_bytes(&mut id);
                    (id, incoming(&mut rng, net, incoming_id))
                })
                .collect();
            endpoint.handle_pulled(&mut rng, entries, now);
        }
        while endpoint.poll_event().is_some() {}
        if prepared {
            endpoint.prepare(&mut rng, now);
        }
        // Slots are tens of milliseconds apart on a real client; a pause
        // before each lets what ran before (building a packet of one kind
        // or another) leave the caches as the wait for a slot would.
        std::thread::sleep(PAUSE);
        // The slot.
        now = endpoint.poll_timeout().max(now);
        let start = Instant::now();
        endpoint.handle_timeout(&mut rng, now);
        kinds.clear();
        frames.clear();
        while let Some((frame, kind)) = endpoint.poll_transmit_kind() {
            frames.push(std::hint::black_box(frame));
            kinds.push(kind);
        }
        if !prepared && endpoint.take_outbox_changed() {
            let bytes = endpoint.outbox().to_bytes(now).unwrap();
            store.put(Namespace::Outbox, b"outbox", &bytes).unwrap();
        }
        if mode == Mode::Released && !frames.is_empty() && !release_at(start, RELEASE_HOLD) {
            timings.overruns += 1;
        }
        let elapsed = start.elapsed();
        // The frames would now be written to the link; freeing them is
        // not part of getting them out.
        frames.clear();
        if prepared {
            // After the frame left: build the next, write in the background.
            endpoint.prepare(&mut rng, now);
            // The driver writes its snapshots on the pull grid.
            if pulled
                && endpoint.take_outbox_changed()
                && let Some(writer) = &writer
            {
                let bytes = endpoint.outbox().to_bytes(now).unwrap();
                writer.put(Namespace::Outbox, b"outbox", bytes);
            }
        }
        if let [kind] = kinds[..] {
            timings
                .samples
                .entry(kind)
                .or_default()
                .push(elapsed.as_secs_f64() * 1e6);
            timed += 1;
        }
        now += Duration::from_micros(1);
    }
    if let Some(writer) = writer {
        assert_eq!(writer.finish(), 0, "store writes failed");
    }
    timings
}

fn name(kind: PacketKind) -> &'static str {
    match kind {
        PacketKind::Fragment => "fragment",
        PacketKind::Ack => "ack",
        PacketKind::Loop => "loop",
        PacketKind::Drop => "drop",
    }
}

fn report(mode: Mode, timings: &Timings) {
    let samples = &timings.samples;
    let mut kinds = serde_json::Map::new();
    for (kind, values) in samples {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        kinds.insert(
            name(*kind).into(),
            serde_json::json!({
                "n": sorted.len(),
                "median_us": percentile(&sorted, 0.5),
                "p90_us": percentile(&sorted, 0.9),
                "p999_us": percentile(&sorted, 0.999),
            }),
        );
    }
    let mut tests = Vec::new();
    let mut min_p: f64 = 1.0;
    let list: Vec<_> = samples.iter().collect();
    for (i, (a, va)) in list.iter().enumerate() {
        for (b, vb) in &list[i + 1..] {
            if let Some(r) = ks::two_sample(va, vb) {
                min_p = min_p.min(r.p);
                tests.push(serde_json::json!({
                    "kinds": [name(**a), name(**b)],
                    "d": r.d,
                    "p": r.p,
                }));
            }
        }
    }
    // Six pairs are tested: the smallest p of six tests of identical
    // distributions falls below 0.05 about a quarter of the time, so the
    // family is judged at 0.05 after Bonferroni's correction (the
    // smallest p times the number of tests).
    let family_p = (min_p * tests.len() as f64).min(1.0);
    println!(
        "{}",
        serde_json::json!({
            "bench": "emission_by_kind",
            "mode": mode.name(),
            "store_write_load": true,
            "kinds": kinds,
            "ks": tests,
            "min_p": min_p,
            "family_p_bonferroni": family_p,
            "overruns": timings.overruns,
        })
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::create(
            dir.path().join("store"),
            b"bench",
            Argon2Params::insecure_fast(),
        )
        .unwrap(),
    );
    let net = network(&mut ChaCha20Rng::seed_from_u64(1));
    // Write load: another thread writes 16 KiB records, synced, without
    // pause, as a client receiving a large message would.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let value = vec![0x5a; LOAD_VALUE];
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("load/{}", i % 64);
                store.put(Namespace::Meta, key.as_bytes(), &value).unwrap();
                i = i.wrapping_add(1);
            }
            i
        })
    };
    let mut all: Vec<Timings> = Mode::ALL.iter().map(|_| Timings::default()).collect();
    for round in 0..ROUNDS as u64 {
        for (i, (mode, into)) in Mode::ALL.into_iter().zip(&mut all).enumerate() {
            let seed = round * Mode::ALL.len() as u64 + i as u64;
            let timings = run(&net, &store, mode, PER_ROUND, seed);
            for (kind, values) in timings.samples {
                into.samples.entry(kind).or_default().extend(values);
            }
            into.overruns += timings.overruns;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes = load.join().unwrap();
    eprintln!("background load: {writes} synced writes of {LOAD_VALUE} bytes");
    for (mode, timings) in Mode::ALL.into_iter().zip(&all) {
        report(mode, timings);
    }
}
