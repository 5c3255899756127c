//! The AegisLink client.
//!
//! The client's protocol logic lives in sans-IO cores — plain structs that
//! take inputs with the time passed in and an RNG from the caller, and say
//! what to send and when — so that the simulator (`aegis-sim`) runs exactly
//! the behaviour users run.
//!
//! This crate provides the traffic shaper, the edge protocol (identity,
//! PQXDH, Double Ratchet with header encryption), contact cards, reliable
//! delivery (outbox and inbox) and the encrypted profile store (behind the
//! default `store` feature, the one part that does IO); the networked client
//! is built on them. Formats and rules are in `docs/client.md`.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod edge;
pub use edge::EdgeError;

pub mod shaping;
pub use shaping::{Emission, ShaperStats, ShapingConfig, Slot, Stream, TrafficShaper};

pub mod card;
pub use card::{CardError, ContactCard};

pub mod delivery;
pub use delivery::{
    ContactId, Inbox, InboxConfig, LocalId, MessageStatus, Outbox, OutboxConfig, Received,
    StatusEvent, Transmission,
};

#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "store")]
pub use store::{Argon2Params, Batch, Namespace, Store, StoreError};

pub mod envelope;

#[cfg(feature = "net")]
pub mod engine;
#[cfg(feature = "net")]
pub mod profile;
#[cfg(feature = "net")]
pub use engine::{Client, ClientConfig, ClientError, Event, NetworkStats};
