//! Reliable delivery over an unreliable mixnet: sans-IO cores.
//!
//! * [`Outbox`] splits each message into fragments, hands them out one per
//!   real slot of the traffic shaper (retransmissions first), matches the
//!   acknowledgements that come back through SURB-ACKs, retransmits what was
//!   not acknowledged in time, and reports each message's status.
//! * [`Inbox`] reassembles fragments and delivers each message exactly once,
//!   however often and in whatever order its fragments arrive.
//!
//! Neither reads a clock: time is a [`Duration`] since any fixed origin,
//! passed in by the caller, and randomness comes from an RNG the caller
//! passes. The client drives them from tokio.
//!
//! The rules, in short (the full statement is in `docs/client.md`):
//! every transmission of a fragment carries a fresh SURB-ACK with a fresh
//! [`AckId`](aegis_mix_packet::AckId) over a fresh route; an
//! acknowledgement of *any* transmission of a fragment acknowledges it; a
//! fragment not acknowledged within its timeout is sent again, with the
//! wait doubling up to an hour, until the message is older than
//! [`OutboxConfig::give_up_after`] (7 days by default; or after
//! [`OutboxConfig::max_attempts`] transmissions, if set), after which the
//! whole message has failed. The recipient acknowledges every fragment it can read — including
//! duplicates, since the earlier acknowledgement may have been lost.

use std::time::Duration;

use serde::{Deserialize, Serialize};

mod inbox;
mod outbox;

pub use inbox::{Inbox, InboxConfig, InboxError, Received};
pub use outbox::{
    MessageStatus, Outbox, OutboxConfig, OutboxError, Progress, StatusEvent, Transmission,
};

/// Margin added to every acknowledgement timeout for processing and link latency.
pub const ACK_TIMEOUT_SLACK: Duration = Duration::from_secs(2);
/// Shortest acknowledgement timeout [`ack_timeout`] returns.
pub const MIN_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest acknowledgement timeout [`ack_timeout`] and [`retransmission_timeout`] return.
pub const MAX_ACK_TIMEOUT: Duration = Duration::from_secs(3600);

/// Identifies a contact to the outbox: a random local id the application
/// assigns, never sent anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContactId(pub [u8; 16]);

/// Identifies a queued message to the application that queued it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LocalId(pub u64);

/// How long to wait for a fragment's acknowledgement before sending it again.
///
/// A fragment crosses a route to the recipient's gateway and its
/// acknowledgement crosses a route back: one round trip is about
/// `2 × expected_route_delay` (the sum of the mean per-hop delays). Both
/// ends must also pull their mailbox — the recipient to find the fragment,
/// the sender to find the acknowledgement — which adds up to two pull
/// intervals. Per-hop delays are exponential, so the round trip has a long
/// tail; doubling it leaves a retransmission for the rare packet that is
/// slow rather than lost (for ten Exp(μ) hops, P(sum > 2 × mean) ≈ 0.5 %).
///
/// ```text
/// timeout = 2 × (2 × route delay) + 2 × mean pull interval + 2 s, clamped to [5 s, 1 h]
/// ```
pub fn ack_timeout(expected_route_delay: Duration, mean_pull_interval: Duration) -> Duration {
    expected_route_delay
        .saturating_mul(4)
        .saturating_add(mean_pull_interval.saturating_mul(2))
        .saturating_add(ACK_TIMEOUT_SLACK)
        .clamp(MIN_ACK_TIMEOUT, MAX_ACK_TIMEOUT)
}

/// The timeout for the `attempt`-th transmission (from 1): `base` doubled
/// for every earlier attempt, at most [`MAX_ACK_TIMEOUT`]. Backing off keeps
/// a recipient that is offline from costing its contacts' real slots.
pub fn retransmission_timeout(base: Duration, attempt: u32) -> Duration {
    crate::backoff::nth_delay(base, MAX_ACK_TIMEOUT, attempt)
}

/// Decodes a whole postcard encoding of saved state; what is wrong, if
/// anything: the encoding, or bytes left over.
pub(crate) fn decode_whole<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, &'static str> {
    let (value, rest): (T, &[u8]) = postcard::take_from_bytes(bytes).map_err(|_| "encoding")?;
    if !rest.is_empty() {
        return Err("trailing bytes");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_timeouts_follow_the_formula_and_are_clamped() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        // 5 hops × 50 ms = 250 ms; pulls every 10 s.
        assert_eq!(ack_timeout(ms(250), s(10)), ms(1000) + s(20) + s(2));
        assert_eq!(ack_timeout(Duration::ZERO, Duration::ZERO), MIN_ACK_TIMEOUT);
        assert_eq!(ack_timeout(s(10_000), s(1)), MAX_ACK_TIMEOUT);
        assert_eq!(ack_timeout(Duration::MAX, Duration::MAX), MAX_ACK_TIMEOUT);
    }

    #[test]
    fn retransmission_timeouts_back_off_to_the_cap() {
        let base = Duration::from_secs(20);
        assert_eq!(retransmission_timeout(base, 0), base);
        assert_eq!(retransmission_timeout(base, 1), base);
        assert_eq!(retransmission_timeout(base, 2), base * 2);
        assert_eq!(retransmission_timeout(base, 4), base * 8);
        assert_eq!(retransmission_timeout(base, 40), MAX_ACK_TIMEOUT);
    }
}
