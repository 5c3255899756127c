//! Crypto workers: one thread per core takes frames from the ingress queue,
//! processes the hop (epoch key, header MAC, replay filter, unwrap) and
//! hands forward packets to the mixing stage, final-hop packets to the
//! mailbox stage (gateway) or the loop-cover counter.
//!
//! While more frames are queued, a worker goes on with them and hands the
//! forward packets on together, up to [`HANDOFF_BATCH`] at a time: one wake
//! of the mixing stage then serves several packets instead of one. A packet
//! waits for at most the rest of its batch (under load only: a worker with
//! an empty queue hands on at once).

use std::sync::Arc;
use std::time::Instant;

use aegis_mix_packet::constants::{DELIVERY_TAG_LEN, REPLAY_TAG_LEN};
use aegis_mix_packet::{Body, Destination, Processed, join_delivery, open_delivery};
use tokio::sync::mpsc;

use aegis_proto::{Next, Source};

use crate::cover::Loops;
use crate::ingress::Inbound;
use crate::keys::KeyRing;
use crate::mailbox::{Deposit, Mailboxes};
use crate::metrics::{DropReason, NodeMetrics};
use crate::mixstage::MixItem;
use crate::state::{Clock, Directory, LoopKeys, Me};
use crate::store::NodeStore;

/// The most frames a worker processes before handing on what it has.
pub const HANDOFF_BATCH: usize = 8;

/// What a worker's frames produced, held until their replay tags are
/// journaled: no packet leaves the worker before the tag that would refuse
/// its replay is on disk.
#[derive(Default)]
pub struct Batch {
    forward: Vec<MixItem>,
    finals: Vec<(Destination, [u8; DELIVERY_TAG_LEN], Vec<u8>)>,
    tags: Vec<(u64, [u8; REPLAY_TAG_LEN])>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.forward.is_empty() && self.finals.is_empty() && self.tags.is_empty()
    }
}

/// What the workers need.
pub struct WorkerContext {
    /// Who the node is.
    pub me: Me,
    /// The consensus (hop order, known next hops) and the epoch clock.
    pub directory: Arc<Directory>,
    /// The Sphinx keys and replay filters.
    pub keys: Arc<KeyRing>,
    /// The database, for the replay-tag journal only.
    pub journal: Arc<NodeStore>,
    /// Where drops and timings are counted.
    pub metrics: Arc<NodeMetrics>,
    /// The node's loop cover keys.
    pub loop_keys: Arc<LoopKeys>,
    /// The node's monotonic time.
    pub clock: Clock,
    /// Where forward packets go, a batch at a time.
    pub mix: mpsc::Sender<Vec<MixItem>>,
    /// Loop cover awaiting return.
    pub loops: Arc<Loops>,
    /// The mailbox stage (gateways only).
    pub mailboxes: Option<Mailboxes>,
}

/// Starts `count` worker threads reading `ingress` until it closes.
pub fn spawn(
    count: usize,
    ingress: crossbeam_channel::Receiver<Inbound>,
    context: Arc<WorkerContext>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    (0..count.max(1))
        .map(|i| {
            let ingress = ingress.clone();
            let context = context.clone();
            std::thread::Builder::new()
                .name(format!("aegis-crypto-{i}"))
                .spawn(move || {
                    let mut batch = Batch::default();
                    while let Ok(inbound) = ingress.recv() {
                        context.handle(&inbound, &mut batch);
                        for _ in 1..HANDOFF_BATCH {
                            let Ok(inbound) = ingress.try_recv() else {
                                break;
                            };
                            context.handle(&inbound, &mut batch);
                        }
                        context.hand_on(&mut batch);
                        context.metrics.ingress_depth.set(ingress.len() as i64);
                    }
                })
        })
        .collect()
}

impl WorkerContext {
    /// Whether the hop keeps its place in the packet epoch's layers (the
    /// newest held document stands in for one not fetched yet); counts a
    /// drop if not.
    fn in_order(&self, epoch: u64, source: Source, next: Next) -> bool {
        let topology = {
            let held = self.directory.topologies();
            held.get(epoch).or_else(|| held.latest())
        };
        let ok = topology.is_some_and(|t| t.check_hop(&self.me.id, source, next).is_ok());
        if !ok {
            self.metrics.count_drop(DropReason::hop_order);
        }
        ok
    }

    /// Processes one frame; what it produces joins `batch`.
    pub fn handle(&self, inbound: &Inbound, batch: &mut Batch) {
        let metrics = &self.metrics;
        let started = Instant::now();
        let epochs = self
            .directory
            .schedule()
            .map(|s| s.key_epochs_at(crate::state::now_ms()))
            .unwrap_or_default();
        let result = self
            .keys
            .process(&self.me.geometry, &inbound.frame, &epochs, &mut batch.tags);
        metrics
            .processing_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Err(error) => metrics.count_drop(DropReason::of(&error)),
            Ok((
                epoch,
                Processed::Forward {
                    next_hop,
                    delay,
                    delay_capped,
                    packet,
                },
            )) => {
                if delay_capped {
                    metrics.delay_capped.inc();
                }
                if !self.directory.topologies().knows(&next_hop) {
                    metrics.count_drop(DropReason::unknown_next_hop);
                    return;
                }
                if !self.in_order(epoch, inbound.source, Next::Forward(next_hop)) {
                    return;
                }
                batch.forward.push(MixItem {
                    next_hop,
                    delay,
                    packet,
                });
            }
            Ok((
                epoch,
                Processed::Final {
                    destination,
                    delivery_tag,
                    payload,
                },
            )) => {
                if self.in_order(epoch, inbound.source, Next::Final) {
                    batch.finals.push((destination, delivery_tag, payload));
                }
            }
        }
    }

    /// Journals the batch's replay tags, then delivers its final-hop
    /// packets and hands its forward packets to the mixing stage. If the
    /// journal cannot be written, nothing of the batch goes on (it is
    /// dropped and counted): forwarding it would let it be replayed after
    /// a crash.
    pub fn hand_on(&self, batch: &mut Batch) {
        if batch.is_empty() {
            return;
        }
        let Batch {
            forward,
            finals,
            tags,
        } = std::mem::take(batch);
        if let Err(error) = self.journal.journal_tags(&tags) {
            tracing::warn!(%error, "journaling replay tags failed");
            self.metrics.drop_many(
                DropReason::store_error,
                (forward.len() + finals.len()) as u64,
            );
            return;
        }
        for (destination, tag, payload) in finals {
            self.final_hop(destination, &tag, &payload);
        }
        if forward.is_empty() {
            return;
        }
        let items = forward;
        if let Err(refused) = self.mix.try_send(items) {
            let count = match refused {
                mpsc::error::TrySendError::Full(items)
                | mpsc::error::TrySendError::Closed(items) => items.len(),
            };
            self.metrics.drop_many(DropReason::mix_full, count as u64);
        }
    }

    fn final_hop(&self, destination: Destination, tag: &[u8; DELIVERY_TAG_LEN], payload: &[u8]) {
        let metrics = &self.metrics;
        let mailbox = match destination {
            Destination::Drop => {
                metrics.count_drop(DropReason::drop_cover);
                return;
            }
            Destination::Mailbox(m) => m,
        };
        if mailbox == self.loop_keys.mailbox {
            match open_delivery(&self.me.geometry, &self.loop_keys.secret, payload) {
                Ok(Body::Loop(id)) => {
                    // Only this node can seal a loop body to its loop key: an
                    // unknown id is one of its own loops, back too late.
                    if self.loops.returned(&id, self.clock.now()) {
                        metrics.cover_returned.inc();
                    }
                }
                _ => metrics.count_drop(DropReason::bad_packet),
            }
            return;
        }
        if self.me.role != aegis_directory::Role::Gateway {
            metrics.count_drop(DropReason::final_at_mix);
            return;
        }
        match &self.mailboxes {
            Some(mailboxes) => mailboxes.deposit(Deposit {
                mailbox,
                delivery: join_delivery(tag, payload),
            }),
            None => metrics.count_drop(DropReason::final_at_mix),
        }
    }
}
