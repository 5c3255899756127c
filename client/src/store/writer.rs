//! A writer thread for the store: records whose writing must not hold up
//! the caller (the client's outbox and inbox snapshots, written after every
//! packet that changes them) are handed to one thread that writes them in
//! order, each with the store's synced write. The caller's loop — the
//! client's emission schedule — never waits for the disk, so when a packet
//! leaves does not depend on whether its kind makes the outbox change.
//!
//! Successive snapshots of one record that queue up while the disk is
//! busy are coalesced: only the newest is written. [`Writer::finish`]
//! writes what is queued and stops the thread.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use zeroize::Zeroizing;

use super::{Namespace, Store};

/// The newest value queued for each record, by namespace tag and key.
type Pending = BTreeMap<(u8, Vec<u8>), (Namespace, Zeroizing<Vec<u8>>)>;

enum Job {
    Put(Namespace, Vec<u8>, Zeroizing<Vec<u8>>),
    Finish,
}

/// Writes records on a thread of its own.
pub struct Writer {
    jobs: Sender<Job>,
    thread: Option<JoinHandle<()>>,
    failed: Arc<AtomicU64>,
    /// For writing in place if the thread could not be started.
    store: Arc<Store>,
}

impl Writer {
    /// A writer for `store`.
    pub fn start(store: Arc<Store>) -> Writer {
        let (jobs, queue) = channel();
        let failed = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&failed);
        let own = Arc::clone(&store);
        let thread = std::thread::Builder::new()
            .name("aegis-store-writer".into())
            .spawn(move || write_all(&own, &queue, &count))
            .ok();
        Writer {
            jobs,
            thread,
            failed,
            store,
        }
    }

    /// Writes that failed so far (the store's error each time; the record
    /// keeps its previous value).
    pub fn failures(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Queues `value` to be written under `key` in `ns` and returns at
    /// once (without a thread, it writes in place).
    pub fn put(&self, ns: Namespace, key: &[u8], value: Vec<u8>) {
        let value = Zeroizing::new(value);
        if self.thread.is_none() {
            self.write_here(ns, key, &value);
            return;
        }
        if let Err(std::sync::mpsc::SendError(Job::Put(ns, key, value))) =
            self.jobs.send(Job::Put(ns, key.to_vec(), value))
        {
            self.write_here(ns, &key, &value);
        }
    }

    fn write_here(&self, ns: Namespace, key: &[u8], value: &[u8]) {
        if self.store.put(ns, key, value).is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes what is queued, stops the thread, and returns how many
    /// writes failed in all.
    pub fn finish(mut self) -> u64 {
        let _ = self.jobs.send(Job::Finish);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.failures()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.jobs.send(Job::Finish);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: takes every job queued, keeps the newest value per record,
/// writes them, until told to finish (or the writer is gone).
fn write_all(store: &Store, queue: &Receiver<Job>, failed: &AtomicU64) {
    let mut finish = false;
    while !finish {
        let Ok(first) = queue.recv() else { break };
        let mut batch = Pending::new();
        for job in std::iter::once(first).chain(queue.try_iter()) {
            match job {
                Job::Put(ns, key, value) => {
                    batch.insert((ns.tag(), key), (ns, value));
                }
                Job::Finish => finish = true,
            }
        }
        for ((_, key), (ns, value)) in batch {
            if store.put(ns, &key, &value).is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Argon2Params;

    #[test]
    fn queued_writes_land_newest_last_and_finish_waits_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::create(dir.path().join("s"), b"pw", Argon2Params::insecure_fast()).unwrap(),
        );
        let writer = Writer::start(Arc::clone(&store));
        for i in 0..500u32 {
            writer.put(Namespace::Meta, b"counter", i.to_be_bytes().to_vec());
            writer.put(
                Namespace::Outbox,
                format!("k{}", i % 7).as_bytes(),
                vec![i as u8; 3],
            );
        }
        assert_eq!(writer.finish(), 0);
        let get = |ns, key: &[u8]| store.get(ns, key).unwrap().unwrap().to_vec();
        assert_eq!(get(Namespace::Meta, b"counter"), 499u32.to_be_bytes());
        for k in 0..7u32 {
            let last = (0..500u32).filter(|i| i % 7 == k).max().unwrap();
            assert_eq!(
                get(Namespace::Outbox, format!("k{k}").as_bytes()),
                vec![last as u8; 3]
            );
        }
    }
}
