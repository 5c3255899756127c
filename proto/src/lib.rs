//! AegisLink's protocol state machines, sans-IO.
//!
//! This crate is a deterministic implementation of what mix nodes, gateways
//! and clients decide: it contains no networking code, reads no clock and
//! draws from no global random number generator. Every input arrives with
//! the current time (a [`Duration`](std::time::Duration) since an origin the
//! caller chooses) and every random choice uses an RNG the caller passes.
//! The node (`aegis-node`) and the client (`aegis-client`) drive these
//! machines from tokio; the simulator (`aegis-sim`) drives the same machines
//! from a virtual clock.
//!
//! The map of the crate:
//! * [`topology`] — the routing view of one verified consensus, and
//!   [`route`], the one way a path through the layers is chosen;
//! * [`mixing`] — how long a node holds each packet (Poisson, pools);
//! * [`shaping`] — when a client sends, independent of what it has to say;
//! * [`delivery`] — outbox and inbox: fragments, acknowledgements,
//!   retransmission with back-off, exactly-once delivery;
//! * [`access`] — the gateway's access policy: rate limits, pull answers;
//! * [`loop_cover`] — loops in flight and the share that came back;
//! * [`loop_alarm`] — telling an attack on a node's input from normal loss;
//! * [`client`] — the client [`Endpoint`]: slot to packet, the pull grid,
//!   acknowledgements, what pulls bring;
//! * [`backoff`] — the retry back-off of the outbox and of the node's and
//!   client's links;
//! * `testnet` (feature `testnet`) — node keys and a signed consensus
//!   without authorities, for tests and the simulator's harness.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod backoff;
pub use backoff::Backoff;

pub mod route;
pub use route::{EmptyLayer, pick_one, pick_per_layer};

pub mod topology;
pub use topology::{GeometryMismatch, NodeEntry, RouteError, Topology};

pub mod position;
pub use position::{HopOrderError, Next, Position, Source};

pub mod mixing;
pub use mixing::{Mixer, PoissonMix, PushError, ThresholdPool, TimedPool};

pub mod shaping;
pub use shaping::{Emission, ShaperStats, ShapingConfig, Slot, Stream, TrafficShaper};

pub mod delivery;
pub use delivery::{
    ContactId, Inbox, InboxConfig, LocalId, MessageStatus, Outbox, OutboxConfig, Progress,
    Received, StatusEvent, Transmission,
};

pub mod access;

pub mod loop_alarm;
pub mod loop_cover;

pub mod client;

#[cfg(any(test, feature = "testnet"))]
pub mod testnet;
pub use client::{Address, Endpoint, EndpointConfig, EndpointEvent, EndpointStats, Own};
pub use loop_alarm::{AlarmChange, LossAlarm, LossAlarmConfig};
pub use loop_cover::{LoopStats, LoopTracker};
