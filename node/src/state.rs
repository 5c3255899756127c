//! State shared by the node's stages.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use aegis_directory::{Role, Schedule};
use aegis_mix_packet::{Geometry, MailboxId, NodeId, SphinxPublicKey, SphinxSecret};
use ed25519_dalek::SigningKey;

use crate::config::NodeConfig;
use crate::keys::{FilterSizing, KeyRing};
use crate::metrics::NodeMetrics;
use crate::store::NodeStore;
use aegis_proto::Topology;

pub use aegis_directory::api::unix_now_ms as now_ms;

/// The consensus documents a node holds, by epoch.
#[derive(Default)]
pub struct Topologies {
    by_epoch: BTreeMap<u64, Arc<Topology>>,
}

impl Topologies {
    /// Adds a verified document's topology.
    pub fn insert(&mut self, topology: Topology) {
        self.by_epoch.insert(topology.epoch, Arc::new(topology));
    }

    /// The document of `epoch`.
    pub fn get(&self, epoch: u64) -> Option<Arc<Topology>> {
        self.by_epoch.get(&epoch).cloned()
    }

    /// The newest document held.
    pub fn latest(&self) -> Option<Arc<Topology>> {
        self.by_epoch.values().next_back().cloned()
    }

    /// Drops documents before `oldest_kept`.
    pub fn retire_before(&mut self, oldest_kept: u64) {
        self.by_epoch = self.by_epoch.split_off(&oldest_kept);
    }

    /// Whether any held document lists `node`.
    pub fn knows(&self, node: &NodeId) -> bool {
        self.by_epoch.values().any(|t| t.nodes.contains_key(node))
    }

    /// Whether any held document lists the libp2p peer.
    pub fn knows_peer(&self, peer: &aegis_link::PeerId) -> bool {
        aegis_link::identity_of(peer).is_some_and(|id| self.knows(&NodeId(id)))
    }

    /// The newest entry for `node`.
    pub fn node(&self, node: &NodeId) -> Option<aegis_proto::NodeEntry> {
        self.by_epoch
            .values()
            .rev()
            .find_map(|t| t.nodes.get(node).cloned())
    }
}

/// Everything the stages share.
pub struct Shared {
    /// The packet geometry.
    pub geometry: Geometry,
    /// The configuration.
    pub config: NodeConfig,
    /// The identity key (also the libp2p key).
    pub identity: SigningKey,
    /// The identity as a node id.
    pub id: NodeId,
    /// Mix or gateway.
    pub role: Role,
    /// Sphinx keys and replay filters.
    pub keys: KeyRing,
    /// The database.
    pub store: NodeStore,
    /// Metrics.
    pub metrics: NodeMetrics,
    /// Consensus documents held.
    pub topologies: RwLock<Topologies>,
    /// The epoch clock, once learnt from the authorities.
    pub schedule: RwLock<Option<Schedule>>,
    /// The key this node's own loop cover is sealed to (in memory only).
    pub loop_secret: SphinxSecret,
    /// Its public half.
    pub loop_public: SphinxPublicKey,
    /// The mailbox id this node's loop cover is addressed to.
    pub loop_mailbox: MailboxId,
    /// The origin of the node's monotonic time (mixing and cover).
    pub started: Instant,
}

impl Shared {
    /// Read access to the held documents.
    pub fn topologies(&self) -> std::sync::RwLockReadGuard<'_, Topologies> {
        self.topologies.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Write access to the held documents.
    pub fn topologies_mut(&self) -> std::sync::RwLockWriteGuard<'_, Topologies> {
        self.topologies.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The epoch clock, if known.
    pub fn schedule(&self) -> Option<Schedule> {
        *self.schedule.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The current epoch, if the clock is known.
    pub fn epoch(&self) -> Option<u64> {
        self.schedule().map(|s| s.epoch_at(now_ms()))
    }

    /// The replay-filter size for one epoch.
    pub fn filter_sizing(&self) -> FilterSizing {
        let epoch_secs = self
            .schedule()
            .map(|s| s.epoch_length_ms as f64 / 1_000.0)
            .unwrap_or(1_200.0);
        FilterSizing::for_epoch(
            self.config.line_rate,
            epoch_secs,
            self.config.replay_filter_max_mb,
        )
    }
}
