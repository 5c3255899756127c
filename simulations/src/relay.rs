//! The baseline: an ordinary encrypted messenger's server. One relay
//! forwards every message the moment it arrives and necessarily sees which
//! mailbox it came from and which it goes to — content is encrypted, the
//! metadata is not. The relay is the adversary.

use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use crate::anonymity::GuessSummary;
use crate::disclosure::DisclosureAttack;
use crate::engine::{EngineStats, attacked_users, target_stride};
use crate::latency::LatencyHistogram;
use crate::report::{AnonymityReport, BandwidthReport, NetworkReport, TargetRecord};
use crate::scenario::{NetworkScenario, secs};
use crate::social::SocialGraph;

/// Runs the dumb-relay baseline with the scenario's clients, social graph
/// and message rate (the same graph as the mixnet run of the same seed).
pub fn run_dumb_relay(
    s: &NetworkScenario,
    progress: &mut dyn FnMut(f64),
) -> (NetworkReport, EngineStats) {
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let clients = s.clients.count;
    let graph = SocialGraph::zipf(
        &mut rng,
        clients,
        s.clients.contacts,
        s.clients.zipf_exponent,
    );
    let end = secs(s.duration_secs);
    let d = &s.disclosure;
    let mut sda = (d.users > 0).then(|| {
        DisclosureAttack::new(
            clients,
            attacked_users(&graph, clients, d.users),
            secs(d.window_secs),
            d.guesses,
            end,
            true,
        )
    });
    let latency = s.topology.link_latency_ms / 1000.0;
    let jitter = s.topology.link_jitter_ms.max(0.0) / 1000.0;
    let stride = target_stride(s);
    let mut hist = LatencyHistogram::new();
    let mut bw = BandwidthReport::default();
    let mut records = Vec::new();
    let mut now = std::time::Duration::ZERO;
    let mut written = 0u64;
    if let Ok(gap) = Exp::new(s.clients.rate * clients as f64) {
        loop {
            now += secs(gap.sample(&mut rng));
            if now > end {
                break;
            }
            let sender = rng.random_range(0..clients);
            let Some(recipient) = graph.pick(&mut rng, sender) else {
                continue;
            };
            let id = written;
            written += 1;
            // Two links (client → relay → recipient) and no waiting.
            let delay = 2.0 * latency + jitter * (rng.random::<f64>() + rng.random::<f64>());
            hist.record(delay);
            if let Some(a) = &mut sda {
                a.observe_pair(now, sender, recipient as usize);
            }
            if s.adversary.targets > 0
                && now >= secs(s.warmup_secs)
                && records.len() < s.adversary.targets
                && id.is_multiple_of(stride)
            {
                records.push(TargetRecord {
                    message: id,
                    sender: sender as u32,
                    written_secs: now.as_secs_f64(),
                    delivered_secs: now.as_secs_f64() + delay,
                    guess: GuessSummary::of_dense(&[1.0], 0, s.adversary.top_k),
                    untracked_mass: 0.0,
                    fully_corrupt_path: true,
                });
            }
            if written.is_multiple_of(1 << 16) {
                progress(now.as_secs_f64() / s.duration_secs);
            }
        }
    }
    progress(1.0);
    if let Some(a) = &mut sda {
        a.advance(end);
    }
    bw.messages_written = written;
    bw.real_sent = written;
    bw.real_delivered = written;
    bw.packet_hops = written;
    bw.overhead = 1.0;
    bw.hops_per_delivered_message = 1.0;
    let anonymity = (s.adversary.targets > 0)
        .then(|| AnonymityReport::from_targets(&records, s.adversary.top_k, clients, 1.0));
    let report = NetworkReport {
        name: s.name.clone(),
        seed: s.seed,
        adversary: format!("{:?}", s.adversary.model),
        clients,
        duration_secs: s.duration_secs,
        anonymity,
        targets: records,
        latency: hist.summary(),
        latency_cdf: hist.cdf(),
        bandwidth: bw,
        disclosure: sda.as_ref().map(|a| a.curve().to_vec()).unwrap_or_default(),
        relay_disclosure: None,
        intersection: Vec::new(),
        n_minus_one: None,
        flow: None,
        faults: None,
        delivery: None,
        access: None,
        events: written,
    };
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let stats = EngineStats {
        events: written,
        packet_hops: written,
        wall_secs: wall,
        events_per_sec: written as f64 / wall,
        packet_hops_per_sec: written as f64 / wall,
    };
    (report, stats)
}
