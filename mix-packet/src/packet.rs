//! Building packets of every kind, and opening what a mailbox receives.

use rand::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::error::PacketError;
use crate::frame::Frame;
use crate::geometry::Geometry;
use crate::kind::Body;
use crate::route::{Destination, HopDelays, MailboxId, NodeId, Route};
use crate::sealed;
use crate::surb::{ReplyBlock, SurbAck};

/// A packet ready to send: to whom, under which key epoch, and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingPacket {
    /// The first hop (for a client: its gateway).
    pub first_hop: NodeId,
    /// The key epoch every hop's key was taken from.
    pub epoch: u64,
    /// The Sphinx packet, `geometry.packet_len()` bytes.
    pub packet: Vec<u8>,
}

impl OutgoingPacket {
    /// The link frame carrying this packet.
    pub fn to_frame(&self, geometry: &Geometry) -> Result<Vec<u8>, PacketError> {
        Frame::encode(geometry, self.epoch, &self.packet)
    }
}

/// Builds a packet that delivers `body` to `mailbox` at the route's last hop,
/// sealed to the mailbox owner's key. Used for real fragments and loop cover.
#[allow(clippy::too_many_arguments)]
pub fn build_mailbox_packet<R: CryptoRng + ?Sized>(
    rng: &mut R,
    geometry: &Geometry,
    epoch: u64,
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
        epoch,
        packet: block.wrap(geometry, &sealed)?,
    })
}

/// Builds a drop-cover packet: addressed to the drop destination, its last
/// hop sees random bytes and discards them.
pub fn build_drop_cover<R: CryptoRng + ?Sized>(
    rng: &mut R,
    geometry: &Geometry,
    epoch: u64,
    route: &Route,
    delays: &HopDelays,
) -> Result<OutgoingPacket, PacketError> {
    let mut noise = vec![0u8; geometry.payload_len];
    rng.fill_bytes(&mut noise);
    let block = ReplyBlock::new(rng, geometry, route, delays, Destination::Drop)?;
    let first_hop = block.first_hop();
    Ok(OutgoingPacket {
        first_hop,
        epoch,
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
    let plaintext = Body::Ack(surb_ack.ack_id).encode(geometry)?;
    let sealed = sealed::seal(rng, &surb_ack.ack_key, &plaintext)?;
    let first_hop = surb_ack.block.first_hop();
    Ok(OutgoingPacket {
        first_hop,
        epoch: surb_ack.epoch,
        packet: surb_ack.block.wrap(geometry, &sealed)?,
    })
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
