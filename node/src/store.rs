//! The node's RocksDB database: Sphinx epoch keys, replay filters and
//! (on a gateway) mailboxes.
//!
//! Column families:
//! * `keys` — epoch (8 bytes, big-endian) → X25519 secret (32 bytes);
//! * `kem_keys` — epoch → X-Wing seed (32 bytes), for the KEM packet
//!   format: generated apart from the X25519 secret, never derived from it;
//! * `filters` — epoch → serialized replay filter;
//! * `mailbox` — mailbox id (32) ‖ sequence number (8, big-endian) →
//!   stored-at Unix *hour* (8, big-endian) ‖ packet payload;
//! * `meta` — the next sequence number and the secret of the entry-id
//!   permutation;
//! * `tags` — epoch (8) ‖ journal sequence number (8) → replay tag: every
//!   tag recorded since the epoch's filter was last written whole, written
//!   before the packet goes on, so a node killed between snapshots still
//!   refuses replays of what it forwarded.
//!
//! What a gateway keeps about a stored packet is as coarse as its job
//! allows: the hour it arrived (expiry needs no more), and a sequence number
//! that only orders packets. Clients never see that number: the entry id a
//! pull hands out is an 8-round Feistel permutation of it under a secret
//! of this database ([`EntryIds`]), so consecutive ids in one mailbox say
//! nothing about how many packets arrived for others in between.
//!
//! Deleting a key also compacts its column family, so the secret does not
//! linger in an SST file after its epoch ends; [`NodeStore::purge_deleted`]
//! does the same for acknowledged and expired mailbox entries, whose
//! deletion markers would otherwise keep their mailbox ids on disk.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use aegis_mix_packet::MailboxId;
use aegis_mix_packet::constants::REPLAY_TAG_LEN;
use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch};

const CF_KEYS: &str = "keys";
const CF_KEM_KEYS: &str = "kem_keys";
const CF_FILTERS: &str = "filters";
const CF_MAILBOX: &str = "mailbox";
const CF_META: &str = "meta";
const CF_TAGS: &str = "tags";
const COLUMN_FAMILIES: [&str; 6] = [
    CF_KEYS,
    CF_KEM_KEYS,
    CF_FILTERS,
    CF_MAILBOX,
    CF_META,
    CF_TAGS,
];
const META_NEXT_SEQ: &[u8] = b"next-seq";
const META_ENTRY_KEY: &[u8] = b"entry-id-key";
const HOUR_MS: u64 = 3_600_000;
const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// Stored times below this are hours; above, the Unix milliseconds older
/// databases kept (read as their hour).
const MS_THRESHOLD: u64 = 1_000_000_000;

mod mailbox;
use mailbox::{EntryIds, split_mailbox_key};

#[cfg(test)]
mod tests;

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
    /// As many mailboxes hold packets as the gateway keeps.
    #[error("too many mailboxes")]
    TooManyMailboxes,
}

/// An epoch and its stored Sphinx secret.
pub type EpochSecret = (u64, zeroize::Zeroizing<[u8; 32]>);

/// How much a gateway's mailboxes may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxLimits {
    /// Packets one mailbox may hold.
    pub per_mailbox: u32,
    /// Non-empty mailboxes at once.
    pub mailboxes: usize,
}

/// A stored packet handed to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPacket {
    /// The id the owner acknowledges it with.
    pub id: u64,
    /// What the owner pulls: the delivery tag and the payload.
    pub payload: Vec<u8>,
}

/// The node database.
pub struct NodeStore {
    db: DB,
    next_entry: AtomicU64,
    entry_ids: EntryIds,
    /// The next replay-journal sequence number.
    next_tag: AtomicU64,
    /// Packets held per mailbox; rebuilt from the database on open.
    counts: Mutex<HashMap<MailboxId, u32>>,
}

fn tag_key(epoch: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&epoch.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn split_tag_key(key: &[u8]) -> Option<(u64, u64)> {
    let epoch = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
    Some((epoch, seq))
}

fn read_u64(bytes: Option<Vec<u8>>) -> Option<u64> {
    Some(u64::from_be_bytes(bytes?.as_slice().try_into().ok()?))
}

impl NodeStore {
    /// Opens (or creates) the database at `path`. Sequence numbers go on
    /// from the highest ever handed out, so an entry id is never reused.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // The manifest logs each table file's first and last key (mailbox
        // ids, for the mailbox column) until it is rewritten: keep it small
        // so it is, at the latest after this many bytes or at a restart.
        options.set_max_manifest_file_size(MAX_MANIFEST_BYTES);
        let cfs = COLUMN_FAMILIES
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, cfs)?;
        let meta = db.cf_handle(CF_META).ok_or(StoreError::Corrupt(CF_META))?;
        let secret = match db.get_cf(meta, META_ENTRY_KEY)? {
            Some(bytes) => {
                <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| StoreError::Corrupt(CF_META))?
            }
            None => {
                let secret: [u8; 32] = rand::random();
                db.put_cf(meta, META_ENTRY_KEY, secret)?;
                secret
            }
        };
        let next_seq = read_u64(db.get_cf(meta, META_NEXT_SEQ)?).unwrap_or(1);
        let store = NodeStore {
            db,
            next_entry: AtomicU64::new(next_seq),
            entry_ids: EntryIds { secret },
            next_tag: AtomicU64::new(0),
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
        let last_tag = store
            .db
            .iterator_cf(store.cf(CF_TAGS)?, IteratorMode::End)
            .filter_map(Result::ok)
            .filter_map(|(key, _)| split_tag_key(&key).map(|(_, seq)| seq))
            .max();
        // Journal keys sort by epoch first: the highest sequence number may
        // be under any epoch, but few epochs are held.
        if let Some(last) = last_tag {
            store
                .next_tag
                .store(last.saturating_add(1), Ordering::Relaxed);
        }
        Ok(store)
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or(StoreError::Corrupt(name))
    }

    /// Stores an epoch's Sphinx secret.
    pub fn put_key(&self, epoch: u64, secret: &[u8; 32]) -> Result<(), StoreError> {
        self.db
            .put_cf(self.cf(CF_KEYS)?, epoch.to_be_bytes(), secret)?;
        Ok(())
    }

    /// All stored epoch secrets.
    pub fn keys(&self) -> Result<Vec<EpochSecret>, StoreError> {
        self.secrets(CF_KEYS)
    }

    /// Stores an epoch's X-Wing seed (the KEM format's key).
    pub fn put_kem_key(&self, epoch: u64, seed: &[u8; 32]) -> Result<(), StoreError> {
        self.db
            .put_cf(self.cf(CF_KEM_KEYS)?, epoch.to_be_bytes(), seed)?;
        Ok(())
    }

    /// All stored X-Wing seeds, by epoch.
    pub fn kem_keys(&self) -> Result<Vec<EpochSecret>, StoreError> {
        self.secrets(CF_KEM_KEYS)
    }

    fn secrets(&self, name: &'static str) -> Result<Vec<EpochSecret>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(name)?, IteratorMode::Start) {
            let (k, v) = item?;
            let (Ok(epoch), Ok(secret)) = (<[u8; 8]>::try_from(&*k), <[u8; 32]>::try_from(&*v))
            else {
                return Err(StoreError::Corrupt(name));
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

    /// Journals replay tags of `epoch` (one write, not synced: it survives
    /// the process being killed, which is what replay safety needs; a
    /// machine crash may lose the last moments, as with the filter
    /// snapshots).
    pub fn journal_tags(&self, tags: &[(u64, [u8; REPLAY_TAG_LEN])]) -> Result<(), StoreError> {
        if tags.is_empty() {
            return Ok(());
        }
        let cf = self.cf(CF_TAGS)?;
        let first = self
            .next_tag
            .fetch_add(tags.len() as u64, Ordering::Relaxed);
        let mut batch = WriteBatch::default();
        for (i, (epoch, tag)) in tags.iter().enumerate() {
            batch.put_cf(cf, tag_key(*epoch, first + i as u64), tag);
        }
        self.db.write(batch)?;
        Ok(())
    }

    /// The journal's next sequence number: every tag journaled before this
    /// call has a smaller one.
    pub fn journal_mark(&self) -> u64 {
        self.next_tag.load(Ordering::Acquire)
    }

    /// The journaled tags of `epoch`.
    pub fn journaled_tags(&self, epoch: u64) -> Result<Vec<[u8; REPLAY_TAG_LEN]>, StoreError> {
        let cf = self.cf(CF_TAGS)?;
        let start = tag_key(epoch, 0);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
        {
            let (key, value) = item?;
            match split_tag_key(&key) {
                Some((e, _)) if e == epoch => {}
                _ => break,
            }
            let tag = <[u8; REPLAY_TAG_LEN]>::try_from(&*value)
                .map_err(|_| StoreError::Corrupt(CF_TAGS))?;
            out.push(tag);
        }
        Ok(out)
    }

    /// Drops `epoch`'s journaled tags numbered below `mark` (its filter,
    /// written whole since, holds them).
    pub fn trim_journal(&self, epoch: u64, mark: u64) -> Result<(), StoreError> {
        self.db
            .delete_range_cf(self.cf(CF_TAGS)?, tag_key(epoch, 0), tag_key(epoch, mark))?;
        Ok(())
    }

    /// Erases an epoch's keys, filter and journal, and compacts them away.
    pub fn erase_epoch(&self, epoch: u64) -> Result<(), StoreError> {
        let key = epoch.to_be_bytes();
        self.db.delete_cf(self.cf(CF_KEYS)?, key)?;
        self.db.delete_cf(self.cf(CF_KEM_KEYS)?, key)?;
        self.db.delete_cf(self.cf(CF_FILTERS)?, key)?;
        self.db.delete_range_cf(
            self.cf(CF_TAGS)?,
            tag_key(epoch, 0),
            tag_key(epoch.saturating_add(1), 0),
        )?;
        self.compact_away(CF_KEYS)?;
        self.compact_away(CF_KEM_KEYS)?;
        self.compact_away(CF_FILTERS)?;
        Ok(())
    }

    /// Flushes and compacts a whole column family so that deleted records
    /// and their deletion markers leave its files. Forced: by default a
    /// range already at the bottom level is left alone, markers and all.
    fn compact_away(&self, name: &'static str) -> Result<(), StoreError> {
        let cf = self.cf(name)?;
        self.db.flush_cf(cf)?;
        let mut options = rocksdb::CompactOptions::default();
        options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        self.db
            .compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &options);
        Ok(())
    }

    /// Flushes memtables to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        for name in COLUMN_FAMILIES {
            self.db.flush_cf(self.cf(name)?)?;
        }
        Ok(())
    }
}
