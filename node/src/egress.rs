//! Egress: one bounded queue and one writer task per neighbour, each
//! keeping a long-lived mix stream open. A full queue drops the frame and
//! counts it; it never grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_mix_packet::NodeId;
use futures::AsyncWriteExt as _;
use tokio::sync::{mpsc, watch};
use tracing::debug;

use crate::metrics::{Direction, DropReason, NodeMetrics};
use crate::state::Directory;
use aegis_link::Host;
use aegis_link::MIX_PROTOCOL;
use aegis_proto::Backoff;

/// The per-neighbour queues.
pub struct Egress {
    me: NodeId,
    directory: Arc<Directory>,
    metrics: Arc<NodeMetrics>,
    queue_len: usize,
    host: Host,
    queues: Mutex<HashMap<NodeId, mpsc::Sender<Vec<u8>>>>,
    shutdown: watch::Receiver<bool>,
}

impl Egress {
    /// Queues of `queue_len` frames over `host`'s links, to the neighbours
    /// `directory` lists. No packet is ever for this node (`me`) itself:
    /// every hop goes one position on around the cycle of layers.
    pub fn new(
        me: NodeId,
        directory: Arc<Directory>,
        metrics: Arc<NodeMetrics>,
        queue_len: usize,
        host: Host,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Egress {
            me,
            directory,
            metrics,
            queue_len,
            host,
            queues: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// Queues a frame for `next_hop`, or drops and counts it.
    pub fn send(&self, next_hop: NodeId, frame: Vec<u8>) {
        let metrics = &self.metrics;
        if next_hop == self.me {
            metrics.count_drop(DropReason::hop_order);
            return;
        }
        let sender = {
            let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            match queues.get(&next_hop) {
                Some(s) if !s.is_closed() => s.clone(),
                _ => {
                    let Some(entry) = self.directory.topologies().node(&next_hop) else {
                        metrics.count_drop(DropReason::unknown_next_hop);
                        return;
                    };
                    let Some(peer) = self.host.add_node(&entry.id.0, &entry.addresses) else {
                        metrics.count_drop(DropReason::unknown_next_hop);
                        return;
                    };
                    let (tx, rx) = mpsc::channel(self.queue_len);
                    tokio::spawn(writer(
                        self.metrics.clone(),
                        self.host.clone(),
                        peer,
                        rx,
                        self.shutdown.clone(),
                    ));
                    queues.insert(next_hop, tx.clone());
                    tx
                }
            }
        };
        match sender.try_send(frame) {
            Ok(()) => {
                metrics.forwarded.inc();
            }
            Err(_) => metrics.count_drop(DropReason::egress_full),
        }
    }

    /// Frames waiting in all queues together.
    pub fn depth(&self) -> usize {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues
            .values()
            .map(|s| s.max_capacity() - s.capacity())
            .sum()
    }
}

async fn writer(
    metrics: Arc<NodeMetrics>,
    host: Host,
    peer: aegis_link::PeerId,
    mut queue: mpsc::Receiver<Vec<u8>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    // A frame whose write failed is tried once more on the next stream (the
    // failure usually means the neighbour restarted).
    let mut retry: Option<Vec<u8>> = None;
    loop {
        let mut stream = tokio::select! {
            _ = shutdown.changed() => return,
            opened = host.open(peer, MIX_PROTOCOL) => match opened {
                Ok(stream) => stream,
                Err(error) => {
                    debug!(%error, "opening a mix stream failed");
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                    continue;
                }
            },
        };
        backoff.reset();
        metrics.links.inc();
        loop {
            let (frame, retried) = match retry.take() {
                Some(frame) => (Some(frame), true),
                None => (
                    tokio::select! {
                        _ = shutdown.changed() => {
                            let _ = stream.close().await;
                            metrics.links.dec();
                            return;
                        }
                        frame = queue.recv() => frame,
                    },
                    false,
                ),
            };
            let Some(frame) = frame else {
                metrics.links.dec();
                return;
            };
            let mut result = stream.write_all(&frame).await;
            if result.is_ok() && queue.is_empty() {
                result = stream.flush().await;
            }
            if result.is_ok() {
                metrics.count_bytes(Direction::sent, frame.len());
            }
            if result.is_err() {
                if retried {
                    metrics.count_drop(DropReason::link_down);
                } else {
                    retry = Some(frame);
                }
                metrics.links.dec();
                break;
            }
        }
    }
}
