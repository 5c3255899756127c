//! The handles the node's stages are given. Each stage holds only the
//! ones it uses (see `node.rs`, where they are wired):
//!
//! * [`Me`] — who the node is (id, role, packet geometry), fixed for its life;
//! * [`Directory`] — the consensus documents and the epoch clock: written by
//!   the PKI stage (`sync`), read by the others;
//! * [`LoopKeys`] — the keys of the node's own loop cover, in memory only;
//! * [`Clock`] — the monotonic time origin mixing and loop timing share;
//! * the key ring (`crate::keys::KeyRing`), the database
//!   (`crate::store::NodeStore`) and the metrics
//!   (`crate::metrics::NodeMetrics`), each behind its own `Arc`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use aegis_directory::{Role, Schedule};
use std::time::Duration;

use aegis_mix_packet::{Geometry, MailboxId, NodeId, SphinxPublicKey, SphinxSecret};

use crate::keys::FilterSizing;
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

/// Who the node is: fixed for its life.
#[derive(Debug, Clone)]
pub struct Me {
    /// The identity as a node id.
    pub id: NodeId,
    /// Mix or gateway.
    pub role: Role,
    /// The packet geometry.
    pub geometry: Geometry,
}

/// The consensus documents the node holds and the epoch clock. The PKI
/// stage writes both; the other stages only read.
#[derive(Default)]
pub struct Directory {
    topologies: RwLock<Topologies>,
    schedule: RwLock<Option<Schedule>>,
    trouble: RwLock<Option<String>>,
}

impl Directory {
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

    /// Sets the epoch clock; whether it changed.
    pub fn set_schedule(&self, schedule: Schedule) -> bool {
        let mut held = self.schedule.write().unwrap_or_else(|p| p.into_inner());
        let changed = *held != Some(schedule);
        *held = Some(schedule);
        changed
    }

    /// Why the authorities did not take the node's last descriptor, if
    /// they did not (said on `/health` and by `aegis-node status`).
    pub fn trouble(&self) -> Option<String> {
        self.trouble
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets or clears [`Directory::trouble`].
    pub fn set_trouble(&self, trouble: Option<String>) {
        *self.trouble.write().unwrap_or_else(|p| p.into_inner()) = trouble;
    }

    /// The current epoch, if the clock is known.
    pub fn epoch(&self) -> Option<u64> {
        self.schedule().map(|s| s.epoch_at(now_ms()))
    }

    /// The document of the current epoch, if the clock is known and the
    /// document held.
    pub fn current(&self) -> Option<Arc<Topology>> {
        self.epoch().and_then(|e| self.topologies().get(e))
    }

    /// The replay-filter size for one epoch at `line_rate` packets a second,
    /// at most `max_mb` megabytes (20-minute epochs until the clock is
    /// known).
    pub fn filter_sizing(&self, line_rate: u64, max_mb: u64) -> FilterSizing {
        let epoch_secs = self
            .schedule()
            .map(|s| s.epoch_length_ms as f64 / 1_000.0)
            .unwrap_or(1_200.0);
        FilterSizing::for_epoch(line_rate, epoch_secs, max_mb)
    }
}

/// The keys of the node's own loop cover (in memory only: loops in flight
/// at a restart are simply lost).
pub struct LoopKeys {
    /// The key loop packets are sealed to.
    pub secret: SphinxSecret,
    /// Its public half.
    pub public: SphinxPublicKey,
    /// The mailbox id loop packets are addressed to.
    pub mailbox: MailboxId,
}

/// The node's monotonic time, from its start (mixing and loop timing).
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    /// Time since the node started.
    pub fn now(&self) -> Duration {
        self.0.elapsed()
    }
}
