//! The AegisLink mix node and gateway.
//!
//! A node is a pipeline — ingress, crypto workers, replay filter, mixing,
//! bounded egress queues, links — whose protocol logic lives in sans-IO
//! cores: plain structs that take inputs with the time passed in and return
//! what to do, with no tokio, no sockets and no clock reads. The simulator
//! (`aegis-sim`) drives the very same cores from a virtual clock.
//!
//! This crate currently provides the mixing strategies; the networked node
//! is built on them.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod mixing;
pub use mixing::{MixConfig, Mixer, PoissonMix, PushError, ThresholdPool, TimedPool};
