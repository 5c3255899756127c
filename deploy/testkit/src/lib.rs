//! The test kit: whole AegisLink networks of real directory authorities,
//! mix nodes and gateways, for tests, benchmarks and tools (not shipped).
//!
//! A network is described once, as a [`plan::NetworkPlan`]: its hosts,
//! their addresses and keys, the epoch clock and the consensus parameters,
//! written out as the configuration files an operator would have.
//! [`inprocess`] starts a plan inside the calling process on loopback; the
//! `aegis-localnet` launcher starts one as separate processes, or with every
//! host in a network namespace of its own ([`processes`] holds what both
//! need), or in containers ([`containers`]). Nothing in the product crates
//! depends on this one.
#![forbid(unsafe_code)]

pub mod containers;
pub mod inprocess;
pub mod ks;
pub mod netns;
pub mod plan;
pub mod processes;
pub use inprocess::{LocalNet, LocalNetSpec, free_port, test_packet_format};
pub use plan::{Hosts, NetworkPlan, NodeTuning, Shape};

/// The `p`-quantile (0 ≤ p ≤ 1) of `sorted` by the nearest rank, or `None`
/// for no values: what the launcher's report and the benchmarks print.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p.clamp(0.0, 1.0)).round() as usize;
    sorted.get(i).copied()
}
