//! Loop cover bookkeeping: which loops are in flight, how many came back,
//! how long they took, and how many were lost.
//!
//! Nodes send loops at rate λM through every layer and a gateway back to
//! themselves; clients send loops at λL (and in payload slots with nothing
//! real to send) back to their own mailbox. Both keep one [`LoopTracker`].
//! A loop not back within the tracker's timeout counts as lost; the share
//! lost is one reliability figure for the sender as a whole, never per peer.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

/// Loops remembered at most; beyond this the oldest expired ones are
/// forgotten first, and a new loop is not tracked if none has expired.
pub const MAX_IN_FLIGHT: usize = 10_000;
/// A node's loop not back within this time counts as lost.
pub const NODE_LOOP_TIMEOUT: Duration = Duration::from_secs(120);
/// Round trips remembered for the median.
const RTT_WINDOW: usize = 256;

/// What a tracker has counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Loops tracked since the start.
    pub sent: u64,
    /// Loops back within the timeout.
    pub returned: u64,
    /// Loops not back within the timeout.
    pub lost: u64,
    /// Median round trip of the last returned loops.
    pub rtt_p50: Option<Duration>,
}

/// Loops sent and not yet back, keyed by their id.
#[derive(Debug)]
pub struct LoopTracker<Id> {
    timeout: Duration,
    in_flight: HashMap<Id, Duration>,
    rtts: VecDeque<Duration>,
    stats: LoopStats,
}

impl<Id: Hash + Eq + Copy> LoopTracker<Id> {
    /// A tracker counting a loop lost when it is not back within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        LoopTracker {
            timeout,
            in_flight: HashMap::new(),
            rtts: VecDeque::new(),
            stats: LoopStats::default(),
        }
    }

    /// Remembers a loop sent at `now`.
    pub fn sent(&mut self, id: Id, now: Duration) {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.expire(now);
        }
        if self.in_flight.len() < MAX_IN_FLIGHT {
            self.in_flight.insert(id, now);
            self.stats.sent += 1;
        }
    }

    /// A loop came back at `now`: its round trip if it was in flight. It is
    /// forgotten, so a replayed loop does not count twice.
    pub fn returned(&mut self, id: &Id, now: Duration) -> Option<Duration> {
        let sent = self.in_flight.remove(id)?;
        let rtt = now.saturating_sub(sent);
        if rtt >= self.timeout {
            // Already past its deadline: it was (or will be) counted lost.
            self.stats.lost += 1;
            return None;
        }
        self.stats.returned += 1;
        if self.rtts.len() >= RTT_WINDOW {
            self.rtts.pop_front();
        }
        self.rtts.push_back(rtt);
        Some(rtt)
    }

    /// Counts as lost every loop older than the timeout at `now`; returns
    /// how many were.
    pub fn expire(&mut self, now: Duration) -> usize {
        let timeout = self.timeout;
        let before = self.in_flight.len();
        self.in_flight
            .retain(|_, sent| now.saturating_sub(*sent) < timeout);
        let lost = before - self.in_flight.len();
        self.stats.lost += lost as u64;
        lost
    }

    /// Changes the timeout (a node sets it from the published delays).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Loops in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The counts so far, with the median of the recent round trips.
    pub fn stats(&self) -> LoopStats {
        let mut rtts: Vec<Duration> = self.rtts.iter().copied().collect();
        rtts.sort();
        LoopStats {
            rtt_p50: rtts.get(rtts.len() / 2).copied(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_back_in_time_count_once_and_late_ones_count_as_lost() {
        let s = Duration::from_secs;
        let mut t = LoopTracker::new(s(10));
        t.sent(1u32, s(0));
        t.sent(2, s(0));
        t.sent(3, s(1));
        assert_eq!(t.returned(&1, s(4)), Some(s(4)));
        assert_eq!(t.returned(&1, s(5)), None, "a replayed loop counts once");
        assert_eq!(t.returned(&9, s(5)), None, "an unknown loop counts nothing");
        t.expire(s(10));
        assert_eq!(t.in_flight(), 1, "loop 3 still has time");
        assert_eq!(
            t.returned(&3, s(12)),
            None,
            "loop 3 came back after its timeout"
        );
        let stats = t.stats();
        assert_eq!((stats.sent, stats.returned, stats.lost), (3, 1, 2));
        assert_eq!(stats.rtt_p50, Some(s(4)));
    }

    #[test]
    fn the_tracker_stays_bounded() {
        let mut t = LoopTracker::new(Duration::from_secs(1));
        for id in 0..(MAX_IN_FLIGHT as u32 + 500) {
            t.sent(id, Duration::ZERO);
        }
        assert_eq!(t.in_flight(), MAX_IN_FLIGHT);
        t.sent(u32::MAX, Duration::from_secs(2));
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.stats().lost, MAX_IN_FLIGHT as u64);
    }
}
