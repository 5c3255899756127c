//! Reply blocks and SURB-ACKs.
//!
//! A [`ReplyBlock`] is a precomputed Sphinx header for a route, the route's
//! first hop, and payload key seeds. AegisLink builds every packet this way,
//! all with Sphinx version 260: a forward packet is a block its sender uses
//! at once, with every hop's seed, so the last hop sees exactly what the
//! sender chose; a [`SurbAck`] is a block the sender gives away inside a
//! fragment so the recipient can return an acknowledgement without learning
//! the route. A given-away block carries the last hop's seed only: its user
//! cannot predict what any earlier hop sees of the payload, so it cannot
//! recognise its reply along the way together with a hop it controls. The
//! sender keeps the other seeds in a [`ReplyKey`] and undoes the hops' layers
//! when the reply arrives.

use rand::CryptoRng;
use sphinx_packet::header::SphinxHeader;
use sphinx_packet::payload::Payload;
use sphinx_packet::payload::key::derive_payload_key;
use sphinx_packet::route::Destination as SphinxDestination;
use sphinx_packet::surb::SurbReplyRecovery;
use sphinx_packet::{SURB, SURBMaterial};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use crate::constants::{
    DELIVERY_TAG_LEN, ID_LEN, NODE_ID_LEN, PAYLOAD_KEY_SEED_LEN, SPHINX_VERSION,
};
use crate::error::PacketError;
use crate::geometry::{Geometry, PacketFormat};
use crate::kem::header;
use crate::route::{Destination, HopDelays, MailboxId, NodeId, Route};

type Seed = [u8; PAYLOAD_KEY_SEED_LEN];

/// A single-use precomputed header and the payload key seeds its user layers
/// the payload with: every hop's seed when the creator uses it itself (a
/// forward packet), only the last hop's when it is given away (a SURB-ACK).
pub struct ReplyBlock {
    header: Vec<u8>,
    first_hop: NodeId,
    seeds: Vec<Seed>,
}

impl Drop for ReplyBlock {
    fn drop(&mut self) {
        self.seeds.zeroize();
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

/// What the creator of a given-away reply block keeps to read what comes
/// back over it: the delivery tag the last hop stores with the payload (to
/// find this key by) and every hop's payload key seed. Whoever uses the
/// block holds only the last hop's seed, so it cannot predict what any hop
/// before the last sees of the payload.
pub struct ReplyKey {
    tag: [u8; DELIVERY_TAG_LEN],
    seeds: Vec<Seed>,
}

impl Drop for ReplyKey {
    fn drop(&mut self) {
        self.seeds.zeroize();
    }
}

impl std::fmt::Debug for ReplyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyKey")
            .field("seeds", &format_args!("<{} redacted>", self.seeds.len()))
            .finish()
    }
}

impl Clone for ReplyKey {
    fn clone(&self) -> Self {
        ReplyKey {
            tag: self.tag,
            seeds: self.seeds.clone(),
        }
    }
}

impl PartialEq for ReplyKey {
    fn eq(&self, other: &Self) -> bool {
        self.tag == other.tag && self.seeds == other.seeds
    }
}

impl Eq for ReplyKey {}

impl ReplyKey {
    /// The delivery tag the reply arrives with.
    pub fn tag(&self) -> &[u8; DELIVERY_TAG_LEN] {
        &self.tag
    }

    /// `tag (16) ‖ seed (16) × hops`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(DELIVERY_TAG_LEN + self.seeds.len() * PAYLOAD_KEY_SEED_LEN);
        out.extend_from_slice(&self.tag);
        for seed in &self.seeds {
            out.extend_from_slice(seed);
        }
        out
    }

    /// Strict decoding: a tag and one to `MAX_HOPS` seeds.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PacketError> {
        let recovery = SurbReplyRecovery::from_bytes(bytes)
            .map_err(|e| PacketError::MalformedReplyBlock(e.to_string()))?;
        let (tag, seeds) = bytes.split_at(DELIVERY_TAG_LEN);
        let mut t = [0u8; DELIVERY_TAG_LEN];
        t.copy_from_slice(tag);
        debug_assert_eq!(recovery.num_hops(), seeds.len() / PAYLOAD_KEY_SEED_LEN);
        Ok(ReplyKey {
            tag: t,
            seeds: split_seeds(seeds),
        })
    }

    /// What the block's user handed to it, from the payload the route's
    /// last hop stored: the hops' layers are put back and the user's single
    /// layer removed. `PayloadAuthentication`-free by design: a payload that
    /// was not sent over this block comes out as noise, which the sealed
    /// box inside then refuses.
    pub fn open(&self, geometry: &Geometry, payload: &[u8]) -> Result<Vec<u8>, PacketError> {
        if payload.len() != geometry.payload_len {
            return Err(PacketError::PayloadAuthentication);
        }
        let recovery = SurbReplyRecovery::from_bytes(&self.to_bytes())
            .map_err(|e| PacketError::MalformedReplyBlock(e.to_string()))?;
        let payload =
            Payload::from_bytes(payload).map_err(|e| PacketError::Payload(e.to_string()))?;
        let view = recovery
            .unseal(payload)
            .map_err(|e| PacketError::Payload(e.to_string()))?;
        Ok(view.into_bytes())
    }
}

fn split_seeds(bytes: &[u8]) -> Vec<Seed> {
    bytes
        .chunks_exact(PAYLOAD_KEY_SEED_LEN)
        .map(|c| {
            let mut s = [0u8; PAYLOAD_KEY_SEED_LEN];
            s.copy_from_slice(c);
            s
        })
        .collect()
}

impl ReplyBlock {
    /// Builds a block for its creator's own use over `route` to
    /// `destination`: it carries every hop's seed, so the last hop sees
    /// exactly what [`ReplyBlock::wrap`] is given.
    pub fn new<R: CryptoRng + ?Sized>(
        rng: &mut R,
        geometry: &Geometry,
        route: &Route,
        delays: &HopDelays,
        destination: Destination,
    ) -> Result<Self, PacketError> {
        let (mut block, key) = Self::build(rng, geometry, route, delays, destination)?;
        block.seeds.zeroize();
        block.seeds = key.seeds.clone();
        Ok(block)
    }

    /// Builds a block to give away over `route` to `destination`, and the
    /// key its creator keeps: the block carries only the last hop's seed
    /// (Sphinx version 260, single-seed reply blocks).
    pub fn to_give_away<R: CryptoRng + ?Sized>(
        rng: &mut R,
        geometry: &Geometry,
        route: &Route,
        delays: &HopDelays,
        destination: Destination,
    ) -> Result<(Self, ReplyKey), PacketError> {
        Self::build(rng, geometry, route, delays, destination)
    }

    fn build<R: CryptoRng + ?Sized>(
        rng: &mut R,
        geometry: &Geometry,
        route: &Route,
        delays: &HopDelays,
        destination: Destination,
    ) -> Result<(Self, ReplyKey), PacketError> {
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
        // The tag is what the creator finds its key by; single-seed blocks
        // need it non-zero.
        let mut tag = [0u8; DELIVERY_TAG_LEN];
        while tag == [0u8; DELIVERY_TAG_LEN] {
            rng.fill_bytes(&mut tag);
        }
        match geometry.format {
            PacketFormat::Sphinx => {
                let material = SURBMaterial::new(
                    route.to_sphinx(),
                    delays.0.clone(),
                    SphinxDestination::new(destination.to_sphinx(), tag),
                    SPHINX_VERSION,
                );
                let (surb, recovery) =
                    SURB::new_recoverable(StaticSecret::random_from_rng(rng), material)
                        .map_err(|e| PacketError::Construction(e.to_string()))?;
                let block = Self::decode_seeds(geometry, &surb.to_bytes(), 1)?;
                let key = ReplyKey::from_bytes(&recovery.to_bytes())?;
                Ok((block, key))
            }
            PacketFormat::Kem => {
                let keys = route
                    .hops()
                    .iter()
                    .map(|h| {
                        h.kem_key.as_deref().map(|k| (h.node, k)).ok_or_else(|| {
                            PacketError::Construction("a hop has no hybrid KEM key".into())
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let built = header::build(rng, geometry.hops, &keys, delays, destination, tag)?;
                let last = built.seeds[built.seeds.len() - 1];
                let block = ReplyBlock {
                    header: built.header.clone(),
                    first_hop: route.hops()[0].node,
                    seeds: vec![last],
                };
                let key = ReplyKey {
                    tag,
                    seeds: built.seeds.clone(),
                };
                Ok((block, key))
            }
        }
    }

    /// Encoded length of a given-away block for `geometry`.
    pub fn encoded_len(geometry: &Geometry) -> usize {
        geometry.reply_block_len()
    }

    /// `header ‖ first hop (32) ‖ seed (16) × seeds`; the header is 348
    /// bytes in Sphinx, `Geometry::header_len` in the KEM format.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&self.first_hop.0);
        for seed in &self.seeds {
            out.extend_from_slice(seed);
        }
    }

    /// Strict decoding of a given-away block: exactly the geometry's length,
    /// with the last hop's seed only.
    pub fn decode(geometry: &Geometry, bytes: &[u8]) -> Result<Self, PacketError> {
        if bytes.len() != geometry.reply_block_len() {
            return Err(PacketError::MalformedReplyBlock(format!(
                "{} bytes, expected {}",
                bytes.len(),
                geometry.reply_block_len()
            )));
        }
        Self::decode_seeds(geometry, bytes, 1)
    }

    /// Strict decoding of a block carrying `seeds` seeds.
    fn decode_seeds(geometry: &Geometry, bytes: &[u8], seeds: usize) -> Result<Self, PacketError> {
        let expected = geometry.header_len() + NODE_ID_LEN + seeds * PAYLOAD_KEY_SEED_LEN;
        if bytes.len() != expected {
            return Err(PacketError::MalformedReplyBlock(format!(
                "{} bytes, expected {expected}",
                bytes.len(),
            )));
        }
        let (header, rest) = bytes.split_at(geometry.header_len());
        let (first_hop, seeds) = rest.split_at(NODE_ID_LEN);
        let mut hop = [0u8; NODE_ID_LEN];
        hop.copy_from_slice(first_hop);
        Ok(ReplyBlock {
            header: header.to_vec(),
            first_hop: NodeId(hop),
            seeds: split_seeds(seeds),
        })
    }

    /// The node the packet must be sent to.
    pub fn first_hop(&self) -> NodeId {
        self.first_hop
    }

    /// Uses the block: wraps `view` (exactly the geometry's payload length)
    /// in one payload layer per seed the block carries. With every hop's
    /// seed, the last hop holds `view` once it removed its layer; with the
    /// last hop's seed only, the last hop holds noise that only the
    /// creator's [`ReplyKey`] turns back into `view`.
    pub fn wrap(self, geometry: &Geometry, view: &[u8]) -> Result<Vec<u8>, PacketError> {
        if view.len() != geometry.payload_len {
            return Err(PacketError::Payload(format!(
                "final view is {} bytes, the geometry's payload is {}",
                view.len(),
                geometry.payload_len
            )));
        }
        // Validate the header bytes the way a node will parse them.
        match geometry.format {
            PacketFormat::Sphinx => {
                SphinxHeader::from_bytes(&self.header)
                    .map_err(|e| PacketError::MalformedReplyBlock(e.to_string()))?;
            }
            PacketFormat::Kem if self.header.len() != geometry.header_len() => {
                return Err(PacketError::MalformedReplyBlock(format!(
                    "header is {} bytes, the geometry's is {}",
                    self.header.len(),
                    geometry.header_len()
                )));
            }
            PacketFormat::Kem => {}
        }
        let mut payload =
            Payload::from_bytes(view).map_err(|e| PacketError::Payload(e.to_string()))?;
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
    /// What the ack will carry; the sender matches it to the fragment.
    pub ack_id: AckId,
    /// The sender's mailbox key the ack is sealed to.
    pub ack_key: PublicKey,
    /// The precomputed route back to the sender's mailbox.
    pub block: ReplyBlock,
}

impl SurbAck {
    /// Builds a SURB-ACK over `route`, which must start at the recipient's
    /// gateway and end at the sender's, to the sender's `mailbox`, and the
    /// [`ReplyKey`] the sender needs to read the ack when it comes back.
    #[allow(clippy::too_many_arguments)]
    pub fn new<R: CryptoRng + ?Sized>(
        rng: &mut R,
        geometry: &Geometry,
        route: &Route,
        delays: &HopDelays,
        mailbox: MailboxId,
        mailbox_key: PublicKey,
    ) -> Result<(Self, ReplyKey), PacketError> {
        if route.hops().len() != geometry.hops {
            return Err(PacketError::RouteLength {
                expected: geometry.hops,
                got: route.hops().len(),
            });
        }
        let (block, key) =
            ReplyBlock::to_give_away(rng, geometry, route, delays, Destination::Mailbox(mailbox))?;
        let mut ack_id = [0u8; ID_LEN];
        rng.fill_bytes(&mut ack_id);
        Ok((
            SurbAck {
                ack_id: AckId(ack_id),
                ack_key: mailbox_key,
                block,
            },
            key,
        ))
    }

    /// `ack id (16) ‖ ack key (32) ‖ reply block`.
    pub fn encode(&self, out: &mut Vec<u8>) {
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
        let (ack_id, rest) = bytes.split_at(ID_LEN);
        let (key, block) = rest.split_at(32);
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(ack_id);
        let mut k = [0u8; 32];
        k.copy_from_slice(key);
        Ok(SurbAck {
            ack_id: AckId(id),
            ack_key: PublicKey::from(k),
            block: ReplyBlock::decode(geometry, block)?,
        })
    }
}
