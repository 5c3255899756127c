//! The AegisLink client.
//!
//! The client's protocol decisions — traffic shaping, reliable delivery
//! (outbox and inbox), routes — are the sans-IO state machines of
//! `aegis-proto`, which this crate drives.
//!
//! This crate provides the edge protocol (identity, PQXDH, Double Ratchet
//! with header encryption), contact cards and the encrypted profile store
//! (behind the default `store` feature); the networked client (behind the
//! default `net` feature) is built on them. Formats and rules are in
//! `docs/client.md`.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod edge;
pub use edge::EdgeError;

pub mod card;
pub use card::{CardError, ContactCard};

pub use aegis_proto::{ContactId, LocalId, MessageStatus};

#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "store")]
pub use store::{Argon2Params, Batch, Namespace, Store, StoreError};

pub mod envelope;
pub mod file;

#[cfg(feature = "net")]
pub mod profile;

#[cfg(feature = "net")]
pub mod conversation;

#[cfg(feature = "net")]
pub mod safety;

#[cfg(feature = "net")]
pub mod call;

#[cfg(feature = "net")]
pub mod directory;

#[cfg(feature = "net")]
mod driver;

pub mod emission;

#[cfg(feature = "net")]
pub mod api;
#[cfg(feature = "net")]
pub mod control;

#[cfg(feature = "net")]
pub mod daemon;

#[cfg(feature = "net")]
pub use api::{Client, ClientConfig, ClientError, Event, NetworkStats};

/// The client guide (`docs/client.md`), included so that its examples are
/// compiled as doc tests.
#[cfg(all(doctest, feature = "net"))]
#[doc = include_str!("../../docs/client.md")]
pub struct ClientGuide;
