//! The gateway role: clients attach with the access protocol, prove that
//! they own their mailbox, send their packets in (rate limited), and pull
//! what their mailbox holds, acknowledging the previous pull with each.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aegis_link::access::{SessionError, read_message, write_message};
use aegis_link::{ACCESS_PROTOCOL, Host};
use aegis_mix_packet::MailboxId;
use aegis_mix_packet::access::{
    ACCESS_VERSION, AccessError, ClientMessage, Entry, PULL_BATCH, ServerMessage, cell_len,
    verify_hello,
};
use aegis_proto::access::{self, Verdict};
use futures::StreamExt as _;
use rand::Rng as _;
use tokio::sync::watch;
use tracing::debug;

use crate::ingress::enqueue;
use crate::metrics::DropReason;
use crate::state::Shared;

/// A client must say hello within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A client silent for this long is detached.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The rate in packets per second a client may send at, from the newest consensus.
pub fn client_send_rate(shared: &Shared) -> f64 {
    let parameters = shared
        .topologies()
        .latest()
        .map(|t| t.parameters)
        .unwrap_or_else(|| aegis_directory::NetworkParameters::standard(1_200_000));
    access::client_send_rate(&parameters, shared.config.client_rate_slack)
}

/// Serves access streams until `shutdown` turns true.
pub async fn run(
    shared: Arc<Shared>,
    host: Host,
    ingress: crossbeam_channel::Sender<Vec<u8>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), aegis_link::LinkError> {
    let mut incoming = host.accept(ACCESS_PROTOCOL)?;
    let attached = Arc::new(AtomicUsize::new(0));
    loop {
        let (_peer, stream) = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            next = incoming.next() => match next {
                Some(s) => s,
                None => return Ok(()),
            },
        };
        let shared = shared.clone();
        let ingress = ingress.clone();
        let attached = attached.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            if attached.fetch_add(1, Ordering::SeqCst) >= shared.config.max_clients {
                let refusal = ServerMessage::Refused {
                    reason: "gateway full".into(),
                };
                let _ = write_message(&mut stream, &refusal, 0).await;
            } else {
                shared.metrics.clients.inc();
                tokio::select! {
                    _ = shutdown.changed() => {}
                    result = serve(&shared, &mut stream, &ingress) => {
                        if let Err(error) = result {
                            debug!(%error, "client session ended");
                        }
                    }
                }
                shared.metrics.clients.dec();
            }
            attached.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn serve(
    shared: &Shared,
    stream: &mut aegis_link::Stream,
    ingress: &crossbeam_channel::Sender<Vec<u8>>,
) -> Result<(), SessionError> {
    let mut nonce = [0u8; 32];
    rand::rng().fill_bytes(&mut nonce);
    let gateway = shared.id.0;
    write_message(
        stream,
        &ServerMessage::Challenge {
            version: ACCESS_VERSION,
            gateway,
            nonce,
        },
        0,
    )
    .await?;
    let hello = tokio::time::timeout(HELLO_TIMEOUT, read_message::<_, ClientMessage>(stream, 0))
        .await
        .map_err(|_| AccessError::Unexpected("no hello in time"))??;
    let mailbox = match hello {
        ClientMessage::Hello {
            mailbox_key,
            signature,
        } => match verify_hello(&gateway, &nonce, &mailbox_key, &signature) {
            Ok(mailbox) => mailbox,
            Err(error) => {
                let refusal = ServerMessage::Refused {
                    reason: error.to_string(),
                };
                let _ = write_message(stream, &refusal, 0).await;
                return Err(error.into());
            }
        },
        _ => return Err(AccessError::Unexpected("expected hello").into()),
    };
    let send_rate = client_send_rate(shared);
    let cell = cell_len(shared.geometry.frame_len());
    let welcome = ServerMessage::Welcome {
        send_rate,
        cell_len: cell as u32,
    };
    write_message(stream, &welcome, 0).await?;
    let origin = Instant::now();
    let mut session = access::Session::new(send_rate, origin.elapsed());
    loop {
        let message =
            tokio::time::timeout(IDLE_TIMEOUT, read_message::<_, ClientMessage>(stream, cell))
                .await
                .map_err(|_| AccessError::Unexpected("idle"))??;
        match message {
            ClientMessage::Send { frame } => {
                if frame.len() != shared.geometry.frame_len() {
                    shared.metrics.drop(DropReason::malformed_frame);
                } else if session.on_send(origin.elapsed()) == Verdict::Accept {
                    enqueue(shared, ingress, frame);
                } else {
                    shared.metrics.drop(DropReason::rate_limited);
                }
            }
            ClientMessage::Pull { ack } => {
                if let Verdict::Detach(why) = session.on_pull(origin.elapsed(), ack.len()) {
                    shared.metrics.drop(DropReason::rate_limited);
                    return Err(AccessError::Unexpected(why).into());
                }
                let ids: Vec<u64> = ack.iter().map(|id| u64::from_be_bytes(*id)).collect();
                match shared.store.acknowledge(&mailbox, &ids) {
                    Ok(n) => {
                        shared.metrics.delivered.inc_by(n as u64);
                    }
                    Err(_) => shared.metrics.drop(DropReason::store_error),
                }
                for entry in pull(shared, &mailbox)? {
                    write_message(stream, &ServerMessage::Entry(entry), cell).await?;
                }
            }
            ClientMessage::Hello { .. } => {
                return Err(AccessError::Unexpected("second hello").into());
            }
        }
    }
}

/// A pull answer: the mailbox's oldest packets, padded with dummies to
/// exactly [`PULL_BATCH`] entries.
fn pull(shared: &Shared, mailbox: &MailboxId) -> Result<Vec<Entry>, AccessError> {
    let (stored, _more) = shared
        .store
        .pull(mailbox, PULL_BATCH)
        .map_err(|_| AccessError::Unexpected("mailbox unavailable"))?;
    shared.metrics.pull_real.observe(stored.len() as f64);
    let stored = stored.into_iter().map(|p| (p.id, p.payload));
    Ok(access::pull_answer(
        &mut rand::rng(),
        stored,
        shared.geometry.payload_len,
    ))
}
