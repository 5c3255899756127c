//! Access-protocol IO: reading and writing cells on a stream, and the
//! client's side of a session with its gateway.
//!
//! The messages, their strict codec and the ownership proof are
//! [`aegis_mix_packet::access`]; this module only moves their bytes.

use aegis_mix_packet::MailboxId;
use aegis_mix_packet::access::{
    ACCESS_VERSION, AccessError, ClientMessage, Entry, PULL_BATCH, ServerMessage, cell_len,
    check_length, decode, encode, hello, mailbox_id_for, padded_ack,
};
use ed25519_dalek::SigningKey;
use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use serde::{Serialize, de::DeserializeOwned};

/// Failures of an access stream.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The stream failed or closed.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something the protocol does not allow.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The gateway refused the session.
    #[error("the gateway refused the session: {0}")]
    Refused(String),
}

/// Writes one message, zero-padded to `pad_to` bytes (0: unpadded), in a
/// single write so it travels as one piece.
pub async fn write_message<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    message: &T,
    pad_to: usize,
) -> Result<(), SessionError> {
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
) -> Result<T, SessionError> {
    let mut prefix = [0u8; 4];
    reader.read_exact(&mut prefix).await?;
    let len = check_length(prefix, cell)?;
    let mut bytes = vec![0u8; len];
    reader.read_exact(&mut bytes).await?;
    Ok(decode(&bytes)?)
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
    ) -> Result<Self, SessionError> {
        let unexpected = |what| SessionError::Access(AccessError::Unexpected(what));
        let (nonce, claimed) = match read_message::<_, ServerMessage>(&mut stream, 0).await? {
            ServerMessage::Challenge {
                version: ACCESS_VERSION,
                gateway,
                nonce,
            } => (nonce, gateway),
            ServerMessage::Challenge { .. } => {
                return Err(unexpected("gateway speaks another version"));
            }
            ServerMessage::Refused { reason } => return Err(SessionError::Refused(reason)),
            _ => return Err(unexpected("expected a challenge")),
        };
        if &claimed != gateway {
            return Err(unexpected("challenge from another gateway"));
        }
        write_message(&mut stream, &hello(mailbox_key, gateway, &nonce), 0).await?;
        match read_message::<_, ServerMessage>(&mut stream, 0).await? {
            ServerMessage::Welcome {
                send_rate,
                cell_len: announced,
            } => {
                if announced as usize != cell_len(frame_len) {
                    return Err(unexpected("gateway announced another cell length"));
                }
                Ok(GatewaySession {
                    stream,
                    mailbox: mailbox_id_for(&mailbox_key.verifying_key().to_bytes()),
                    send_rate,
                    cell_len: cell_len(frame_len),
                })
            }
            ServerMessage::Refused { reason } => Err(SessionError::Refused(reason)),
            _ => Err(unexpected("expected welcome")),
        }
    }

    /// Sends a frame whose first hop is the gateway.
    pub async fn send(&mut self, frame: Vec<u8>) -> Result<(), SessionError> {
        write_message(
            &mut self.stream,
            &ClientMessage::Send { frame },
            self.cell_len,
        )
        .await
    }

    /// Acknowledges `ack` (ids from the previous answer, at most
    /// [`PULL_BATCH`]) and pulls the next batch; returns its real entries.
    pub async fn pull(&mut self, ack: &[[u8; 8]]) -> Result<Vec<Entry>, SessionError> {
        let pull = ClientMessage::Pull {
            ack: padded_ack(&mut rand::rng(), ack)?,
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
                _ => {
                    return Err(SessionError::Access(AccessError::Unexpected(
                        "expected an entry",
                    )));
                }
            }
        }
        Ok(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_expecting_cells_reads_a_cell_and_refuses_other_lengths() {
        let cell = cell_len(aegis_mix_packet::Geometry::STANDARD.frame_len());
        let pull = ClientMessage::Pull {
            ack: padded_ack(&mut rand::rng(), &[]).unwrap(),
        };
        let whole = encode(&pull, cell).unwrap();
        let read: ClientMessage =
            futures::executor::block_on(read_message(&mut whole.as_slice(), cell)).unwrap();
        assert_eq!(read, pull);
        let short = encode(&pull, 0).unwrap();
        let refused = futures::executor::block_on(read_message::<_, ClientMessage>(
            &mut short.as_slice(),
            cell,
        ));
        assert!(matches!(
            refused,
            Err(SessionError::Access(AccessError::Malformed))
        ));
        let mut oversized: &[u8] = &[0xFF, 0xFF, 0xFF, 0xFF];
        let refused =
            futures::executor::block_on(read_message::<_, ClientMessage>(&mut oversized, 0));
        assert!(matches!(
            refused,
            Err(SessionError::Access(AccessError::TooLarge(_)))
        ));
    }
}
