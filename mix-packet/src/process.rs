//! What a node does with a packet, in two steps.
//!
//! [`peel`] performs the hop's Diffie-Hellman and yields the replay tag,
//! before any further work; the caller looks the tag up in its replay filter
//! and only then calls [`Peeled::unwrap`], which checks the header MAC,
//! removes the hop's layer and says where the packet goes next. The caller
//! records the tag once the unwrap succeeded, so only authenticated packets
//! enter the filter. (With one live key the MAC is checked once, inside the
//! unwrap: `sphinx-packet` checks it there whatever the caller did before.
//! With several, [`open_with_any`] checks it under each key until one fits,
//! since the frame does not say which epoch the packet was built for.)

use std::time::Duration;

use sphinx_packet::header::shared_secret::ExpandedSharedSecret;
use sphinx_packet::payload::Payload;
use sphinx_packet::payload::key::derive_payload_key;
use sphinx_packet::{ProcessedPacketData, SphinxPacket};
use x25519_dalek::StaticSecret;

use crate::constants::{DELIVERY_TAG_LEN, MAX_KEYS_TRIED, SPHINX_VERSION, X25519_KEY_LEN};
use crate::epoch_keys::EpochKeys;
use crate::error::PacketError;
use crate::frame::Frame;
use crate::geometry::{Geometry, PacketFormat};
use crate::kem::HybridSecret;
use crate::kem::header::{self as kem_header, OpenedHeader, Routing, capped_delay};
use crate::replay::{ReplayFilter, ReplayTag};
use crate::route::{Destination, NodeId};

/// A packet whose shared secret with this node is known; its header is not
/// authenticated yet.
pub struct Peeled {
    layer: Layer,
    tag: ReplayTag,
}

enum Layer {
    Sphinx {
        packet: SphinxPacket,
        secret: ExpandedSharedSecret,
    },
    Kem {
        header: OpenedHeader,
        payload: Vec<u8>,
    },
}

/// Where a processed packet goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Processed {
    /// Hold for `delay`, then send `packet` to `next_hop`.
    Forward {
        /// The next node.
        next_hop: NodeId,
        /// The sender-chosen delay, capped at
        /// [`MAX_HOP_DELAY_NANOS`](crate::constants::MAX_HOP_DELAY_NANOS).
        delay: Duration,
        /// Whether the sender asked for more than the cap.
        delay_capped: bool,
        /// The packet for the next hop, same length as the one received.
        packet: Vec<u8>,
    },
    /// This node is the last hop.
    Final {
        /// A mailbox here, or the drop destination.
        destination: Destination,
        /// A random tag the sender put in the header: stored with the payload,
        /// meaningless to the gateway.
        delivery_tag: [u8; DELIVERY_TAG_LEN],
        /// The payload as the mailbox owner will receive it.
        payload: Vec<u8>,
    },
}

/// Step one: parse, derive the shared secret and compute the replay tag.
pub fn peel(geometry: &Geometry, packet: &[u8], key: &StaticSecret) -> Result<Peeled, PacketError> {
    let packet = parse(geometry, packet)?;
    let secret = packet.header.compute_expanded_shared_secret(key);
    let tag = ReplayTag(*secret.replay_tag());
    Ok(Peeled {
        layer: Layer::Sphinx { packet, secret },
        tag,
    })
}

/// Step one for a packet in the KEM format ([`crate::kem`]): length check,
/// one X-Wing decapsulation, the hop's keys and replay tag. The header MAC
/// is checked by the unwrap.
pub fn peel_hybrid(
    geometry: &Geometry,
    packet: &[u8],
    key: &HybridSecret,
) -> Result<Peeled, PacketError> {
    if geometry.format != PacketFormat::Kem {
        return Err(PacketError::InvalidGeometry(
            "a hybrid key opens packets of a KEM geometry only",
        ));
    }
    check_length(geometry, packet)?;
    let (header, payload) = packet.split_at(geometry.header_len());
    let header = kem_header::open(header, geometry.hops, key);
    Ok(Peeled {
        tag: header.keys().tag,
        layer: Layer::Kem {
            header,
            payload: payload.to_vec(),
        },
    })
}

/// A hop's private key for one packet format: X25519 for Sphinx, X-Wing
/// for the KEM format.
pub trait HopSecret {
    /// Step one under this key ([`peel`] or [`peel_hybrid`]).
    fn peel(&self, geometry: &Geometry, packet: &[u8]) -> Result<Peeled, PacketError>;
}

impl HopSecret for StaticSecret {
    fn peel(&self, geometry: &Geometry, packet: &[u8]) -> Result<Peeled, PacketError> {
        peel(geometry, packet, self)
    }
}

impl HopSecret for HybridSecret {
    fn peel(&self, geometry: &Geometry, packet: &[u8]) -> Result<Peeled, PacketError> {
        peel_hybrid(geometry, packet, self)
    }
}

/// Step one when more than one key can be live: the first of `keys` (an
/// epoch and its secret, in the order to try them) whose header MAC
/// verifies, with the packet peeled under it. Nothing on the wire names the
/// epoch, so a packet built for another key costs one key exchange (X25519,
/// or an X-Wing decapsulation) and one MAC per key tried before it is
/// refused (`HeaderAuthentication`). With a single key this is the key's
/// [`HopSecret::peel`], and the MAC is left to the unwrap.
pub fn open_with_any<K: HopSecret>(
    geometry: &Geometry,
    packet: &[u8],
    keys: &[(u64, &K)],
) -> Result<(u64, Peeled), PacketError> {
    match keys {
        [] => Err(PacketError::NoLiveKey),
        [(epoch, key)] => Ok((*epoch, key.peel(geometry, packet)?)),
        _ => {
            for (epoch, key) in keys.iter().take(MAX_KEYS_TRIED) {
                let peeled = key.peel(geometry, packet)?;
                if peeled.authentic() {
                    return Ok((*epoch, peeled));
                }
            }
            Err(PacketError::HeaderAuthentication)
        }
    }
}

/// A packet of any format is exactly the geometry's packet length.
fn check_length(geometry: &Geometry, packet: &[u8]) -> Result<(), PacketError> {
    if packet.len() != geometry.packet_len() {
        return Err(PacketError::FrameLength {
            expected: geometry.packet_len(),
            got: packet.len(),
        });
    }
    Ok(())
}

/// Length, canonical α and Sphinx parsing, before any key is used.
fn parse(geometry: &Geometry, packet: &[u8]) -> Result<SphinxPacket, PacketError> {
    if geometry.format != PacketFormat::Sphinx {
        return Err(PacketError::InvalidGeometry(
            "an X25519 key opens packets of a Sphinx geometry only",
        ));
    }
    check_length(geometry, packet)?;
    // α occupies the first 32 bytes; honest senders and hops always produce
    // it with the top bit clear.
    if packet[X25519_KEY_LEN - 1] & 0x80 != 0 {
        return Err(PacketError::NonCanonicalGroupElement);
    }
    SphinxPacket::from_bytes(packet).map_err(|e| PacketError::MalformedRouting(e.to_string()))
}

impl Peeled {
    /// The packet's replay tag at this hop.
    pub fn replay_tag(&self) -> &ReplayTag {
        &self.tag
    }

    /// Steps two and three against `ledger`: refuse a tag seen before,
    /// unwrap, record the tag (refusing the copy recorded second when two
    /// are unwrapped at once).
    pub fn finish(self, ledger: &mut impl ReplayLedger) -> Result<Processed, PacketError> {
        let tag = self.tag;
        if ledger.seen(&tag) {
            return Err(PacketError::Replayed);
        }
        let processed = self.unwrap()?;
        if !ledger.record(&tag) {
            return Err(PacketError::Replayed);
        }
        Ok(processed)
    }

    /// Whether the header MAC verifies under the key this packet was
    /// peeled with (what [`open_with_any`] tries each key by).
    pub fn authentic(&self) -> bool {
        match &self.layer {
            Layer::Sphinx { packet, secret } => {
                packet.header.ensure_header_integrity(secret).is_ok()
            }
            Layer::Kem { header, .. } => header.authentic(),
        }
    }

    /// Step two: check the header MAC and remove this hop's layer.
    pub fn unwrap(self) -> Result<Processed, PacketError> {
        match self.layer {
            Layer::Sphinx { packet, secret } => unwrap_sphinx(packet, &secret),
            Layer::Kem { header, payload } => unwrap_kem(&header, payload),
        }
    }
}

/// A KEM hop: the header's layer (MAC first), then the payload's.
fn unwrap_kem(header: &OpenedHeader, payload: Vec<u8>) -> Result<Processed, PacketError> {
    let (routing, next_header) = header.unwrap()?;
    let payload = Payload::from_bytes(&payload)
        .and_then(|p| p.unwrap(derive_payload_key(&header.keys().seed)))
        .map_err(|e| PacketError::Payload(e.to_string()))?
        .into_bytes();
    Ok(match (routing, next_header) {
        (Routing::Forward { next, delay_nanos }, Some(mut packet)) => {
            let (delay, delay_capped) = capped_delay(delay_nanos);
            packet.extend_from_slice(&payload);
            Processed::Forward {
                next_hop: next,
                delay,
                delay_capped,
                packet,
            }
        }
        (Routing::Final { destination, tag }, _) => Processed::Final {
            destination,
            delivery_tag: tag,
            payload,
        },
        (Routing::Forward { .. }, None) => {
            return Err(PacketError::MalformedRouting(
                "forward hop without a next header".into(),
            ));
        }
    })
}

/// A Sphinx hop, by `sphinx-packet`.
fn unwrap_sphinx(
    packet: SphinxPacket,
    secret: &ExpandedSharedSecret,
) -> Result<Processed, PacketError> {
    let processed = packet
        .process_with_expanded_secret(secret)
        .map_err(|e| match e.kind() {
            // The only header failure left once the packet parsed.
            sphinx_packet::ErrorKind::InvalidHeader => PacketError::HeaderAuthentication,
            sphinx_packet::ErrorKind::InvalidPayload => PacketError::Payload(e.to_string()),
            _ => PacketError::MalformedRouting(e.to_string()),
        })?;
    if processed.version != SPHINX_VERSION {
        return Err(PacketError::UnsupportedSphinxVersion(
            processed.version.value(),
        ));
    }
    Ok(match processed.data {
        ProcessedPacketData::ForwardHop {
            next_hop_packet,
            next_hop_address,
            delay,
        } => {
            let (delay, delay_capped) = capped_delay(delay.to_nanos());
            Processed::Forward {
                next_hop: NodeId(next_hop_address.to_bytes()),
                delay,
                delay_capped,
                packet: next_hop_packet.to_bytes(),
            }
        }
        ProcessedPacketData::FinalHop {
            destination,
            identifier,
            payload,
        } => Processed::Final {
            destination: Destination::from_sphinx(&destination),
            delivery_tag: identifier,
            payload: payload.into_bytes(),
        },
    })
}

/// Where a hop looks up and records replay tags: the replay filter of the
/// epoch whose key opened the packet, however the caller keeps it.
pub trait ReplayLedger {
    /// Whether `tag` was recorded before.
    fn seen(&self, tag: &ReplayTag) -> bool;
    /// Records `tag`; false if it was recorded already.
    fn record(&mut self, tag: &ReplayTag) -> bool;
}

impl ReplayLedger for ReplayFilter {
    fn seen(&self, tag: &ReplayTag) -> bool {
        self.contains(tag)
    }

    fn record(&mut self, tag: &ReplayTag) -> bool {
        self.check_and_insert(tag)
    }
}

/// One hop for one packet: open it with the first of `keys` that
/// authenticates its header ([`open_with_any`]), look the replay tag up in
/// that epoch's ledger, unwrap (which checks the header MAC), record the
/// tag. A packet seen before gets no work past finding its key, and only
/// authenticated packets are recorded. If two copies are unwrapped at once,
/// the one recorded second is refused as a replay. Returns the epoch of the
/// key that opened the packet.
pub fn process_hop<K: HopSecret, L: ReplayLedger>(
    geometry: &Geometry,
    packet: &[u8],
    keys: &[(u64, &K)],
    ledger_of: impl FnOnce(u64) -> L,
) -> Result<(u64, Processed), PacketError> {
    let (epoch, peeled) = open_with_any(geometry, packet, keys)?;
    Ok((epoch, peeled.finish(&mut ledger_of(epoch))?))
}

/// The whole hop for one frame: decode, then [`process_hop`] with the keys
/// of `epochs` that `keys` holds, tried in that order, each with its own
/// replay filter. Returns the epoch of the key that opened the packet (the
/// caller checks the route against that epoch's document) and the result.
/// Every failure is a typed error.
pub fn process_frame(
    geometry: &Geometry,
    frame: &[u8],
    keys: &mut EpochKeys,
    epochs: &[u64],
) -> Result<(u64, Processed), PacketError> {
    let frame = Frame::decode(geometry, frame)?;
    let (epoch, peeled) = match geometry.format {
        PacketFormat::Sphinx => {
            let tried: Vec<(u64, &StaticSecret)> = epochs
                .iter()
                .filter_map(|e| keys.get(*e).map(|k| (*e, &k.secret)))
                .collect();
            open_with_any(geometry, frame.packet, &tried)?
        }
        PacketFormat::Kem => {
            let tried: Vec<(u64, &HybridSecret)> = epochs
                .iter()
                .filter_map(|e| keys.get(*e).and_then(|k| k.kem.as_ref()).map(|k| (*e, k)))
                .collect();
            open_with_any(geometry, frame.packet, &tried)?
        }
    };
    let key = keys.get_mut(epoch).ok_or(PacketError::NoLiveKey)?;
    Ok((epoch, peeled.finish(&mut key.filter)?))
}
