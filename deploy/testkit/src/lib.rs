//! The test kit: whole AegisLink networks of real directory authorities,
//! mix nodes and gateways, for tests, benchmarks and tools (not shipped).
//!
//! [`inprocess`] starts a network inside the calling process on loopback,
//! each node configured as an operator would configure it; the
//! `aegis-localnet` launcher runs the same kind of network as separate
//! processes. Nothing in the product crates depends on this one.
#![forbid(unsafe_code)]

pub mod inprocess;
pub mod ks;
pub use inprocess::{LocalNet, LocalNetSpec, free_port};

/// The `p`-quantile (0 ≤ p ≤ 1) of `sorted` by the nearest rank, or `None`
/// for no values: what the launcher's report and the benchmarks print.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p.clamp(0.0, 1.0)).round() as usize;
    sorted.get(i).copied()
}
