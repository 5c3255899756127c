//! Prometheus metrics of an authority: aggregate counters and gauges only.
//! No label ever names a node, a peer or an address; the only labels are
//! rejection reasons and round outcomes, both small fixed sets.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A rejection reason label (`Rejection::label`, or HTTP-level reasons).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason.
    pub reason: String,
}

/// A round outcome label: published, adopted or failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// The outcome.
    pub outcome: String,
}

/// The authority's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// Descriptor uploads accepted.
    pub descriptors_accepted: Counter,
    /// Descriptor uploads refused, by reason.
    pub descriptors_rejected: Family<ReasonLabel, Counter>,
    /// Peer votes accepted.
    pub votes_accepted: Counter,
    /// Peer votes refused, by reason.
    pub votes_rejected: Family<ReasonLabel, Counter>,
    /// Peer signatures accepted.
    pub signatures_accepted: Counter,
    /// Peer signatures refused, by reason.
    pub signatures_rejected: Family<ReasonLabel, Counter>,
    /// Finished rounds, by outcome.
    pub rounds: Family<OutcomeLabel, Counter>,
    /// Requests to peers that failed (all peers together).
    pub peer_errors: Counter,
    /// Stored records that could not be persisted.
    pub store_errors: Counter,
    /// The current epoch.
    pub epoch: Gauge,
    /// Epoch of the newest document held.
    pub latest_document_epoch: Gauge,
    /// 1 if the most recent finished round failed, else 0.
    pub last_round_failed: Gauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("aegis_dir");
        let m = Metrics {
            descriptors_accepted: Counter::default(),
            descriptors_rejected: Family::default(),
            votes_accepted: Counter::default(),
            votes_rejected: Family::default(),
            signatures_accepted: Counter::default(),
            signatures_rejected: Family::default(),
            rounds: Family::default(),
            peer_errors: Counter::default(),
            store_errors: Counter::default(),
            epoch: Gauge::default(),
            latest_document_epoch: Gauge::default(),
            last_round_failed: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "descriptors_accepted",
            "Descriptor uploads accepted",
            m.descriptors_accepted.clone(),
        );
        registry.register(
            "descriptors_rejected",
            "Descriptor uploads refused",
            m.descriptors_rejected.clone(),
        );
        registry.register(
            "votes_accepted",
            "Peer votes accepted",
            m.votes_accepted.clone(),
        );
        registry.register(
            "votes_rejected",
            "Peer votes refused",
            m.votes_rejected.clone(),
        );
        registry.register(
            "signatures_accepted",
            "Peer document signatures accepted",
            m.signatures_accepted.clone(),
        );
        registry.register(
            "signatures_rejected",
            "Peer document signatures refused",
            m.signatures_rejected.clone(),
        );
        registry.register(
            "rounds",
            "Voting rounds finished, by outcome",
            m.rounds.clone(),
        );
        registry.register(
            "peer_errors",
            "Failed requests to peer authorities",
            m.peer_errors.clone(),
        );
        registry.register(
            "store_errors",
            "Records that could not be persisted",
            m.store_errors.clone(),
        );
        registry.register("epoch", "Current epoch", m.epoch.clone());
        registry.register(
            "latest_document_epoch",
            "Epoch of the newest document held",
            m.latest_document_epoch.clone(),
        );
        registry.register(
            "last_round_failed",
            "1 if the last finished round failed",
            m.last_round_failed.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts a refusal with its reason.
    pub fn reject(family: &Family<ReasonLabel, Counter>, reason: &str) {
        family
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a finished round.
    pub fn round(&self, outcome: &str) {
        self.rounds
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
        self.last_round_failed.set(i64::from(outcome == "failed"));
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_exposition() {
        let m = Metrics::new();
        m.descriptors_accepted.inc();
        Metrics::reject(&m.descriptors_rejected, "replay");
        m.round("failed");
        let text = m.encode();
        assert!(
            text.contains("aegis_dir_descriptors_accepted_total 1"),
            "{text}"
        );
        assert!(
            text.contains("aegis_dir_descriptors_rejected_total{reason=\"replay\"} 1"),
            "{text}"
        );
        assert!(text.contains("aegis_dir_last_round_failed 1"), "{text}");
    }
}
