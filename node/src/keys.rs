//! The node's epoch keys, shared by the crypto workers.
//!
//! Each epoch has an X25519 key (the Sphinx format) and, when the network
//! runs the KEM format, an X-Wing key generated apart from it (its own seed
//! from the system's random source, stored in its own column). Keys are
//! generated ahead (the descriptor for epoch `e` publishes the keys
//! of `e`, `e + 1` and `e + 2`), written to the database when generated, and
//! each has its own replay filter behind its own lock so workers processing
//! packets of the same epoch contend only for the filter update. Retiring an
//! epoch drops (and zeroises) the private key and its filter in memory and
//! erases both from disk: that deletion is what gives forward secrecy.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use aegis_directory::constants::SPHINX_KEYS_PER_DESCRIPTOR;
use aegis_directory::{EpochKemKey, EpochSphinxKey};
use aegis_mix_packet::constants::REPLAY_TAG_LEN;
use aegis_mix_packet::kem::HybridSecret;
use aegis_mix_packet::{
    Frame, Geometry, PacketError, PacketFormat, Peeled, Processed, ReplayFilter, ReplayLedger,
    ReplayTag, SphinxPublicKey, SphinxSecret, open_with_any,
};
use rand::CryptoRng;

use crate::store::{NodeStore, StoreError};

/// One epoch's key pair and replay filter.
pub struct EpochSlot {
    /// The private key (zeroised on drop).
    pub secret: SphinxSecret,
    /// The published public key.
    pub public: SphinxPublicKey,
    /// The X-Wing key of the KEM format, once generated (zeroised on drop).
    pub kem: OnceLock<HybridSecret>,
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
    /// Bytes one filter may grow to when more packets than `capacity`
    /// arrive (a flood of valid packets): its share of the memory cap.
    pub max_bytes: u64,
}

/// Epochs whose keys and filters a node holds at once: the previous one
/// (packets in flight), the current one and [`KEYS_AHEAD`] to come.
pub const EPOCHS_HELD: u64 = KEYS_AHEAD + 2;
/// Epochs ahead for which keys exist (descriptors for epoch + 2 publish
/// keys up to epoch + 4).
pub const KEYS_AHEAD: u64 = 4;

impl FilterSizing {
    /// The false-positive rate every filter is built for.
    pub const FP_RATE: f64 = 1e-6;

    /// Filters for `line_rate` packets/s over two epochs of `epoch_secs`
    /// (a key is used for its own epoch and, for packets in flight, a little
    /// beyond), shrunk if [`EPOCHS_HELD`] of them would need more than
    /// `max_mb` MiB together: the memory a node commits stays under its
    /// operator's cap whatever epoch length it is told. Each may grow
    /// (more slices, see `ReplayFilter`) up to its share of the cap.
    pub fn for_epoch(line_rate: u64, epoch_secs: f64, max_mb: u64) -> Self {
        let wanted = (line_rate as f64 * epoch_secs * 2.0).ceil();
        let ln2 = std::f64::consts::LN_2;
        let bytes_per_entry = -Self::FP_RATE.ln() / (ln2 * ln2) / 8.0;
        let budget = (max_mb as f64 * 1_048_576.0) / EPOCHS_HELD as f64;
        let affordable = (budget / bytes_per_entry).floor();
        FilterSizing {
            capacity: wanted.min(affordable).max(1.0) as u64,
            fp_rate: Self::FP_RATE,
            max_bytes: budget as u64,
        }
    }

    /// Bytes one filter of this sizing takes.
    pub fn bytes(&self) -> u64 {
        let ln2 = std::f64::consts::LN_2;
        (self.capacity as f64 * -self.fp_rate.ln() / (ln2 * ln2) / 8.0).ceil() as u64
    }
}

/// The keys a node holds, by epoch.
#[derive(Default)]
pub struct KeyRing {
    slots: RwLock<BTreeMap<u64, Arc<EpochSlot>>>,
}

impl KeyRing {
    /// Loads the stored keys and their filters (a key whose filter is
    /// missing or unreadable gets a fresh one, and the event is returned as
    /// the count of such keys). An X-Wing seed without its epoch's X25519
    /// key (an erasure cut short) is erased now.
    pub fn load<R: CryptoRng + ?Sized>(
        store: &NodeStore,
        rng: &mut R,
        sizing: FilterSizing,
    ) -> Result<(Self, usize), StoreError> {
        let ring = KeyRing::default();
        let mut fresh_filters = 0;
        let mut kem: BTreeMap<u64, HybridSecret> = store
            .kem_keys()?
            .into_iter()
            .map(|(epoch, seed)| (epoch, HybridSecret::from_seed(&seed)))
            .collect();
        for (epoch, secret) in store.keys()? {
            let stored = store
                .filter(epoch)?
                .and_then(|bytes| ReplayFilter::from_bytes(&bytes).ok());
            // A fresh filter is not on disk yet: the next snapshot writes it.
            let (filter, dirty) = match stored {
                Some(filter) => (filter, false),
                None => {
                    fresh_filters += 1;
                    let filter = ReplayFilter::with_limit(
                        rng,
                        sizing.capacity,
                        sizing.fp_rate,
                        sizing.max_bytes,
                    );
                    (filter, true)
                }
            };
            // Tags journaled since the filter was last written whole.
            let mut filter = filter;
            let journaled = store.journaled_tags(epoch)?;
            for tag in &journaled {
                filter.check_and_insert(&ReplayTag(*tag));
            }
            let dirty = dirty || !journaled.is_empty();
            let slot = ring.insert(epoch, SphinxSecret::from(*secret), filter, dirty);
            if let Some(kem) = kem.remove(&epoch) {
                let _ = slot.kem.set(kem);
            }
        }
        for orphan in kem.into_keys() {
            store.erase_epoch(orphan)?;
        }
        Ok((ring, fresh_filters))
    }

    /// Takes over a slot loaded elsewhere.
    pub fn adopt(&self, epoch: u64, slot: Arc<EpochSlot>) {
        self.write().insert(epoch, slot);
    }

    fn insert(
        &self,
        epoch: u64,
        secret: SphinxSecret,
        filter: ReplayFilter,
        dirty: bool,
    ) -> Arc<EpochSlot> {
        let public = SphinxPublicKey::from(&secret);
        let slot = Arc::new(EpochSlot {
            secret,
            public,
            kem: OnceLock::new(),
            filter: Mutex::new(filter),
            dirty: AtomicBool::new(dirty),
        });
        self.write().insert(epoch, slot.clone());
        slot
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u64, Arc<EpochSlot>>> {
        self.slots.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Arc<EpochSlot>>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes sure keys exist for every epoch in `first..=last`, generating
    /// and storing the missing ones: the X25519 key always, the X-Wing key
    /// too for the KEM `format` (also for an epoch whose X25519 key was
    /// made while the node ran the Sphinx format). Returns how many epochs
    /// got a key.
    pub fn ensure<R: CryptoRng + ?Sized>(
        &self,
        store: &NodeStore,
        rng: &mut R,
        first: u64,
        last: u64,
        sizing: FilterSizing,
        format: PacketFormat,
    ) -> Result<usize, StoreError> {
        let mut generated = 0;
        for epoch in first..=last {
            let slot = match self.get(epoch) {
                Some(slot) if format == PacketFormat::Sphinx || slot.kem.get().is_some() => {
                    continue;
                }
                Some(slot) => slot,
                None => {
                    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
                    rng.fill_bytes(bytes.as_mut());
                    store.put_key(epoch, &bytes)?;
                    let filter = ReplayFilter::with_limit(
                        rng,
                        sizing.capacity,
                        sizing.fp_rate,
                        sizing.max_bytes,
                    );
                    store.put_filter(epoch, &filter.to_bytes())?;
                    self.insert(epoch, SphinxSecret::from(*bytes), filter, false)
                }
            };
            if format == PacketFormat::Kem {
                let kem = HybridSecret::random(rng);
                store.put_kem_key(epoch, kem.seed())?;
                let _ = slot.kem.set(kem);
            }
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
            // Every tag journaled before this mark is already in the filter
            // (tags are recorded before they are journaled), so the
            // snapshot makes those journal entries redundant.
            let mark = store.journal_mark();
            let bytes = slot
                .filter
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .to_bytes();
            if let Err(error) = store.put_filter(epoch, &bytes) {
                slot.dirty.store(true, Ordering::Release);
                return Err(error);
            }
            store.trim_journal(epoch, mark)?;
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

    /// Held epochs whose replay filter is past its sized capacity.
    pub fn saturated_filters(&self) -> usize {
        self.read()
            .values()
            .filter(|s| {
                s.filter
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_saturated()
            })
            .count()
    }

    /// Bytes the replay filters of all held epochs take together.
    pub fn filter_bytes(&self) -> u64 {
        self.read()
            .values()
            .map(|s| {
                s.filter
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .size_bytes() as u64
            })
            .sum()
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

    /// The X-Wing public keys a descriptor for `epoch` publishes, if all
    /// three are held.
    pub fn published_kem(&self, epoch: u64) -> Option<Vec<EpochKemKey>> {
        let slots = self.read();
        (epoch..epoch + SPHINX_KEYS_PER_DESCRIPTOR as u64)
            .map(|e| {
                let kem = slots.get(&e)?.kem.get()?;
                Some(EpochKemKey {
                    epoch: e,
                    key: kem.public().as_bytes().to_vec(),
                })
            })
            .collect()
    }

    /// One hop for one frame: decode, try the keys of `epochs` this ring
    /// holds in that order ([`open_with_any`]), with the replay filter of the
    /// epoch whose key opened the packet (locked for each look up and
    /// record, not across the unwrap, so workers processing packets of the
    /// same epoch contend only for the filter update).
    /// A newly recorded tag is appended to `recorded` with its epoch: the
    /// caller journals it before the packet goes on.
    pub fn process(
        &self,
        geometry: &Geometry,
        frame: &[u8],
        epochs: &[u64],
        recorded: &mut Vec<(u64, [u8; REPLAY_TAG_LEN])>,
    ) -> Result<(u64, Processed), PacketError> {
        let frame = Frame::decode(geometry, frame)?;
        let slots: Vec<(u64, Arc<EpochSlot>)> = {
            let held = self.read();
            epochs
                .iter()
                .filter_map(|e| held.get(e).map(|s| (*e, Arc::clone(s))))
                .collect()
        };
        let (epoch, peeled) = open_held(geometry, frame.packet, &slots)?;
        let slot = slots
            .iter()
            .find(|(e, _)| *e == epoch)
            .map(|(_, s)| s)
            .ok_or(PacketError::NoLiveKey)?;
        let mut ledger = SlotLedger {
            slot,
            epoch,
            recorded,
        };
        Ok((epoch, peeled.finish(&mut ledger)?))
    }
}

/// [`open_with_any`] under the held keys of the geometry's format: the
/// X25519 keys for Sphinx, the X-Wing keys (of the epochs that have one)
/// for the KEM format.
fn open_held(
    geometry: &Geometry,
    packet: &[u8],
    slots: &[(u64, Arc<EpochSlot>)],
) -> Result<(u64, Peeled), PacketError> {
    match geometry.format {
        PacketFormat::Sphinx => {
            let keys: Vec<(u64, &SphinxSecret)> =
                slots.iter().map(|(e, s)| (*e, &s.secret)).collect();
            open_with_any(geometry, packet, &keys)
        }
        PacketFormat::Kem => {
            let keys: Vec<(u64, &HybridSecret)> = slots
                .iter()
                .filter_map(|(e, s)| s.kem.get().map(|k| (*e, k)))
                .collect();
            open_with_any(geometry, packet, &keys)
        }
    }
}

/// An epoch slot's filter as a hop's replay ledger: locked for each call;
/// a new tag marks the filter for the next snapshot and is handed out for
/// the journal.
struct SlotLedger<'a> {
    slot: &'a EpochSlot,
    epoch: u64,
    recorded: &'a mut Vec<(u64, [u8; REPLAY_TAG_LEN])>,
}

impl SlotLedger<'_> {
    fn filter(&self) -> std::sync::MutexGuard<'_, ReplayFilter> {
        self.slot.filter.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ReplayLedger for SlotLedger<'_> {
    fn seen(&self, tag: &ReplayTag) -> bool {
        self.filter().contains(tag)
    }

    fn record(&mut self, tag: &ReplayTag) -> bool {
        let fresh = self.filter().check_and_insert(tag);
        if fresh {
            self.slot.dirty.store(true, Ordering::Release);
            self.recorded.push((self.epoch, tag.0));
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
    /// The keys a hop tries during epoch 8, once the document of 9 is out.
    const LIVE_8: &[u64] = &[8, 9, 7];
    const SIZING: FilterSizing = FilterSizing {
        capacity: 1_000,
        fp_rate: 1e-6,
        max_bytes: 1 << 20,
    };

    fn frame_for(ring: &KeyRing, epoch: u64, n: u8) -> Vec<u8> {
        frame_in(&G, ring, epoch, n)
    }

    /// A frame of `geometry` whose every hop is this ring's key of `epoch`.
    fn frame_in(geometry: &Geometry, ring: &KeyRing, epoch: u64, n: u8) -> Vec<u8> {
        let slot = ring.get(epoch).unwrap();
        let kem = slot.kem.get().map(|k| Arc::new(k.public().clone()));
        let hops = (0..5)
            .map(|i| Hop {
                kem_key: kem.clone(),
                ..Hop::sphinx(NodeId([i; 32]), slot.public)
            })
            .collect();
        let route = Route::new(hops, geometry).unwrap();
        let sealing = SphinxPublicKey::from(&SphinxSecret::from([3u8; 32]));
        build_mailbox_packet(
            &mut rand::rng(),
            geometry,
            &route,
            &HopDelays::fixed(&[Duration::ZERO; 5]),
            MailboxId([1; 32]),
            &sealing,
            &Body::Loop(LoopId([n; 16])),
        )
        .unwrap()
        .to_frame(geometry)
        .unwrap()
    }

    #[test]
    fn filters_stay_under_the_memory_cap_whatever_the_epoch_length() {
        // Defaults and 20-minute epochs: 2000 × 1200 × 2 entries, uncapped
        // (about 17 MB each, the operator guide's figure).
        let normal = FilterSizing::for_epoch(2_000, 1_200.0, 512);
        assert_eq!(normal.capacity, 4_800_000);
        assert!((16_000_000..18_000_000).contains(&normal.bytes()));
        // A day-long epoch would want 1.2 GB per filter: capped so that all
        // filters held fit in 512 MiB.
        let long = FilterSizing::for_epoch(2_000, 86_400.0, 512);
        assert!(long.capacity < 2_000 * 86_400 * 2);
        assert!(long.bytes() * EPOCHS_HELD <= 512 * 1_048_576);
        let mut rng = rand::rng();
        let filter =
            ReplayFilter::with_limit(&mut rng, long.capacity, long.fp_rate, long.max_bytes);
        assert!(filter.size_bytes() as u64 <= long.bytes() + 8);
        // Growth under a flood stays within each filter's share of the cap.
        assert!(long.max_bytes * EPOCHS_HELD <= 512 * 1_048_576);
    }

    #[test]
    fn only_filters_that_saw_packets_are_written_and_they_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let frame;
        {
            let store = NodeStore::open(dir.path()).unwrap();
            let ring = KeyRing::default();
            assert_eq!(
                ring.ensure(&store, &mut rand::rng(), 7, 9, SIZING, PacketFormat::Sphinx)
                    .unwrap(),
                3
            );
            // Generated filters are stored with their keys.
            assert_eq!(ring.persist_filters(&store).unwrap(), 0);
            frame = frame_for(&ring, 8, 1);
            ring.process(&G, &frame, LIVE_8, &mut Vec::new()).unwrap();
            assert!(matches!(
                ring.process(&G, &frame, LIVE_8, &mut Vec::new()),
                Err(PacketError::Replayed)
            ));
            assert_eq!(ring.persist_filters(&store).unwrap(), 1);
            assert_eq!(ring.persist_filters(&store).unwrap(), 0);
        }
        let store = NodeStore::open(dir.path()).unwrap();
        let (ring, fresh) = KeyRing::load(&store, &mut rand::rng(), SIZING).unwrap();
        assert_eq!((ring.epochs(), fresh), (vec![7, 8, 9], 0));
        assert!(matches!(
            ring.process(&G, &frame, LIVE_8, &mut Vec::new()),
            Err(PacketError::Replayed)
        ));
        assert_eq!(ring.persist_filters(&store).unwrap(), 0);
    }

    #[test]
    fn a_replay_after_a_crash_between_snapshots_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let frame;
        {
            let store = NodeStore::open(dir.path()).unwrap();
            let ring = KeyRing::default();
            ring.ensure(&store, &mut rand::rng(), 1, 1, SIZING, PacketFormat::Sphinx)
                .unwrap();
            frame = frame_for(&ring, 1, 7);
            let mut recorded = Vec::new();
            ring.process(&G, &frame, &[1], &mut recorded).unwrap();
            assert_eq!(recorded.len(), 1);
            // What a worker does before the packet goes on.
            store.journal_tags(&recorded).unwrap();
            // The process dies here: no filter snapshot was taken.
        }
        let store = NodeStore::open(dir.path()).unwrap();
        let (ring, _) = KeyRing::load(&store, &mut rand::rng(), SIZING).unwrap();
        assert!(matches!(
            ring.process(&G, &frame, &[1], &mut Vec::new()),
            Err(PacketError::Replayed)
        ));
        // A snapshot holds the tag; the journal entry goes, and the replay
        // is still refused after another restart.
        assert_eq!(ring.persist_filters(&store).unwrap(), 1);
        assert!(store.journaled_tags(1).unwrap().is_empty());
        drop((ring, store));
        let store = NodeStore::open(dir.path()).unwrap();
        let (ring, _) = KeyRing::load(&store, &mut rand::rng(), SIZING).unwrap();
        assert!(matches!(
            ring.process(&G, &frame, &[1], &mut Vec::new()),
            Err(PacketError::Replayed)
        ));
        // Erasing the epoch takes its journal with it.
        store.journal_tags(&[(1, [3; REPLAY_TAG_LEN])]).unwrap();
        ring.retire_before(&store, 2).unwrap();
        assert!(store.journaled_tags(1).unwrap().is_empty());
    }

    #[test]
    fn kem_keys_open_kem_packets_are_published_and_survive_a_restart() {
        const PQ: Geometry = Geometry::PQ;
        let dir = tempfile::tempdir().unwrap();
        let (frame, published);
        {
            let store = NodeStore::open(dir.path()).unwrap();
            let ring = KeyRing::default();
            // A node that ran Sphinx first has X25519 keys only.
            ring.ensure(&store, &mut rand::rng(), 7, 8, SIZING, PacketFormat::Sphinx)
                .unwrap();
            assert!(ring.published_kem(7).is_none());
            // Switched to the KEM format, every epoch gets an X-Wing key,
            // old ones included, and the X25519 keys stay as they were.
            let before = ring.get(7).unwrap().public;
            assert_eq!(
                ring.ensure(&store, &mut rand::rng(), 7, 9, SIZING, PacketFormat::Kem)
                    .unwrap(),
                3
            );
            assert_eq!(ring.get(7).unwrap().public, before);
            assert_eq!(
                ring.ensure(&store, &mut rand::rng(), 7, 9, SIZING, PacketFormat::Kem)
                    .unwrap(),
                0
            );
            published = ring.published_kem(7).unwrap();
            assert_eq!(
                published.iter().map(|k| k.epoch).collect::<Vec<_>>(),
                [7, 8, 9]
            );
            for key in &published {
                aegis_mix_packet::kem::HybridPublic::from_bytes(&key.key).unwrap();
            }
            // The two keys of an epoch are unrelated.
            assert_ne!(
                ring.get(8).unwrap().kem.get().unwrap().seed(),
                ring.get(8).unwrap().secret.as_bytes()
            );
            frame = frame_in(&PQ, &ring, 8, 1);
            assert_eq!(frame.len(), PQ.frame_len());
            let (epoch, _) = ring.process(&PQ, &frame, LIVE_8, &mut Vec::new()).unwrap();
            assert_eq!(epoch, 8);
            // A Sphinx frame does not open as a KEM one, nor the reverse.
            let sphinx = frame_for(&ring, 8, 2);
            assert!(ring.process(&PQ, &sphinx, LIVE_8, &mut Vec::new()).is_err());
            assert!(ring.process(&G, &frame, LIVE_8, &mut Vec::new()).is_err());
            ring.persist_filters(&store).unwrap();
        }
        let store = NodeStore::open(dir.path()).unwrap();
        let (ring, _) = KeyRing::load(&store, &mut rand::rng(), SIZING).unwrap();
        assert_eq!(ring.published_kem(7).unwrap(), published);
        assert!(matches!(
            ring.process(&PQ, &frame, LIVE_8, &mut Vec::new()),
            Err(PacketError::Replayed)
        ));
        // Retiring erases the X-Wing seeds with the rest of the epoch.
        ring.retire_before(&store, 9).unwrap();
        let epochs = |store: &NodeStore| -> Vec<u64> {
            store.kem_keys().unwrap().iter().map(|(e, _)| *e).collect()
        };
        assert_eq!(epochs(&store), [9]);
        // A seed left without its epoch's X25519 key is erased at load.
        store.put_kem_key(30, &[0x30; 32]).unwrap();
        drop(ring);
        KeyRing::load(&store, &mut rand::rng(), SIZING).unwrap();
        assert_eq!(epochs(&store), [9]);
    }
}
