//! The access protocol between a client and its gateway.
//!
//! A client opens one libp2p stream with [`ACCESS_PROTOCOL`] to its gateway.
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
//! length.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest as _, Sha256};

use aegis_mix_packet::MailboxId;

/// libp2p protocol name of client access streams.
pub const ACCESS_PROTOCOL: &str = "/aegis/access/1";
/// libp2p protocol name of mix traffic streams between nodes.
pub const MIX_PROTOCOL: &str = "/aegis/mix/1";
/// Entries in every pull answer.
pub const PULL_BATCH: usize = 8;
/// Largest access message in bytes.
pub const MAX_ACCESS_MESSAGE: usize = 64 * 1024;
/// Version of this protocol, sent in the challenge.
pub const ACCESS_VERSION: u16 = 2;
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
    /// The packet payload as the exit hop received it (random for dummies).
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

/// Failures of the access protocol.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The stream failed or closed.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
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

/// Writes one message, zero-padded to `pad_to` bytes (0: unpadded), in a
/// single write so it travels as one piece.
pub async fn write_message<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    message: &T,
    pad_to: usize,
) -> Result<(), AccessError> {
    let bytes = encode(message, pad_to)?;
    writer.write_all(&bytes).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads one message, refusing oversized ones before reading them and,
/// when `cell` is not 0, any whose length is not exactly `cell`.
pub async fn read_message<R: AsyncRead + Unpin, T: DeserializeOwned>(
    reader: &mut R,
    cell: usize,
) -> Result<T, AccessError> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_ACCESS_MESSAGE {
        return Err(AccessError::TooLarge(len));
    }
    if cell != 0 && len != cell {
        return Err(AccessError::Malformed);
    }
    let mut bytes = vec![0u8; len];
    reader.read_exact(&mut bytes).await?;
    decode(&bytes)
}

/// [`PULL_BATCH`] acknowledgement ids: `ids` first, random ids after.
/// More than [`PULL_BATCH`] ids is an error.
pub fn padded_ack(ids: &[[u8; 8]]) -> Result<Vec<[u8; 8]>, AccessError> {
    if ids.len() > PULL_BATCH {
        return Err(AccessError::Unexpected(
            "too many ids in one acknowledgement",
        ));
    }
    let mut padded = ids.to_vec();
    let mut rng = rand::rng();
    while padded.len() < PULL_BATCH {
        let mut id = [0u8; 8];
        rand::Rng::fill_bytes(&mut rng, &mut id);
        padded.push(id);
    }
    Ok(padded)
}

/// A client's attached session with its gateway.
pub struct GatewaySession {
    stream: libp2p::Stream,
    /// The mailbox this session may read.
    pub mailbox: MailboxId,
    /// Packets per second the gateway accepts from this client.
    pub send_rate: f64,
    /// The length of every message after the welcome.
    pub cell_len: usize,
}

impl GatewaySession {
    /// Attaches over an opened access stream: answers the challenge with the
    /// mailbox key. `gateway` is the identity the client expects;
    /// `frame_len` the link frame length of the network.
    pub async fn attach(
        mut stream: libp2p::Stream,
        gateway: &[u8; 32],
        mailbox_key: &SigningKey,
        frame_len: usize,
    ) -> Result<Self, AccessError> {
        let (nonce, claimed) = match read_message::<_, ServerMessage>(&mut stream, 0).await? {
            ServerMessage::Challenge {
                version: ACCESS_VERSION,
                gateway,
                nonce,
            } => (nonce, gateway),
            ServerMessage::Challenge { .. } => {
                return Err(AccessError::Unexpected("gateway speaks another version"));
            }
            ServerMessage::Refused { .. } => return Err(AccessError::Unexpected("refused")),
            _ => return Err(AccessError::Unexpected("expected a challenge")),
        };
        if &claimed != gateway {
            return Err(AccessError::Unexpected("challenge from another gateway"));
        }
        write_message(&mut stream, &hello(mailbox_key, gateway, &nonce), 0).await?;
        match read_message::<_, ServerMessage>(&mut stream, 0).await? {
            ServerMessage::Welcome {
                send_rate,
                cell_len: announced,
            } => {
                if announced as usize != cell_len(frame_len) {
                    return Err(AccessError::Unexpected(
                        "gateway announced another cell length",
                    ));
                }
                Ok(GatewaySession {
                    stream,
                    mailbox: mailbox_id_for(&mailbox_key.verifying_key().to_bytes()),
                    send_rate,
                    cell_len: cell_len(frame_len),
                })
            }
            ServerMessage::Refused { .. } => Err(AccessError::BadSignature),
            _ => Err(AccessError::Unexpected("expected welcome")),
        }
    }

    /// Sends a frame whose first hop is the gateway.
    pub async fn send(&mut self, frame: Vec<u8>) -> Result<(), AccessError> {
        write_message(
            &mut self.stream,
            &ClientMessage::Send { frame },
            self.cell_len,
        )
        .await
    }

    /// Acknowledges `ack` (ids from the previous answer, at most
    /// [`PULL_BATCH`]) and pulls the next batch; returns its real entries.
    pub async fn pull(&mut self, ack: &[[u8; 8]]) -> Result<Vec<Entry>, AccessError> {
        let pull = ClientMessage::Pull {
            ack: padded_ack(ack)?,
        };
        write_message(&mut self.stream, &pull, self.cell_len).await?;
        let mut real = Vec::new();
        for _ in 0..PULL_BATCH {
            match read_message::<_, ServerMessage>(&mut self.stream, self.cell_len).await? {
                ServerMessage::Entry(entry) => {
                    if entry.real {
                        real.push(entry);
                    }
                }
                _ => return Err(AccessError::Unexpected("expected an entry")),
            }
        }
        Ok(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ack: padded_ack(&[[5u8; 8]]).unwrap(),
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
        assert!(padded_ack(&[[0u8; 8]; PULL_BATCH + 1]).is_err());
    }

    #[test]
    fn every_message_after_the_welcome_is_one_cell() {
        let cell = cell_len(2405);
        let frame = ClientMessage::Send {
            frame: vec![0xAB; 2405],
        };
        let pull = ClientMessage::Pull {
            ack: padded_ack(&[]).unwrap(),
        };
        let entry = ServerMessage::Entry(Entry {
            real: false,
            id: [1; 8],
            payload: vec![7; 2048],
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
        let result = futures::executor::block_on(read_message::<_, ClientMessage>(
            &mut short.as_slice(),
            cell,
        ));
        assert!(matches!(result, Err(AccessError::Malformed)));
        let whole = encode(&pull, cell).unwrap();
        let read = futures::executor::block_on(read_message::<_, ClientMessage>(
            &mut whole.as_slice(),
            cell,
        ))
        .unwrap();
        assert_eq!(read, pull);
    }

    #[test]
    fn oversized_messages_are_refused_before_reading() {
        let mut input: &[u8] = &[0xFF, 0xFF, 0xFF, 0xFF];
        let result = futures::executor::block_on(read_message::<_, ClientMessage>(&mut input, 0));
        assert!(matches!(result, Err(AccessError::TooLarge(_))));
    }

    proptest::proptest! {
        /// Hostile bytes never panic the decoders, and a reader expecting
        /// cells accepts nothing but a cell.
        #[test]
        fn decoders_survive_any_input(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..3_000)) {
            let _ = decode::<ClientMessage>(&bytes);
            let _ = decode::<ServerMessage>(&bytes);
            let cell = cell_len(2405);
            for expect in [0, cell] {
                let mut input = bytes.as_slice();
                let read = futures::executor::block_on(
                    read_message::<_, ClientMessage>(&mut input, expect),
                );
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
            frame in proptest::collection::vec(proptest::num::u8::ANY, 2405),
            ids in proptest::collection::vec(proptest::array::uniform8(proptest::num::u8::ANY), 0..=PULL_BATCH),
        ) {
            let cell = cell_len(2405);
            for message in [
                ClientMessage::Send { frame: frame.clone() },
                ClientMessage::Pull { ack: padded_ack(&ids).unwrap() },
            ] {
                let bytes = encode(&message, cell).unwrap();
                proptest::prop_assert_eq!(bytes.len(), 4 + cell);
                let read = futures::executor::block_on(
                    read_message::<_, ClientMessage>(&mut bytes.as_slice(), cell),
                )
                .unwrap();
                proptest::prop_assert_eq!(read, message);
            }
        }
    }
}
