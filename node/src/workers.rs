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

use aegis_mix_packet::{Body, Destination, Processed, open_delivery};
use tokio::sync::mpsc;

use crate::cover::Loops;
use crate::mailbox::{Deposit, Mailboxes};
use crate::metrics::DropReason;
use crate::mixstage::MixItem;
use crate::state::Shared;

/// The most frames a worker processes before handing on what it has.
pub const HANDOFF_BATCH: usize = 8;

/// What the workers need.
pub struct WorkerContext {
    /// Shared node state.
    pub shared: Arc<Shared>,
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
    ingress: crossbeam_channel::Receiver<Vec<u8>>,
    context: Arc<WorkerContext>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    (0..count.max(1))
        .map(|i| {
            let ingress = ingress.clone();
            let context = context.clone();
            std::thread::Builder::new()
                .name(format!("aegis-crypto-{i}"))
                .spawn(move || {
                    let mut batch = Vec::with_capacity(HANDOFF_BATCH);
                    while let Ok(frame) = ingress.recv() {
                        context.handle(&frame, &mut batch);
                        for _ in 1..HANDOFF_BATCH {
                            let Ok(frame) = ingress.try_recv() else {
                                break;
                            };
                            context.handle(&frame, &mut batch);
                        }
                        context.hand_on(&mut batch);
                        context
                            .shared
                            .metrics
                            .ingress_depth
                            .set(ingress.len() as i64);
                    }
                })
        })
        .collect()
}

impl WorkerContext {
    /// Processes one frame; a forward packet joins `batch`.
    pub fn handle(&self, frame: &[u8], batch: &mut Vec<MixItem>) {
        let shared = &self.shared;
        let started = Instant::now();
        let result = shared.keys.process(&shared.geometry, frame);
        shared
            .metrics
            .processing_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Err(error) => shared.metrics.drop(DropReason::of(&error)),
            Ok((
                epoch,
                Processed::Forward {
                    next_hop,
                    delay,
                    packet,
                    ..
                },
            )) => {
                if !shared.topologies().knows(&next_hop) {
                    shared.metrics.drop(DropReason::unknown_next_hop);
                    return;
                }
                batch.push(MixItem {
                    next_hop,
                    epoch,
                    delay,
                    packet,
                });
            }
            Ok((
                _,
                Processed::Final {
                    destination,
                    payload,
                    ..
                },
            )) => self.final_hop(destination, &payload),
        }
    }

    /// Hands the batch to the mixing stage, or drops and counts it.
    pub fn hand_on(&self, batch: &mut Vec<MixItem>) {
        if batch.is_empty() {
            return;
        }
        let items = std::mem::replace(batch, Vec::with_capacity(HANDOFF_BATCH));
        if let Err(refused) = self.mix.try_send(items) {
            let count = match refused {
                mpsc::error::TrySendError::Full(items)
                | mpsc::error::TrySendError::Closed(items) => items.len(),
            };
            self.shared
                .metrics
                .drop_many(DropReason::mix_full, count as u64);
        }
    }

    fn final_hop(&self, destination: Destination, payload: &[u8]) {
        let shared = &self.shared;
        let mailbox = match destination {
            Destination::Drop => {
                shared.metrics.drop(DropReason::drop_cover);
                return;
            }
            Destination::Mailbox(m) => m,
        };
        if mailbox == shared.loop_mailbox {
            match open_delivery(&shared.geometry, &shared.loop_secret, payload) {
                Ok(Body::Loop(id)) => {
                    // Only this node can seal a loop body to its loop key: an
                    // unknown id is one of its own loops, back too late.
                    if self.loops.returned(&id, shared.started.elapsed()) {
                        shared.metrics.cover_returned.inc();
                    }
                }
                _ => shared.metrics.drop(DropReason::bad_packet),
            }
            return;
        }
        if shared.role != aegis_directory::Role::Gateway {
            shared.metrics.drop(DropReason::final_at_mix);
            return;
        }
        match &self.mailboxes {
            Some(mailboxes) => mailboxes.deposit(Deposit {
                mailbox,
                payload: payload.to_vec(),
            }),
            None => shared.metrics.drop(DropReason::final_at_mix),
        }
    }
}
