//! Building packets of every kind, and opening what a mailbox receives.

use rand::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::constants::DELIVERY_TAG_LEN;
use crate::error::PacketError;
use crate::frame::Frame;
use crate::geometry::Geometry;
use crate::kind::Body;
use crate::route::{Destination, HopDelays, MailboxId, NodeId, Route};
use crate::sealed;
use crate::surb::{ReplyBlock, SurbAck};

/// A packet ready to send: to whom, and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingPacket {
    /// The first hop (for a client: its gateway).
    pub first_hop: NodeId,
    /// The Sphinx packet, `geometry.packet_len()` bytes.
    pub packet: Vec<u8>,
}

impl OutgoingPacket {
    /// The link frame carrying this packet.
    pub fn to_frame(&self, geometry: &Geometry) -> Result<Vec<u8>, PacketError> {
        Frame::encode(geometry, &self.packet)
    }
}

/// Builds a packet that delivers `body` to `mailbox` at the route's last hop,
/// sealed to the mailbox owner's key. Used for real fragments and loop cover.
#[allow(clippy::too_many_arguments)]
pub fn build_mailbox_packet<R: CryptoRng + ?Sized>(
    rng: &mut R,
    geometry: &Geometry,
    route: &Route,
    delays: &HopDelays,
    mailbox: MailboxId,
    mailbox_key: &PublicKey,
    body: &Body,
) -> Result<OutgoingPacket, PacketError> {
    let plaintext = body.encode(geometry)?;
    let sealed = sealed::seal(rng, mailbox_key, &plaintext)?;
    let block = ReplyBlock::new(rng, geometry, route, delays, Destination::Mailbox(mailbox))?;
    let first_hop = block.first_hop();
    Ok(OutgoingPacket {
        first_hop,
        packet: block.wrap(geometry, &sealed)?,
    })
}

/// Builds a drop-cover packet: addressed to the drop destination, its last
/// hop sees random bytes and discards them.
pub fn build_drop_cover<R: CryptoRng + ?Sized>(
    rng: &mut R,
    geometry: &Geometry,
    route: &Route,
    delays: &HopDelays,
) -> Result<OutgoingPacket, PacketError> {
    let mut noise = vec![0u8; geometry.payload_len];
    rng.fill_bytes(&mut noise);
    let block = ReplyBlock::new(rng, geometry, route, delays, Destination::Drop)?;
    let first_hop = block.first_hop();
    Ok(OutgoingPacket {
        first_hop,
        packet: block.wrap(geometry, &noise)?,
    })
}

/// Uses a SURB-ACK received in a fragment: the acknowledgement, sealed to the
/// sender's mailbox key, travels the sender's chosen route back.
pub fn build_ack<R: CryptoRng + ?Sized>(
    rng: &mut R,
    geometry: &Geometry,
    surb_ack: SurbAck,
) -> Result<OutgoingPacket, PacketError> {
    let body = Body::Ack(surb_ack.ack_id);
    build_over_block(rng, geometry, surb_ack, &body)
}

/// Sends `body` over a reply block someone gave away (a SURB-ACK, or a
/// block given for an anonymous reply): sealed to the key that came with
/// the block, along the route its creator chose, which its user never
/// learns. The block is used up.
pub fn build_over_block<R: CryptoRng + ?Sized>(
    rng: &mut R,
    geometry: &Geometry,
    block: SurbAck,
    body: &Body,
) -> Result<OutgoingPacket, PacketError> {
    let plaintext = body.encode(geometry)?;
    let sealed = sealed::seal(rng, &block.ack_key, &plaintext)?;
    let first_hop = block.block.first_hop();
    Ok(OutgoingPacket {
        first_hop,
        packet: block.block.wrap(geometry, &sealed)?,
    })
}

/// What a gateway stores for a mailbox owner from a packet it was the last
/// hop of: the delivery tag it saw, then the payload (see
/// [`split_delivery`]). The tag is random to everyone but the owner, who
/// needs it to read a reply over a block it gave away.
pub fn join_delivery(tag: &[u8; DELIVERY_TAG_LEN], payload: &[u8]) -> Vec<u8> {
    let mut delivery = Vec::with_capacity(DELIVERY_TAG_LEN + payload.len());
    delivery.extend_from_slice(tag);
    delivery.extend_from_slice(payload);
    delivery
}

/// Splits what a gateway hands a mailbox owner for one stored packet
/// (`Geometry::delivery_len` bytes) into the delivery tag the last hop saw
/// and the payload. A reply over a block the owner gave away is found by
/// its tag and turned back into its view with the [`ReplyKey`]
/// (`ReplyKey::open`); any other payload is its view already.
///
/// [`ReplyKey`]: crate::ReplyKey
pub fn split_delivery<'a>(
    geometry: &Geometry,
    delivery: &'a [u8],
) -> Result<(&'a [u8; DELIVERY_TAG_LEN], &'a [u8]), PacketError> {
    if delivery.len() != geometry.delivery_len() {
        return Err(PacketError::PayloadAuthentication);
    }
    let (tag, payload) = delivery.split_at(DELIVERY_TAG_LEN);
    let tag = tag
        .try_into()
        .map_err(|_| PacketError::PayloadAuthentication)?;
    Ok((tag, payload))
}

/// Opens a packet delivered to a mailbox with the owner's key.
pub fn open_delivery(
    geometry: &Geometry,
    mailbox_secret: &StaticSecret,
    payload: &[u8],
) -> Result<Body, PacketError> {
    if payload.len() != geometry.payload_len {
        return Err(PacketError::PayloadAuthentication);
    }
    Body::decode(geometry, &sealed::open(mailbox_secret, payload)?)
}
