//! `aegis daemon`: a client kept online with its cover schedule, driven
//! through a local socket that only the profile's owner can use.
//!
//! The socket speaks the [control protocol](crate::control), one JSON
//! object per line: every command of the `aegis` program (send, contacts,
//! history, follow) becomes a request, so a command returns at once while
//! the daemon stays online and keeps sending cover whatever the commands
//! do. The socket file is made readable and writable by its owner alone,
//! and a connecting process whose user is not the socket's owner is
//! refused (`SO_PEERCRED`) before it can send a byte.

use std::future::Future;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use crate::api::{Client, EVENT_QUEUE, Event};
use crate::control::{Reply, Request, answer_online, event_reply};

/// Longest request line read from a connection.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another daemon answers on the socket.
    #[error("a daemon for this profile is running already ({0})")]
    Running(PathBuf),
    /// The socket could not be made.
    #[error("socket {path}: {error}")]
    Socket {
        /// Where.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// Binds the daemon's socket at `path`, owner-only. A socket file left by
/// a daemon that died is replaced; one a live daemon answers on is not.
pub async fn bind(path: &Path) -> Result<UnixListener, DaemonError> {
    let socket_error = |error| DaemonError::Socket {
        path: path.to_owned(),
        error,
    };
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(DaemonError::Running(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(socket_error)?;
    }
    let listener = UnixListener::bind(path).map_err(socket_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(socket_error)?;
    Ok(listener)
}

/// Serves the control protocol on `listener` for `client` until
/// `shutdown` completes (or the client stops); closes every connection,
/// removes the socket file and hands the client back (the only handle
/// left, so `Arc::try_unwrap` gives it for [`Client::shutdown`]).
pub async fn serve(
    client: Client,
    mut events: mpsc::Receiver<Event>,
    listener: UnixListener,
    path: &Path,
    shutdown: impl Future<Output = ()>,
) -> Arc<Client> {
    let owner = std::fs::metadata(path).map(|m| m.uid()).ok();
    let client = Arc::new(client);
    let (broadcast_tx, _) = broadcast::channel::<Reply>(EVENT_QUEUE);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                if !same_user(&stream, owner) {
                    tracing::warn!("control connection from another user refused");
                    continue;
                }
                let client = Arc::clone(&client);
                let events = broadcast_tx.subscribe();
                connections.spawn(connection(stream, client, events));
            }
            event = events.recv() => match event {
                // Nobody following is fine: the events are in the history.
                Some(event) => { let _ = broadcast_tx.send(event_reply(event)); }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
    let _ = std::fs::remove_file(path);
    client
}

/// Whether the peer runs as the socket's owner.
fn same_user(stream: &UnixStream, owner: Option<u32>) -> bool {
    match (stream.peer_cred(), owner) {
        (Ok(cred), Some(owner)) => cred.uid() == owner,
        _ => false,
    }
}

/// One connection: requests answered in order; after `follow`, events too.
async fn connection(stream: UnixStream, client: Arc<Client>, events: broadcast::Receiver<Reply>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut following: Option<broadcast::Receiver<Reply>> = None;
    let mut spare = Some(events);
    let mut line = Vec::new();
    loop {
        let event = async {
            match following.as_mut() {
                Some(receiver) => receiver.recv().await,
                None => std::future::pending().await,
            }
        };
        let reply = tokio::select! {
            read = read_line(&mut read, &mut line) => match read {
                Ok(true) => match serde_json::from_slice::<Request>(&line) {
                    Ok(Request::Follow) => {
                        if following.is_none() {
                            following = spare.take();
                        }
                        Reply::Ok { done: "following".into() }
                    }
                    Ok(request) => answer_online(&client, request).await,
                    Err(error) => Reply::Error { message: format!("bad request: {error}") },
                },
                Ok(false) => break,
                Err(message) => Reply::Error { message },
            },
            event = event => match event {
                Ok(reply) => reply,
                Err(broadcast::error::RecvError::Lagged(missed)) => Reply::Lagged { missed },
                Err(broadcast::error::RecvError::Closed) => break,
            },
        };
        let Ok(mut text) = serde_json::to_vec(&reply) else {
            continue;
        };
        text.push(b'\n');
        if write.write_all(&text).await.is_err() {
            break;
        }
    }
}

/// Reads one line (without its end) into `line`; false at the end of the
/// stream. A line longer than [`MAX_REQUEST_LINE`] is an error (the rest
/// of it is skipped).
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    read: &mut R,
    line: &mut Vec<u8>,
) -> Result<bool, String> {
    line.clear();
    let mut too_long = false;
    loop {
        let buffer = read.fill_buf().await.map_err(|e| e.to_string())?;
        if buffer.is_empty() {
            return if line.is_empty() && !too_long {
                Ok(false)
            } else {
                Ok(!too_long)
            };
        }
        let (chunk, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => (&buffer[..end], Some(end + 1)),
            None => (buffer, None),
        };
        if line.len() + chunk.len() > MAX_REQUEST_LINE {
            too_long = true;
            line.clear();
        } else if !too_long {
            line.extend_from_slice(chunk);
        }
        let used = done.unwrap_or(buffer.len());
        read.consume(used);
        if done.is_some() {
            return if too_long {
                Err(format!("request longer than {MAX_REQUEST_LINE} bytes"))
            } else {
                Ok(true)
            };
        }
    }
}

/// A connection to a running daemon.
pub struct Connection {
    read: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    write: tokio::net::unix::OwnedWriteHalf,
}

impl Connection {
    /// Connects to the daemon at `path`; `None` if none is running there.
    pub async fn open(path: &Path) -> Option<Connection> {
        let stream = UnixStream::connect(path).await.ok()?;
        let (read, write) = stream.into_split();
        Some(Connection {
            read: BufReader::new(read).lines(),
            write,
        })
    }

    /// Sends a request.
    pub async fn send(&mut self, request: &Request) -> std::io::Result<()> {
        let mut text = serde_json::to_vec(request).map_err(std::io::Error::other)?;
        text.push(b'\n');
        self.write.write_all(&text).await
    }

    /// The next reply or event; `None` when the daemon closed the
    /// connection.
    pub async fn next(&mut self) -> std::io::Result<Option<Reply>> {
        loop {
            let Some(line) = self.read.next_line().await? else {
                return Ok(None);
            };
            if line.trim().is_empty() {
                continue;
            }
            return serde_json::from_str(&line)
                .map(Some)
                .map_err(std::io::Error::other);
        }
    }

    /// Sends a request and returns the first reply to it (events of a
    /// `follow` before it are skipped).
    pub async fn request(&mut self, request: &Request) -> std::io::Result<Reply> {
        self.send(request).await?;
        self.next().await?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the daemon closed the connection",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_read_whole_and_an_oversized_one_is_refused_without_losing_the_next() {
        let mut input = b"{\"a\":1}\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_REQUEST_LINE + 10));
        input.extend_from_slice(b"\nlast");
        let mut reader = BufReader::with_capacity(1_000, &input[..]);
        let mut line = Vec::new();
        assert_eq!(read_line(&mut reader, &mut line).await, Ok(true));
        assert_eq!(line, b"{\"a\":1}");
        assert!(read_line(&mut reader, &mut line).await.is_err());
        assert_eq!(read_line(&mut reader, &mut line).await, Ok(true));
        assert_eq!(line, b"last");
        assert_eq!(read_line(&mut reader, &mut line).await, Ok(false));
    }
}
