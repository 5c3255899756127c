//! Reply blocks and SURB-ACKs.
//!
//! A [`ReplyBlock`] is a precomputed Sphinx header for a route, the route's
//! first hop, and every hop's payload key seed. Whoever holds it can send one
//! packet along that route and choose exactly what the last hop sees. AegisLink
//! builds every packet this way: a forward packet is a reply block its sender
//! uses at once; a [`SurbAck`] is one the sender gives away inside a fragment
//! so the recipient can return an acknowledgement without learning the route.

use rand::CryptoRng;
use sphinx_packet::header::{HEADER_SIZE, SphinxHeader};
use sphinx_packet::payload::Payload;
use sphinx_packet::payload::key::derive_payload_key;
use sphinx_packet::route::Destination as SphinxDestination;
use sphinx_packet::{SURB, SURBMaterial};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::constants::{
    DELIVERY_TAG_LEN, ID_LEN, NODE_ID_LEN, PAYLOAD_KEY_SEED_LEN, SPHINX_VERSION,
};
use crate::error::PacketError;
use crate::geometry::Geometry;
use crate::route::{Destination, HopDelays, MailboxId, NodeId, Route};

/// A single-use precomputed header with the payload key seed of every hop.
pub struct ReplyBlock {
    header: Vec<u8>,
    first_hop: NodeId,
    seeds: Vec<[u8; PAYLOAD_KEY_SEED_LEN]>,
}

impl Drop for ReplyBlock {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for seed in &mut self.seeds {
            seed.zeroize();
        }
    }
}

impl std::fmt::Debug for ReplyBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyBlock")
            .field("first_hop", &self.first_hop)
            .field("seeds", &format_args!("<{} redacted>", self.seeds.len()))
            .finish()
    }
}

impl ReplyBlock {
    /// Builds a reply block over `route` to `destination`, with the final
    /// hop's delivery tag chosen at random.
    pub fn new<R: CryptoRng + ?Sized>(
        rng: &mut R,
        geometry: &Geometry,
        route: &Route,
        delays: &HopDelays,
        destination: Destination,
    ) -> Result<Self, PacketError> {
        // A route shorter than the geometry's is a node's loop (see
        // `Route::cycle`); reply blocks that travel inside payloads are
        // always full length (`SurbAck::new` checks).
        if route.hops().is_empty() || route.hops().len() > geometry.hops {
            return Err(PacketError::RouteLength {
                expected: geometry.hops,
                got: route.hops().len(),
            });
        }
        if delays.len() != route.hops().len() {
            return Err(PacketError::DelayCount {
                expected: route.hops().len(),
                got: delays.len(),
            });
        }
        let mut delivery_tag = [0u8; DELIVERY_TAG_LEN];
        rng.fill_bytes(&mut delivery_tag);
        let material = SURBMaterial::new(
            route.to_sphinx(),
            delays.0.clone(),
            SphinxDestination::new(destination.to_sphinx(), delivery_tag),
            SPHINX_VERSION,
        );
        let surb = SURB::new(StaticSecret::random_from_rng(rng), material)
            .map_err(|e| PacketError::Construction(e.to_string()))?;
        Self::decode_hops(&surb.to_bytes(), route.hops().len())
    }

    /// Encoded length for `geometry`.
    pub fn encoded_len(geometry: &Geometry) -> usize {
        geometry.reply_block_len()
    }

    /// `header (348) ‖ first hop (32) ‖ seed (16) × hops`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&self.first_hop.0);
        for seed in &self.seeds {
            out.extend_from_slice(seed);
        }
    }

    /// Strict decoding: exactly the geometry's length and number of seeds.
    pub fn decode(geometry: &Geometry, bytes: &[u8]) -> Result<Self, PacketError> {
        Self::decode_hops(bytes, geometry.hops)
    }

    /// Strict decoding of a block over `hops` hops.
    fn decode_hops(bytes: &[u8], hops: usize) -> Result<Self, PacketError> {
        let expected = HEADER_SIZE + NODE_ID_LEN + hops * PAYLOAD_KEY_SEED_LEN;
        if bytes.len() != expected {
            return Err(PacketError::MalformedReplyBlock(format!(
                "{} bytes, expected {expected}",
                bytes.len(),
            )));
        }
        let (header, rest) = bytes.split_at(HEADER_SIZE);
        let (first_hop, seeds) = rest.split_at(NODE_ID_LEN);
        let mut hop = [0u8; NODE_ID_LEN];
        hop.copy_from_slice(first_hop);
        let seeds = seeds
            .chunks_exact(PAYLOAD_KEY_SEED_LEN)
            .map(|c| {
                let mut s = [0u8; PAYLOAD_KEY_SEED_LEN];
                s.copy_from_slice(c);
                s
            })
            .collect();
        Ok(ReplyBlock {
            header: header.to_vec(),
            first_hop: NodeId(hop),
            seeds,
        })
    }

    /// The node the packet must be sent to.
    pub fn first_hop(&self) -> NodeId {
        self.first_hop
    }

    /// Uses the block: wraps `final_view` (exactly the geometry's payload
    /// length) in one payload layer per hop, so that after the last hop
    /// removes its layer the destination holds `final_view`.
    pub fn wrap(self, geometry: &Geometry, final_view: &[u8]) -> Result<Vec<u8>, PacketError> {
        if final_view.len() != geometry.payload_len {
            return Err(PacketError::Payload(format!(
                "final view is {} bytes, the geometry's payload is {}",
                final_view.len(),
                geometry.payload_len
            )));
        }
        // Validate the header bytes the way a node will parse them.
        SphinxHeader::from_bytes(&self.header)
            .map_err(|e| PacketError::MalformedReplyBlock(e.to_string()))?;
        let mut payload =
            Payload::from_bytes(final_view).map_err(|e| PacketError::Payload(e.to_string()))?;
        for seed in self.seeds.iter().rev() {
            payload = payload
                .add_encryption_layer(derive_payload_key(seed))
                .map_err(|e| PacketError::Payload(e.to_string()))?;
        }
        let mut packet = Vec::with_capacity(geometry.packet_len());
        packet.extend_from_slice(&self.header);
        packet.extend_from_slice(payload.as_bytes());
        Ok(packet)
    }
}

/// Identifies one transmitted fragment to its sender when the ack returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AckId(pub [u8; ID_LEN]);

/// A SURB-ACK: what a fragment's recipient needs to acknowledge it. The ack
/// travels the route the sender chose, back to the sender's mailbox, sealed to
/// the sender's mailbox key, as a packet of the same size as any other.
#[derive(Debug)]
pub struct SurbAck {
    /// The key epoch the reply block's route was built for.
    pub epoch: u64,
    /// What the ack will carry; the sender matches it to the fragment.
    pub ack_id: AckId,
    /// The sender's mailbox key the ack is sealed to.
    pub ack_key: PublicKey,
    /// The precomputed route back to the sender's mailbox.
    pub block: ReplyBlock,
}

impl SurbAck {
    /// Builds a SURB-ACK over `route`, which must start at the recipient's
    /// gateway and end at the sender's, to the sender's `mailbox`.
    #[allow(clippy::too_many_arguments)]
    pub fn new<R: CryptoRng + ?Sized>(
        rng: &mut R,
        geometry: &Geometry,
        epoch: u64,
        route: &Route,
        delays: &HopDelays,
        mailbox: MailboxId,
        mailbox_key: PublicKey,
    ) -> Result<Self, PacketError> {
        if route.hops().len() != geometry.hops {
            return Err(PacketError::RouteLength {
                expected: geometry.hops,
                got: route.hops().len(),
            });
        }
        let block = ReplyBlock::new(rng, geometry, route, delays, Destination::Mailbox(mailbox))?;
        let mut ack_id = [0u8; ID_LEN];
        rng.fill_bytes(&mut ack_id);
        Ok(SurbAck {
            epoch,
            ack_id: AckId(ack_id),
            ack_key: mailbox_key,
            block,
        })
    }

    /// `epoch (8, BE) ‖ ack id (16) ‖ ack key (32) ‖ reply block`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.ack_id.0);
        out.extend_from_slice(self.ack_key.as_bytes());
        self.block.encode(out);
    }

    /// Strict decoding of exactly `geometry.surb_ack_len()` bytes.
    pub fn decode(geometry: &Geometry, bytes: &[u8]) -> Result<Self, PacketError> {
        if bytes.len() != geometry.surb_ack_len() {
            return Err(PacketError::MalformedReplyBlock(format!(
                "SURB-ACK is {} bytes, expected {}",
                bytes.len(),
                geometry.surb_ack_len()
            )));
        }
        let (epoch, rest) = bytes.split_at(8);
        let (ack_id, rest) = rest.split_at(ID_LEN);
        let (key, block) = rest.split_at(32);
        let mut e = [0u8; 8];
        e.copy_from_slice(epoch);
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(ack_id);
        let mut k = [0u8; 32];
        k.copy_from_slice(key);
        Ok(SurbAck {
            epoch: u64::from_be_bytes(e),
            ack_id: AckId(id),
            ack_key: PublicKey::from(k),
            block: ReplyBlock::decode(geometry, block)?,
        })
    }
}
