//! The mailbox stage (gateways): one thread that stores final-hop packets
//! in their mailboxes, fed by the crypto workers through a bounded queue.
//!
//! A RocksDB write can wait on the disk; keeping it off the crypto threads
//! means a slow disk delays deposits, not the unwrapping and forwarding of
//! every other packet. A full queue drops and counts
//! (`mailbox_queue_full`), like every other stage.

use std::sync::Arc;

use aegis_mix_packet::MailboxId;
use tracing::warn;

use crate::metrics::DropReason;
use crate::metrics::NodeMetrics;
use crate::state::now_ms;
use crate::store::{MailboxLimits, NodeStore, StoreError};

/// Deposits waiting for the mailbox thread at most.
pub const DEPOSIT_QUEUE: usize = 4_096;

/// A packet for a mailbox at this gateway.
pub struct Deposit {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// What the owner will pull: the delivery tag and the payload
    /// (`Geometry::delivery_len` bytes).
    pub delivery: Vec<u8>,
}

/// The workers' handle on the mailbox stage.
#[derive(Clone)]
pub struct Mailboxes {
    queue: crossbeam_channel::Sender<Deposit>,
    metrics: Arc<NodeMetrics>,
}

impl Mailboxes {
    /// Hands a deposit to the mailbox thread, or drops and counts it.
    pub fn deposit(&self, deposit: Deposit) {
        if self.queue.try_send(deposit).is_err() {
            self.metrics.count_drop(DropReason::mailbox_queue_full);
        }
    }
}

/// What the mailbox thread owns: the database, the limits, the metrics.
pub struct MailboxStage {
    /// The database holding the mailboxes.
    pub store: Arc<NodeStore>,
    /// Per-mailbox and total limits.
    pub limits: MailboxLimits,
    /// Where stores and drops are counted.
    pub metrics: Arc<NodeMetrics>,
}

/// Starts the mailbox thread; it stores deposits until every handle is dropped.
pub fn spawn(stage: MailboxStage) -> std::io::Result<(Mailboxes, std::thread::JoinHandle<()>)> {
    let (queue, deposits) = crossbeam_channel::bounded::<Deposit>(DEPOSIT_QUEUE);
    let metrics = stage.metrics.clone();
    let thread = std::thread::Builder::new()
        .name("aegis-mailbox".into())
        .spawn(move || {
            while let Ok(deposit) = deposits.recv() {
                stage.store(&deposit);
            }
        })?;
    Ok((Mailboxes { queue, metrics }, thread))
}

impl MailboxStage {
    fn store(&self, deposit: &Deposit) {
        let metrics = &self.metrics;
        match self
            .store
            .deliver(&deposit.mailbox, &deposit.delivery, now_ms(), self.limits)
        {
            Ok(()) => {
                metrics.stored.inc();
            }
            Err(StoreError::MailboxFull) => metrics.count_drop(DropReason::mailbox_full),
            Err(StoreError::TooManyMailboxes) => metrics.count_drop(DropReason::mailboxes_full),
            Err(error) => {
                warn!(%error, "storing a packet failed");
                metrics.count_drop(DropReason::store_error);
            }
        }
    }
}
