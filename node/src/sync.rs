//! The node's side of the directory: learn the epoch clock, keep Sphinx
//! keys generated ahead and old ones erased, upload the signed descriptor
//! for the coming epochs, and fetch and verify each epoch's consensus.
//!
//! The clock decides which keys are erased and how large replay filters
//! are, so it comes only from signed statements: a majority of the pinned
//! authorities' signed clocks ([`aegis_directory::agreed_schedule`]), and
//! after that from each threshold-signed consensus. Nothing unsigned (an
//! authority's `/status`, a lone authority's clock) moves it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aegis_directory::{
    DescriptorBody, Fetcher, MAX_CLOCK_BYTES, Phase, Schedule, SignedClock, agreed_schedule, api,
    read_limited,
};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::state::{Shared, now_ms};
use aegis_link::Host;
use aegis_proto::Topology;

/// Keys are kept for one epoch after their own, for packets in flight.
const KEY_GRACE_EPOCHS: u64 = 1;

/// The directory client of a node.
pub struct DirectorySync {
    shared: Arc<Shared>,
    host: Host,
    fetcher: Fetcher,
    http: reqwest::Client,
    uploaded: BTreeSet<u64>,
}

impl DirectorySync {
    /// A directory client with the configured authorities.
    pub fn new(shared: Arc<Shared>, host: Host) -> Result<Self, String> {
        let fetcher = Fetcher::for_authorities(&shared.config.authorities, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(DirectorySync {
            shared,
            host,
            fetcher,
            http,
            uploaded: BTreeSet::new(),
        })
    }

    /// Asks every authority for its signed clock; a schedule is learnt once
    /// a majority of the pinned authorities signed the same one.
    async fn learn_schedule(&self) -> Option<Schedule> {
        let mut statements = Vec::new();
        for authority in &self.shared.config.authorities {
            let url = api::url(&authority.url, api::CLOCK);
            let body = match self.http.get(url).send().await {
                Ok(r) if r.status().is_success() => read_limited(r, MAX_CLOCK_BYTES).await,
                Ok(r) => Err(format!("status {}", r.status())),
                Err(e) => Err(e.to_string()),
            };
            match body.map(|b| SignedClock::from_bytes(&b).map_err(|e| e.to_string())) {
                Ok(Ok(clock)) => statements.push(clock),
                Ok(Err(error)) | Err(error) => {
                    self.shared.metrics.clock_refused.inc();
                    tracing::debug!(%error, "no usable clock from an authority");
                }
            }
        }
        agreed_schedule(self.fetcher.verifier(), &statements)
    }

    /// Takes the clock a threshold-signed consensus implies, if it differs
    /// from the one held.
    fn follow_consensus_clock(&self, topology: &Topology) {
        let Some(schedule) = topology.document.body.schedule() else {
            return;
        };
        if aegis_directory::check_epoch_length(schedule.epoch_length_ms).is_err() {
            return;
        }
        let mut held = self
            .shared
            .schedule
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if *held != Some(schedule) {
            warn!(
                epoch_length_ms = schedule.epoch_length_ms,
                "the consensus sets a different epoch clock; following it"
            );
            *held = Some(schedule);
        }
    }

    /// One step: run it every tick. Returns the time to wait before the next.
    pub async fn step(&mut self) -> Duration {
        let schedule = match self.shared.schedule() {
            Some(s) => s,
            None => match self.learn_schedule().await {
                Some(s) => {
                    *self
                        .shared
                        .schedule
                        .write()
                        .unwrap_or_else(|p| p.into_inner()) = Some(s);
                    info!(
                        epoch = s.epoch_at(now_ms()),
                        epoch_length_ms = s.epoch_length_ms,
                        "learnt the epoch clock"
                    );
                    s
                }
                None => return Duration::from_secs(1),
            },
        };
        let tick = Duration::from_millis((schedule.epoch_length_ms / 16).clamp(100, 30_000));
        let now = now_ms();
        let epoch = schedule.epoch_at(now);
        self.rotate_keys(epoch);
        for target in [epoch + 1, epoch + 2] {
            let open = target != epoch + 1 || now < schedule.phase_at(target, Phase::Vote);
            if open && !self.uploaded.contains(&target) && self.upload(target).await {
                self.uploaded.insert(target);
            }
        }
        self.uploaded = self.uploaded.split_off(&epoch);
        let have_current = self.shared.topologies().get(epoch).is_some();
        if !have_current {
            self.fetch(epoch).await;
        }
        let have_next = self.shared.topologies().get(epoch + 1).is_some();
        if !have_next && now >= schedule.phase_at(epoch + 1, Phase::Publish) {
            self.fetch(epoch + 1).await;
        }
        self.shared
            .topologies_mut()
            .retire_before(epoch.saturating_sub(KEY_GRACE_EPOCHS));
        self.update_gauges();
        tick
    }

    fn rotate_keys(&self, epoch: u64) {
        let shared = &self.shared;
        let mut rng = rand::rng();
        if let Err(error) = shared.keys.ensure(
            &shared.store,
            &mut rng,
            epoch,
            epoch + crate::keys::KEYS_AHEAD,
            shared.filter_sizing(),
        ) {
            warn!(%error, "generating epoch keys failed");
        }
        match shared
            .keys
            .retire_before(&shared.store, epoch.saturating_sub(KEY_GRACE_EPOCHS))
        {
            Ok(retired) if !retired.is_empty() => info!(?retired, "erased expired epoch keys"),
            Ok(_) => {}
            Err(error) => warn!(%error, "erasing expired keys failed"),
        }
    }

    async fn upload(&self, target: u64) -> bool {
        let shared = &self.shared;
        let Some(sphinx_keys) = shared.keys.published(target) else {
            return false;
        };
        let descriptor = DescriptorBody {
            identity: shared.id.0,
            epoch: target,
            revision: now_ms(),
            role: shared.role,
            addresses: shared.config.published_addresses(),
            sphinx_keys,
            version: format!("aegis-node/{}", env!("CARGO_PKG_VERSION")),
        }
        .sign(&shared.identity);
        let bytes = descriptor.to_bytes();
        let mut accepted = 0;
        for authority in &shared.config.authorities {
            let url = aegis_directory::api::url(&authority.url, aegis_directory::api::DESCRIPTOR);
            match self.http.post(url).body(bytes.clone()).send().await {
                // 409: this revision or a newer one is already held.
                Ok(r) if r.status().is_success() || r.status().as_u16() == 409 => accepted += 1,
                Ok(r) => warn!(status = %r.status(), target, "descriptor refused"),
                Err(_) => warn!(target, "an authority is unreachable"),
            }
        }
        accepted >= aegis_directory::majority(shared.config.authorities.len())
    }

    async fn fetch(&self, epoch: u64) {
        match self.fetcher.fetch(Some(epoch), now_ms()).await {
            Ok(document) => {
                let topology = match Topology::for_geometry(document, &self.shared.geometry) {
                    Ok(topology) => topology,
                    Err(error) => {
                        self.shared.metrics.consensus_refused.inc();
                        warn!(%error, epoch, "consensus refused");
                        return;
                    }
                };
                for node in topology.nodes.values() {
                    self.host.add_node(&node.id.0, &node.addresses);
                }
                self.follow_consensus_clock(&topology);
                let listed = topology.node(&self.shared.id).is_some();
                info!(
                    epoch,
                    nodes = topology.nodes.len(),
                    listed,
                    "consensus verified"
                );
                self.shared.topologies_mut().insert(topology);
            }
            Err(error) => tracing::debug!(%error, epoch, "no consensus yet"),
        }
    }

    fn update_gauges(&self) {
        let m = &self.shared.metrics;
        if let Some(latest) = self.shared.topologies().latest() {
            m.consensus_epoch.set(latest.epoch as i64);
        }
        m.replay_filters_saturated
            .set(self.shared.keys.saturated_filters() as i64);
        let (packets, mailboxes) = self.shared.store.mailbox_totals();
        m.mailbox_packets.set(packets as i64);
        m.mailboxes.set(mailboxes as i64);
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let wait = self.step().await;
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
