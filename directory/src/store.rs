//! Durable state of an authority in RocksDB: descriptors, votes, signatures
//! and documents, so that a restarted authority rejoins the round it left.
//!
//! Keys are a one-byte kind, the epoch in big-endian (so that a prefix scan
//! walks epochs in order) and, for per-node and per-authority records, the
//! 32-byte key. Values are the canonical encodings.

use std::path::Path;
use std::sync::RwLock;

use rocksdb::{DB, IteratorMode, Options, WriteBatch};

use crate::authority::Record;
use crate::consensus::{DocumentSignature, SignedConsensus};
use crate::descriptor::SignedDescriptor;
use crate::vote::SignedVote;

const DESCRIPTOR: u8 = b'd';
const VOTE: u8 = b'v';
const SIGNATURE: u8 = b's';
const DOCUMENT: u8 = b'c';
const EQUIVOCATION: u8 = b'e';
/// Upper bound on an encoded equivocation proof: two votes.
const MAX_PROOF_BYTES: usize = 2 * crate::constants::MAX_DOCUMENT_BYTES + 16;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    /// The store was closed.
    #[error("store is closed")]
    Closed,
}

/// The authority's RocksDB database.
pub struct Store {
    // An Option so that shutdown can close the database (and release its
    // lock file) even while request handlers still hold the store.
    db: RwLock<Option<DB>>,
}

fn key(kind: u8, epoch: u64, id: Option<&[u8; 32]>) -> Vec<u8> {
    let mut k = Vec::with_capacity(41);
    k.push(kind);
    k.extend_from_slice(&epoch.to_be_bytes());
    if let Some(id) = id {
        k.extend_from_slice(id);
    }
    k
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, path)?;
        Ok(Store {
            db: RwLock::new(Some(db)),
        })
    }

    fn with_db<T>(&self, f: impl FnOnce(&DB) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let guard = self.db.read().map_err(|_| StoreError::Closed)?;
        let db = guard.as_ref().ok_or(StoreError::Closed)?;
        f(db)
    }

    /// Persists one record (overwriting the previous one under its key: a
    /// newer descriptor revision, a document with more signatures).
    pub fn put(&self, record: &Record) -> Result<(), StoreError> {
        let (k, v) = match record {
            Record::Descriptor(d) => (
                key(DESCRIPTOR, d.body.epoch, Some(&d.identity())),
                d.to_bytes(),
            ),
            Record::Vote(v) => (
                key(VOTE, v.body.epoch, Some(&v.body.authority)),
                v.to_bytes(),
            ),
            Record::Signature(s) => (key(SIGNATURE, s.epoch, Some(&s.authority)), s.to_bytes()),
            Record::Document(d) => (key(DOCUMENT, d.body.epoch, None), d.to_bytes()),
            Record::Equivocation(p) => (
                key(EQUIVOCATION, p.epoch(), Some(&p.authority())),
                crate::codec::encode(p),
            ),
        };
        self.with_db(|db| Ok(db.put(k, v)?))
    }

    /// Every stored record, documents first (oldest first), so that a
    /// restored authority knows the previous document before it sees the
    /// round that links to it. Records that no longer decode are skipped
    /// and counted in the second value.
    pub fn load(&self) -> Result<(Vec<Record>, usize), StoreError> {
        self.with_db(|db| {
            let mut records = Vec::new();
            let mut undecodable = 0;
            // Proofs after votes: restoring one leaves its authority's vote
            // out of the round.
            for kind in [DOCUMENT, DESCRIPTOR, VOTE, SIGNATURE, EQUIVOCATION] {
                for item in db.prefix_iterator([kind]) {
                    let (k, v) = item?;
                    if k.first() != Some(&kind) {
                        break;
                    }
                    let record = match kind {
                        DOCUMENT => SignedConsensus::from_bytes(&v).ok().map(Record::Document),
                        DESCRIPTOR => SignedDescriptor::decode(&v).ok().map(Record::Descriptor),
                        VOTE => SignedVote::from_bytes(&v).ok().map(Record::Vote),
                        EQUIVOCATION => crate::codec::decode(&v, MAX_PROOF_BYTES)
                            .ok()
                            .map(|p| Record::Equivocation(Box::new(p))),
                        _ => DocumentSignature::from_bytes(&v)
                            .ok()
                            .map(Record::Signature),
                    };
                    match record {
                        Some(r) => records.push(r),
                        None => undecodable += 1,
                    }
                }
            }
            Ok((records, undecodable))
        })
    }

    /// Deletes descriptors, votes and signatures of rounds before
    /// `round_floor` and documents before `document_floor`.
    pub fn prune(&self, round_floor: u64, document_floor: u64) -> Result<(), StoreError> {
        self.with_db(|db| {
            let mut batch = WriteBatch::default();
            for (kind, floor) in [
                (DESCRIPTOR, round_floor),
                (VOTE, round_floor),
                (SIGNATURE, round_floor),
                (DOCUMENT, document_floor),
            ] {
                let end = key(kind, floor, None);
                for item in db.iterator(IteratorMode::From(&[kind], rocksdb::Direction::Forward)) {
                    let (k, _) = item?;
                    if k.first() != Some(&kind) || *k >= *end {
                        break;
                    }
                    batch.delete(k);
                }
            }
            Ok(db.write(batch)?)
        })
    }

    /// Closes the database; later calls fail with [`StoreError::Closed`].
    pub fn close(&self) {
        if let Ok(mut guard) = self.db.write() {
            guard.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::Role;
    use crate::descriptor::tests::sample;

    #[test]
    fn records_survive_reopening_and_pruning_removes_old_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .put(&Record::Descriptor(sample(1, 3, Role::Mix)))
            .unwrap();
        store
            .put(&Record::Descriptor(sample(2, 5, Role::Mix)))
            .unwrap();
        store.close();
        assert!(matches!(
            store.put(&Record::Descriptor(sample(3, 5, Role::Mix))),
            Err(StoreError::Closed)
        ));
        let store = Store::open(dir.path()).unwrap();
        let (records, bad) = store.load().unwrap();
        assert_eq!((records.len(), bad), (2, 0));
        store.prune(4, 0).unwrap();
        let (records, _) = store.load().unwrap();
        assert!(matches!(&records[..], [Record::Descriptor(d)] if d.body.epoch == 5));
    }
}
