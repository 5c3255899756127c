//! Scenario files: what to simulate, in TOML.
//!
//! A file is either a `kind = "single-mix"` experiment (one Poisson mix over
//! a grid of arrival and delay rates) or a `kind = "network"` run (clients,
//! gateways, mix layers, a social graph and an adversary). Every field but
//! the essentials has a default; see `docs/simulations.md`.

use std::path::Path;
use std::time::Duration;

use aegis_directory::MixingStrategy;
use aegis_proto::ShapingConfig;
use serde::{Deserialize, Serialize};

use crate::SimError;

/// A scenario of either kind.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Scenario {
    /// One Poisson mix over a grid of λ and μ.
    SingleMix(SingleMixScenario),
    /// A whole network.
    Network(Box<NetworkScenario>),
}

/// One Poisson mix fed by a Poisson stream: the setting of Danezis's closed
/// form and of Loopix's Fig. 4.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SingleMixScenario {
    /// Name used for output files.
    pub name: String,
    /// RNG seed; each grid point derives its own stream from it.
    pub seed: u64,
    /// Arrival rates λ, messages per second.
    pub lambdas: Vec<f64>,
    /// Delay rates μ (mean delay 1/μ seconds).
    pub mus: Vec<f64>,
    /// Output packets whose entropy is measured per grid point.
    #[serde(default = "default_single_targets")]
    pub targets: usize,
    /// Apply the protocol's cap on sender-chosen delays
    /// (`MAX_HOP_DELAY_NANOS`, 10 s). The closed form assumes no cap.
    #[serde(default)]
    pub delay_cap: bool,
}

fn default_single_targets() -> usize {
    200
}

/// A whole network run.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkScenario {
    /// Name used for output files.
    pub name: String,
    /// RNG seed.
    pub seed: u64,
    /// Simulated seconds.
    pub duration_secs: f64,
    /// Seconds before target messages are sampled (pools fill up first).
    #[serde(default)]
    pub warmup_secs: f64,
    /// Gateways, layers and links.
    pub topology: TopologySpec,
    /// Client population, message rates and social graph.
    pub clients: ClientSpec,
    /// The client traffic shaper (cover traffic).
    pub shaping: ShapingSpec,
    /// The nodes' mixing strategy and the senders' delays.
    pub mixing: MixingSpec,
    /// Who is watching.
    #[serde(default)]
    pub adversary: AdversarySpec,
    /// The statistical disclosure attack.
    #[serde(default)]
    pub disclosure: DisclosureSpec,
    /// Clients going on- and offline.
    #[serde(default)]
    pub churn: ChurnSpec,
    /// The intersection attack on who is online when messages land.
    #[serde(default)]
    pub intersection: IntersectionSpec,
    /// The mixes' own loop cover.
    #[serde(default)]
    pub node_cover: NodeCoverSpec,
    /// An n−1 attack on one mix.
    #[serde(default)]
    pub n_minus_one: NMinusOneSpec,
    /// Flow correlation on long conversations.
    #[serde(default)]
    pub flow: crate::flow::FlowSpec,
    /// Packet loss and node outages.
    #[serde(default)]
    pub faults: crate::faults::FaultSpec,
    /// Outboxes, SURB-ACKs and retransmission.
    #[serde(default)]
    pub delivery: crate::delivery::DeliverySpec,
    /// The gateways' per-client limits.
    #[serde(default)]
    pub gateway: crate::access::GatewaySpec,
}

/// The mixes' loop cover: each mix sends loops through every other layer
/// and a gateway back to itself, and judges their loss with the node's own
/// alarm (`aegis_proto::loop_alarm`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeCoverSpec {
    /// λM: loops per second each mix sends (0: none).
    #[serde(default)]
    pub loop_rate: f64,
}

/// An n−1 (blending) attack: from `start_secs` on, the attacker holds back
/// every packet bound for the first mix of `layer`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NMinusOneSpec {
    /// When the attack starts (none: no attack).
    #[serde(default)]
    pub start_secs: Option<f64>,
    /// The layer of the attacked mix (0-based).
    #[serde(default)]
    pub layer: usize,
}

/// Clients going on- and offline: each alternates online and offline
/// periods of exponential length (independent of everything else).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChurnSpec {
    /// Mean seconds online (0 with `mean_offline_secs` 0: always online).
    #[serde(default)]
    pub mean_online_secs: f64,
    /// Mean seconds offline.
    #[serde(default)]
    pub mean_offline_secs: f64,
}

impl ChurnSpec {
    /// Whether clients go offline at all.
    pub fn enabled(&self) -> bool {
        self.mean_offline_secs > 0.0
    }
}

/// The long-term intersection attack ([`crate::intersection`]).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IntersectionSpec {
    /// Recipients whose correspondents are attacked (0 turns it off).
    #[serde(default)]
    pub recipients: usize,
    /// The adversary's bound on latency, seconds: a message landing at t was
    /// sent by someone online during [t − window, t].
    #[serde(default = "default_intersection_window")]
    pub window_secs: f64,
}

fn default_intersection_window() -> f64 {
    60.0
}

impl Default for IntersectionSpec {
    fn default() -> Self {
        IntersectionSpec {
            recipients: 0,
            window_secs: default_intersection_window(),
        }
    }
}

/// Network shape.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    /// Mix layers between entry and exit gateway.
    pub layers: usize,
    /// Mixes per layer.
    pub width: usize,
    /// Gateways; each client attaches to one, which is its entry and mailbox.
    pub gateways: usize,
    /// One-way latency of every link, milliseconds.
    #[serde(default = "default_latency_ms")]
    pub link_latency_ms: f64,
    /// Extra uniform random latency per packet per link, milliseconds.
    #[serde(default)]
    pub link_jitter_ms: f64,
}

fn default_latency_ms() -> f64 {
    10.0
}

/// Clients and who writes to whom.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// Number of clients.
    pub count: usize,
    /// Real messages each client writes per second (Poisson).
    pub rate: f64,
    /// Contacts per client.
    #[serde(default = "default_contacts")]
    pub contacts: usize,
    /// Zipf exponent of contact popularity (0 = uniform).
    #[serde(default = "default_zipf")]
    pub zipf_exponent: f64,
    /// Messages a client may have queued before new ones are dropped.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
}

fn default_contacts() -> usize {
    5
}
fn default_zipf() -> f64 {
    1.0
}
fn default_max_queue() -> usize {
    1000
}

/// The client traffic shaper.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ShapingSpec {
    /// Loopix streams: payload (real or loop) at `payload_rate`, loop cover
    /// at `loop_rate`, drop cover at `drop_rate`, all per second.
    Poisson {
        /// λP.
        payload_rate: f64,
        /// λL.
        loop_rate: f64,
        /// λD.
        drop_rate: f64,
    },
    /// One packet every `interval_ms`, real if one is queued, else a loop.
    Constant {
        /// Milliseconds between packets.
        interval_ms: f64,
    },
    /// No shaper and no cover: each message leaves as soon as it is written.
    None,
}

impl ShapingSpec {
    /// Packets per second a client sends, cover included; unshaped
    /// clients send their `writes` (messages per second) alone.
    pub fn client_rate(&self, writes: f64) -> f64 {
        match *self {
            ShapingSpec::Poisson {
                payload_rate,
                loop_rate,
                drop_rate,
            } => payload_rate + loop_rate + drop_rate,
            ShapingSpec::Constant { interval_ms } => 1000.0 / interval_ms,
            ShapingSpec::None => writes,
        }
    }

    /// The client crate's configuration, or `None` for unshaped clients.
    pub fn config(&self) -> Option<ShapingConfig> {
        match *self {
            ShapingSpec::Poisson {
                payload_rate,
                loop_rate,
                drop_rate,
            } => Some(ShapingConfig::Poisson {
                payload_rate,
                loop_rate,
                drop_rate,
            }),
            ShapingSpec::Constant { interval_ms } => Some(ShapingConfig::ConstantRate {
                interval: secs(interval_ms / 1000.0),
            }),
            ShapingSpec::None => None,
        }
    }
}

/// Mixing strategy and sender-chosen delays.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MixingSpec {
    /// `poisson`, `timed-pool` or `threshold-pool`.
    #[serde(default = "default_strategy")]
    pub strategy: String,
    /// Per-hop delay rate μ (per second; mean delay 1/μ) senders draw from.
    #[serde(default = "default_mu")]
    pub mu: f64,
    /// Timed pool: milliseconds between rounds.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: f64,
    /// Timed pool: packets always kept back.
    #[serde(default)]
    pub min_pool: usize,
    /// Timed pool: share of the excess sent per round.
    #[serde(default = "default_fraction")]
    pub fraction: f64,
    /// Threshold pool: flush size.
    #[serde(default = "default_threshold")]
    pub threshold: usize,
    /// Packets a node holds before refusing more.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Whether gateways delay packets as mixes do. The protocol's senders
    /// give every hop a delay, gateways included (true); much of the
    /// literature's analysis assumes gateways forward at once (false), and
    /// then the sender's delays for the first and last hop are zero.
    #[serde(default = "default_gateways_delay")]
    pub gateways_delay: bool,
}

fn default_gateways_delay() -> bool {
    true
}

fn default_strategy() -> String {
    "poisson".into()
}
fn default_mu() -> f64 {
    20.0
}
fn default_interval_ms() -> f64 {
    100.0
}
fn default_fraction() -> f64 {
    0.7
}
fn default_threshold() -> usize {
    10
}
fn default_capacity() -> usize {
    100_000
}

impl MixingSpec {
    /// The strategy as a consensus would publish it, which the nodes' mixers run.
    pub fn config(&self) -> Result<MixingStrategy, SimError> {
        let whole = |value: f64, what: &str| {
            if value.is_finite() && value >= 0.0 && value.fract() == 0.0 {
                Ok(value as u64)
            } else {
                Err(SimError::Invalid(format!(
                    "mixing.{what} must be a whole number of milliseconds"
                )))
            }
        };
        match self.strategy.as_str() {
            "poisson" => Ok(MixingStrategy::Poisson {
                mean_delay_ms: 1_000.0 / self.mu,
            }),
            "timed-pool" => Ok(MixingStrategy::TimedPool {
                interval_ms: whole(self.interval_ms, "interval_ms")?,
                min_pool: u32::try_from(self.min_pool)
                    .map_err(|_| SimError::Invalid("mixing.min_pool too large".into()))?,
                fraction: self.fraction,
            }),
            "threshold-pool" => Ok(MixingStrategy::ThresholdPool {
                threshold: u32::try_from(self.threshold)
                    .map_err(|_| SimError::Invalid("mixing.threshold too large".into()))?,
            }),
            other => Err(SimError::Invalid(format!(
                "mixing.strategy {other:?}: expected poisson, timed-pool or threshold-pool"
            ))),
        }
    }

    /// Mean sender-chosen delay per hop.
    pub fn mean_delay(&self) -> Duration {
        secs(1.0 / self.mu)
    }
}

/// Who the adversary is.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AdversaryModel {
    /// Sees every link, controls no node.
    #[default]
    GlobalPassive,
    /// Sees every link and controls a fraction of the mixes.
    CorruptMixes,
    /// Sees every link and controls some gateways.
    CorruptGateway,
    /// Baseline of ordinary encrypted messengers: the network is replaced by
    /// one relay that forwards at once and sees sender and recipient mailbox.
    DumbRelay,
}

/// The adversary and the target messages it is scored on.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdversarySpec {
    /// Which adversary.
    #[serde(default)]
    pub model: AdversaryModel,
    /// Corrupt-mixes model: fraction b of mixes in each layer that are corrupt.
    #[serde(default)]
    pub corrupt_fraction: f64,
    /// Corrupt-gateway model: how many gateways are corrupt.
    #[serde(default = "default_corrupt_gateways")]
    pub corrupt_gateways: usize,
    /// Real messages, sampled after warm-up, whose sender anonymity is scored
    /// (0 turns probability tracking off, which large runs need).
    #[serde(default = "default_targets")]
    pub targets: usize,
    /// k of the top-k guess success.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// How the observer's distributions are computed.
    #[serde(default)]
    pub tracking: Tracking,
    /// Lineage tracking: seconds of pool arrivals kept (default: for every
    /// hop, 30 mean delays plus the link latency and jitter).
    #[serde(default)]
    pub horizon_secs: Option<f64>,
}

/// The probability-tracking method.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Tracking {
    /// A distribution over every sender carried with every packet: exact for
    /// the pool model, memory grows with clients × packets in flight
    /// (limited to 20,000 clients).
    #[default]
    Dense,
    /// Pool logs expanded backward at delivery ([`crate::lineage`]): the same
    /// model, memory grows with the packets of the last seconds only; the
    /// report bounds its error.
    Lineage,
}

fn default_corrupt_gateways() -> usize {
    1
}
fn default_targets() -> usize {
    200
}
fn default_top_k() -> usize {
    5
}

impl Default for AdversarySpec {
    fn default() -> Self {
        AdversarySpec {
            model: AdversaryModel::default(),
            corrupt_fraction: 0.0,
            corrupt_gateways: default_corrupt_gateways(),
            targets: default_targets(),
            top_k: default_top_k(),
            tracking: Tracking::default(),
            horizon_secs: None,
        }
    }
}

/// The statistical disclosure attack.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DisclosureSpec {
    /// Users whose contacts are attacked (0 turns the attack off).
    #[serde(default = "default_sda_users")]
    pub users: usize,
    /// Observation round length in seconds.
    #[serde(default = "default_window")]
    pub window_secs: f64,
    /// Size of the contact set the adversary guesses per user.
    #[serde(default = "default_contacts")]
    pub guesses: usize,
    /// Also run the dumb-relay baseline on the same users and messages, so
    /// both curves can be compared.
    #[serde(default)]
    pub compare_relay: bool,
}

fn default_sda_users() -> usize {
    50
}
fn default_window() -> f64 {
    10.0
}

impl Default for DisclosureSpec {
    fn default() -> Self {
        DisclosureSpec {
            users: default_sda_users(),
            window_secs: default_window(),
            guesses: default_contacts(),
            compare_relay: false,
        }
    }
}

/// Probability tracking keeps one dense vector per packet in flight; beyond
/// this population it needs more memory than a run should take.
pub const MAX_TRACKED_CLIENTS: usize = 20_000;

/// Whether `x` is a positive finite number (false for NaN).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

/// Seconds as a duration, saturating instead of panicking on bad input.
pub(crate) fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

impl NetworkScenario {
    /// Seconds of pool arrivals lineage tracking keeps.
    pub fn lineage_horizon_secs(&self) -> f64 {
        self.adversary.horizon_secs.unwrap_or_else(|| {
            let t = &self.topology;
            let per_hop = 30.0 / self.mixing.mu + (t.link_latency_ms + t.link_jitter_ms) / 1000.0;
            (t.layers + 2) as f64 * per_hop
        })
    }
}

impl Scenario {
    /// Parses a scenario from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, SimError> {
        let s: Scenario = toml::from_str(text).map_err(|e| SimError::Format(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|e| SimError::io(path, e))?;
        Self::from_toml(&text)
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        match self {
            Scenario::SingleMix(s) => &s.name,
            Scenario::Network(s) => &s.name,
        }
    }

    /// Checks that the values make sense.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |m: &str| Err(SimError::Invalid(m.to_string()));
        match self {
            Scenario::SingleMix(s) => {
                if s.lambdas.is_empty() || s.mus.is_empty() {
                    return bad("lambdas and mus must not be empty");
                }
                if s.lambdas
                    .iter()
                    .chain(&s.mus)
                    .any(|&x| !(x > 0.0 && x.is_finite()))
                {
                    return bad("every λ and μ must be positive and finite");
                }
                if s.targets == 0 {
                    return bad("targets must be at least 1");
                }
            }
            Scenario::Network(n) => {
                let t = &n.topology;
                if t.layers == 0 || t.width == 0 || t.gateways == 0 {
                    return bad("topology needs at least one layer, one mix and one gateway");
                }
                if t.layers + 2 > aegis_mix_packet::constants::MAX_HOPS {
                    return bad("layers + 2 gateways exceed the Sphinx maximum path length");
                }
                if n.clients.count < 2 {
                    return bad("at least two clients are needed");
                }
                if n.clients.contacts == 0 || n.clients.contacts >= n.clients.count {
                    return bad("clients.contacts must be between 1 and count - 1");
                }
                if !positive(n.duration_secs) || n.warmup_secs >= n.duration_secs {
                    return bad("duration_secs must be positive and above warmup_secs");
                }
                if !(positive(n.clients.rate) || n.clients.rate == 0.0) || !positive(n.mixing.mu) {
                    return bad("clients.rate must be non-negative and mixing.mu positive");
                }
                if !positive(n.disclosure.window_secs) {
                    return bad("disclosure.window_secs must be positive");
                }
                n.mixing.config()?;
                let a = &n.adversary;
                if !(0.0..=1.0).contains(&a.corrupt_fraction) {
                    return bad("adversary.corrupt_fraction must be in [0, 1]");
                }
                if a.targets > 0
                    && n.clients.count > MAX_TRACKED_CLIENTS
                    && a.model != AdversaryModel::DumbRelay
                    && a.tracking == Tracking::Dense
                {
                    return bad(
                        "dense probability tracking is limited to 20000 clients: set adversary.tracking = \"lineage\" (or targets = 0)",
                    );
                }
                let c = &n.churn;
                if c.enabled() && !positive(c.mean_online_secs) {
                    return bad("churn.mean_online_secs must be positive when clients go offline");
                }
                if !(c.mean_online_secs >= 0.0 && c.mean_offline_secs >= 0.0) {
                    return bad("churn means must not be negative");
                }
                if !(n.node_cover.loop_rate >= 0.0 && n.node_cover.loop_rate.is_finite()) {
                    return bad("node_cover.loop_rate must be a non-negative number");
                }
                if n.n_minus_one
                    .start_secs
                    .is_some_and(|t| t.is_nan() || t < 0.0)
                {
                    return bad("n_minus_one.start_secs must not be negative");
                }
                if n.n_minus_one.start_secs.is_some() && n.n_minus_one.layer >= t.layers {
                    return bad("n_minus_one.layer must be one of the topology's layers");
                }
                if !positive(n.intersection.window_secs) {
                    return bad("intersection.window_secs must be positive");
                }
                if a.horizon_secs.is_some_and(|h| !positive(h)) {
                    return bad("adversary.horizon_secs must be positive");
                }
                let poisson = n.mixing.strategy == "poisson";
                n.flow.validate(n.clients.count, poisson)?;
                n.faults.validate(t)?;
                if n.delivery.pull_interval_secs.is_some_and(|p| !positive(p)) {
                    return bad("delivery.pull_interval_secs must be positive");
                }
                let g = &n.gateway;
                if !(g.rate_slack >= 1.0 && g.rate_slack.is_finite()) || g.mailbox_limit == 0 {
                    return bad("gateway.rate_slack must be at least 1 and mailbox_limit positive");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_scenarios_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 3);
    }

    #[test]
    fn a_resolved_scenario_reads_back_as_itself() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        for name in ["small-mixnet.toml", "fig4-single-mix.toml", "scale-1m.toml"] {
            let s = Scenario::load(&dir.join(name)).unwrap();
            let text = toml::to_string(&s).unwrap();
            assert_eq!(Scenario::from_toml(&text).unwrap(), s, "{name}:\n{text}");
        }
    }

    #[test]
    fn unknown_strategies_and_fields_are_rejected() {
        let bad = "kind = \"single-mix\"\nname = \"x\"\nseed = 1\nlambdas = [1.0]\nmus = [1.0]\nfoo = 3\n";
        assert!(matches!(Scenario::from_toml(bad), Err(SimError::Format(_))));
    }
}
