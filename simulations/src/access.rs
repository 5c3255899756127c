//! The gateway's access policy in the traffic-analysis modes: the limits
//! `aegis-node` puts on each attached client, from
//! [`aegis_proto::access`].
//!
//! With `[gateway] policy = true` each client's packets pass its session's
//! send bucket at its gateway (the consensus's client rate times
//! `rate_slack`, ten seconds of it saved up) and each pull its pull bucket;
//! a mailbox holds at most `mailbox_limit` boxes, and what lands beyond is
//! dropped. Everything refused is counted. Honest clients, which send on
//! their shaper's schedule, should see no refusal at the node's defaults:
//! the report is how that is checked.

use serde::{Deserialize, Serialize};

/// The gateways' limits.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewaySpec {
    /// Apply the limits (false: gateways accept everything).
    #[serde(default)]
    pub policy: bool,
    /// The send limit over the client rate (the node's default: 2).
    #[serde(default = "default_slack")]
    pub rate_slack: f64,
    /// Boxes a mailbox holds (the node's default: 10,000).
    #[serde(default = "default_mailbox_limit")]
    pub mailbox_limit: usize,
}

fn default_slack() -> f64 {
    2.0
}

fn default_mailbox_limit() -> usize {
    10_000
}

impl Default for GatewaySpec {
    fn default() -> Self {
        GatewaySpec {
            policy: false,
            rate_slack: default_slack(),
            mailbox_limit: default_mailbox_limit(),
        }
    }
}

/// What the gateways refused.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AccessReport {
    /// Packets per second each client may send.
    pub send_rate: f64,
    /// Client packets dropped by the send limit.
    pub rate_limited: u64,
    /// Their share of all client packets.
    pub rate_limited_share: f64,
    /// Pulls refused (a real gateway ends the session).
    pub pulls_refused: u64,
    /// Boxes dropped at a full mailbox.
    pub mailbox_full: u64,
}
