//! Packet loss and node failure as scenario events.
//!
//! Every link (a client's to its gateway and each between nodes) loses a
//! packet with probability `link_loss`, independently. An outage stops one
//! node from `start_secs` to `end_secs` (or the end of the run): what it
//! held is lost at once, as a node that stops loses its memory, and what
//! reaches it while it is down is lost too; a mix that comes back starts its
//! loop bookkeeping afresh. The traffic-analysis modes do not retransmit
//! (that is the client endpoint's work, run by the harness), so the report
//! gives the share of real packets that arrived and, for loss alone, the
//! closed form (1 − p)^links a route of `links` links leaves.

use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::layout::Layout;
use crate::scenario::TopologySpec;

/// Loss and outages.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Probability that a link loses a packet (0: none).
    #[serde(default)]
    pub link_loss: f64,
    /// Nodes that stop for a while.
    #[serde(default)]
    pub outages: Vec<OutageSpec>,
}

/// Which node an outage stops.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FailedNode {
    /// A mix: `layer` (0-based) and `index` within it.
    Mix,
    /// A gateway: `index`.
    Gateway,
}

/// One node stopping, and perhaps coming back.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutageSpec {
    /// A mix or a gateway.
    pub node: FailedNode,
    /// The mix's layer (0-based; mixes only).
    #[serde(default)]
    pub layer: usize,
    /// Index within the layer, or among the gateways.
    #[serde(default)]
    pub index: usize,
    /// When it stops.
    pub start_secs: f64,
    /// When it is back (none: not within the run).
    #[serde(default)]
    pub end_secs: Option<f64>,
}

impl FaultSpec {
    /// Whether any fault is scheduled.
    pub fn enabled(&self) -> bool {
        self.link_loss > 0.0 || !self.outages.is_empty()
    }

    /// Checks the spec against the topology.
    pub fn validate(&self, topology: &TopologySpec) -> Result<(), SimError> {
        let bad = |m: &str| Err(SimError::Invalid(format!("faults: {m}")));
        if !(0.0..1.0).contains(&self.link_loss) {
            return bad("link_loss must be in [0, 1)");
        }
        for o in &self.outages {
            let fits = match o.node {
                FailedNode::Mix => o.layer < topology.layers && o.index < topology.width,
                FailedNode::Gateway => o.index < topology.gateways,
            };
            if !fits {
                return bad("an outage names a node the topology does not have");
            }
            if !(o.start_secs >= 0.0 && o.start_secs.is_finite()) {
                return bad("outage start_secs must not be negative");
            }
            if o.end_secs
                .is_some_and(|end| end.is_nan() || end <= o.start_secs)
            {
                return bad("outage end_secs must come after start_secs");
            }
        }
        Ok(())
    }
}

impl OutageSpec {
    /// The node id in `layout`.
    pub fn node_id(&self, layout: &Layout) -> usize {
        match self.node {
            FailedNode::Mix => layout.mix(self.layer, self.index),
            FailedNode::Gateway => self.index,
        }
    }
}

/// What the faults cost.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FaultReport {
    /// The links' loss probability.
    pub link_loss: f64,
    /// Packets of any kind lost on links.
    pub lost_on_links: u64,
    /// Packets of any kind lost at stopped nodes.
    pub lost_at_failed_nodes: u64,
    /// Real packets lost, on links or at stopped nodes.
    pub real_lost: u64,
    /// Real packets that reached a mailbox.
    pub real_delivered: u64,
    /// real_delivered / (real_delivered + real_lost): in-flight packets at
    /// the end count for neither.
    pub delivery_ratio: f64,
    /// (1 − link_loss)^links, what loss alone leaves of a route of `links`
    /// links (a client's and one between each pair of hops).
    pub link_loss_closed_form: f64,
    /// One entry per outage.
    pub outages: Vec<OutageReport>,
}

/// One outage and what came of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OutageReport {
    /// The stopped node.
    pub node: u32,
    /// When it stopped.
    pub start_secs: f64,
    /// When it was back.
    pub end_secs: Option<f64>,
    /// Packets it held when it stopped.
    pub held_at_failure: u64,
    /// Packets that reached it while it was down.
    pub arrived_while_down: u64,
    /// Seconds from the stop to the first loss alarm of any other mix
    /// (none: no alarm, or mixes send no loops).
    pub first_alarm_after_secs: Option<f64>,
}
