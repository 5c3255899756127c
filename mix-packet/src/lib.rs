//! AegisLink's wire formats: what travels on every link of the mixnet.
//!
//! This crate defines the packet [`Geometry`] (one packet size for every kind
//! of packet), builds Sphinx packets with the `sphinx-packet` crate over a
//! [`Route`] of entry gateway, mix layers and exit gateway, processes them hop
//! by hop in two steps (replay tag first, then unwrap), frames them for the
//! links, and defines what a mailbox owner finds inside: fragments of real
//! messages with their SURB-ACKs, loop cover and acknowledgements, all sealed
//! to the owner's key so that they are indistinguishable to everyone else.
//! The [`access`] module holds the cells a client and its gateway exchange
//! and the proof of mailbox ownership.
//!
//! It contains no networking and reads no clock: time is passed in, and every
//! random choice takes an RNG from the caller. Nodes, clients and the
//! simulator use the same code. Untrusted bytes never cause a panic; every
//! failure is a [`PacketError`]. The byte layouts are in `docs/protocol.md`.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod constants;
mod error;
pub use error::PacketError;

mod geometry;
pub use geometry::{Geometry, PacketFormat};

pub mod kem;

mod route;
pub use route::{DROP_DESTINATION, Destination, Hop, HopDelays, MailboxId, NodeId, Route};

pub mod sealed;

mod surb;
pub use surb::{AckId, ReplyBlock, ReplyKey, SurbAck};

mod fragment;
pub use fragment::{
    Fragment, MessageId, Reassembled, Reassembler, ReassemblyLimits, ReassemblyStats, split,
};

mod kind;
pub use kind::{Body, LoopId};

mod frame;
pub use frame::Frame;

mod replay;
pub use replay::{ReplayFilter, ReplayTag};

mod epoch_keys;
pub use epoch_keys::{EpochKey, EpochKeys};

mod packet;
pub use packet::{
    OutgoingPacket, build_ack, build_drop_cover, build_mailbox_packet, build_over_block,
    join_delivery, open_delivery, split_delivery,
};

pub mod access;

mod process;
pub use process::{
    HopSecret, Peeled, Processed, ReplayLedger, open_with_any, peel, peel_hybrid, process_frame,
    process_hop,
};

/// Re-exported key types, so users need not depend on the same versions themselves.
pub use x25519_dalek::{PublicKey as SphinxPublicKey, StaticSecret as SphinxSecret};
