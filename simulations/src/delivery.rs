//! Reliable delivery in the traffic-analysis modes: the client's own
//! outbox ([`aegis_proto::delivery::Outbox`]) with its retransmission
//! back-off, and SURB-ACKs as packets through the network.
//!
//! With `[delivery] acks = true` a message goes into its writer's outbox,
//! not straight into the shaper; each payload slot carries the outbox's
//! next fragment (a due retransmission first) or an acknowledgement the
//! client owes, alternating while both wait, as the client endpoint does,
//! else a loop. A recipient acknowledges every copy it fetches, each with
//! the reply block that copy carried: the acknowledgement is a packet from
//! the recipient through its gateway, the mix layers and the sender's
//! gateway into the sender's mailbox, where the sender's outbox takes it
//! when fetched. Timed-out fragments are sent again after
//! [`aegis_proto::delivery::retransmission_timeout`]. Payloads are the
//! message ids (one fragment each); the cryptography is left out, as
//! everywhere in these modes.
//!
//! With `pull_interval_secs` clients fetch their mailboxes on a pull grid
//! as the client endpoint does (its default interval is the smaller of its
//! configured one and 8 / (2 (λP + λL)), so pulls keep up with twice the
//! inflow), and an acknowledgement's timeout counts the pull interval as
//! the client's does; without it, the recipient's wait for a payload slot
//! stands in for the pulls.
//!
//! With independent losses, a transmission succeeds (its fragment and its
//! acknowledgement both arrive) with probability q², q the share of
//! packets a route delivers; when no acknowledgement times out early, a
//! message takes 1/q² transmissions on average and reaches its recipient
//! 1/q times.

use serde::{Deserialize, Serialize};

/// Whether messages travel with acknowledgements and retransmission.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeliverySpec {
    /// Outboxes, SURB-ACKs and retransmission (false: a message is sent
    /// once, in the shaper's next payload slot).
    #[serde(default)]
    pub acks: bool,
    /// Seconds between a client's pulls of its mailbox, on a fixed grid of
    /// random phase, each fetching at most `PULL_BATCH` (8) boxes (none: an
    /// online client fetches each box as it lands).
    #[serde(default)]
    pub pull_interval_secs: Option<f64>,
}

/// What reliable delivery did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DeliveryReport {
    /// Messages queued in outboxes.
    pub messages: u64,
    /// Messages whose every fragment was acknowledged.
    pub acknowledged: u64,
    /// Messages the outbox gave up on.
    pub failed: u64,
    /// Messages that reached their recipient at least once.
    pub received: u64,
    /// Copies fetched beyond the first.
    pub duplicates: u64,
    /// Fragments sent, first transmissions and retransmissions.
    pub transmissions: u64,
    /// Of which retransmissions.
    pub retransmissions: u64,
    /// Acknowledgements sent.
    pub acks_sent: u64,
    /// Transmissions per acknowledged message (1/q² in the closed form).
    pub transmissions_per_message: f64,
    /// Receipts per received message (1/q in the closed form).
    pub receipts_per_message: f64,
    /// Mean seconds from writing to the acknowledgement.
    pub ack_latency_mean_secs: f64,
    /// Longest.
    pub ack_latency_max_secs: f64,
}
