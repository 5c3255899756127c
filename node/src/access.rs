//! The access protocol between a client and its gateway.
//!
//! A client opens one libp2p stream with [`ACCESS_PROTOCOL`] to its gateway.
//! The gateway speaks first with a [`ServerMessage::Challenge`]; the client
//! answers with [`ClientMessage::Hello`], proving with an Ed25519 signature
//! over the challenge that it holds the key its mailbox id is derived from.
//! After that the client may send packets (frames whose first hop is this
//! gateway), pull its mailbox, and acknowledge what it pulled.
//!
//! Every pull is answered with exactly [`PULL_BATCH`] entries, real packets
//! first and random dummies after them, so the size of the answer says
//! nothing about how much was waiting. A packet leaves the mailbox only when
//! the client acknowledges it.
//!
//! Messages are `length (4 bytes, big-endian) ‖ postcard encoding`, at most
//! [`MAX_ACCESS_MESSAGE`] bytes, decoded strictly (trailing bytes refused).

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
/// Largest access message in bytes (a full pull answer is about 17 KiB).
pub const MAX_ACCESS_MESSAGE: usize = 64 * 1024;
/// Version of this protocol, sent in the challenge.
pub const ACCESS_VERSION: u16 = 1;

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
    /// Asks for the next [`PULL_BATCH`] entries of the mailbox.
    Pull,
    /// Deletes pulled packets. Clients pad the list with random ids to
    /// [`PULL_BATCH`] so its size does not tell how many were real; unknown
    /// ids are ignored.
    Ack {
        /// Entry ids (big-endian) from earlier pull answers, at most [`PULL_BATCH`].
        ids: Vec<[u8; 8]>,
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
    },
    /// The session is refused or ended; the stream closes after this.
    Refused {
        /// Why, for the user.
        reason: String,
    },
    /// The answer to a pull: exactly [`PULL_BATCH`] entries.
    Batch {
        /// Real entries first, then dummies.
        entries: Vec<Entry>,
        /// Whether more packets are waiting after these.
        more: bool,
    },
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

/// Strict postcard decoding: the whole input, nothing left over.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AccessError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        _ => Err(AccessError::Malformed),
    }
}

/// Writes one length-prefixed message.
pub async fn write_message<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    message: &T,
) -> Result<(), AccessError> {
    let bytes = postcard::to_stdvec(message).map_err(|_| AccessError::Malformed)?;
    if bytes.len() > MAX_ACCESS_MESSAGE {
        return Err(AccessError::TooLarge(bytes.len()));
    }
    writer
        .write_all(&(bytes.len() as u32).to_be_bytes())
        .await?;
    writer.write_all(&bytes).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads one length-prefixed message, refusing oversized ones before
/// reading them.
pub async fn read_message<R: AsyncRead + Unpin, T: DeserializeOwned>(
    reader: &mut R,
) -> Result<T, AccessError> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_ACCESS_MESSAGE {
        return Err(AccessError::TooLarge(len));
    }
    let mut bytes = vec![0u8; len];
    reader.read_exact(&mut bytes).await?;
    decode(&bytes)
}

/// A client's attached session with its gateway.
pub struct GatewaySession {
    stream: libp2p::Stream,
    /// The mailbox this session may read.
    pub mailbox: MailboxId,
    /// Packets per second the gateway accepts from this client.
    pub send_rate: f64,
}

impl GatewaySession {
    /// Attaches over an opened access stream: answers the challenge with the
    /// mailbox key. `gateway` is the identity the client expects.
    pub async fn attach(
        mut stream: libp2p::Stream,
        gateway: &[u8; 32],
        mailbox_key: &SigningKey,
    ) -> Result<Self, AccessError> {
        let (nonce, claimed) = match read_message::<_, ServerMessage>(&mut stream).await? {
            ServerMessage::Challenge {
                version: ACCESS_VERSION,
                gateway,
                nonce,
            } => (nonce, gateway),
            ServerMessage::Refused { .. } => return Err(AccessError::Unexpected("refused")),
            _ => return Err(AccessError::Unexpected("expected a challenge")),
        };
        if &claimed != gateway {
            return Err(AccessError::Unexpected("challenge from another gateway"));
        }
        write_message(&mut stream, &hello(mailbox_key, gateway, &nonce)).await?;
        match read_message::<_, ServerMessage>(&mut stream).await? {
            ServerMessage::Welcome { send_rate } => Ok(GatewaySession {
                stream,
                mailbox: mailbox_id_for(&mailbox_key.verifying_key().to_bytes()),
                send_rate,
            }),
            ServerMessage::Refused { .. } => Err(AccessError::BadSignature),
            _ => Err(AccessError::Unexpected("expected welcome")),
        }
    }

    /// Sends a frame whose first hop is the gateway.
    pub async fn send(&mut self, frame: Vec<u8>) -> Result<(), AccessError> {
        write_message(&mut self.stream, &ClientMessage::Send { frame }).await
    }

    /// Pulls the next batch: the real entries, and whether more wait.
    pub async fn pull(&mut self) -> Result<(Vec<Entry>, bool), AccessError> {
        write_message(&mut self.stream, &ClientMessage::Pull).await?;
        match read_message::<_, ServerMessage>(&mut self.stream).await? {
            ServerMessage::Batch { entries, more } => {
                if entries.len() != PULL_BATCH {
                    return Err(AccessError::Malformed);
                }
                Ok((entries.into_iter().filter(|e| e.real).collect(), more))
            }
            _ => Err(AccessError::Unexpected("expected a batch")),
        }
    }

    /// Acknowledges entries (padded with random ids to a fixed count).
    pub async fn ack(&mut self, ids: &[[u8; 8]]) -> Result<(), AccessError> {
        for chunk in ids.chunks(PULL_BATCH) {
            let mut padded = chunk.to_vec();
            while padded.len() < PULL_BATCH {
                let mut id = [0u8; 8];
                rand::Rng::fill_bytes(&mut rand::rng(), &mut id);
                padded.push(id);
            }
            write_message(&mut self.stream, &ClientMessage::Ack { ids: padded }).await?;
        }
        Ok(())
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
        let bytes = postcard::to_stdvec(&ClientMessage::Pull).unwrap();
        assert_eq!(
            decode::<ClientMessage>(&bytes).unwrap(),
            ClientMessage::Pull
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode::<ClientMessage>(&longer).is_err());
        assert!(decode::<ClientMessage>(&[0xFF]).is_err());
        assert!(decode::<ClientMessage>(&[]).is_err());
    }

    #[test]
    fn oversized_messages_are_refused_before_reading() {
        let mut input: &[u8] = &[0xFF, 0xFF, 0xFF, 0xFF];
        let result = futures::executor::block_on(read_message::<_, ClientMessage>(&mut input));
        assert!(matches!(result, Err(AccessError::TooLarge(_))));
    }
}
