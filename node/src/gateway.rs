//! The gateway role: clients attach with the access protocol, prove that
//! they own their mailbox, send their packets in (rate limited), and pull
//! what their mailbox holds, acknowledging the previous pull with each.
//!
//! A client takes a slot only once its hello verifies; handshakes before
//! that are capped apart ([`max_pending_hellos`]). Limits belong to the
//! mailbox (`aegis_proto::access::Registry`): a second connection for one
//! mailbox replaces the first and inherits its token buckets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aegis_link::access::{SessionError, read_message, write_message};
use aegis_link::{ACCESS_PROTOCOL, Host};
use aegis_mix_packet::MailboxId;
use aegis_mix_packet::access::{
    ACCESS_VERSION, AccessError, ClientMessage, Entry, PULL_BATCH, ServerMessage, cell_len,
    verify_hello,
};
use aegis_proto::access::{self, Registry, Verdict};
use futures::StreamExt as _;
use rand::Rng as _;
use tokio::sync::{oneshot, watch};
use tracing::debug;

use crate::ingress::{IngressQueue, enqueue};
use crate::metrics::{AccessRefusal, Direction, DropReason, NodeMetrics};
use crate::state::{Directory, Me};
use crate::store::NodeStore;
use aegis_proto::Source;

/// A client must say hello within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A client silent for this long is detached.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// What the gateway's access stage reads and writes.
pub struct GatewayStage {
    /// Who the node is (clients prove their mailbox to this id).
    pub me: Me,
    /// The consensus, which sets the clients' send rate.
    pub directory: Arc<Directory>,
    /// The database holding the mailboxes clients pull from.
    pub store: Arc<NodeStore>,
    /// Where refusals, drops and deliveries are counted.
    pub metrics: Arc<NodeMetrics>,
    /// Clients attached at most.
    pub max_clients: usize,
    /// How far above the consensus rate a client may send.
    pub rate_slack: f64,
}

impl GatewayStage {
    /// The rate in packets per second a client may send at, from the newest consensus.
    pub fn client_send_rate(&self) -> f64 {
        let parameters = self
            .directory
            .topologies()
            .latest()
            .map(|t| t.parameters)
            .unwrap_or_else(|| aegis_directory::NetworkParameters::standard(1_200_000));
        access::client_send_rate(&parameters, self.rate_slack)
    }
}

/// Handshakes (streams that have not yet proved a mailbox) in progress at
/// once: at least 16, else an eighth of `max_clients`. They take no client
/// slot, so strangers who never say hello cannot fill the gateway.
pub fn max_pending_hellos(max_clients: usize) -> usize {
    (max_clients / 8).max(16)
}

/// What all sessions of one gateway share.
struct Gate {
    registry: Mutex<Registry<MailboxId>>,
    /// How to end each live session early (when its mailbox reconnects).
    kicks: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    pending: AtomicUsize,
    origin: Instant,
}

impl Gate {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry<MailboxId>> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kicks(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<()>>> {
        self.kicks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves access streams until `shutdown` turns true.
pub async fn run(
    stage: Arc<GatewayStage>,
    host: Host,
    ingress: IngressQueue,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), aegis_link::LinkError> {
    let mut incoming = host.accept(ACCESS_PROTOCOL)?;
    let gate = Arc::new(Gate {
        registry: Mutex::new(Registry::new(stage.max_clients)),
        kicks: Mutex::new(HashMap::new()),
        pending: AtomicUsize::new(0),
        origin: Instant::now(),
    });
    let pending_cap = max_pending_hellos(stage.max_clients);
    loop {
        let (_peer, mut stream) = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            next = incoming.next() => match next {
                Some(s) => s,
                None => return Ok(()),
            },
        };
        if gate.pending.fetch_add(1, Ordering::SeqCst) >= pending_cap {
            gate.pending.fetch_sub(1, Ordering::SeqCst);
            stage.metrics.refuse(AccessRefusal::handshake_limit);
            // Say why, briefly, off the accept loop.
            tokio::spawn(async move {
                let refusal = ServerMessage::Refused {
                    reason: "gateway busy".into(),
                };
                let write = write_message(&mut stream, &refusal, 0);
                let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
            });
            continue;
        }
        let stage = stage.clone();
        let ingress = ingress.clone();
        let gate = gate.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let hello = tokio::select! {
                _ = shutdown.changed() => None,
                hello = handshake(&stage, &mut stream) => Some(hello),
            };
            gate.pending.fetch_sub(1, Ordering::SeqCst);
            let mailbox = match hello {
                Some(Ok(mailbox)) => mailbox,
                Some(Err(error)) => {
                    stage.metrics.refuse(AccessRefusal::bad_hello);
                    debug!(%error, "client handshake failed");
                    return;
                }
                None => return,
            };
            let send_rate = stage.client_send_rate();
            let attached = gate.registry().attach(mailbox, send_rate, gate.now());
            let attached = match attached {
                Ok(attached) => attached,
                Err(error) => {
                    stage.metrics.refuse(AccessRefusal::gateway_full);
                    let refusal = ServerMessage::Refused {
                        reason: error.to_string(),
                    };
                    let _ = write_message(&mut stream, &refusal, 0).await;
                    return;
                }
            };
            let (kick_tx, kick) = oneshot::channel();
            {
                let mut kicks = gate.kicks();
                if let Some(previous) = attached.replaced.and_then(|g| kicks.remove(&g)) {
                    stage.metrics.refuse(AccessRefusal::replaced);
                    let _ = previous.send(());
                }
                kicks.insert(attached.generation, kick_tx);
            }
            stage.metrics.clients.set(gate.registry().attached() as i64);
            let session = Attachment {
                gate: &gate,
                mailbox,
                generation: attached.generation,
            };
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = kick => {}
                result = serve(&stage, &mut stream, &ingress, &session, send_rate) => {
                    if let Err(error) = result {
                        debug!(%error, "client session ended");
                    }
                }
            }
            gate.kicks().remove(&attached.generation);
            gate.registry()
                .detach(&mailbox, attached.generation, gate.now());
            stage.metrics.clients.set(gate.registry().attached() as i64);
        });
    }
}

/// The challenge and the hello: which mailbox the client proves it holds.
async fn handshake(
    stage: &GatewayStage,
    stream: &mut aegis_link::Stream,
) -> Result<MailboxId, SessionError> {
    let mut nonce = [0u8; 32];
    rand::rng().fill_bytes(&mut nonce);
    let gateway = stage.me.id.0;
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
    match hello {
        ClientMessage::Hello {
            mailbox_key,
            signature,
        } => match verify_hello(&gateway, &nonce, &mailbox_key, &signature) {
            Ok(mailbox) => Ok(mailbox),
            Err(error) => {
                let refusal = ServerMessage::Refused {
                    reason: error.to_string(),
                };
                let _ = write_message(stream, &refusal, 0).await;
                Err(error.into())
            }
        },
        _ => Err(AccessError::Unexpected("expected hello").into()),
    }
}

/// One attached session's place in the registry.
struct Attachment<'a> {
    gate: &'a Gate,
    mailbox: MailboxId,
    generation: u64,
}

async fn serve(
    stage: &GatewayStage,
    stream: &mut aegis_link::Stream,
    ingress: &IngressQueue,
    session: &Attachment<'_>,
    send_rate: f64,
) -> Result<(), SessionError> {
    let cell = cell_len(stage.me.geometry.frame_len());
    let welcome = ServerMessage::Welcome {
        send_rate,
        cell_len: cell as u32,
    };
    write_message(stream, &welcome, 0).await?;
    let gate = session.gate;
    let mailbox = session.mailbox;
    loop {
        let message =
            tokio::time::timeout(IDLE_TIMEOUT, read_message::<_, ClientMessage>(stream, cell))
                .await
                .map_err(|_| AccessError::Unexpected("idle"))??;
        match message {
            ClientMessage::Send { frame } => {
                stage.metrics.count_bytes(Direction::received, cell);
                let verdict = gate
                    .registry()
                    .on_send(&mailbox, session.generation, gate.now());
                if frame.len() != stage.me.geometry.frame_len() {
                    stage.metrics.count_drop(DropReason::malformed_frame);
                } else {
                    match verdict {
                        Verdict::Accept => enqueue(&stage.metrics, ingress, Source::Client, frame),
                        Verdict::RateLimited => stage.metrics.count_drop(DropReason::rate_limited),
                        Verdict::Detach(why) => return Err(AccessError::Unexpected(why).into()),
                    }
                }
            }
            ClientMessage::Pull { ack } => {
                let verdict =
                    gate.registry()
                        .on_pull(&mailbox, session.generation, gate.now(), ack.len());
                if let Verdict::Detach(why) = verdict {
                    stage.metrics.count_drop(DropReason::rate_limited);
                    return Err(AccessError::Unexpected(why).into());
                }
                let ids: Vec<u64> = ack.iter().map(|id| u64::from_be_bytes(*id)).collect();
                match stage.store.acknowledge(&mailbox, &ids) {
                    Ok(n) => {
                        stage.metrics.delivered.inc_by(n as u64);
                    }
                    Err(_) => stage.metrics.count_drop(DropReason::store_error),
                }
                for entry in pull(stage, &mailbox)? {
                    write_message(stream, &ServerMessage::Entry(entry), cell).await?;
                    stage.metrics.count_bytes(Direction::sent, cell);
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
fn pull(stage: &GatewayStage, mailbox: &MailboxId) -> Result<Vec<Entry>, AccessError> {
    let (stored, _more) = stage
        .store
        .pull(mailbox, PULL_BATCH)
        .map_err(|_| AccessError::Unexpected("mailbox unavailable"))?;
    stage.metrics.pull_real.observe(stored.len() as f64);
    let stored = stored.into_iter().map(|p| (p.id, p.payload));
    Ok(access::pull_answer(
        &mut rand::rng(),
        stored,
        stage.me.geometry.delivery_len(),
    ))
}
