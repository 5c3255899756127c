//! Packet kinds as the mailbox owner sees them.
//!
//! Four kinds travel the network: real fragments, loop cover, drop cover and
//! acknowledgements. To every mix and to any observer of the wires they are
//! the same: one packet size, one Sphinx construction, delays from the same
//! distribution. The exit gateway learns one bit: whether the destination is
//! the drop address (drop cover, discarded) or a mailbox (stored). Fragments,
//! loops and acks stored in a mailbox are sealed boxes of one size; only the
//! mailbox owner, after opening the box, sees the kind byte below.

use crate::constants::ID_LEN;
use crate::error::PacketError;
use crate::fragment::{Fragment, MessageId};
use crate::geometry::Geometry;
use crate::surb::{AckId, SurbAck};

const KIND_FRAGMENT: u8 = 1;
const KIND_LOOP: u8 = 2;
const KIND_ACK: u8 = 3;

/// Identifies a loop cover packet to the client that sent it, so the client
/// can measure the round trip and count losses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LoopId(pub [u8; ID_LEN]);

/// The plaintext sealed inside a mailbox packet.
#[derive(Debug)]
pub enum Body {
    /// A fragment of a real message, with the SURB-ACK to acknowledge it.
    Fragment {
        /// The fragment.
        fragment: Fragment,
        /// The reply block with which the recipient acknowledges it.
        surb_ack: SurbAck,
    },
    /// Loop cover: sent by a client (or node) to itself.
    Loop(LoopId),
    /// An acknowledgement of one fragment, sent with its SURB-ACK.
    Ack(AckId),
}

impl Body {
    /// Encodes to exactly `geometry.sealed_plaintext_len()` bytes, zero padded.
    ///
    /// Fragment: `1 ‖ message id (16) ‖ index (2) ‖ count (2) ‖ data length (2)
    /// ‖ SURB-ACK ‖ data ‖ zeros`. Loop: `2 ‖ loop id (16) ‖ zeros`.
    /// Ack: `3 ‖ ack id (16) ‖ zeros`.
    pub fn encode(&self, geometry: &Geometry) -> Result<Vec<u8>, PacketError> {
        let mut out = Vec::with_capacity(geometry.sealed_plaintext_len());
        match self {
            Body::Fragment { fragment, surb_ack } => {
                if fragment.data.len() > geometry.fragment_data_len() {
                    return Err(PacketError::InvalidFragment(
                        "data larger than a fragment holds",
                    ));
                }
                fragment.check()?;
                out.push(KIND_FRAGMENT);
                out.extend_from_slice(&fragment.message_id.0);
                out.extend_from_slice(&fragment.index.to_be_bytes());
                out.extend_from_slice(&fragment.count.to_be_bytes());
                out.extend_from_slice(&(fragment.data.len() as u16).to_be_bytes());
                surb_ack.encode(&mut out);
                out.extend_from_slice(&fragment.data);
            }
            Body::Loop(id) => {
                out.push(KIND_LOOP);
                out.extend_from_slice(&id.0);
            }
            Body::Ack(id) => {
                out.push(KIND_ACK);
                out.extend_from_slice(&id.0);
            }
        }
        out.resize(geometry.sealed_plaintext_len(), 0);
        Ok(out)
    }

    /// Strict decoding: exact length, known kind, consistent lengths, zero padding.
    pub fn decode(geometry: &Geometry, bytes: &[u8]) -> Result<Body, PacketError> {
        if bytes.len() != geometry.sealed_plaintext_len() {
            return Err(PacketError::MalformedBody("wrong plaintext length"));
        }
        let (&kind, rest) = bytes
            .split_first()
            .ok_or(PacketError::MalformedBody("empty"))?;
        let (id, rest) = rest.split_at(ID_LEN);
        let mut id_bytes = [0u8; ID_LEN];
        id_bytes.copy_from_slice(id);
        let (body, padding) = match kind {
            KIND_FRAGMENT => {
                let (index, rest) = rest.split_at(2);
                let (count, rest) = rest.split_at(2);
                let (len, rest) = rest.split_at(2);
                let (surb, rest) = rest.split_at(geometry.surb_ack_len());
                let len = u16::from_be_bytes([len[0], len[1]]) as usize;
                if len > geometry.fragment_data_len() {
                    return Err(PacketError::MalformedBody(
                        "data length beyond the fragment",
                    ));
                }
                let (data, padding) = rest.split_at(len);
                let fragment = Fragment {
                    message_id: MessageId(id_bytes),
                    index: u16::from_be_bytes([index[0], index[1]]),
                    count: u16::from_be_bytes([count[0], count[1]]),
                    data: data.to_vec(),
                };
                fragment.check()?;
                let surb_ack = SurbAck::decode(geometry, surb)?;
                (Body::Fragment { fragment, surb_ack }, padding)
            }
            KIND_LOOP => (Body::Loop(LoopId(id_bytes)), rest),
            KIND_ACK => (Body::Ack(AckId(id_bytes)), rest),
            other => return Err(PacketError::UnknownKind(other)),
        };
        if padding.iter().any(|&b| b != 0) {
            return Err(PacketError::MalformedBody("non-zero padding"));
        }
        Ok(body)
    }
}
