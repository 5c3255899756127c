//! The node's Sphinx keys by epoch, shared by the crypto workers.
//!
//! Keys are generated ahead (the descriptor for epoch `e` publishes the keys
//! of `e`, `e + 1` and `e + 2`), written to the database when generated, and
//! each has its own replay filter behind its own lock so workers processing
//! packets of the same epoch contend only for the filter update. Retiring an
//! epoch drops (and zeroises) the private key and its filter in memory and
//! erases both from disk: that deletion is what gives forward secrecy.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use aegis_directory::EpochSphinxKey;
use aegis_directory::constants::SPHINX_KEYS_PER_DESCRIPTOR;
use aegis_mix_packet::{
    Frame, Geometry, PacketError, Processed, ReplayFilter, ReplayLedger, ReplayTag,
    SphinxPublicKey, SphinxSecret, process_hop,
};
use rand::CryptoRng;

use crate::store::{NodeStore, StoreError};

/// One epoch's key pair and replay filter.
pub struct EpochSlot {
    /// The private key (zeroised on drop).
    pub secret: SphinxSecret,
    /// The published public key.
    pub public: SphinxPublicKey,
    /// Tags of the packets processed under this key.
    pub filter: Mutex<ReplayFilter>,
    /// Whether the filter changed since it was last written to disk.
    dirty: AtomicBool,
}

/// Replay-filter sizing.
#[derive(Debug, Clone, Copy)]
pub struct FilterSizing {
    /// Packets one epoch's filter must remember.
    pub capacity: u64,
    /// False-positive rate at that capacity.
    pub fp_rate: f64,
}

/// The keys a node holds, by epoch.
#[derive(Default)]
pub struct KeyRing {
    slots: RwLock<BTreeMap<u64, Arc<EpochSlot>>>,
}

impl KeyRing {
    /// Loads the stored keys and their filters (a key whose filter is
    /// missing or unreadable gets a fresh one, and the event is returned as
    /// the count of such keys).
    pub fn load<R: CryptoRng + ?Sized>(
        store: &NodeStore,
        rng: &mut R,
        sizing: FilterSizing,
    ) -> Result<(Self, usize), StoreError> {
        let ring = KeyRing::default();
        let mut fresh_filters = 0;
        for (epoch, secret) in store.keys()? {
            let stored = store
                .filter(epoch)?
                .and_then(|bytes| ReplayFilter::from_bytes(&bytes).ok());
            // A fresh filter is not on disk yet: the next snapshot writes it.
            let (filter, dirty) = match stored {
                Some(filter) => (filter, false),
                None => {
                    fresh_filters += 1;
                    let filter = ReplayFilter::with_capacity(rng, sizing.capacity, sizing.fp_rate);
                    (filter, true)
                }
            };
            ring.insert(epoch, SphinxSecret::from(*secret), filter, dirty);
        }
        Ok((ring, fresh_filters))
    }

    /// Takes over a slot loaded elsewhere.
    pub fn adopt(&self, epoch: u64, slot: Arc<EpochSlot>) {
        self.write().insert(epoch, slot);
    }

    fn insert(&self, epoch: u64, secret: SphinxSecret, filter: ReplayFilter, dirty: bool) {
        let public = SphinxPublicKey::from(&secret);
        let slot = Arc::new(EpochSlot {
            secret,
            public,
            filter: Mutex::new(filter),
            dirty: AtomicBool::new(dirty),
        });
        self.write().insert(epoch, slot);
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u64, Arc<EpochSlot>>> {
        self.slots.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Arc<EpochSlot>>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes sure keys exist for every epoch in `first..=last`, generating
    /// and storing the missing ones. Returns how many were generated.
    pub fn ensure<R: CryptoRng + ?Sized>(
        &self,
        store: &NodeStore,
        rng: &mut R,
        first: u64,
        last: u64,
        sizing: FilterSizing,
    ) -> Result<usize, StoreError> {
        let mut generated = 0;
        for epoch in first..=last {
            if self.get(epoch).is_some() {
                continue;
            }
            let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
            rng.fill_bytes(bytes.as_mut());
            store.put_key(epoch, &bytes)?;
            let filter = ReplayFilter::with_capacity(rng, sizing.capacity, sizing.fp_rate);
            store.put_filter(epoch, &filter.to_bytes())?;
            self.insert(epoch, SphinxSecret::from(*bytes), filter, false);
            generated += 1;
        }
        Ok(generated)
    }

    /// Drops every epoch before `oldest_kept`, in memory and on disk.
    /// Returns the retired epochs.
    pub fn retire_before(
        &self,
        store: &NodeStore,
        oldest_kept: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let retired: Vec<u64> = {
            let mut slots = self.write();
            let kept = slots.split_off(&oldest_kept);
            let old = std::mem::replace(&mut *slots, kept);
            old.into_keys().collect()
        };
        for &epoch in &retired {
            store.erase_epoch(epoch)?;
        }
        Ok(retired)
    }

    /// Writes every held epoch's filter that changed since it was last
    /// written to the database (a filter is stored whole when its key is
    /// generated, so a key that saw no packet costs nothing here). Returns
    /// how many were written.
    pub fn persist_filters(&self, store: &NodeStore) -> Result<usize, StoreError> {
        let slots: Vec<(u64, Arc<EpochSlot>)> =
            self.read().iter().map(|(e, s)| (*e, s.clone())).collect();
        let mut written = 0;
        for (epoch, slot) in slots {
            if !slot.dirty.swap(false, Ordering::AcqRel) {
                continue;
            }
            let bytes = slot
                .filter
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .to_bytes();
            if let Err(error) = store.put_filter(epoch, &bytes) {
                slot.dirty.store(true, Ordering::Release);
                return Err(error);
            }
            written += 1;
        }
        Ok(written)
    }

    /// The key of `epoch`, if held.
    pub fn get(&self, epoch: u64) -> Option<Arc<EpochSlot>> {
        self.read().get(&epoch).cloned()
    }

    /// The held epochs, oldest first.
    pub fn epochs(&self) -> Vec<u64> {
        self.read().keys().copied().collect()
    }

    /// The public keys a descriptor for `epoch` publishes (`epoch`,
    /// `epoch + 1`, `epoch + 2`), if all are held.
    pub fn published(&self, epoch: u64) -> Option<[EpochSphinxKey; SPHINX_KEYS_PER_DESCRIPTOR]> {
        let slots = self.read();
        let key = |e: u64| {
            slots.get(&e).map(|s| EpochSphinxKey {
                epoch: e,
                key: s.public.to_bytes(),
            })
        };
        Some([key(epoch)?, key(epoch + 1)?, key(epoch + 2)?])
    }

    /// One hop for one frame: decode, pick the frame epoch's key, then
    /// [`process_hop`] with that epoch's replay filter (locked for each look
    /// up and record, not across the unwrap, so workers processing packets
    /// of the same epoch contend only for the filter update).
    pub fn process(
        &self,
        geometry: &Geometry,
        frame: &[u8],
    ) -> Result<(u64, Processed), PacketError> {
        let frame = Frame::decode(geometry, frame)?;
        let slot = self
            .get(frame.epoch)
            .ok_or(PacketError::UnknownEpoch(frame.epoch))?;
        let processed = process_hop(geometry, frame.packet, &slot.secret, &mut SlotLedger(&slot))?;
        Ok((frame.epoch, processed))
    }
}

/// An epoch slot's filter as a hop's replay ledger: locked for each call;
/// a new tag marks the filter for the next snapshot.
struct SlotLedger<'a>(&'a EpochSlot);

impl SlotLedger<'_> {
    fn filter(&self) -> std::sync::MutexGuard<'_, ReplayFilter> {
        self.0.filter.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ReplayLedger for SlotLedger<'_> {
    fn seen(&self, tag: &ReplayTag) -> bool {
        self.filter().contains(tag)
    }

    fn record(&mut self, tag: &ReplayTag) -> bool {
        let fresh = self.filter().check_and_insert(tag);
        if fresh {
            self.0.dirty.store(true, Ordering::Release);
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aegis_mix_packet::{
        Body, Geometry, Hop, HopDelays, LoopId, MailboxId, NodeId, Route, build_mailbox_packet,
    };

    use super::*;

    const G: Geometry = Geometry::STANDARD;
    const SIZING: FilterSizing = FilterSizing {
        capacity: 1_000,
        fp_rate: 1e-6,
    };

    fn frame_for(ring: &KeyRing, epoch: u64, n: u8) -> Vec<u8> {
        let ours = ring.get(epoch).unwrap().public;
        let hops = (0..5)
            .map(|i| Hop {
                node: NodeId([i; 32]),
                sphinx_key: ours,
            })
            .collect();
        let route = Route::new(hops, &G).unwrap();
        let sealing = SphinxPublicKey::from(&SphinxSecret::from([3u8; 32]));
        build_mailbox_packet(
            &mut rand::rng(),
            &G,
            epoch,
            &route,
            &HopDelays::fixed(&[Duration::ZERO; 5]),
            MailboxId([1; 32]),
            &sealing,
            &Body::Loop(LoopId([n; 16])),
        )
        .unwrap()
        .to_frame(&G)
        .unwrap()
    }

    #[test]
    fn only_filters_that_saw_packets_are_written_and_they_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let frame;
        {
            let store = NodeStore::open(dir.path(), 0).unwrap();
            let ring = KeyRing::default();
            assert_eq!(
                ring.ensure(&store, &mut rand::rng(), 7, 9, SIZING).unwrap(),
                3
            );
            // Generated filters are stored with their keys.
            assert_eq!(ring.persist_filters(&store).unwrap(), 0);
            frame = frame_for(&ring, 8, 1);
            ring.process(&G, &frame).unwrap();
            assert!(matches!(
                ring.process(&G, &frame),
                Err(PacketError::Replayed)
            ));
            assert_eq!(ring.persist_filters(&store).unwrap(), 1);
            assert_eq!(ring.persist_filters(&store).unwrap(), 0);
        }
        let store = NodeStore::open(dir.path(), 0).unwrap();
        let (ring, fresh) = KeyRing::load(&store, &mut rand::rng(), SIZING).unwrap();
        assert_eq!((ring.epochs(), fresh), (vec![7, 8, 9], 0));
        assert!(matches!(
            ring.process(&G, &frame),
            Err(PacketError::Replayed)
        ));
        assert_eq!(ring.persist_filters(&store).unwrap(), 0);
    }
}
