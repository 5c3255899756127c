//! The access protocol between a client and its gateway.
//!
//! A client opens one stream of the access protocol to its gateway (the link
//! layer, `aegis-link`, names it and carries the messages).
//! The gateway speaks first with a [`ServerMessage::Challenge`]; the client
//! answers with [`ClientMessage::Hello`], proving with an Ed25519 signature
//! over the challenge that it holds the key its mailbox id is derived from.
//! After that the client may send packets (frames whose first hop is this
//! gateway) and pull its mailbox; each pull acknowledges what the previous
//! one brought.
//!
//! What an observer of the link sees is kept uniform. After the
//! [`ServerMessage::Welcome`], every message in either direction is one
//! *cell* of the length the welcome announces ([`cell_len`]: a frame and a
//! little room), zero-padded: a sent packet, a pull and each entry of a pull
//! answer all look the same. Every pull carries exactly [`PULL_BATCH`]
//! acknowledgement ids (real ones first, random ones after) and is answered
//! with exactly [`PULL_BATCH`] entry cells (stored packets first, random
//! dummies after), so neither the pull nor its answer says how much was
//! waiting or whether anything arrived. A packet leaves the mailbox only when
//! the client acknowledges it.
//!
//! Messages are `length (4 bytes, big-endian) ‖ postcard encoding ‖ zero
//! padding`, at most [`MAX_ACCESS_MESSAGE`] bytes, decoded strictly: the
//! padding must be zeros and, after the welcome, the length must be the cell
//! length. This module is the codec and the ownership proof, with no IO:
//! [`encode`] gives the bytes to write, [`check_length`] judges a length
//! prefix before its body is read, and [`decode`] the body.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand::Rng;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest as _, Sha256};

use crate::route::MailboxId;

/// Entries in every pull answer.
pub const PULL_BATCH: usize = 8;
/// Largest access message in bytes.
pub const MAX_ACCESS_MESSAGE: usize = 64 * 1024;
/// Version of this protocol, sent in the challenge. Version 3: an entry
/// carries the delivery tag before the payload.
pub const ACCESS_VERSION: u16 = 3;
/// Room in a cell beyond the frame: the message tag and length varints.
const CELL_OVERHEAD: usize = 16;

/// The cell length of a network whose link frames are `frame_len` bytes.
pub const fn cell_len(frame_len: usize) -> usize {
    frame_len + CELL_OVERHEAD
}

const MAILBOX_ID_DOMAIN: &[u8] = b"aegislink/mailbox-id/v1\0";
const MAILBOX_AUTH_DOMAIN: &[u8] = b"aegislink/mailbox-auth/v1\0";

/// The mailbox id that belongs to an Ed25519 mailbox key: a hash of it, so
/// the id is random-looking and only the key holder can prove ownership.
pub fn mailbox_id_for(mailbox_key: &[u8; 32]) -> MailboxId {
    let digest = Sha256::new()
        .chain_update(MAILBOX_ID_DOMAIN)
        .chain_update(mailbox_key)
        .finalize();
    let mut id = [0u8; 32];
    id.copy_from_slice(&digest);
    MailboxId(id)
}

fn auth_message(gateway: &[u8; 32], nonce: &[u8; 32], mailbox: &MailboxId) -> Vec<u8> {
    let mut m = Vec::with_capacity(MAILBOX_AUTH_DOMAIN.len() + 96);
    m.extend_from_slice(MAILBOX_AUTH_DOMAIN);
    m.extend_from_slice(gateway);
    m.extend_from_slice(nonce);
    m.extend_from_slice(&mailbox.0);
    m
}

/// The client's answer to a challenge, signed with its mailbox key.
pub fn hello(key: &SigningKey, gateway: &[u8; 32], nonce: &[u8; 32]) -> ClientMessage {
    let public = key.verifying_key().to_bytes();
    let mailbox = mailbox_id_for(&public);
    let signature = key.sign(&auth_message(gateway, nonce, &mailbox));
    ClientMessage::Hello {
        mailbox_key: public,
        signature: signature.to_bytes().to_vec(),
    }
}

/// Checks a hello against the challenge this gateway sent; returns the
/// mailbox the client proved it owns.
pub fn verify_hello(
    gateway: &[u8; 32],
    nonce: &[u8; 32],
    mailbox_key: &[u8; 32],
    signature: &[u8],
) -> Result<MailboxId, AccessError> {
    let key = VerifyingKey::from_bytes(mailbox_key).map_err(|_| AccessError::BadKey)?;
    let signature = Signature::from_slice(signature).map_err(|_| AccessError::BadSignature)?;
    let mailbox = mailbox_id_for(mailbox_key);
    key.verify_strict(&auth_message(gateway, nonce, &mailbox), &signature)
        .map_err(|_| AccessError::BadSignature)?;
    Ok(mailbox)
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// Proof of mailbox ownership.
    Hello {
        /// The Ed25519 mailbox key; the mailbox id is its hash.
        mailbox_key: [u8; 32],
        /// Signature over the challenge (64 bytes).
        signature: Vec<u8>,
    },
    /// A link frame whose first hop is this gateway.
    Send {
        /// The frame, exactly the geometry's frame length.
        frame: Vec<u8>,
    },
    /// Deletes the packets acknowledged, then asks for the next
    /// [`PULL_BATCH`] entries of the mailbox.
    Pull {
        /// Exactly [`PULL_BATCH`] entry ids (big-endian) from earlier
        /// answers, padded with random ids; unknown ids are ignored.
        ack: Vec<[u8; 8]>,
    },
}

/// One entry of a pull answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Whether this is a stored packet (false: a dummy to discard).
    pub real: bool,
    /// The id (big-endian) to acknowledge a real entry with; fixed size so
    /// real and dummy entries encode to the same length.
    pub id: [u8; 8],
    /// The delivery tag and payload as the exit hop received them
    /// (`Geometry::delivery_len` bytes; random for dummies).
    pub payload: Vec<u8>,
}

/// What a gateway sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// Sent first: sign this to prove mailbox ownership.
    Challenge {
        /// Protocol version.
        version: u16,
        /// The gateway's identity key.
        gateway: [u8; 32],
        /// Fresh random bytes.
        nonce: [u8; 32],
    },
    /// The hello was accepted.
    Welcome {
        /// Packets the gateway accepts per second from this client.
        send_rate: f64,
        /// The length of every later message, both ways.
        cell_len: u32,
    },
    /// The session is refused or ended; the stream closes after this.
    Refused {
        /// Why, for the user.
        reason: String,
    },
    /// One entry of a pull answer; every pull is answered with exactly
    /// [`PULL_BATCH`] of them, real entries first.
    Entry(Entry),
}

/// Failures of the access protocol's codec and ownership proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// A message was larger than [`MAX_ACCESS_MESSAGE`].
    #[error("message of {0} bytes is too large")]
    TooLarge(usize),
    /// A message did not decode.
    #[error("malformed message")]
    Malformed,
    /// The mailbox key is not a valid Ed25519 key.
    #[error("invalid mailbox key")]
    BadKey,
    /// The ownership signature does not verify.
    #[error("mailbox signature does not verify")]
    BadSignature,
    /// The peer broke the protocol order.
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
}

/// Strict decoding: a postcard value followed by nothing but zero padding.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AccessError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, padding)) if padding.iter().all(|&b| b == 0) => Ok(value),
        _ => Err(AccessError::Malformed),
    }
}

/// Encodes one message with its length prefix, zero-padded to `pad_to`
/// bytes (0: no padding).
pub fn encode<T: Serialize>(message: &T, pad_to: usize) -> Result<Vec<u8>, AccessError> {
    let mut bytes = vec![0u8; 4];
    postcard::to_io(message, &mut bytes).map_err(|_| AccessError::Malformed)?;
    let len = bytes.len() - 4;
    if len > MAX_ACCESS_MESSAGE || (pad_to > 0 && len > pad_to) {
        return Err(AccessError::TooLarge(len));
    }
    bytes.resize(4 + len.max(pad_to), 0);
    let total = (bytes.len() - 4) as u32;
    bytes[..4].copy_from_slice(&total.to_be_bytes());
    Ok(bytes)
}

/// Judges a message's 4-byte length prefix before its body is read: the
/// body length if it is at most [`MAX_ACCESS_MESSAGE`] and, when `cell` is
/// not 0, exactly `cell`.
pub fn check_length(prefix: [u8; 4], cell: usize) -> Result<usize, AccessError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_ACCESS_MESSAGE {
        return Err(AccessError::TooLarge(len));
    }
    if cell != 0 && len != cell {
        return Err(AccessError::Malformed);
    }
    Ok(len)
}

/// Decodes one whole message as written by [`encode`] (length prefix
/// included), as a reader expecting `cell`-length messages would.
pub fn decode_message<T: DeserializeOwned>(bytes: &[u8], cell: usize) -> Result<T, AccessError> {
    let (prefix, body) = bytes
        .split_first_chunk::<4>()
        .ok_or(AccessError::Malformed)?;
    let len = check_length(*prefix, cell)?;
    if body.len() != len {
        return Err(AccessError::Malformed);
    }
    decode(body)
}

/// [`PULL_BATCH`] acknowledgement ids: `ids` first, random ids after.
/// More than [`PULL_BATCH`] ids is an error.
pub fn padded_ack<R: Rng + ?Sized>(
    rng: &mut R,
    ids: &[[u8; 8]],
) -> Result<Vec<[u8; 8]>, AccessError> {
    if ids.len() > PULL_BATCH {
        return Err(AccessError::Unexpected(
            "too many ids in one acknowledgement",
        ));
    }
    let mut padded = ids.to_vec();
    while padded.len() < PULL_BATCH {
        let mut id = [0u8; 8];
        rng.fill_bytes(&mut id);
        padded.push(id);
    }
    Ok(padded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(9)
    }

    #[test]
    fn hello_verifies_only_for_its_challenge() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let gateway = [1u8; 32];
        let nonce = [2u8; 32];
        let ClientMessage::Hello {
            mailbox_key,
            signature,
        } = hello(&key, &gateway, &nonce)
        else {
            panic!("hello builds a Hello")
        };
        let mailbox = verify_hello(&gateway, &nonce, &mailbox_key, &signature).unwrap();
        assert_eq!(mailbox, mailbox_id_for(&key.verifying_key().to_bytes()));
        assert!(verify_hello(&gateway, &[3u8; 32], &mailbox_key, &signature).is_err());
        assert!(verify_hello(&[9u8; 32], &nonce, &mailbox_key, &signature).is_err());
        let other = SigningKey::from_bytes(&[8u8; 32])
            .verifying_key()
            .to_bytes();
        assert!(verify_hello(&gateway, &nonce, &other, &signature).is_err());
        assert!(verify_hello(&gateway, &nonce, &mailbox_key, &signature[..63]).is_err());
    }

    #[test]
    fn decoding_is_strict() {
        let pull = ClientMessage::Pull {
            ack: padded_ack(&mut rng(), &[[5u8; 8]]).unwrap(),
        };
        let bytes = postcard::to_stdvec(&pull).unwrap();
        assert_eq!(decode::<ClientMessage>(&bytes).unwrap(), pull);
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 40]);
        assert_eq!(decode::<ClientMessage>(&padded).unwrap(), pull);
        let mut dirty = padded.clone();
        dirty.push(1);
        assert!(decode::<ClientMessage>(&dirty).is_err());
        assert!(decode::<ClientMessage>(&[0xFF]).is_err());
        assert!(decode::<ClientMessage>(&[]).is_err());
        assert!(padded_ack(&mut rng(), &[[0u8; 8]; PULL_BATCH + 1]).is_err());
    }

    #[test]
    fn every_message_after_the_welcome_is_one_cell() {
        let cell = cell_len(crate::Geometry::STANDARD.frame_len());
        let frame = ClientMessage::Send {
            frame: vec![0xAB; crate::Geometry::STANDARD.frame_len()],
        };
        let pull = ClientMessage::Pull {
            ack: padded_ack(&mut rng(), &[]).unwrap(),
        };
        let entry = ServerMessage::Entry(Entry {
            real: false,
            id: [1; 8],
            payload: vec![7; crate::Geometry::STANDARD.delivery_len()],
        });
        let lens = [
            encode(&frame, cell).unwrap().len(),
            encode(&pull, cell).unwrap().len(),
            encode(&entry, cell).unwrap().len(),
        ];
        assert_eq!(lens, [4 + cell; 3]);
        let too_big = ClientMessage::Send {
            frame: vec![0; cell],
        };
        assert!(encode(&too_big, cell).is_err());
        // A reader expecting cells refuses any other length.
        let short = encode(&pull, 0).unwrap();
        let result = decode_message::<ClientMessage>(&short, cell);
        assert_eq!(result, Err(AccessError::Malformed));
        let whole = encode(&pull, cell).unwrap();
        assert_eq!(decode_message::<ClientMessage>(&whole, cell).unwrap(), pull);
    }

    #[test]
    fn oversized_messages_are_refused_before_reading() {
        let result = check_length([0xFF, 0xFF, 0xFF, 0xFF], 0);
        assert!(matches!(result, Err(AccessError::TooLarge(_))));
    }

    proptest::proptest! {
        /// Hostile bytes never panic the decoders, and a reader expecting
        /// cells accepts nothing but a cell.
        #[test]
        fn decoders_survive_any_input(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..3_000)) {
            let _ = decode::<ClientMessage>(&bytes);
            let _ = decode::<ServerMessage>(&bytes);
            let cell = cell_len(crate::Geometry::STANDARD.frame_len());
            for expect in [0, cell] {
                let read = decode_message::<ClientMessage>(&bytes, expect);
                if read.is_ok() && expect != 0 {
                    proptest::prop_assert_eq!(
                        u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
                        cell
                    );
                }
            }
        }

        /// Every message a client can send survives a cell round trip.
        #[test]
        fn client_messages_round_trip_as_cells(
            frame in proptest::collection::vec(proptest::num::u8::ANY, crate::Geometry::STANDARD.frame_len()),
            ids in proptest::collection::vec(proptest::array::uniform8(proptest::num::u8::ANY), 0..=PULL_BATCH),
        ) {
            let cell = cell_len(crate::Geometry::STANDARD.frame_len());
            for message in [
                ClientMessage::Send { frame: frame.clone() },
                ClientMessage::Pull { ack: padded_ack(&mut rng(), &ids).unwrap() },
            ] {
                let bytes = encode(&message, cell).unwrap();
                proptest::prop_assert_eq!(bytes.len(), 4 + cell);
                let read = decode_message::<ClientMessage>(&bytes, cell).unwrap();
                proptest::prop_assert_eq!(read, message);
            }
        }
    }
}
