//! The encrypted profile store: everything a client keeps, sealed on disk.
//!
//! A RocksDB database in which every value is sealed with XChaCha20-Poly1305
//! under a key derived with Argon2id from the user's passphrase, and every
//! record key is replaced by a keyed hash, so the files show neither what is
//! stored nor under which names. Only one small header record is in the
//! clear: the format version, the Argon2id parameters and salt, and a sealed
//! known string that tells a wrong passphrase from a damaged store.
//!
//! ```text
//! master      = Argon2id(passphrase, salt, m, t, p) → 32 bytes
//! seal key    = HKDF-SHA256(master, "aegislink/v1/store/seal")
//! index key   = HKDF-SHA256(master, "aegislink/v1/store/index")
//! record key  = namespace tag (1) ‖ HMAC-SHA256(index key, namespace tag ‖ logical key)
//! record      = nonce (24) ‖ XChaCha20-Poly1305(seal key, nonce,
//!                 AD = "aegislink/v1/store/record" ‖ record key,
//!                 key length (2) ‖ logical key ‖ value) ‖ tag (16)
//! ```
//!
//! Because the on-disk key is the associated data, a value moved to another
//! record does not open; because the logical key is sealed inside, records
//! can be listed per namespace (the tag byte is a prefix) and each listed
//! record is checked against its hashed key. Encrypted backups
//! ([`Store::export_backup`], [`Store::import_backup`]) use a key of their
//! own from a separate passphrase and salt. Formats are in `docs/client.md`.
//!
//! This is the client's IO edge, not a sans-IO core: it reads and writes
//! files and draws salts and nonces from the operating system's generator.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use rocksdb::{DB, DBCompressionType, Direction, IteratorMode, Options, WriteBatch, WriteOptions};
use sha2::Sha256;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::edge::ratchet::{open as aead_open, seal as aead_seal};

mod unlock;

pub mod writer;
pub use unlock::Argon2Params;
use unlock::{Header, Key, expand};

mod backup;

/// Version of the on-disk store format.
pub const STORE_FORMAT_VERSION: u8 = 1;
/// Version of the backup format.
pub const BACKUP_FORMAT_VERSION: u8 = 1;
/// Length of the Argon2id salts of stores and backups.
pub const SALT_LEN: usize = 16;
/// Longest logical record key.
pub const MAX_KEY_LEN: usize = 1024;
/// Largest record value.
pub const MAX_VALUE_LEN: usize = 64 * 1024 * 1024;
/// Largest backup [`Store::import_backup`] reads.
pub const MAX_BACKUP_LEN: usize = 1024 * 1024 * 1024;
/// Magic bytes a backup starts with.
pub const BACKUP_MAGIC: &[u8; 16] = b"AegisLink backup";

/// The header record's key; tag 0 is no namespace, so it is never listed.
const HEADER_KEY: &[u8] = b"\x00aegislink-store-header";

const SEAL_INFO: &[u8] = b"aegislink/v1/store/seal";
const INDEX_INFO: &[u8] = b"aegislink/v1/store/index";
const RECORD_AD: &[u8] = b"aegislink/v1/store/record";
const STORE_KEY_CHECK_AD: &[u8] = b"aegislink/v1/store/key-check";

/// What can go wrong opening, reading or writing a store or a backup.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The passphrase does not open this store.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The backup passphrase does not open this backup.
    #[error("wrong backup passphrase")]
    WrongBackupPassphrase,
    /// There is no store at the path.
    #[error("no store at this path")]
    NotFound,
    /// A store already exists at the path.
    #[error("a store already exists at this path")]
    AlreadyExists,
    /// The store or backup was written by a newer format this client does not read.
    #[error("unsupported {what} format version {version}")]
    UnsupportedVersion {
        /// "store" or "backup".
        what: &'static str,
        /// The version found.
        version: u8,
    },
    /// The plaintext header record is missing or malformed.
    #[error("corrupt store header: {0}")]
    CorruptHeader(&'static str),
    /// A record does not authenticate: it was modified, or moved to another key.
    #[error("a record of the store does not authenticate (modified or moved on disk)")]
    Tampered,
    /// The backup is malformed or its contents do not authenticate.
    #[error("corrupt backup: {0}")]
    CorruptBackup(&'static str),
    /// Argon2id parameters outside the accepted range.
    #[error("invalid Argon2id parameters: {0}")]
    InvalidParams(&'static str),
    /// A logical key longer than [`MAX_KEY_LEN`].
    #[error("record key of {0} bytes is longer than {MAX_KEY_LEN}")]
    KeyTooLong(usize),
    /// A value larger than [`MAX_VALUE_LEN`].
    #[error("value of {0} bytes is larger than {MAX_VALUE_LEN}")]
    ValueTooLarge(usize),
    /// RocksDB reported an error (disk full, permissions, the store is open elsewhere…).
    #[error("database error: {0}")]
    Database(#[from] rocksdb::Error),
}

/// The kinds of record a client keeps; each is listed separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    /// The user's own identity, prekeys and mailbox keys.
    Profile,
    /// Contact cards and names.
    Contacts,
    /// Ratchet sessions.
    Sessions,
    /// Messages waiting to be delivered.
    Outbox,
    /// Received messages and fragments.
    Inbox,
    /// Settings and bookkeeping.
    Meta,
}

impl Namespace {
    /// Every namespace.
    pub const ALL: [Namespace; 6] = [
        Namespace::Profile,
        Namespace::Contacts,
        Namespace::Sessions,
        Namespace::Outbox,
        Namespace::Inbox,
        Namespace::Meta,
    ];

    /// The tag byte that prefixes the namespace's record keys on disk.
    pub const fn tag(self) -> u8 {
        match self {
            Namespace::Profile => 1,
            Namespace::Contacts => 2,
            Namespace::Sessions => 3,
            Namespace::Outbox => 4,
            Namespace::Inbox => 5,
            Namespace::Meta => 6,
        }
    }

    /// The namespace of a tag byte.
    pub fn from_tag(tag: u8) -> Option<Self> {
        Namespace::ALL.into_iter().find(|ns| ns.tag() == tag)
    }
}

/// A logical record key and its value, as read back.
pub type Record = (Vec<u8>, Zeroizing<Vec<u8>>);

enum BatchOp {
    Put(Namespace, Vec<u8>, Zeroizing<Vec<u8>>),
    Delete(Namespace, Vec<u8>),
}

/// Writes to apply together: all of them or none.
#[derive(Default)]
pub struct Batch {
    ops: Vec<BatchOp>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a write of `value` under `key`.
    pub fn put(&mut self, ns: Namespace, key: &[u8], value: &[u8]) -> &mut Self {
        self.ops.push(BatchOp::Put(
            ns,
            key.to_vec(),
            Zeroizing::new(value.to_vec()),
        ));
        self
    }

    /// Adds a deletion of `key`.
    pub fn delete(&mut self, ns: Namespace, key: &[u8]) -> &mut Self {
        self.ops.push(BatchOp::Delete(ns, key.to_vec()));
        self
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Batch({} operations)", self.ops.len())
    }
}

/// An open encrypted store.
pub struct Store {
    db: DB,
    params: Argon2Params,
    seal_key: Key,
    index_key: Key,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

fn db_options(create: bool) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(create);
    opts.set_error_if_exists(create);
    // Sealed values do not compress.
    opts.set_compression_type(DBCompressionType::None);
    opts
}

fn sync_writes() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

fn store_exists(path: &Path) -> bool {
    path.join("CURRENT").exists()
}

impl Store {
    /// Creates a new store at `path` (a directory), protected by `passphrase`.
    pub fn create(
        path: impl AsRef<Path>,
        passphrase: &[u8],
        params: Argon2Params,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref();
        params.validate()?;
        if store_exists(path) {
            return Err(StoreError::AlreadyExists);
        }
        let (header, master) = Header::create(params, passphrase, SEAL_INFO, STORE_KEY_CHECK_AD)?;
        let db = DB::open(&db_options(true), path)?;
        db.put_opt(
            HEADER_KEY,
            header.encode(STORE_FORMAT_VERSION),
            &sync_writes(),
        )?;
        Ok(Store::with_master(db, params, &master))
    }

    /// Opens the store at `path` with `passphrase`.
    pub fn open(path: impl AsRef<Path>, passphrase: &[u8]) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if !store_exists(path) {
            return Err(StoreError::NotFound);
        }
        let db = DB::open(&db_options(false), path)?;
        let bytes = db
            .get(HEADER_KEY)?
            .ok_or(StoreError::CorruptHeader("missing header record"))?;
        let header = Header::decode(&bytes, "store", STORE_FORMAT_VERSION)?;
        let master = header
            .unlock(passphrase, SEAL_INFO, STORE_KEY_CHECK_AD)?
            .ok_or(StoreError::WrongPassphrase)?;
        Ok(Store::with_master(db, header.params, &master))
    }

    fn with_master(db: DB, params: Argon2Params, master: &Key) -> Self {
        Store {
            db,
            params,
            seal_key: expand(master, SEAL_INFO),
            index_key: expand(master, INDEX_INFO),
        }
    }

    /// The Argon2id parameters the store was created with.
    pub fn params(&self) -> Argon2Params {
        self.params
    }

    /// `tag ‖ HMAC(index key, tag ‖ logical key)`.
    fn record_key(&self, ns: Namespace, key: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.index_key[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&[ns.tag()]);
        mac.update(key);
        let mut out = Vec::with_capacity(33);
        out.push(ns.tag());
        out.extend_from_slice(&mac.finalize().into_bytes());
        out
    }

    fn record_ad(record_key: &[u8]) -> Vec<u8> {
        let mut ad = Vec::with_capacity(RECORD_AD.len() + record_key.len());
        ad.extend_from_slice(RECORD_AD);
        ad.extend_from_slice(record_key);
        ad
    }

    fn seal_record(
        &self,
        ns: Namespace,
        key: &[u8],
        value: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        if key.len() > MAX_KEY_LEN {
            return Err(StoreError::KeyTooLong(key.len()));
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(StoreError::ValueTooLarge(value.len()));
        }
        let record_key = self.record_key(ns, key);
        let mut plain = Zeroizing::new(Vec::with_capacity(2 + key.len() + value.len()));
        plain.extend_from_slice(&(key.len() as u16).to_be_bytes());
        plain.extend_from_slice(key);
        plain.extend_from_slice(value);
        let sealed = aead_seal(
            &self.seal_key,
            &mut rand::rng(),
            &Self::record_ad(&record_key),
            &plain,
        );
        Ok((record_key, sealed))
    }

    /// Opens a record read under `record_key`: its logical key and value.
    fn open_record(
        &self,
        ns: Namespace,
        record_key: &[u8],
        sealed: &[u8],
    ) -> Result<Record, StoreError> {
        let plain = aead_open(&self.seal_key, &Self::record_ad(record_key), sealed)
            .ok_or(StoreError::Tampered)?;
        if plain.len() < 2 {
            return Err(StoreError::Tampered);
        }
        let key_len = u16::from_be_bytes([plain[0], plain[1]]) as usize;
        if key_len > MAX_KEY_LEN || plain.len() < 2 + key_len {
            return Err(StoreError::Tampered);
        }
        let key = plain[2..2 + key_len].to_vec();
        // The sealed logical key must hash to the record key it was read from.
        if self.record_key(ns, &key) != record_key {
            return Err(StoreError::Tampered);
        }
        Ok((key, Zeroizing::new(plain[2 + key_len..].to_vec())))
    }

    /// Writes `value` under `key` in `ns`, replacing any previous value.
    pub fn put(&self, ns: Namespace, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let (record_key, sealed) = self.seal_record(ns, key, value)?;
        self.db.put_opt(record_key, sealed, &sync_writes())?;
        Ok(())
    }

    /// Reads the value under `key` in `ns`.
    pub fn get(&self, ns: Namespace, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        if key.len() > MAX_KEY_LEN {
            return Err(StoreError::KeyTooLong(key.len()));
        }
        let record_key = self.record_key(ns, key);
        let Some(sealed) = self.db.get(&record_key)? else {
            return Ok(None);
        };
        let (found, value) = self.open_record(ns, &record_key, &sealed)?;
        if found != key {
            return Err(StoreError::Tampered);
        }
        Ok(Some(value))
    }

    /// Deletes `key` from `ns`; deleting an absent key is not an error.
    pub fn delete(&self, ns: Namespace, key: &[u8]) -> Result<(), StoreError> {
        if key.len() > MAX_KEY_LEN {
            return Err(StoreError::KeyTooLong(key.len()));
        }
        self.db
            .delete_opt(self.record_key(ns, key), &sync_writes())?;
        Ok(())
    }

    /// Pushes deleted records out of the files on disk: the memtable is
    /// flushed and every level compacted, so a deleted value (an erased
    /// prekey, say) no longer sits, sealed, in an older file. Costly on a
    /// large store; call it after deleting secrets.
    pub fn purge_deleted(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.db.compact_range::<&[u8], &[u8]>(None, None);
        Ok(())
    }

    /// Every record of `ns`, ordered by logical key.
    pub fn list(&self, ns: Namespace) -> Result<Vec<Record>, StoreError> {
        let mut records = BTreeMap::new();
        let start = [ns.tag()];
        for item in self
            .db
            .iterator(IteratorMode::From(&start, Direction::Forward))
        {
            let (record_key, sealed) = item?;
            if record_key.first() != Some(&ns.tag()) {
                break;
            }
            let (key, value) = self.open_record(ns, &record_key, &sealed)?;
            records.insert(key, value);
        }
        Ok(records.into_iter().collect())
    }

    /// Applies every operation of `batch` atomically.
    pub fn write_batch(&self, batch: Batch) -> Result<(), StoreError> {
        let mut write = WriteBatch::default();
        for op in &batch.ops {
            match op {
                BatchOp::Put(ns, key, value) => {
                    let (record_key, sealed) = self.seal_record(*ns, key, value)?;
                    write.put(record_key, sealed);
                }
                BatchOp::Delete(ns, key) => {
                    if key.len() > MAX_KEY_LEN {
                        return Err(StoreError::KeyTooLong(key.len()));
                    }
                    write.delete(self.record_key(*ns, key));
                }
            }
        }
        self.db.write_opt(write, &sync_writes())?;
        Ok(())
    }

    /// Every record of every namespace, checked.
    fn all_records(&self) -> Result<Vec<(Namespace, Record)>, StoreError> {
        let mut out = Vec::new();
        for ns in Namespace::ALL {
            for record in self.list(ns)? {
                out.push((ns, record));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
