//! AegisLink's links: the one crate that names libp2p.
//!
//! Nodes and clients reach each other over libp2p (TCP + Noise + yamux),
//! each authenticated by the Ed25519 identity the directory publishes. This
//! crate holds the [`Host`] that runs the swarm, the stream protocol ids,
//! and the IO of the access protocol's cells ([`access`]); the cell formats
//! themselves are wire formats of `aegis-mix-packet`. Keeping libp2p behind
//! this crate makes a change of transport a change of one crate.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod host;
pub use host::{Host, LinkError, dial_addresses, identity_of, libp2p_keypair, peer_id_of};

pub mod limits;
pub use limits::{ConnectionLimits, Refusals};

pub mod access;

pub mod socks5;
pub use access::{GatewaySession, SessionError};
pub use socks5::Socks5Proxy;

/// Protocol id of client access streams.
pub const ACCESS_PROTOCOL: &str = "/aegis/access/1";
/// Protocol id of mix traffic streams between nodes.
pub const MIX_PROTOCOL: &str = "/aegis/mix/1";

/// The libp2p types callers name: addresses, peer ids and streams.
pub use libp2p::{Multiaddr, PeerId, Stream};
