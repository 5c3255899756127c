//! The AegisLink client.
//!
//! The client's protocol logic lives in sans-IO cores — plain structs that
//! take inputs with the time passed in and an RNG from the caller, and say
//! what to send and when — so that the simulator (`aegis-sim`) runs exactly
//! the behaviour users run.
//!
//! This crate currently provides the traffic shaper; identity, the edge
//! protocol and the networked client are built on it.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod shaping;
pub use shaping::{Emission, ShaperStats, ShapingConfig, Slot, Stream, TrafficShaper};
