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

use crate::config::NodeConfig;
use crate::keys::KeyRing;
use crate::metrics::NodeMetrics;
use crate::state::{Directory, Me, now_ms};
use crate::store::NodeStore;
use aegis_link::Host;
use aegis_mix_packet::PacketFormat;
use aegis_proto::Topology;

/// Keys are kept for one epoch after their own, for packets in flight.
const KEY_GRACE_EPOCHS: u64 = 1;

/// Most bytes of an authority's refusal read back to log its reason.
const REASON_BYTES: usize = 512;

/// Repeated trouble of one kind, said at warn with back-off: on the 1st,
/// 2nd, 4th, 8th … failure in a row, and once at info when it clears, so a
/// node that cannot reach an authority for a day logs a few lines, not
/// thousands. Every failure is still counted in the metrics.
#[derive(Default)]
struct Complaints(std::collections::HashMap<Trouble, u64>);

/// A kind of trouble, and the authority (by its place in the
/// configuration) it is with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Trouble {
    /// No majority of signed clocks.
    Clock,
    /// The authority refused the descriptor.
    Refused(usize),
    /// The authority did not answer.
    Unreachable(usize),
}

impl Complaints {
    /// Notes one more failure of `what`; whether to say it now, and how
    /// many in a row it makes.
    fn failed(&mut self, what: Trouble) -> Option<u64> {
        let count = self.0.entry(what).or_default();
        *count += 1;
        count.is_power_of_two().then_some(*count)
    }

    /// Notes a success of `what`; whether it had been failing.
    fn cleared(&mut self, what: Trouble) -> bool {
        self.0.remove(&what).is_some()
    }
}

/// The first line of an authority's refusal, printable and short.
fn reason_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// What the PKI stage reads and writes: it is the one writer of the held
/// documents, the epoch clock and the key ring.
pub struct PkiStage {
    /// Who the node is.
    pub me: Me,
    /// The identity key descriptors are signed with.
    pub signing: ed25519_dalek::SigningKey,
    /// The configuration: authorities, published addresses, filter sizes.
    pub config: NodeConfig,
    /// The documents and the clock.
    pub directory: Arc<Directory>,
    /// The Sphinx keys and replay filters.
    pub keys: Arc<KeyRing>,
    /// The database keys are kept in.
    pub store: Arc<NodeStore>,
    /// Where refusals and gauges are counted.
    pub metrics: Arc<NodeMetrics>,
}

impl PkiStage {
    fn filter_sizing(&self) -> crate::keys::FilterSizing {
        self.directory
            .filter_sizing(self.config.line_rate, self.config.replay_filter_max_mb)
    }
}

/// The directory client of a node.
pub struct DirectorySync {
    stage: PkiStage,
    host: Host,
    fetcher: Fetcher,
    http: reqwest::Client,
    uploaded: BTreeSet<u64>,
    complaints: Complaints,
}

impl DirectorySync {
    /// A directory client with the configured authorities.
    pub fn new(stage: PkiStage, host: Host) -> Result<Self, String> {
        let fetcher = Fetcher::for_authorities(&stage.config.authorities, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(DirectorySync {
            stage,
            host,
            fetcher,
            http,
            uploaded: BTreeSet::new(),
            complaints: Complaints::default(),
        })
    }

    /// Asks every authority for its signed clock; a schedule is learnt once
    /// a majority of the pinned authorities signed the same one.
    async fn learn_schedule(&mut self) -> Option<Schedule> {
        let mut statements = Vec::new();
        for authority in &self.stage.config.authorities {
            let url = api::url(&authority.url, api::CLOCK);
            let body = match self.http.get(url).send().await {
                Ok(r) if r.status().is_success() => read_limited(r, MAX_CLOCK_BYTES).await,
                Ok(r) => Err(format!("status {}", r.status())),
                Err(e) => Err(e.to_string()),
            };
            match body.map(|b| SignedClock::from_bytes(&b).map_err(|e| e.to_string())) {
                Ok(Ok(clock)) => statements.push(clock),
                Ok(Err(error)) | Err(error) => {
                    self.stage.metrics.clock_refused.inc();
                    tracing::debug!(%error, "no usable clock from an authority");
                }
            }
        }
        let agreed = agreed_schedule(self.fetcher.verifier(), &statements);
        let pinned = self.stage.config.authorities.len();
        match agreed {
            None => {
                if let Some(times) = self.complaints.failed(Trouble::Clock) {
                    warn!(
                        usable = statements.len(),
                        pinned,
                        times,
                        "no epoch clock yet: a majority of the pinned authorities must answer with a clock signed by their pinned key"
                    );
                }
            }
            Some(_) => {
                self.complaints.cleared(Trouble::Clock);
            }
        }
        agreed
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
        if self.stage.directory.set_schedule(schedule) {
            warn!(
                epoch_length_ms = schedule.epoch_length_ms,
                "the consensus sets a different epoch clock; following it"
            );
        }
    }

    /// One step: run it every tick. Returns the time to wait before the next.
    pub async fn step(&mut self) -> Duration {
        let schedule = match self.stage.directory.schedule() {
            Some(s) => s,
            None => match self.learn_schedule().await {
                Some(s) => {
                    self.stage.directory.set_schedule(s);
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
        let have_current = self.stage.directory.topologies().get(epoch).is_some();
        if !have_current {
            self.fetch(epoch).await;
        }
        let have_next = self.stage.directory.topologies().get(epoch + 1).is_some();
        if !have_next && now >= schedule.phase_at(epoch + 1, Phase::Publish) {
            self.fetch(epoch + 1).await;
        }
        self.stage
            .directory
            .topologies_mut()
            .retire_before(epoch.saturating_sub(KEY_GRACE_EPOCHS));
        self.update_gauges();
        tick
    }

    fn rotate_keys(&self, epoch: u64) {
        let stage = &self.stage;
        let mut rng = rand::rng();
        if let Err(error) = stage.keys.ensure(
            &stage.store,
            &mut rng,
            epoch,
            epoch + crate::keys::KEYS_AHEAD,
            stage.filter_sizing(),
            stage.me.geometry.format,
        ) {
            stage.metrics.key_errors.inc();
            warn!(%error, "generating epoch keys failed");
        }
        match stage
            .keys
            .retire_before(&stage.store, epoch.saturating_sub(KEY_GRACE_EPOCHS))
        {
            Ok(retired) if !retired.is_empty() => info!(?retired, "erased expired epoch keys"),
            Ok(_) => {}
            Err(error) => {
                stage.metrics.key_errors.inc();
                warn!(%error, "erasing expired keys failed");
            }
        }
    }

    async fn upload(&mut self, target: u64) -> bool {
        let stage = &self.stage;
        let Some(sphinx_keys) = stage.keys.published(target) else {
            return false;
        };
        // Hybrid keys are published where the network runs the KEM format
        // only: elsewhere they would only make every document larger.
        let kem_keys = match stage.me.geometry.format {
            PacketFormat::Sphinx => vec![],
            PacketFormat::Kem => match stage.keys.published_kem(target) {
                Some(keys) => keys,
                None => return false,
            },
        };
        let descriptor = DescriptorBody {
            identity: stage.me.id.0,
            epoch: target,
            revision: now_ms(),
            role: stage.me.role,
            addresses: stage.config.published_addresses(),
            sphinx_keys,
            kem_keys,
            version: format!("aegis-node/{}", env!("CARGO_PKG_VERSION")),
        }
        .sign(&stage.signing);
        let bytes = descriptor.to_bytes();
        let mut accepted = 0;
        let mut troubles = Vec::new();
        let mut complaints = std::mem::take(&mut self.complaints);
        for (index, authority) in stage.config.authorities.iter().enumerate() {
            let url = aegis_directory::api::url(&authority.url, aegis_directory::api::DESCRIPTOR);
            let (refused_what, unreachable_what) =
                (Trouble::Refused(index), Trouble::Unreachable(index));
            match self.http.post(url).body(bytes.clone()).send().await {
                // 409: this revision or a newer one is already held.
                Ok(r) if r.status().is_success() || r.status().as_u16() == 409 => {
                    accepted += 1;
                    for what in [refused_what, unreachable_what] {
                        if complaints.cleared(what) {
                            // No URL at info level: operators find it in the warning before.
                            info!("an authority takes this node's descriptor again");
                        }
                    }
                }
                Ok(r) => {
                    stage.metrics.descriptors_refused.inc();
                    let status = r.status();
                    let reason = read_limited(r, REASON_BYTES)
                        .await
                        .map(|body| reason_of(&body))
                        .unwrap_or_default();
                    troubles.push(format!("{} refused it ({status}): {reason}", authority.url));
                    if let Some(times) = complaints.failed(refused_what) {
                        warn!(
                            authority = %authority.url,
                            %status,
                            reason,
                            target,
                            times,
                            "descriptor refused"
                        );
                    }
                }
                Err(error) => {
                    stage.metrics.authorities_unreachable.inc();
                    troubles.push(format!("{} is unreachable: {error}", authority.url));
                    if let Some(times) = complaints.failed(unreachable_what) {
                        warn!(
                            authority = %authority.url,
                            %error,
                            times,
                            "an authority is unreachable; check its URL in aegis-node.toml and the network"
                        );
                    }
                }
            }
        }
        self.complaints = complaints;
        let enough = accepted >= aegis_directory::majority(stage.config.authorities.len());
        stage
            .directory
            .set_trouble((!enough).then(|| troubles.join("; ")));
        enough
    }

    async fn fetch(&self, epoch: u64) {
        match self.fetcher.fetch(Some(epoch), now_ms()).await {
            Ok(document) => {
                let topology = match Topology::for_geometry(document, &self.stage.me.geometry) {
                    Ok(topology) => topology,
                    Err(error) => {
                        self.stage.metrics.consensus_refused.inc();
                        warn!(%error, epoch, "consensus refused");
                        return;
                    }
                };
                for node in topology.nodes.values() {
                    self.host.add_node(&node.id.0, &node.addresses);
                }
                self.follow_consensus_clock(&topology);
                let listed = topology.node(&self.stage.me.id).is_some();
                info!(
                    epoch,
                    nodes = topology.nodes.len(),
                    listed,
                    "consensus verified"
                );
                self.stage.directory.topologies_mut().insert(topology);
            }
            Err(error) => tracing::debug!(%error, epoch, "no consensus yet"),
        }
    }

    fn update_gauges(&self) {
        let m = &self.stage.metrics;
        if let Some(latest) = self.stage.directory.topologies().latest() {
            m.consensus_epoch.set(latest.epoch as i64);
        }
        let listed = self
            .stage
            .directory
            .current()
            .is_some_and(|t| t.node(&self.stage.me.id).is_some());
        m.listed.set(i64::from(listed));
        m.replay_filters_saturated
            .set(self.stage.keys.saturated_filters() as i64);
        let (packets, mailboxes) = self.stage.store.mailbox_totals();
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
