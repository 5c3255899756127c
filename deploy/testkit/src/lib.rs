//! The test kit: whole AegisLink networks of real directory authorities,
//! mix nodes and gateways, for tests, benchmarks and tools (not shipped).
//!
//! [`inprocess`] starts a network inside the calling process on loopback,
//! each node configured as an operator would configure it; the
//! `aegis-localnet` launcher runs the same kind of network as separate
//! processes. Nothing in the product crates depends on this one.
#![forbid(unsafe_code)]

pub mod inprocess;
pub use inprocess::{LocalNet, LocalNetSpec, free_port};
