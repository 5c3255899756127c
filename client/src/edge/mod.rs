//! The edge protocol: what two clients share and nobody between them can read.
//!
//! * [`identity`] — the no-account identity: an Ed25519 signing key and an
//!   X25519 key it signs, plus signed prekeys (X25519 and ML-KEM-768).
//! * [`pqxdh`] — the initial key agreement, per Signal's PQXDH (revision 3).
//! * [`ratchet`] — the Double Ratchet with header encryption, and beside it
//!   in sessions of version 2
//! * [`spqr`] — the sparse post-quantum ratchet, whose epoch secrets enter
//!   every message key.
//!
//! All of it is sans-IO: RNGs are passed in, nothing reads a clock.

pub mod anonymous;
pub mod identity;
pub mod kdf;
pub mod pqxdh;
pub mod ratchet;
pub mod spqr;

use thiserror::Error;

/// What can go wrong in the edge protocol. A failure never changes stored state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EdgeError {
    /// A signature over a key does not verify.
    #[error("invalid signature on {0}")]
    BadSignature(&'static str),
    /// A public key failed to parse.
    #[error("invalid {0} key")]
    InvalidKey(&'static str),
    /// A Diffie-Hellman output was zero: the peer sent a low-order point.
    #[error("low-order X25519 point")]
    LowOrderPoint,
    /// The message header does not decrypt under any key of the session.
    #[error("message header does not authenticate")]
    HeaderAuthentication,
    /// The message body does not authenticate.
    #[error("message does not authenticate")]
    MessageAuthentication,
    /// The message was already received (or its key was dropped).
    #[error("duplicate or expired message")]
    Duplicate,
    /// The header asks to skip more message keys than the bound allows.
    #[error("message {requested} is too far ahead ({max} skipped keys at most)")]
    TooManySkipped {
        /// Message number requested.
        requested: u32,
        /// The bound.
        max: u32,
    },
    /// The session cannot send yet: the responder must receive first.
    #[error("session cannot send before it has received a message")]
    NotReadyToSend,
    /// Bytes that do not parse as the expected structure.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The initial message names a prekey this client does not have.
    #[error("unknown prekey {0}")]
    UnknownPrekey(u32),
    /// The message was written in a post-quantum epoch whose secret this
    /// side does not hold (erased, or not reached).
    #[error("unknown post-quantum epoch {0}")]
    UnknownEpoch(u64),
}
