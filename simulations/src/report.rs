//! What a run produced. Everything here is a function of the scenario and
//! its seed alone, so two runs of one scenario serialise identically;
//! wall-clock figures live in [`EngineStats`](crate::EngineStats) instead.

use serde::Serialize;

use crate::anonymity::GuessSummary;
use crate::disclosure::DisclosurePoint;
use crate::latency::LatencySummary;
use crate::single_mix::SingleMixPoint;

/// The result of a scenario of either kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Report {
    /// A single-mix grid.
    SingleMix(SingleMixReport),
    /// A network run.
    Network(Box<NetworkReport>),
}

/// Entropy of one Poisson mix over a grid of (λ, μ).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SingleMixReport {
    /// Scenario name.
    pub name: String,
    /// Seed.
    pub seed: u64,
    /// Whether sender delays were capped at the protocol maximum.
    pub delay_cap: bool,
    /// One point per (μ, λ), μ-major.
    pub points: Vec<SingleMixPoint>,
}

/// Sender anonymity of one target message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetRecord {
    /// Order in which the message was written.
    pub message: u64,
    /// True sender.
    pub sender: u32,
    /// Seconds at which it was written.
    pub written_secs: f64,
    /// Seconds at which it reached the recipient's mailbox.
    pub delivered_secs: f64,
    /// The adversary's view of its sender.
    #[serde(flatten)]
    pub guess: GuessSummary,
    /// Probability mass the tracking could not attribute to a sender (0 for
    /// dense tracking; lineage tracking's forgotten and cut-off mass).
    pub untracked_mass: f64,
    /// Whether every mix on its route was corrupt.
    pub fully_corrupt_path: bool,
}

/// An n−1 attack on one mix and how long its loop alarm took to notice.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NMinusOneReport {
    /// The attacked mix (node id).
    pub mix: u32,
    /// Its layer.
    pub layer: usize,
    /// When the attacker started holding back its input.
    pub start_secs: f64,
    /// λM, loops per second per mix.
    pub loop_rate: f64,
    /// How long a mix waits for a loop before counting it lost.
    pub deadline_secs: f64,
    /// Seconds from the start of the attack to the attacked mix's alarm
    /// (none: not detected within the run).
    pub detected_after_secs: Option<f64>,
    /// Alarms raised by any mix before the attack started.
    pub false_alarms: u32,
    /// Alarms raised after the start by other mixes, whose loops cross the
    /// attacked one.
    pub collateral_alarms: u32,
    /// Packets the attacker held back.
    pub held_back: u64,
}

/// Sender anonymity over all target messages.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AnonymityReport {
    /// Target messages delivered and scored.
    pub targets: usize,
    /// Mean Shannon entropy of the sender, bits.
    pub entropy_bits: f64,
    /// Smallest entropy over targets, bits.
    pub entropy_min_bits: f64,
    /// Mean min-entropy, bits.
    pub min_entropy_bits: f64,
    /// Mean top-1 guess success.
    pub top1: f64,
    /// Mean top-k guess success.
    pub topk: f64,
    /// k.
    pub k: usize,
    /// log2 of the number of clients: the entropy of a perfect system.
    pub ideal_bits: f64,
    /// Share of targets whose every mix was corrupt.
    pub fully_corrupt_paths: f64,
    /// b^L, the expected share of fully corrupt paths.
    pub predicted_fully_corrupt: f64,
    /// For Poisson mixing under the global passive observer: the entropy
    /// log2(λ) + h(Gamma(k, 1/μ)) of a chain of k delaying hops fed with the
    /// clients' λ packets per second ([`crate::theory`]). It counts inputs, not
    /// senders, so it bounds the sender entropy from above; with one real
    /// message per sender in the relevant window the two agree.
    pub chain_closed_form_bits: Option<f64>,
    /// Largest untracked mass δ over the targets.
    pub max_untracked_mass: f64,
    /// Bound on how far any target's entropy can be off because of it:
    /// h(δ) + δ·log2(clients) ([`crate::lineage::entropy_error_bound`]).
    pub entropy_error_bound: f64,
}

/// Traffic counts and the cost of cover.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BandwidthReport {
    /// Real messages written.
    pub messages_written: u64,
    /// Messages dropped because the client's queue was full.
    pub messages_queue_dropped: u64,
    /// Real packets sent by clients.
    pub real_sent: u64,
    /// Loop cover packets sent by clients (including empty payload slots).
    pub loop_sent: u64,
    /// Drop cover packets sent by clients.
    pub drop_sent: u64,
    /// Acknowledgements sent by clients (with `[delivery] acks`).
    pub ack_sent: u64,
    /// Real messages that reached the recipient's mailbox.
    pub real_delivered: u64,
    /// Loops the mixes sent (node loop cover).
    pub node_loops_sent: u64,
    /// Packets refused by a full node.
    pub refused_by_nodes: u64,
    /// Packets forwarded by nodes (one per node per packet).
    pub packet_hops: u64,
    /// Client packets per real packet: the cover overhead factor.
    pub overhead: f64,
    /// Packet-hops per delivered real message.
    pub hops_per_delivered_message: f64,
}

/// The result of a network run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NetworkReport {
    /// Scenario name.
    pub name: String,
    /// Seed.
    pub seed: u64,
    /// Adversary model.
    pub adversary: String,
    /// Clients.
    pub clients: usize,
    /// Simulated seconds.
    pub duration_secs: f64,
    /// Sender anonymity, if targets were tracked.
    pub anonymity: Option<AnonymityReport>,
    /// Per-target records.
    pub targets: Vec<TargetRecord>,
    /// Write-to-mailbox latency of real messages, seconds.
    pub latency: LatencySummary,
    /// Its empirical CDF (seconds, fraction).
    pub latency_cdf: Vec<(f64, f64)>,
    /// Traffic and overhead.
    pub bandwidth: BandwidthReport,
    /// Disclosure attack on this system.
    pub disclosure: Vec<DisclosurePoint>,
    /// Disclosure attack on a dumb relay carrying the same messages.
    pub relay_disclosure: Option<Vec<DisclosurePoint>>,
    /// Intersection attack recall over time (empty when off).
    pub intersection: Vec<DisclosurePoint>,
    /// The n−1 attack and its detection, when one was run.
    pub n_minus_one: Option<NMinusOneReport>,
    /// Flow correlation on long conversations, when run.
    pub flow: Option<crate::flow::FlowReport>,
    /// Loss and outages, when the scenario has any.
    pub faults: Option<crate::faults::FaultReport>,
    /// Outboxes, acknowledgements and retransmission, when on.
    pub delivery: Option<crate::delivery::DeliveryReport>,
    /// What the gateways' limits refused, when applied.
    pub access: Option<crate::access::AccessReport>,
    /// Events the engine processed.
    pub events: u64,
}

impl AnonymityReport {
    /// Aggregates target records.
    pub fn from_targets(
        targets: &[TargetRecord],
        k: usize,
        clients: usize,
        predicted: f64,
    ) -> Self {
        let n = targets.len().max(1) as f64;
        let mean = |f: &dyn Fn(&TargetRecord) -> f64| targets.iter().map(f).sum::<f64>() / n;
        let max_untracked = targets.iter().map(|t| t.untracked_mass).fold(0.0, f64::max);
        AnonymityReport {
            targets: targets.len(),
            entropy_bits: mean(&|t| t.guess.entropy_bits),
            entropy_min_bits: targets
                .iter()
                .map(|t| t.guess.entropy_bits)
                .fold(f64::INFINITY, f64::min)
                .min(if targets.is_empty() {
                    0.0
                } else {
                    f64::INFINITY
                }),
            min_entropy_bits: mean(&|t| t.guess.min_entropy_bits),
            top1: mean(&|t| t.guess.top1),
            topk: mean(&|t| t.guess.topk),
            k,
            ideal_bits: (clients as f64).log2(),
            fully_corrupt_paths: mean(&|t| f64::from(u8::from(t.fully_corrupt_path))),
            predicted_fully_corrupt: predicted,
            chain_closed_form_bits: None,
            max_untracked_mass: max_untracked,
            entropy_error_bound: crate::lineage::entropy_error_bound(max_untracked, clients),
        }
    }
}
