//! The AegisLink mix node and gateway.
//!
//! A node is a pipeline whose stages each live in one module and pass data
//! one way:
//!
//! * [`links`] — libp2p (TCP + Noise + yamux) with the directory identity;
//! * [`ingress`] — mix streams from neighbours in the consensus, frames into
//!   a bounded queue;
//! * [`workers`] — one crypto thread per core: epoch key, header MAC, replay
//!   filter ([`keys`]), unwrap;
//! * [`mixstage`] — the consensus's mixing strategy ([`mixing`], sans-IO);
//! * [`egress`] — a bounded queue and one long-lived stream per neighbour;
//! * [`gateway`] — clients attach ([`access`]), send, and pull (each pull
//!   acknowledging the previous one);
//!   mailboxes live in RocksDB ([`store`]);
//! * [`cover`] — the node's own loop cover at rate λM;
//! * [`sync`] — descriptor uploads, key rotation, consensus fetching.
//!
//! Overload anywhere drops and counts ([`metrics`]); nothing grows without
//! bound. The protocol logic — mixing, rate limiting — is sans-IO, so the
//! simulator (`aegis-sim`) drives the very same cores from a virtual clock.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod access;
pub mod config;
pub mod cover;
pub mod egress;
pub mod gateway;
pub mod ingress;
pub mod keys;
pub mod links;
pub mod localnet;
pub mod metrics;
pub mod mixing;
pub mod mixstage;
pub mod node;
pub mod state;
pub mod store;
pub mod sync;
pub mod topology;
pub mod workers;

pub use config::{AuthorityConfig, NodeConfig};
/// The libp2p version the links use, for callers that name its types.
pub use libp2p;
pub use mixing::{MixConfig, Mixer, PoissonMix, PushError, ThresholdPool, TimedPool};
pub use node::{NodeError, RunningNode};
pub use topology::{RouteError, Topology, peer_id_of};
