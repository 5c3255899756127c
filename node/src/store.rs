//! The node's RocksDB database: Sphinx epoch keys, replay filters and
//! (on a gateway) mailboxes.
//!
//! Column families:
//! * `keys` — epoch (8 bytes, big-endian) → X25519 secret (32 bytes);
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
const CF_FILTERS: &str = "filters";
const CF_MAILBOX: &str = "mailbox";
const CF_META: &str = "meta";
const CF_TAGS: &str = "tags";
const META_NEXT_SEQ: &[u8] = b"next-seq";
const META_ENTRY_KEY: &[u8] = b"entry-id-key";
const HOUR_MS: u64 = 3_600_000;
const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// Stored times below this are hours; above, the Unix milliseconds older
/// databases kept (read as their hour).
const MS_THRESHOLD: u64 = 1_000_000_000;

/// The permutation between internal sequence numbers and the entry ids
/// clients see: 8 Feistel rounds on 32-bit halves, each round function
/// SHA-256(secret ‖ round ‖ half) truncated.
struct EntryIds {
    secret: [u8; 32],
}

impl EntryIds {
    const ROUNDS: u8 = 8;

    fn round(&self, round: u8, half: u32) -> u32 {
        use sha2::Digest as _;
        let digest = sha2::Sha256::new()
            .chain_update(self.secret)
            .chain_update([round])
            .chain_update(half.to_be_bytes())
            .finalize();
        u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
    }

    fn hide(&self, seq: u64) -> u64 {
        let (mut left, mut right) = ((seq >> 32) as u32, seq as u32);
        for i in 0..Self::ROUNDS {
            (left, right) = (right, left ^ self.round(i, right));
        }
        (u64::from(left) << 32) | u64::from(right)
    }

    fn reveal(&self, id: u64) -> u64 {
        let (mut left, mut right) = ((id >> 32) as u32, id as u32);
        for i in (0..Self::ROUNDS).rev() {
            (left, right) = (right ^ self.round(i, left), left);
        }
        (u64::from(left) << 32) | u64::from(right)
    }
}

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
    /// The payload.
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

/// The hour a stored packet arrived.
fn stored_hour(value: &[u8]) -> Option<u64> {
    let head: [u8; 8] = value.get(..8)?.try_into().ok()?;
    let at = u64::from_be_bytes(head);
    Some(if at >= MS_THRESHOLD { at / HOUR_MS } else { at })
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
        let cfs = [CF_KEYS, CF_FILTERS, CF_MAILBOX, CF_META, CF_TAGS]
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

    /// Erases an epoch's key, filter and journal, and compacts them away.
    pub fn erase_epoch(&self, epoch: u64) -> Result<(), StoreError> {
        let key = epoch.to_be_bytes();
        self.db.delete_cf(self.cf(CF_KEYS)?, key)?;
        self.db.delete_cf(self.cf(CF_FILTERS)?, key)?;
        self.db.delete_range_cf(
            self.cf(CF_TAGS)?,
            tag_key(epoch, 0),
            tag_key(epoch.saturating_add(1), 0),
        )?;
        self.compact_away(CF_KEYS)?;
        self.compact_away(CF_FILTERS)?;
        Ok(())
    }

    /// Appends a packet to a mailbox, unless it holds `limits.per_mailbox`
    /// packets already, or it is empty and `limits.mailboxes` others are not.
    pub fn deliver(
        &self,
        mailbox: &MailboxId,
        payload: &[u8],
        now_ms: u64,
        limits: MailboxLimits,
    ) -> Result<(), StoreError> {
        let mut counts = self.lock_counts();
        match counts.get(mailbox) {
            Some(&held) if held >= limits.per_mailbox => return Err(StoreError::MailboxFull),
            None if counts.len() >= limits.mailboxes => {
                return Err(StoreError::TooManyMailboxes);
            }
            _ => {}
        }
        let seq = self.next_entry.fetch_add(1, Ordering::Relaxed);
        let mut value = Vec::with_capacity(8 + payload.len());
        value.extend_from_slice(&(now_ms / HOUR_MS).to_be_bytes());
        value.extend_from_slice(payload);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_MAILBOX)?, mailbox_key(mailbox, seq), value);
        batch.put_cf(
            self.cf(CF_META)?,
            META_NEXT_SEQ,
            seq.saturating_add(1).to_be_bytes(),
        );
        self.db.write(batch)?;
        *counts.entry(*mailbox).or_insert(0) += 1;
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
                id: self.entry_ids.hide(id),
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
            let key = mailbox_key(mailbox, self.entry_ids.reveal(id));
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

    /// Deletes packets stored in an hour wholly before `cutoff_ms` (so a
    /// packet is kept up to an hour past the cutoff); returns how many.
    pub fn expire(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let cf = self.cf(CF_MAILBOX)?;
        let cutoff_hour = cutoff_ms / HOUR_MS;
        let mut doomed = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item?;
            if stored_hour(&value).is_none_or(|hour| hour < cutoff_hour) {
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

    /// Compacts the mailbox column family, which drops the deletion markers
    /// of acknowledged and expired entries and with them their mailbox ids.
    pub fn purge_deleted(&self) -> Result<(), StoreError> {
        self.compact_away(CF_MAILBOX)
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
        for name in [CF_KEYS, CF_FILTERS, CF_MAILBOX, CF_META, CF_TAGS] {
            self.db.flush_cf(self.cf(name)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_mailbox: u32) -> MailboxLimits {
        MailboxLimits {
            per_mailbox,
            mailboxes: 1_000,
        }
    }

    #[test]
    fn a_new_mailbox_past_the_cap_is_refused_and_the_others_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(dir.path()).unwrap();
        let two = MailboxLimits {
            per_mailbox: 10,
            mailboxes: 2,
        };
        let (a, b, c) = (MailboxId([1; 32]), MailboxId([2; 32]), MailboxId([3; 32]));
        store.deliver(&a, b"a", 0, two).unwrap();
        store.deliver(&b, b"b", 0, two).unwrap();
        assert!(matches!(
            store.deliver(&c, b"c", 0, two),
            Err(StoreError::TooManyMailboxes)
        ));
        // Mailboxes already holding packets still take more.
        store.deliver(&a, b"a2", 0, two).unwrap();
        assert_eq!(store.mailbox_totals(), (3, 2));
        // Once one is emptied, a new one fits.
        let (entries, _) = store.pull(&b, 8).unwrap();
        store.acknowledge(&b, &[entries[0].id]).unwrap();
        store.deliver(&c, b"c", 0, two).unwrap();
        assert_eq!(store.mailbox_totals(), (3, 2));
    }

    #[test]
    fn mailboxes_survive_reopen_and_delete_only_on_ack() {
        let dir = tempfile::tempdir().unwrap();
        let a = MailboxId([1; 32]);
        let b = MailboxId([2; 32]);
        {
            let store = NodeStore::open(dir.path()).unwrap();
            for i in 0..5u8 {
                store.deliver(&a, &[i; 10], 1_000, limits(100)).unwrap();
            }
            store.deliver(&b, &[9; 10], 1_000, limits(100)).unwrap();
            let (first, more) = store.pull(&a, 3).unwrap();
            assert_eq!(first.len(), 3);
            assert!(more);
            assert_eq!(first[0].payload, vec![0; 10]);
            // Acking another mailbox's ids deletes nothing.
            assert_eq!(store.acknowledge(&b, &[first[0].id]).unwrap(), 0);
            assert_eq!(store.acknowledge(&a, &[first[0].id]).unwrap(), 1);
            assert_eq!(store.mailbox_totals(), (5, 2));
        }
        let store = NodeStore::open(dir.path()).unwrap();
        assert_eq!(store.mailbox_totals(), (5, 2));
        let (rest, more) = store.pull(&a, 8).unwrap();
        assert_eq!(rest.len(), 4);
        assert!(!more);
        assert_eq!(rest[0].payload, vec![1; 10]);
        // New entries after a restart with an earlier clock still sort last.
        store.deliver(&a, &[7; 10], 0, limits(100)).unwrap();
        let (all, _) = store.pull(&a, 8).unwrap();
        assert_eq!(all.last().unwrap().payload, vec![7; 10]);
    }

    #[test]
    fn limits_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(dir.path()).unwrap();
        let a = MailboxId([1; 32]);
        store.deliver(&a, b"old", 100, limits(2)).unwrap();
        store
            .deliver(&a, b"new", 2 * HOUR_MS + 900, limits(2))
            .unwrap();
        assert!(matches!(
            store.deliver(&a, b"x", 2 * HOUR_MS + 900, limits(2)),
            Err(StoreError::MailboxFull)
        ));
        // Within the arrival hour nothing expires; the hour after, it does.
        assert_eq!(store.expire(HOUR_MS - 1).unwrap(), 0);
        assert_eq!(store.expire(HOUR_MS).unwrap(), 1);
        let (left, _) = store.pull(&a, 8).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].payload, b"new");
        store.deliver(&a, b"again", 900, limits(2)).unwrap();
    }

    #[test]
    fn keys_and_filters_are_erased_with_their_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(dir.path()).unwrap();
        store.put_key(4, &[4; 32]).unwrap();
        store.put_key(5, &[5; 32]).unwrap();
        store.put_filter(4, b"filter").unwrap();
        store.erase_epoch(4).unwrap();
        let keys = store.keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0, 5);
        assert!(store.filter(4).unwrap().is_none());
        // The erased secret is in no file of the database.
        store.flush().unwrap();
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let path = file.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(32).any(|w| w == [4; 32]),
                "{} still holds the erased key",
                path.display()
            );
        }
    }
    #[test]
    fn entry_ids_hide_the_sequence_and_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = MailboxId([1; 32]);
        let first = {
            let store = NodeStore::open(dir.path()).unwrap();
            for i in 0..4u8 {
                store.deliver(&a, &[i], 0, limits(100)).unwrap();
            }
            let (entries, _) = store.pull(&a, 8).unwrap();
            let ids: Vec<u64> = entries.iter().map(|e| e.id).collect();
            // Consecutive arrivals do not get consecutive (or ordered) ids.
            assert!(
                ids.windows(2).all(|w| w[1].abs_diff(w[0]) > 1 << 16),
                "{ids:?}"
            );
            for id in &ids {
                assert_eq!(store.entry_ids.hide(store.entry_ids.reveal(*id)), *id);
            }
            assert_eq!(store.acknowledge(&a, &ids).unwrap(), 4);
            ids
        };
        // Emptied and reopened: the next packet gets an id never seen.
        let store = NodeStore::open(dir.path()).unwrap();
        store.deliver(&a, b"later", 0, limits(100)).unwrap();
        let (entries, _) = store.pull(&a, 8).unwrap();
        assert!(!first.contains(&entries[0].id));
        // A stale acknowledgement of the old ids deletes nothing.
        assert_eq!(store.acknowledge(&a, &first).unwrap(), 0);
        assert_eq!(store.mailbox_totals(), (1, 1));
    }

    #[test]
    fn arrival_is_kept_to_the_hour_and_old_millisecond_records_still_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(dir.path()).unwrap();
        let a = MailboxId([1; 32]);
        let at_ms = 1_700_000_123_456;
        store.deliver(&a, b"new", at_ms, limits(100)).unwrap();
        let (key, value) = store
            .db
            .iterator_cf(store.cf(CF_MAILBOX).unwrap(), IteratorMode::Start)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(value[..8], (at_ms / HOUR_MS).to_be_bytes());
        // A record as older versions wrote it: Unix milliseconds.
        let mut legacy = at_ms.to_be_bytes().to_vec();
        legacy.extend_from_slice(b"old");
        let mut legacy_key = key.to_vec();
        legacy_key[39] ^= 0x80;
        store
            .db
            .put_cf(store.cf(CF_MAILBOX).unwrap(), &legacy_key, legacy)
            .unwrap();
        assert_eq!(store.expire(at_ms).unwrap(), 0);
        assert_eq!(store.expire(at_ms + HOUR_MS).unwrap(), 2);
    }

    #[test]
    fn purged_entries_leave_no_mailbox_id_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(dir.path()).unwrap();
        let gone = MailboxId([0x5a; 32]);
        store.deliver(&gone, b"bye", 0, limits(100)).unwrap();
        store.flush().unwrap();
        let (entries, _) = store.pull(&gone, 8).unwrap();
        store.acknowledge(&gone, &[entries[0].id]).unwrap();
        store.flush().unwrap();
        store.purge_deleted().unwrap();
        // Reopening rewrites the manifest, which named the purged table
        // file's first and last keys.
        drop(store);
        drop(NodeStore::open(dir.path()).unwrap());
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // RocksDB's own text logs name no keys.
            if name.starts_with("LOG") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(32).any(|w| w == gone.0),
                "{name} still holds the mailbox id"
            );
        }
    }
}
