//! Prometheus metrics of a node: aggregate counters, gauges and histograms.
//!
//! No label ever names a peer, a client, a mailbox or an address. The only
//! labels are small fixed sets: the drop reason and the access refusal
//! ([`DropReason`], [`AccessRefusal`]), the direction of link bytes, and the
//! program's version and role on `aegis_node_build_info`.
//!
//! The usual `process_*` figures (CPU seconds, resident memory, threads, open
//! files, start time) are read from `/proc/self` at each scrape.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

use aegis_mix_packet::PacketError;

/// Why a packet or frame was dropped. Every reason is explained in
/// `docs/operator-guide.md`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DropReason {
    /// The frame is not a well-formed frame of the network's geometry.
    malformed_frame,
    /// The node holds no key of an epoch its clock says can be live (it has
    /// no clock yet, or its keys are not generated).
    no_live_key,
    /// The packet header did not authenticate under any live key of this
    /// node.
    bad_header,
    /// The packet payload or routing information is invalid.
    bad_packet,
    /// The packet was seen before under the same key.
    replay,
    /// The next hop is not in any consensus this node holds.
    unknown_next_hop,
    /// The packet came from, or would go to, a node that does not stand
    /// just before (after) this one in the packet epoch's layers.
    hop_order,
    /// The mixing pool is full.
    mix_full,
    /// The crypto workers' input queue is full.
    ingress_full,
    /// The egress queue towards the next hop is full.
    egress_full,
    /// The link to the next hop failed while the frame was being written.
    link_down,
    /// A link stream was opened by a node that is not in the consensus.
    unknown_peer,
    /// A mix received a packet whose last hop is itself but that is not its own loop.
    final_at_mix,
    /// The mailbox holds as many packets as it may.
    mailbox_full,
    /// Gateway: as many mailboxes hold packets as `max_mailboxes`.
    mailboxes_full,
    /// Gateway: the mailbox stage's queue is full (the disk is behind).
    mailbox_queue_full,
    /// Storing the packet failed.
    store_error,
    /// A client sent faster than its rate limit.
    rate_limited,
    /// A packet's last hop is this gateway but it is drop cover.
    drop_cover,
    /// A stored packet outlived the retention time.
    expired,
}

impl DropReason {
    /// The reason for a packet-layer failure.
    pub fn of(error: &PacketError) -> Self {
        match error {
            PacketError::NoLiveKey => DropReason::no_live_key,
            PacketError::Replayed => DropReason::replay,
            PacketError::HeaderAuthentication | PacketError::NonCanonicalGroupElement => {
                DropReason::bad_header
            }
            PacketError::FrameLength { .. } | PacketError::UnsupportedFrameVersion(_) => {
                DropReason::malformed_frame
            }
            _ => DropReason::bad_packet,
        }
    }
}

/// Why a gateway turned a client connection away or ended it. Every reason
/// is explained in `docs/operator-guide.md`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum AccessRefusal {
    /// Too many handshakes were in progress.
    handshake_limit,
    /// No valid hello in time, or a hello that did not verify.
    bad_hello,
    /// As many mailboxes were attached as `max_clients`.
    gateway_full,
    /// A newer connection for the same mailbox took over.
    replaced,
    /// An inbound connection from an address already holding
    /// `max_connections_per_source` (refused before its handshake).
    source_connections,
    /// An inbound connection while the node held all it accepts.
    connections_full,
}

/// The access-refusal label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabel {
    /// The reason.
    pub reason: AccessRefusal,
}

/// The drop-reason label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason.
    pub reason: DropReason,
}

/// Which way bytes crossed the node's links.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Direction {
    /// Read from neighbours and clients.
    received,
    /// Written to neighbours and clients.
    sent,
}

/// The direction label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// The direction.
    pub direction: Direction,
}

/// The labels of `aegis_node_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The program's version.
    pub version: String,
    /// `mix` or `gateway`.
    pub role: String,
}

/// Every metric of a node.
pub struct NodeMetrics {
    registry: Registry,
    /// The `process_*` figures, without the `aegis_node` prefix.
    process_registry: Registry,
    /// Always 1, labelled with the version and role.
    pub build_info: Family<BuildLabels, Gauge>,
    /// 1 while the current epoch's consensus lists this node, else 0.
    pub listed: Gauge,
    /// Bytes of frames and cells crossing the node's links, by direction.
    pub link_bytes: Family<DirectionLabel, Counter>,
    process: ProcessMetrics,
    /// Frames read from links and clients.
    pub received: Counter,
    /// Packets handed to an egress queue.
    pub forwarded: Counter,
    /// Packets dropped, by reason.
    pub dropped: Family<ReasonLabel, Counter>,
    /// Client connections refused or ended by the gateway, by reason.
    pub access_refused: Family<RefusalLabel, Counter>,
    /// What the link layer refused (exported into `access_refused`).
    pub link_refusals: std::sync::Arc<aegis_link::Refusals>,
    /// Packets stored in a mailbox.
    pub stored: Counter,
    /// Stored packets acknowledged and deleted.
    pub delivered: Counter,
    /// Loop cover packets this node sent.
    pub cover_sent: Counter,
    /// Loop cover packets of this node that came back.
    pub cover_returned: Counter,
    /// Loop cover packets of this node not back by their deadline.
    pub cover_lost: Counter,
    /// 1 while loop loss is far above what the network's own loss explains
    /// (a possible n−1 attack on this node's input), else 0.
    pub loop_alarm: Gauge,
    /// Times the loop alarm was raised.
    pub loop_alarms: Counter,
    /// Frames waiting for a crypto worker.
    pub ingress_depth: Gauge,
    /// Packets held by the mixing strategy.
    pub mix_pool: Gauge,
    /// Frames waiting in all egress queues together.
    pub egress_depth: Gauge,
    /// Packets held in all mailboxes.
    pub mailbox_packets: Gauge,
    /// Non-empty mailboxes.
    pub mailboxes: Gauge,
    /// Clients attached now.
    pub clients: Gauge,
    /// Open mix links (streams to or from neighbours).
    pub links: Gauge,
    /// The epoch of the newest consensus held.
    pub consensus_epoch: Gauge,
    /// Authority clock statements that could not be fetched, decoded or
    /// verified.
    pub clock_refused: Counter,
    /// Verified documents refused because they publish another packet
    /// geometry.
    pub consensus_refused: Counter,
    /// Descriptor uploads an authority refused (its reason is logged).
    pub descriptors_refused: Counter,
    /// Requests to an authority that got no answer at all.
    pub authorities_unreachable: Counter,
    /// Epoch keys that could not be generated, stored or erased.
    pub key_errors: Counter,
    /// Packets whose sender asked for a hop delay above the cap (held for
    /// the cap instead).
    pub delay_capped: Counter,
    /// Held epochs whose replay filter holds more tags than it was sized
    /// for (its false-positive rate is then above the design's).
    pub replay_filters_saturated: Gauge,
    /// Seconds of crypto work per packet.
    pub processing_seconds: Histogram,
    /// Packets returned per pull answer (excluding dummies).
    pub pull_real: Histogram,
}

fn register<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl NodeMetrics {
    /// Creates and registers every metric under the `aegis_node` prefix.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("aegis_node");
        let r = &mut r;
        let m = NodeMetrics {
            build_info: register(
                r,
                "build_info",
                "Always 1: the program's version and role",
                Family::default(),
            ),
            listed: register(
                r,
                "listed",
                "1 while the current consensus lists this node",
                Gauge::default(),
            ),
            link_bytes: register(
                r,
                "link_bytes",
                "Bytes of frames and cells on the node's links, by direction",
                Family::default(),
            ),
            process: ProcessMetrics::default(),
            received: register(r, "received", "Frames received", Counter::default()),
            forwarded: register(r, "forwarded", "Packets forwarded", Counter::default()),
            dropped: register(
                r,
                "dropped",
                "Packets dropped, by reason",
                Family::default(),
            ),
            access_refused: register(
                r,
                "access_refused",
                "Client connections refused or ended, by reason",
                Family::default(),
            ),
            link_refusals: std::sync::Arc::default(),
            stored: register(
                r,
                "stored",
                "Packets stored in mailboxes",
                Counter::default(),
            ),
            delivered: register(
                r,
                "delivered",
                "Stored packets acknowledged by their owner",
                Counter::default(),
            ),
            cover_sent: register(r, "cover_sent", "Loop cover sent", Counter::default()),
            cover_returned: register(
                r,
                "cover_returned",
                "Loop cover that came back",
                Counter::default(),
            ),
            cover_lost: register(
                r,
                "cover_lost",
                "Loop cover not back by its deadline",
                Counter::default(),
            ),
            loop_alarm: register(
                r,
                "loop_alarm",
                "1 while loop loss is far above the node's long-run loss",
                Gauge::default(),
            ),
            loop_alarms: register(
                r,
                "loop_alarms",
                "Times the loop-loss alarm was raised",
                Counter::default(),
            ),
            ingress_depth: register(r, "ingress_depth", "Frames queued", Gauge::default()),
            mix_pool: register(r, "mix_pool", "Packets held for mixing", Gauge::default()),
            egress_depth: register(
                r,
                "egress_depth",
                "Frames queued to all neighbours",
                Gauge::default(),
            ),
            mailbox_packets: register(
                r,
                "mailbox_packets",
                "Packets in mailboxes",
                Gauge::default(),
            ),
            mailboxes: register(r, "mailboxes", "Non-empty mailboxes", Gauge::default()),
            clients: register(r, "clients", "Attached clients", Gauge::default()),
            links: register(r, "links", "Open mix link streams", Gauge::default()),
            consensus_epoch: register(
                r,
                "consensus_epoch",
                "Epoch of the newest consensus",
                Gauge::default(),
            ),
            clock_refused: register(
                r,
                "clock_refused",
                "Authority clock statements unreachable, undecodable or badly signed",
                Counter::default(),
            ),
            consensus_refused: register(
                r,
                "consensus_refused",
                "Verified documents refused: they publish another packet geometry",
                Counter::default(),
            ),
            descriptors_refused: register(
                r,
                "descriptors_refused",
                "Descriptor uploads refused by an authority",
                Counter::default(),
            ),
            authorities_unreachable: register(
                r,
                "authorities_unreachable",
                "Requests to an authority that got no answer",
                Counter::default(),
            ),
            key_errors: register(
                r,
                "key_errors",
                "Epoch keys that could not be generated, stored or erased",
                Counter::default(),
            ),
            delay_capped: register(
                r,
                "delay_capped",
                "Packets whose requested hop delay exceeded the cap",
                Counter::default(),
            ),
            replay_filters_saturated: register(
                r,
                "replay_filters_saturated",
                "Held epochs whose replay filter is past its sized capacity",
                Gauge::default(),
            ),
            processing_seconds: register(
                r,
                "processing_seconds",
                "Crypto work per packet",
                Histogram::new(exponential_buckets(1e-5, 2.0, 16)),
            ),
            pull_real: register(
                r,
                "pull_real_entries",
                "Real packets per pull answer",
                Histogram::new([0.0, 1.0, 2.0, 4.0, 8.0]),
            ),
            registry: Registry::default(),
            process_registry: Registry::default(),
        };
        // Both directions from the start: a dashboard shows 0, not "no data".
        for direction in [Direction::received, Direction::sent] {
            let _ = m.link_bytes.get_or_create(&DirectionLabel { direction });
        }
        let registry = std::mem::take(r);
        let mut process_registry = Registry::default();
        m.process.register(&mut process_registry);
        NodeMetrics {
            registry,
            process_registry,
            ..m
        }
    }

    /// Sets `aegis_node_build_info` for this program and `role`.
    pub fn set_build_info(&self, role: aegis_directory::Role) {
        let role = match role {
            aegis_directory::Role::Mix => "mix",
            aegis_directory::Role::Gateway => "gateway",
        };
        self.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                role: role.to_owned(),
            })
            .set(1);
    }

    /// Counts `bytes` crossing a link in `direction`.
    pub fn count_bytes(&self, direction: Direction, bytes: usize) {
        self.link_bytes
            .get_or_create(&DirectionLabel { direction })
            .inc_by(bytes as u64);
    }

    /// Counts a dropped packet.
    pub fn count_drop(&self, reason: DropReason) {
        self.dropped.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts a refused or ended client connection.
    pub fn refuse(&self, reason: AccessRefusal) {
        self.access_refused
            .get_or_create(&RefusalLabel { reason })
            .inc();
    }

    /// Client connections refused for `reason` so far.
    pub fn refused_for(&self, reason: AccessRefusal) -> u64 {
        self.sync_link_refusals();
        self.access_refused
            .get_or_create(&RefusalLabel { reason })
            .get()
    }

    /// Counts `count` packets dropped together.
    pub fn drop_many(&self, reason: DropReason, count: u64) {
        self.dropped
            .get_or_create(&ReasonLabel { reason })
            .inc_by(count);
    }

    /// How many packets were dropped for `reason`.
    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        self.dropped.get_or_create(&ReasonLabel { reason }).get()
    }

    /// Brings the link layer's refusal counts into `access_refused`.
    fn sync_link_refusals(&self) {
        use std::sync::atomic::Ordering;
        for (reason, seen) in [
            (
                AccessRefusal::source_connections,
                self.link_refusals.per_source.load(Ordering::Relaxed),
            ),
            (
                AccessRefusal::connections_full,
                self.link_refusals.total.load(Ordering::Relaxed),
            ),
        ] {
            let counter = self.access_refused.get_or_create(&RefusalLabel { reason });
            let exported = counter.get();
            if seen > exported {
                counter.inc_by(seen - exported);
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.sync_link_refusals();
        self.process.refresh();
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &self.process_registry);
        let _ = encode_eof(&mut out);
        out
    }
}

/// The process's own figures, under the names every Prometheus exporter
/// uses, read from `/proc/self` when scraped (zero where `/proc` is not).
#[derive(Default)]
struct ProcessMetrics {
    cpu_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    resident_bytes: Gauge,
    threads: Gauge,
    open_fds: Gauge,
    start_time: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl ProcessMetrics {
    fn register(&self, registry: &mut Registry) {
        self.start_time
            .set(aegis_directory::api::unix_now_ms() as f64 / 1_000.0);
        registry.register(
            "process_cpu_seconds",
            "CPU time the process has used, in seconds",
            self.cpu_seconds.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the process",
            self.resident_bytes.clone(),
        );
        registry.register(
            "process_threads",
            "Threads of the process",
            self.threads.clone(),
        );
        registry.register(
            "process_open_fds",
            "Open file descriptors (sockets included)",
            self.open_fds.clone(),
        );
        registry.register(
            "process_start_time_seconds",
            "When the process started, in Unix seconds",
            self.start_time.clone(),
        );
    }

    /// Reads `/proc/self` into the gauges; the CPU counter only grows.
    fn refresh(&self) {
        // schedstat: nanoseconds on the CPU, first field.
        if let Some(ns) = std::fs::read_to_string("/proc/self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        {
            let seconds = ns / 1e9;
            let counted = self.cpu_seconds.get();
            if seconds > counted {
                self.cpu_seconds.inc_by(seconds - counted);
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|rest| rest.split_whitespace().next()?.parse::<i64>().ok())
            };
            if let Some(kb) = field("VmRSS:") {
                self.resident_bytes.set(kb * 1024);
            }
            if let Some(n) = field("Threads:") {
                self.threads.set(n);
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as i64);
        }
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A node's `/metrics` text as tools and tests read it: sample values by
/// name, and the drop counts by reason.
#[derive(Debug, Clone)]
pub struct MetricsText(pub String);

impl MetricsText {
    /// The value of the sample named exactly `name` (labels included, as
    /// in `aegis_node_dropped_total{reason="replay"}`).
    pub fn value(&self, name: &str) -> Option<u64> {
        self.0.lines().find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse::<f64>().ok().map(|v| v as u64))?
        })
    }

    /// `aegis_node_dropped_total` by reason.
    pub fn dropped(&self) -> std::collections::BTreeMap<String, u64> {
        self.by_reason("aegis_node_dropped_total")
    }

    /// The samples of a counter family with one `reason` label, by reason
    /// (nodes' and authorities' alike).
    pub fn by_reason(&self, family: &str) -> std::collections::BTreeMap<String, u64> {
        let prefix = format!("{family}{{reason=\"");
        self.0
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(prefix.as_str())?;
                let (reason, value) = rest.split_once("\"} ")?;
                Some((reason.to_owned(), value.parse::<f64>().ok()? as u64))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_reads_what_the_registry_writes() {
        let metrics = NodeMetrics::default();
        metrics.count_drop(DropReason::replay);
        metrics.count_drop(DropReason::replay);
        metrics.count_drop(DropReason::bad_header);
        let text = MetricsText(metrics.encode());
        let dropped = text.dropped();
        assert_eq!(dropped.get("replay"), Some(&2));
        assert_eq!(dropped.get("bad_header"), Some(&1));
        assert_eq!(
            text.value("aegis_node_dropped_total{reason=\"replay\"}"),
            Some(2)
        );
        assert_eq!(text.value("no_such_metric"), None);
    }

    #[test]
    fn exposition_has_reasons_and_no_other_labels() {
        let m = NodeMetrics::new();
        m.received.inc();
        m.count_drop(DropReason::replay);
        m.processing_seconds.observe(0.0001);
        let text = m.encode();
        assert!(text.contains("aegis_node_received_total 1"), "{text}");
        assert!(
            text.contains("aegis_node_dropped_total{reason=\"replay\"} 1"),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some(labels) = line.split('{').nth(1) {
                assert!(
                    labels.starts_with("reason=")
                        || labels.starts_with("le=")
                        || labels.starts_with("direction="),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn build_info_bytes_and_process_figures_are_exported() {
        let m = NodeMetrics::new();
        m.set_build_info(aegis_directory::Role::Gateway);
        m.count_bytes(Direction::received, 2_405);
        m.count_bytes(Direction::sent, 100);
        let text = MetricsText(m.encode());
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            text.value(&format!(
                "aegis_node_build_info{{version=\"{version}\",role=\"gateway\"}}"
            )),
            Some(1),
            "{}",
            text.0
        );
        assert_eq!(
            text.value("aegis_node_link_bytes_total{direction=\"received\"}"),
            Some(2_405)
        );
        // This test process has threads, memory and files open.
        assert!(text.value("process_threads").unwrap() >= 1);
        assert!(text.value("process_resident_memory_bytes").unwrap() > 1_000_000);
        assert!(text.value("process_open_fds").unwrap() >= 3);
        assert!(text.value("process_start_time_seconds").unwrap() > 1_700_000_000);
        assert!(text.0.contains("process_cpu_seconds_total "), "{}", text.0);
    }
}
