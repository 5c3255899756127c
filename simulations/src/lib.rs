//! `aegis-sim`: a deterministic discrete-event simulator of the AegisLink
//! mixnet for measuring what an adversary learns about who talks to whom.
//!
//! The simulator owns only the clock, the wires and the adversary. The
//! behaviour being measured is the project's own protocol code from
//! `aegis-proto`: every node runs [`aegis_proto::Mixer`] (the type the mix
//! nodes run), every client runs [`aegis_proto::TrafficShaper`], routes come
//! from [`aegis_proto::route`], and senders draw per-hop delays with
//! [`aegis_mix_packet::HopDelays`]. Packets are opaque ids (no Sphinx
//! cryptography is performed): the adversaries modelled here see only timing
//! and links, which the ids reproduce exactly. One seeded RNG and a totally
//! ordered event queue make every run reproducible bit for bit.
//!
//! Scenarios are TOML files ([`Scenario`]); a run produces a [`Report`]
//! written as JSON and CSV, with plots.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod error;
pub use error::SimError;

mod scenario;
pub use scenario::{
    AdversaryModel, AdversarySpec, ClientSpec, DisclosureSpec, MixingSpec, NetworkScenario,
    Scenario, ShapingSpec, SingleMixScenario, TopologySpec, Tracking,
};

pub mod anonymity;
pub use anonymity::{GuessSummary, InputTracker, MixturePool, SenderDist};

mod clock;
pub use clock::EventQueue;

mod layout;
pub use layout::{Layout, NodeRole};

mod social;
pub use social::SocialGraph;

mod adversary;
pub use adversary::Adversary;

pub mod intersection;

pub mod flow;

pub mod faults;

pub mod delivery;

pub mod access;

mod disclosure;
pub use disclosure::{DisclosureAttack, DisclosurePoint};

mod latency;
pub use latency::{LatencyHistogram, LatencySummary};

pub mod theory;

pub mod lineage;

mod single_mix;
pub use single_mix::{SingleMixPoint, closed_form_entropy_bits, run_single_mix};

mod engine;
pub use engine::{EngineStats, run_network};

mod relay;
pub use relay::run_dumb_relay;

mod report;
pub use report::{
    AnonymityReport, BandwidthReport, NMinusOneReport, NetworkReport, Report, SingleMixReport,
    TargetRecord,
};

pub mod output;

pub mod plot;

pub mod sweep;

pub mod harness;
pub use harness::{Harness, HarnessConfig, HarnessError, HarnessStats, TranscriptLine};

/// Runs a scenario of either kind; `progress` is called with the fraction of
/// simulated time done (for a progress bar; it never affects the result).
pub fn run(scenario: &Scenario, progress: &mut dyn FnMut(f64)) -> Result<Report, SimError> {
    scenario.validate()?;
    match scenario {
        Scenario::SingleMix(s) => {
            let report = single_mix::run_grid(s, progress);
            Ok(Report::SingleMix(report))
        }
        Scenario::Network(s) => {
            let (report, _) = run_network(s, progress)?;
            Ok(Report::Network(Box::new(report)))
        }
    }
}
