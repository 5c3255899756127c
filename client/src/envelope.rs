//! What travels end to end inside the fragments of one message.
//!
//! ```text
//! envelope  = 0x01 ‖ PQXDH initial header ‖ ratchet message   (version 1, until the contact answered)
//!           | 0x05 ‖ PQXDH initial header ‖ ratchet message   (version 2, until the contact answered)
//!           | 0x02 ‖ ratchet message                          (either version)
//!           | 0x03 ‖ anonymous message  (crate::edge::anonymous; no sender named)
//!           | 0x04 ‖ reply to an anonymous message
//! plaintext = kind (1: message, 2: call signal, 3: card update, 4: file)
//!             ‖ card length (2, BE) ‖ sender's card ‖ body
//! ```
//!
//! The sender's card rides inside the encrypted plaintext of the first
//! messages, so a contact who did not know us can answer; once the contact
//! has answered, messages carry no card (length 0).

use aegis_mix_packet::Geometry;

use crate::edge::EdgeError;
use crate::edge::pqxdh::{InitialHeader, Version};

const INITIAL: u8 = 0x01;
const RATCHET: u8 = 0x02;
/// First byte of a version-2 handshake.
const INITIAL_V2: u8 = 0x05;
/// First byte of an anonymous message.
pub const ANONYMOUS: u8 = 0x03;
/// First byte of a reply to an anonymous message.
pub const ANONYMOUS_REPLY: u8 = 0x04;
/// Largest signalling message body (call set-up data such as SDP/ICE).
pub const MAX_SIGNAL_LEN: usize = 8 * 1024;

/// Bytes an envelope of `len` bytes leaves empty in its last fragment of
/// the network's `geometry`: what the post-quantum section may take
/// without making the message a fragment longer.
pub fn fragment_room(geometry: &Geometry, len: usize) -> usize {
    let per_fragment = geometry.fragment_data_len();
    (per_fragment - len % per_fragment) % per_fragment
}

/// The post-quantum budget for a message whose envelope is `len` bytes
/// with a one-byte section: that byte and the room left in the last
/// fragment of the network's `geometry`.
pub fn pq_budget(geometry: &Geometry, len: usize) -> usize {
    crate::edge::spqr::Section::len_with(0) + fragment_room(geometry, len)
}

/// The outer layer of a message.
#[derive(Debug)]
pub enum Envelope {
    /// The handshake header and the first ratchet message(s).
    Initial {
        /// The PQXDH header.
        header: InitialHeader,
        /// The ratchet message.
        message: Vec<u8>,
    },
    /// A ratchet message in an established session.
    Ratchet {
        /// The ratchet message.
        message: Vec<u8>,
    },
}

impl Envelope {
    /// Encodes the envelope.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Envelope::Initial { header, message } => {
                let mut encoded = Vec::with_capacity(InitialHeader::LEN);
                header.encode(&mut encoded);
                Envelope::encode_initial(header.version, &encoded, message)
            }
            Envelope::Ratchet { message } => {
                let mut out = Vec::with_capacity(1 + message.len());
                out.push(RATCHET);
                out.extend_from_slice(message);
                out
            }
        }
    }

    /// The encoding of an `Initial` envelope from a header already encoded
    /// (as the sender keeps it until the contact answers), without decoding
    /// and verifying that header again for every message.
    pub fn encode_initial(version: Version, encoded_header: &[u8], message: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + encoded_header.len() + message.len());
        out.push(match version {
            Version::V1 => INITIAL,
            Version::V2 => INITIAL_V2,
        });
        out.extend_from_slice(encoded_header);
        out.extend_from_slice(message);
        out
    }

    /// Strict decoding (the header's identity signature is verified).
    pub fn decode(bytes: &[u8]) -> Result<Self, EdgeError> {
        match bytes.split_first() {
            Some((&kind @ (INITIAL | INITIAL_V2), rest)) if rest.len() > InitialHeader::LEN => {
                let version = if kind == INITIAL {
                    Version::V1
                } else {
                    Version::V2
                };
                let (header, message) = rest.split_at(InitialHeader::LEN);
                Ok(Envelope::Initial {
                    header: InitialHeader::decode(version, header)?,
                    message: message.to_vec(),
                })
            }
            Some((&RATCHET, rest)) if !rest.is_empty() => Ok(Envelope::Ratchet {
                message: rest.to_vec(),
            }),
            _ => Err(EdgeError::Malformed("envelope")),
        }
    }
}

/// What a message's content is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// A message for the user (kind byte 1).
    Message,
    /// A signalling message, call set-up data (kind byte 2; at most
    /// [`MAX_SIGNAL_LEN`] bytes).
    Signal,
    /// The sender's new card and nothing else (kind byte 3; empty body):
    /// sent to every contact after a gateway move or a prekey rotation, so
    /// they learn the new address and keys inside the ratchet.
    CardUpdate,
    /// A file: its name, media type and bytes (kind byte 4; the body is
    /// [`crate::file::FileMeta::encode_body`]'s).
    File,
}

/// The decrypted content of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// What it is.
    pub kind: ContentKind,
    /// The sender's card: in the first messages of a session, and after
    /// the card changed until a message carrying it is acknowledged.
    pub card: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Content {
    /// A message (`signal`: a signalling message) without a card.
    pub fn new(signal: bool, body: Vec<u8>) -> Content {
        Content {
            kind: if signal {
                ContentKind::Signal
            } else {
                ContentKind::Message
            },
            card: None,
            body,
        }
    }

    /// A file message.
    pub fn file(meta: &crate::file::FileMeta, data: &[u8]) -> Content {
        Content {
            kind: ContentKind::File,
            card: None,
            body: meta.encode_body(data),
        }
    }

    /// Whether this is a signalling message.
    pub fn is_signal(&self) -> bool {
        self.kind == ContentKind::Signal
    }

    /// Encodes the plaintext: `kind (1) ‖ card length (2) ‖ card ‖ body`.
    pub fn encode(&self) -> Vec<u8> {
        let card = self.card.as_deref().unwrap_or("").as_bytes();
        let mut out = Vec::with_capacity(3 + card.len() + self.body.len());
        out.push(match self.kind {
            ContentKind::Message => 1,
            ContentKind::Signal => 2,
            ContentKind::CardUpdate => 3,
            ContentKind::File => 4,
        });
        out.extend_from_slice(&(card.len() as u16).to_be_bytes());
        out.extend_from_slice(card);
        out.extend_from_slice(&self.body);
        out
    }

    /// Strict decoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, EdgeError> {
        let malformed = EdgeError::Malformed("content");
        if bytes.len() < 3 {
            return Err(malformed);
        }
        let kind = match bytes[0] {
            1 => ContentKind::Message,
            2 => ContentKind::Signal,
            3 => ContentKind::CardUpdate,
            4 => ContentKind::File,
            _ => return Err(malformed),
        };
        let card_len = usize::from(u16::from_be_bytes([bytes[1], bytes[2]]));
        let rest = &bytes[3..];
        if rest.len() < card_len {
            return Err(malformed);
        }
        let (card, body) = rest.split_at(card_len);
        match kind {
            ContentKind::Signal if body.len() > MAX_SIGNAL_LEN => return Err(malformed),
            ContentKind::CardUpdate if card.is_empty() || !body.is_empty() => {
                return Err(malformed);
            }
            ContentKind::File => {
                crate::file::FileMeta::decode_body(body)?;
            }
            _ => {}
        }
        let card = if card.is_empty() {
            None
        } else {
            Some(
                std::str::from_utf8(card)
                    .map_err(|_| EdgeError::Malformed("content"))?
                    .to_owned(),
            )
        };
        Ok(Content {
            kind,
            card,
            body: body.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_round_trips_and_rejects_bad_input() {
        let c = Content {
            kind: ContentKind::Message,
            card: Some("aegis1abc".into()),
            body: b"hello".to_vec(),
        };
        assert_eq!(Content::decode(&c.encode()).unwrap(), c);
        let s = Content::new(true, vec![1; 10]);
        assert_eq!(Content::decode(&s.encode()).unwrap(), s);
        let u = Content {
            kind: ContentKind::CardUpdate,
            card: Some("aegis1abc".into()),
            body: Vec::new(),
        };
        assert_eq!(Content::decode(&u.encode()).unwrap(), u);
        // A card update carries a card and nothing else.
        assert!(Content::decode(&[3, 0, 0]).is_err());
        assert!(Content::decode(&[3, 0, 1, b'x', b'y']).is_err());
        let meta = crate::file::FileMeta::for_name("a.txt", None).unwrap();
        let f = Content::file(&meta, b"data");
        assert_eq!(Content::decode(&f.encode()).unwrap(), f);
        // A file message whose body is not a file body.
        assert!(Content::decode(&[4, 0, 0]).is_err());
        assert!(Content::decode(&[4, 0, 0, 1, b'/', 0]).is_err());
        assert!(Content::decode(&[5, 0, 0]).is_err());
        assert!(Content::decode(&[1, 0, 9, b'x']).is_err());
        assert!(Content::decode(&[1, 0]).is_err());
        let big = Content::new(true, vec![0; MAX_SIGNAL_LEN + 1]);
        assert!(Content::decode(&big.encode()).is_err());
        assert!(Envelope::decode(&[2]).is_err());
        assert!(Envelope::decode(&[9, 1]).is_err());
        assert!(matches!(
            Envelope::decode(&[2, 7]).unwrap(),
            Envelope::Ratchet { .. }
        ));
    }
}
