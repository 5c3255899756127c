//! The gateway role: clients attach with the access protocol, prove that
//! they own their mailbox, send their packets in (rate limited), and pull
//! what their mailbox holds, acknowledging the previous pull with each.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aegis_mix_packet::MailboxId;
use futures::StreamExt as _;
use rand::Rng as _;
use tokio::sync::watch;
use tracing::debug;

use crate::access::{
    ACCESS_PROTOCOL, ACCESS_VERSION, AccessError, ClientMessage, Entry, PULL_BATCH, ServerMessage,
    cell_len, read_message, verify_hello, write_message,
};
use crate::ingress::enqueue;
use crate::links::Host;
use crate::metrics::DropReason;
use crate::state::Shared;

/// A client must say hello within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A client silent for this long is detached.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Pulls a client may make per second (bursts of ten).
const PULL_RATE: f64 = 20.0;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
/// Time is passed in.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: f64, now: Duration) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Duration) -> bool {
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The rate in packets per second a client may send at.
pub fn client_send_rate(shared: &Shared) -> f64 {
    let parameters = shared
        .topologies()
        .latest()
        .map(|t| t.parameters)
        .unwrap_or_else(|| aegis_directory::NetworkParameters::standard(1_200_000));
    (parameters.lambda_p + parameters.lambda_l + parameters.lambda_d)
        * shared.config.client_rate_slack
}

/// Serves access streams until `shutdown` turns true.
pub async fn run(
    shared: Arc<Shared>,
    host: Host,
    ingress: crossbeam_channel::Sender<Vec<u8>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
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
    stream: &mut libp2p::Stream,
    ingress: &crossbeam_channel::Sender<Vec<u8>>,
) -> Result<(), AccessError> {
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
                return Err(error);
            }
        },
        _ => return Err(AccessError::Unexpected("expected hello")),
    };
    let send_rate = client_send_rate(shared);
    let cell = cell_len(shared.geometry.frame_len());
    let welcome = ServerMessage::Welcome {
        send_rate,
        cell_len: cell as u32,
    };
    write_message(stream, &welcome, 0).await?;
    let origin = Instant::now();
    let mut sends = TokenBucket::new(send_rate, send_rate * 10.0, origin.elapsed());
    let mut pulls = TokenBucket::new(PULL_RATE, 10.0, origin.elapsed());
    loop {
        let message =
            tokio::time::timeout(IDLE_TIMEOUT, read_message::<_, ClientMessage>(stream, cell))
                .await
                .map_err(|_| AccessError::Unexpected("idle"))??;
        match message {
            ClientMessage::Send { frame } => {
                if frame.len() != shared.geometry.frame_len() {
                    shared.metrics.drop(DropReason::malformed_frame);
                } else if !sends.take(origin.elapsed()) {
                    shared.metrics.drop(DropReason::rate_limited);
                } else {
                    enqueue(shared, ingress, frame);
                }
            }
            ClientMessage::Pull { ack } => {
                if ack.len() != PULL_BATCH {
                    return Err(AccessError::Unexpected("a pull acknowledges a whole batch"));
                }
                if !pulls.take(origin.elapsed()) {
                    // Answering would let a client read the store as fast
                    // as it likes; an honest client never pulls this fast.
                    shared.metrics.drop(DropReason::rate_limited);
                    return Err(AccessError::Unexpected("pulls too fast"));
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
            ClientMessage::Hello { .. } => return Err(AccessError::Unexpected("second hello")),
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
    let mut rng = rand::rng();
    let mut entries: Vec<Entry> = stored
        .into_iter()
        .map(|p| Entry {
            real: true,
            id: p.id.to_be_bytes(),
            payload: p.payload,
        })
        .collect();
    while entries.len() < PULL_BATCH {
        let mut payload = vec![0u8; shared.geometry.payload_len];
        rng.fill_bytes(&mut payload);
        entries.push(Entry {
            real: false,
            id: rng.next_u64().to_be_bytes(),
            payload,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_rate_and_burst_only() {
        let t = |ms: u64| Duration::from_millis(ms);
        let mut bucket = TokenBucket::new(10.0, 5.0, t(0));
        assert_eq!((0..8).filter(|_| bucket.take(t(0))).count(), 5);
        // 10/s refills one token per 100 ms.
        assert!(!bucket.take(t(50)));
        assert!(bucket.take(t(150)));
        assert!(!bucket.take(t(160)));
        // Long idle refills only up to the burst.
        assert_eq!((0..20).filter(|_| bucket.take(t(60_000))).count(), 5);
        // Time going backwards grants nothing.
        assert!(!bucket.take(t(1_000)));
    }
}
