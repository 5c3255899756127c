//! Every size and protocol constant of the packet layer, in one place.
//!
//! Sizes that come from the Sphinx construction are taken from the
//! `sphinx-packet` crate so the two can never disagree; the symbols in the
//! comments are those of the Sphinx paper (Danezis & Goldberg, 2009).

use sphinx_packet::constants as sphinx;

/// Length of a node identifier: the node's Ed25519 identity public key, which
/// is also its libp2p identity and its Sphinx "node address".
pub const NODE_ID_LEN: usize = sphinx::NODE_ADDRESS_LENGTH;

/// Length of a mailbox identifier at a gateway (the Sphinx destination address).
pub const MAILBOX_ID_LEN: usize = sphinx::DESTINATION_ADDRESS_LENGTH;

/// Length of the identifier delivered in the clear to the final hop together
/// with the destination. Always random, so the final hop cannot tell kinds apart.
pub const DELIVERY_TAG_LEN: usize = sphinx::IDENTIFIER_LENGTH;

/// Length of the per-hop replay tag (hτ in the paper).
pub const REPLAY_TAG_LEN: usize = sphinx::REPLAY_TAG_SIZE;

/// Maximum number of Sphinx hops (r in the paper).
pub const MAX_HOPS: usize = sphinx::MAX_PATH_LENGTH;

/// Size of a Sphinx header: group element α (32), MAC γ (k = 16) and the
/// encrypted routing information β ((meta + MAC) × r = 60 × 5). 348 bytes.
pub const SPHINX_HEADER_LEN: usize = sphinx_packet::header::HEADER_SIZE;

/// Size of one hop's payload key seed carried in a reply block.
pub const PAYLOAD_KEY_SEED_LEN: usize = sphinx::PAYLOAD_KEY_SEED_SIZE;

/// Length of an X25519 public key.
pub const X25519_KEY_LEN: usize = 32;

/// Length of a Poly1305 authentication tag.
pub const AEAD_TAG_LEN: usize = 16;

/// Overhead of the sealed box every mailbox packet carries: an ephemeral
/// X25519 public key and an AEAD tag.
pub const SEALED_OVERHEAD: usize = X25519_KEY_LEN + AEAD_TAG_LEN;

/// Length of random identifiers at this layer: message ids, ack ids, loop ids.
pub const ID_LEN: usize = 16;

/// Version byte of the link frame format. Version 1 carried the packet's
/// key epoch in the clear; version 2 carries none.
pub const FRAME_VERSION: u8 = 2;

/// Link frame header: the version byte only.
pub const FRAME_HEADER_LEN: usize = 1;

/// Most Sphinx keys a hop tries on one packet (previous, current and next
/// epoch).
pub const MAX_KEYS_TRIED: usize = 3;

/// Largest per-hop delay a sender may ask for. A larger request is treated as
/// this value: nodes would otherwise hold packets (and memory) for as long as
/// any sender likes. Nym caps client-chosen delays at the same 10 s.
pub const MAX_HOP_DELAY_NANOS: u64 = 10_000_000_000;

/// Most fragments one message may be split into.
pub const MAX_FRAGMENTS: usize = 1024;

/// The Sphinx packet version every AegisLink packet is built with (260):
/// each hop's payload key is derived from a seed, and a reply block given
/// away carries only the last hop's seed. Forward packets use it too, so a
/// hop cannot tell replies from other packets by the version.
pub const SPHINX_VERSION: sphinx_packet::version::Version =
    sphinx_packet::version::SINGLE_SEED_SURB_VERSION;

/// Domain separation for the sealed box key derivation.
pub const SEALED_BOX_INFO: &[u8] = b"aegislink/v1/sealed-box";

/// Domain separation for the geometry hash.
pub const GEOMETRY_HASH_DOMAIN: &[u8] = b"aegislink/v1/geometry";
