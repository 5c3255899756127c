//! The AegisLink client.
//!
//! The client's protocol logic lives in sans-IO cores — plain structs that
//! take inputs with the time passed in and an RNG from the caller, and say
//! what to send and when — so that the simulator (`aegis-sim`) runs exactly
//! the behaviour users run.
//!
//! This crate currently provides the traffic shaper and the edge protocol
//! (identity, PQXDH, Double Ratchet with header encryption); the encrypted
//! store, reliable delivery and the networked client are built on them.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod edge;
pub use edge::EdgeError;

pub mod shaping;
pub use shaping::{Emission, ShaperStats, ShapingConfig, Slot, Stream, TrafficShaper};
