//! A node's packet keys by epoch, each with its own replay filter.
//!
//! Keys are generated ahead and published for epochs e..e+2. Nothing on
//! the wire names a packet's epoch: the hop tries the keys of the epochs its
//! clock says can be live (see [`crate::process::open_with_any`]). Removing an epoch drops its private key (zeroised)
//! together with its filter: once the key is gone, a replay of its packets
//! cannot be processed anyway, and deleting old keys is what gives forward
//! secrecy.

use std::collections::BTreeMap;

use x25519_dalek::{PublicKey, StaticSecret};

use crate::kem::HybridSecret;
use crate::replay::ReplayFilter;

/// One epoch's Sphinx key pair, hybrid KEM key when the network runs the
/// KEM format, and replay filter.
pub struct EpochKey {
    /// The private key (zeroised on drop).
    pub secret: StaticSecret,
    /// The public key, as published in the node's descriptor.
    pub public: PublicKey,
    /// The hybrid KEM key that opens packets in the KEM format.
    pub kem: Option<HybridSecret>,
    /// Tags of the packets processed under this key.
    pub filter: ReplayFilter,
}

impl EpochKey {
    /// Wraps a key and its filter.
    pub fn new(secret: StaticSecret, filter: ReplayFilter) -> Self {
        let public = PublicKey::from(&secret);
        EpochKey {
            secret,
            public,
            kem: None,
            filter,
        }
    }

    /// Wraps a key, a hybrid KEM key and their filter: packets of either
    /// format record their tags in the same filter (the tags of the two
    /// formats come from different derivations and cannot collide but by
    /// chance).
    pub fn with_kem(secret: StaticSecret, kem: HybridSecret, filter: ReplayFilter) -> Self {
        EpochKey {
            kem: Some(kem),
            ..Self::new(secret, filter)
        }
    }
}

/// The keys a node currently holds.
#[derive(Default)]
pub struct EpochKeys {
    keys: BTreeMap<u64, EpochKey>,
}

impl EpochKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the key of `epoch`.
    pub fn insert(&mut self, epoch: u64, key: EpochKey) {
        self.keys.insert(epoch, key);
    }

    /// The key of `epoch`, if held.
    pub fn get(&self, epoch: u64) -> Option<&EpochKey> {
        self.keys.get(&epoch)
    }

    /// The key of `epoch`, with its replay filter to record tags in.
    pub fn get_mut(&mut self, epoch: u64) -> Option<&mut EpochKey> {
        self.keys.get_mut(&epoch)
    }

    /// Erases every key (and filter) of an epoch before `oldest_kept`;
    /// returns the epochs erased.
    pub fn erase_before(&mut self, oldest_kept: u64) -> Vec<u64> {
        let kept = self.keys.split_off(&oldest_kept);
        let erased = std::mem::replace(&mut self.keys, kept);
        erased.into_keys().collect()
    }

    /// The epochs held, in order.
    pub fn epochs(&self) -> Vec<u64> {
        self.keys.keys().copied().collect()
    }

    /// Iterates the held keys in epoch order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &EpochKey)> {
        self.keys.iter().map(|(e, k)| (*e, k))
    }
}
