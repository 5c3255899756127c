//! The node's RocksDB database: Sphinx epoch keys, replay filters and
//! (on a gateway) mailboxes.
//!
//! Column families:
//! * `keys` — epoch (8 bytes, big-endian) → X25519 secret (32 bytes);
//! * `filters` — epoch → serialized replay filter;
//! * `mailbox` — mailbox id (32) ‖ entry id (8, big-endian) → stored-at
//!   Unix ms (8, big-endian) ‖ packet payload.
//!
//! Deleting a key also compacts its column family, so the secret does not
//! linger in an SST file after its epoch ends.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use aegis_mix_packet::MailboxId;
use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch};

const CF_KEYS: &str = "keys";
const CF_FILTERS: &str = "filters";
const CF_MAILBOX: &str = "mailbox";

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB refused an operation.
    #[error("database: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored record has the wrong shape (disk corruption or a foreign
    /// database); the record is skipped, never trusted.
    #[error("corrupt record in {0}")]
    Corrupt(&'static str),
    /// A mailbox holds as many packets as it may.
    #[error("mailbox full")]
    MailboxFull,
}

/// An epoch and its stored Sphinx secret.
pub type EpochSecret = (u64, zeroize::Zeroizing<[u8; 32]>);

/// A stored packet handed to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPacket {
    /// The id the owner acknowledges it with.
    pub id: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// The node database.
pub struct NodeStore {
    db: DB,
    next_entry: AtomicU64,
    /// Packets held per mailbox; rebuilt from the database on open.
    counts: Mutex<HashMap<MailboxId, u32>>,
}

fn mailbox_key(mailbox: &MailboxId, id: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&mailbox.0);
    k[32..].copy_from_slice(&id.to_be_bytes());
    k
}

fn split_mailbox_key(key: &[u8]) -> Option<(MailboxId, u64)> {
    if key.len() != 40 {
        return None;
    }
    let mut m = [0u8; 32];
    m.copy_from_slice(&key[..32]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&key[32..]);
    Some((MailboxId(m), u64::from_be_bytes(id)))
}

fn stored_at(value: &[u8]) -> Option<u64> {
    let head: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

impl NodeStore {
    /// Opens (or creates) the database at `path`. `now_ms` seeds entry ids so
    /// they keep growing across restarts.
    pub fn open(path: &Path, now_ms: u64) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let cfs = [CF_KEYS, CF_FILTERS, CF_MAILBOX]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, cfs)?;
        let store = NodeStore {
            db,
            next_entry: AtomicU64::new(now_ms.saturating_mul(1_000)),
            counts: Mutex::new(HashMap::new()),
        };
        let mut counts = HashMap::new();
        let mut highest = 0u64;
        for item in store
            .db
            .iterator_cf(store.cf(CF_MAILBOX)?, IteratorMode::Start)
        {
            let (key, _) = item?;
            if let Some((mailbox, id)) = split_mailbox_key(&key) {
                *counts.entry(mailbox).or_insert(0u32) += 1;
                highest = highest.max(id);
            }
        }
        store
            .next_entry
            .fetch_max(highest.saturating_add(1), Ordering::Relaxed);
        *store.lock_counts() = counts;
        Ok(store)
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or(StoreError::Corrupt(name))
    }

    fn lock_counts(&self) -> std::sync::MutexGuard<'_, HashMap<MailboxId, u32>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores an epoch's Sphinx secret.
    pub fn put_key(&self, epoch: u64, secret: &[u8; 32]) -> Result<(), StoreError> {
        self.db
            .put_cf(self.cf(CF_KEYS)?, epoch.to_be_bytes(), secret)?;
        Ok(())
    }

    /// All stored epoch secrets.
    pub fn keys(&self) -> Result<Vec<EpochSecret>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_KEYS)?, IteratorMode::Start) {
            let (k, v) = item?;
            let (Ok(epoch), Ok(secret)) = (<[u8; 8]>::try_from(&*k), <[u8; 32]>::try_from(&*v))
            else {
                return Err(StoreError::Corrupt(CF_KEYS));
            };
            out.push((u64::from_be_bytes(epoch), zeroize::Zeroizing::new(secret)));
        }
        Ok(out)
    }

    /// Stores an epoch's replay filter.
    pub fn put_filter(&self, epoch: u64, filter: &[u8]) -> Result<(), StoreError> {
        self.db
            .put_cf(self.cf(CF_FILTERS)?, epoch.to_be_bytes(), filter)?;
        Ok(())
    }

    /// An epoch's stored replay filter.
    pub fn filter(&self, epoch: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_FILTERS)?, epoch.to_be_bytes())?)
    }

    /// Erases an epoch's key and filter, and compacts them away.
    pub fn erase_epoch(&self, epoch: u64) -> Result<(), StoreError> {
        let key = epoch.to_be_bytes();
        self.db.delete_cf(self.cf(CF_KEYS)?, key)?;
        self.db.delete_cf(self.cf(CF_FILTERS)?, key)?;
        self.db
            .compact_range_cf(self.cf(CF_KEYS)?, None::<&[u8]>, None::<&[u8]>);
        self.db
            .compact_range_cf(self.cf(CF_FILTERS)?, None::<&[u8]>, None::<&[u8]>);
        Ok(())
    }

    /// Appends a packet to a mailbox, unless it holds `limit` packets already.
    pub fn deliver(
        &self,
        mailbox: &MailboxId,
        payload: &[u8],
        now_ms: u64,
        limit: u32,
    ) -> Result<(), StoreError> {
        let mut counts = self.lock_counts();
        let count = counts.entry(*mailbox).or_insert(0);
        if *count >= limit {
            return Err(StoreError::MailboxFull);
        }
        let id = self.next_entry.fetch_add(1, Ordering::Relaxed);
        let mut value = Vec::with_capacity(8 + payload.len());
        value.extend_from_slice(&now_ms.to_be_bytes());
        value.extend_from_slice(payload);
        self.db
            .put_cf(self.cf(CF_MAILBOX)?, mailbox_key(mailbox, id), value)?;
        *count += 1;
        Ok(())
    }

    /// Up to `max` packets of a mailbox, oldest first, and whether more wait.
    pub fn pull(
        &self,
        mailbox: &MailboxId,
        max: usize,
    ) -> Result<(Vec<StoredPacket>, bool), StoreError> {
        let start = mailbox_key(mailbox, 0);
        let iter = self.db.iterator_cf(
            self.cf(CF_MAILBOX)?,
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (key, value) = item?;
            let Some((owner, id)) = split_mailbox_key(&key) else {
                continue;
            };
            if owner != *mailbox {
                break;
            }
            if out.len() == max {
                return Ok((out, true));
            }
            if value.len() < 8 {
                continue;
            }
            out.push(StoredPacket {
                id,
                payload: value[8..].to_vec(),
            });
        }
        Ok((out, false))
    }

    /// Deletes acknowledged packets of one mailbox; unknown ids are ignored.
    /// Returns how many were deleted.
    pub fn acknowledge(&self, mailbox: &MailboxId, ids: &[u64]) -> Result<usize, StoreError> {
        let cf = self.cf(CF_MAILBOX)?;
        let mut counts = self.lock_counts();
        let mut batch = WriteBatch::default();
        let mut deleted = 0;
        for &id in ids {
            let key = mailbox_key(mailbox, id);
            if self.db.get_pinned_cf(cf, key)?.is_some() {
                batch.delete_cf(cf, key);
                deleted += 1;
            }
        }
        self.db.write(batch)?;
        if let Some(count) = counts.get_mut(mailbox) {
            *count = count.saturating_sub(deleted as u32);
            if *count == 0 {
                counts.remove(mailbox);
            }
        }
        Ok(deleted)
    }

    /// Deletes packets stored before `cutoff_ms`; returns how many.
    pub fn expire(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let cf = self.cf(CF_MAILBOX)?;
        let mut doomed = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item?;
            if stored_at(&value).is_none_or(|at| at < cutoff_ms) {
                doomed.push(key);
            }
        }
        let mut counts = self.lock_counts();
        let mut batch = WriteBatch::default();
        for key in &doomed {
            batch.delete_cf(cf, key);
            if let Some((mailbox, _)) = split_mailbox_key(key)
                && let Some(count) = counts.get_mut(&mailbox)
            {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&mailbox);
                }
            }
        }
        self.db.write(batch)?;
        Ok(doomed.len())
    }

    /// Packets stored in all mailboxes, and the number of non-empty mailboxes.
    pub fn mailbox_totals(&self) -> (u64, u64) {
        let counts = self.lock_counts();
        (
            counts.values().map(|&c| u64::from(c)).sum(),
            counts.len() as u64,
        )
    }

    /// Flushes memtables to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        for name in [CF_KEYS, CF_FILTERS, CF_MAILBOX] {
            self.db.flush_cf(self.cf(name)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_survive_reopen_and_delete_only_on_ack() {
        let dir = tempfile::tempdir().unwrap();
        let a = MailboxId([1; 32]);
        let b = MailboxId([2; 32]);
        {
            let store = NodeStore::open(dir.path(), 1_000).unwrap();
            for i in 0..5u8 {
                store.deliver(&a, &[i; 10], 1_000, 100).unwrap();
            }
            store.deliver(&b, &[9; 10], 1_000, 100).unwrap();
            let (first, more) = store.pull(&a, 3).unwrap();
            assert_eq!(first.len(), 3);
            assert!(more);
            assert_eq!(first[0].payload, vec![0; 10]);
            // Acking another mailbox's ids deletes nothing.
            assert_eq!(store.acknowledge(&b, &[first[0].id]).unwrap(), 0);
            assert_eq!(store.acknowledge(&a, &[first[0].id]).unwrap(), 1);
            assert_eq!(store.mailbox_totals(), (5, 2));
        }
        let store = NodeStore::open(dir.path(), 500).unwrap();
        assert_eq!(store.mailbox_totals(), (5, 2));
        let (rest, more) = store.pull(&a, 8).unwrap();
        assert_eq!(rest.len(), 4);
        assert!(!more);
        assert_eq!(rest[0].payload, vec![1; 10]);
        // New entries after a restart with an earlier clock still sort last.
        store.deliver(&a, &[7; 10], 2_000, 100).unwrap();
        let (all, _) = store.pull(&a, 8).unwrap();
        assert_eq!(all.last().unwrap().payload, vec![7; 10]);
    }

    #[test]
    fn limits_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(dir.path(), 0).unwrap();
        let a = MailboxId([1; 32]);
        store.deliver(&a, b"old", 100, 2).unwrap();
        store.deliver(&a, b"new", 900, 2).unwrap();
        assert!(matches!(
            store.deliver(&a, b"x", 900, 2),
            Err(StoreError::MailboxFull)
        ));
        assert_eq!(store.expire(500).unwrap(), 1);
        let (left, _) = store.pull(&a, 8).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].payload, b"new");
        store.deliver(&a, b"again", 900, 2).unwrap();
    }

    #[test]
    fn keys_and_filters_are_erased_with_their_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(dir.path(), 0).unwrap();
        store.put_key(4, &[4; 32]).unwrap();
        store.put_key(5, &[5; 32]).unwrap();
        store.put_filter(4, b"filter").unwrap();
        store.erase_epoch(4).unwrap();
        let keys = store.keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0, 5);
        assert!(store.filter(4).unwrap().is_none());
    }
}
