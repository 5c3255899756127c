//! The AegisLink mix node and gateway.
//!
//! A node is a pipeline whose stages each live in one module and pass data
//! one way:
//!
//! * links — `aegis-link`'s libp2p host (TCP + Noise + yamux) with the
//!   directory identity;
//! * [`ingress`] — mix streams from neighbours in the consensus, frames into
//!   a bounded queue;
//! * [`workers`] — one crypto thread per core: epoch key, header MAC, replay
//!   filter ([`keys`]), unwrap;
//! * [`mixstage`] — the consensus's mixing strategy (`aegis_proto::Mixer`);
//! * [`egress`] — a bounded queue and one long-lived stream per neighbour;
//! * [`gateway`] — clients attach (the access protocol), send, and pull
//!   (each pull acknowledging the previous one), under `aegis_proto::access`'s
//!   limits;
//! * [`mailbox`] — gateways: a thread that stores final-hop packets off the
//!   crypto threads;
//!   mailboxes live in RocksDB ([`store`]);
//! * [`cover`] — the node's own loop cover at rate λM;
//! * [`sync`] — descriptor uploads, key rotation, consensus fetching.
//!
//! Stages meet through narrow handles, not one shared state: each is given
//! only what it reads or writes ([`state`]: who the node is, the consensus
//! and the epoch clock, the loop keys, the clock; and the key ring, the
//! database and the metrics one by one), and hands packets on through
//! bounded queues. The PKI stage ([`sync`]) is the one writer of the
//! consensus, the clock and the key ring; the mailbox stage is the one
//! writer of the mailboxes (the crypto workers touch the database only to
//! journal replay tags).
//!
//! Overload anywhere drops and counts ([`metrics`]); nothing grows without
//! bound. The protocol logic — routing, mixing, loop bookkeeping — is the
//! sans-IO state machines of `aegis-proto`; this crate drives them.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod cover;
pub mod egress;
pub mod gateway;
pub mod ingress;
pub mod keys;
pub mod mailbox;
pub mod metrics;
pub mod mixstage;
pub mod node;
pub mod state;
pub mod store;
pub mod sync;
pub mod workers;

pub use aegis_link::peer_id_of;
pub use aegis_proto::{RouteError, Topology};
pub use config::NodeConfig;
pub use node::{NodeError, RunningNode};
