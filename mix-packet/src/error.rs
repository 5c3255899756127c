//! The packet layer's errors: each says what was wrong with the input.

use thiserror::Error;

/// Everything that can go wrong building, framing, processing or opening a
/// packet. Processing untrusted bytes returns one of these; it never panics.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PacketError {
    /// The geometry cannot produce packets.
    #[error("invalid packet geometry: {0}")]
    InvalidGeometry(&'static str),
    /// A route does not have the geometry's number of hops.
    #[error("route has {got} hops, the geometry requires {expected}")]
    RouteLength {
        /// Hops the geometry requires.
        expected: usize,
        /// Hops the route has.
        got: usize,
    },
    /// The number of delays differs from the number of hops.
    #[error("{got} delays given for a route of {expected} hops")]
    DelayCount {
        /// Hops of the route.
        expected: usize,
        /// Delays given.
        got: usize,
    },
    /// A frame of the wrong length (truncated or oversized).
    #[error("frame is {got} bytes, expected exactly {expected}")]
    FrameLength {
        /// The geometry's frame length.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// A frame whose format version this implementation does not speak.
    #[error("unsupported frame version {0}")]
    UnsupportedFrameVersion(u8),
    /// The hop holds no key of an epoch its clock says can be live.
    #[error("no live Sphinx key")]
    NoLiveKey,
    /// The packet's replay tag was seen before under this key.
    #[error("replayed packet")]
    Replayed,
    /// The header's MAC does not verify: the header was modified in transit
    /// or the packet was built for another key (wrong node or wrong epoch).
    /// Both look the same by design.
    #[error("header authentication failed (corrupted header or wrong key)")]
    HeaderAuthentication,
    /// The header's group element α has its most significant bit set. X25519
    /// ignores that bit, so accepting it would let anyone make a second,
    /// different-looking copy of a packet that still processes.
    #[error("non-canonical group element in the header")]
    NonCanonicalGroupElement,
    /// The header authenticated but its routing information could not be used.
    #[error("malformed routing information: {0}")]
    MalformedRouting(String),
    /// The packet was built with a Sphinx version AegisLink does not use.
    #[error("unsupported Sphinx version {0}")]
    UnsupportedSphinxVersion(u16),
    /// The Sphinx library refused to build or unwrap a payload.
    #[error("payload processing failed: {0}")]
    Payload(String),
    /// The Sphinx library refused to build a header or reply block.
    #[error("packet construction failed: {0}")]
    Construction(String),
    /// A public key is a low-order point (the Diffie-Hellman output is zero).
    #[error("low-order X25519 public key")]
    LowOrderKey,
    /// The sealed box does not open: wrong recipient key or the payload was
    /// modified somewhere along the route.
    #[error("payload authentication failed (corrupted payload or wrong recipient key)")]
    PayloadAuthentication,
    /// The opened payload names a kind this implementation does not know.
    #[error("unknown payload kind {0}")]
    UnknownKind(u8),
    /// The opened payload is structurally invalid.
    #[error("malformed payload body: {0}")]
    MalformedBody(&'static str),
    /// A reply block or SURB-ACK could not be decoded.
    #[error("malformed reply block: {0}")]
    MalformedReplyBlock(String),
    /// A message is larger than the geometry allows.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    MessageTooLarge {
        /// Length of the message.
        len: usize,
        /// The geometry's maximum.
        max: usize,
    },
    /// A fragment header is inconsistent (index out of range, zero count, ...).
    #[error("invalid fragment: {0}")]
    InvalidFragment(&'static str),
    /// A stored replay filter could not be decoded.
    #[error("malformed replay filter: {0}")]
    MalformedReplayFilter(&'static str),
    /// A published hybrid KEM key does not decode.
    #[error("malformed hybrid key: {0}")]
    MalformedKey(String),
}

impl PacketError {
    /// A short, stable, label-safe name for metrics ("dropped by reason").
    pub fn reason(&self) -> &'static str {
        match self {
            PacketError::InvalidGeometry(_) => "invalid_geometry",
            PacketError::RouteLength { .. } => "route_length",
            PacketError::DelayCount { .. } => "delay_count",
            PacketError::FrameLength { .. } => "frame_length",
            PacketError::UnsupportedFrameVersion(_) => "frame_version",
            PacketError::NoLiveKey => "no_live_key",
            PacketError::Replayed => "replay",
            PacketError::HeaderAuthentication => "header_mac",
            PacketError::NonCanonicalGroupElement => "non_canonical_element",
            PacketError::MalformedRouting(_) => "malformed_routing",
            PacketError::UnsupportedSphinxVersion(_) => "sphinx_version",
            PacketError::Payload(_) => "payload",
            PacketError::Construction(_) => "construction",
            PacketError::LowOrderKey => "low_order_key",
            PacketError::PayloadAuthentication => "payload_auth",
            PacketError::UnknownKind(_) => "unknown_kind",
            PacketError::MalformedBody(_) => "malformed_body",
            PacketError::MalformedReplyBlock(_) => "malformed_reply_block",
            PacketError::MessageTooLarge { .. } => "message_too_large",
            PacketError::InvalidFragment(_) => "invalid_fragment",
            PacketError::MalformedReplayFilter(_) => "malformed_replay_filter",
            PacketError::MalformedKey(_) => "malformed_key",
        }
    }
}
