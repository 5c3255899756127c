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
use crate::state::{Shared, now_ms};
use crate::store::{MailboxLimits, StoreError};

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
    shared: Arc<Shared>,
}

impl Mailboxes {
    /// Hands a deposit to the mailbox thread, or drops and counts it.
    pub fn deposit(&self, deposit: Deposit) {
        if self.queue.try_send(deposit).is_err() {
            self.shared.metrics.drop(DropReason::mailbox_queue_full);
        }
    }
}

/// Starts the mailbox thread; it stores deposits until every handle is dropped.
pub fn spawn(shared: Arc<Shared>) -> std::io::Result<(Mailboxes, std::thread::JoinHandle<()>)> {
    let (queue, deposits) = crossbeam_channel::bounded::<Deposit>(DEPOSIT_QUEUE);
    let stage = shared.clone();
    let thread = std::thread::Builder::new()
        .name("aegis-mailbox".into())
        .spawn(move || {
            while let Ok(deposit) = deposits.recv() {
                store(&stage, &deposit);
            }
        })?;
    Ok((Mailboxes { queue, shared }, thread))
}

fn store(shared: &Shared, deposit: &Deposit) {
    match shared.store.deliver(
        &deposit.mailbox,
        &deposit.delivery,
        now_ms(),
        MailboxLimits {
            per_mailbox: shared.config.mailbox_limit,
            mailboxes: shared.config.max_mailboxes,
        },
    ) {
        Ok(()) => {
            shared.metrics.stored.inc();
        }
        Err(StoreError::MailboxFull) => shared.metrics.drop(DropReason::mailbox_full),
        Err(StoreError::TooManyMailboxes) => shared.metrics.drop(DropReason::mailboxes_full),
        Err(error) => {
            warn!(%error, "storing a packet failed");
            shared.metrics.drop(DropReason::store_error);
        }
    }
}
