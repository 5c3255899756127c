//! The post-quantum packet format: one hybrid KEM per hop.
//!
//! Every hop of a Sphinx packet is an X25519 exchange: whoever records the
//! traffic today and holds a quantum computer later can remove every layer
//! and link senders to recipients after the fact. In this format each hop's
//! secret comes from X-Wing ([`xwing`]: ML-KEM-768 and X25519 under a
//! SHA3-256 combiner), so unwrapping a layer needs both broken. The rest is
//! Sphinx's: a MAC-authenticated header of fixed length with per-hop
//! routing slots ([`header`]), the payload encrypted per hop with the same
//! wide-block cipher (Lioness) so a tagged payload decrypts to noise at the
//! end, a replay tag from each hop's shared secret, and reply blocks that
//! are headers built ahead. A packet is `header ‖ payload`, the geometry
//! says how long each is, and every kind has the same length.
//!
//! The byte layout is in `docs/protocol.md` ("The KEM packet format").

pub mod header;
pub mod xwing;

pub use xwing::{HybridPublic, HybridSecret};

#[cfg(test)]
mod tests;

/// The format's name in the geometry's canonical encoding.
pub const FORMAT_NAME: &[u8] = b"aegislink/kem-packet";

/// The format's version: X-Wing per hop, ChaCha20 header stream,
/// HMAC-SHA256 header MAC, Lioness payload layers.
pub const FORMAT_VERSION: u8 = 1;
