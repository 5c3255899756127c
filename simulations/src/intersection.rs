//! The long-term intersection attack on clients going on- and offline.
//!
//! A client's link shows when it is connected, whatever it sends. The
//! adversary here watches every link and learns when a real message lands in
//! an attacked recipient's mailbox (it runs the recipient's gateway, or it is
//! the recipient, wanting to know who writes to it anonymously). A message
//! that lands at time t was sent by someone online at some moment of
//! [t − W, t], W the adversary's bound on the network's latency. Over many
//! deliveries the recipient's correspondents are online in those windows
//! more often than their habits alone explain: each client c is scored
//!
//!   hits_r(c) − n_r · p(c),
//!
//! hits_r(c) the windows before r's n_r deliveries in which c was online,
//! and p(c) the share of reference windows (one ending every W seconds) in
//! which c was online. The best-scoring clients, as many as r has true
//! correspondents so far, are the guess; recall is the share of those
//! correspondents guessed (Kesdogan et al.'s intersection attack and
//! Danezis's statistical disclosure, with online status as the
//! observation). Against clients that never go offline every window holds
//! everyone and the attack learns nothing; an always-on client is the
//! defence this measures.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::disclosure::DisclosurePoint;

/// Most points recorded on the recall curve.
const CURVE_POINTS: u64 = 40;

/// When each client was last online, as links show it.
#[derive(Clone, Debug)]
pub struct OnlineLog {
    online: Vec<bool>,
    /// For an offline client, when it went offline.
    left_at: Vec<Duration>,
}

impl OnlineLog {
    /// `clients` clients, each online or not at time zero.
    pub fn new(online: Vec<bool>) -> Self {
        let n = online.len();
        OnlineLog {
            online,
            left_at: vec![Duration::ZERO; n],
        }
    }

    /// Whether client `c` is online now.
    pub fn is_online(&self, c: usize) -> bool {
        self.online.get(c).copied().unwrap_or(false)
    }

    /// Client `c` connected (true) or disconnected (false) at `now`.
    pub fn set(&mut self, c: usize, online: bool, now: Duration) {
        if let Some(o) = self.online.get_mut(c) {
            if *o && !online {
                self.left_at[c] = now;
            }
            *o = online;
        }
    }

    /// Whether `c` was online at some moment of [now − window, now].
    pub fn online_within(&self, c: usize, now: Duration, window: Duration) -> bool {
        self.is_online(c) || self.left_at.get(c).is_some_and(|&t| t + window >= now)
    }

    /// Number of clients.
    pub fn len(&self) -> usize {
        self.online.len()
    }

    /// Whether there are no clients.
    pub fn is_empty(&self) -> bool {
        self.online.is_empty()
    }
}

/// The attack's running state.
#[derive(Clone, Debug)]
pub struct IntersectionAttack {
    window: Duration,
    /// Attacked recipients; `slot[c]` is c's index here.
    recipients: Vec<u32>,
    slot: Vec<Option<u32>>,
    hits: Vec<Vec<u32>>,
    deliveries: Vec<u32>,
    truth: Vec<BTreeSet<u32>>,
    reference: Vec<u32>,
    references: u32,
    next_reference: Duration,
    every: Duration,
    next_point: Duration,
    curve: Vec<DisclosurePoint>,
}

impl IntersectionAttack {
    /// An attack on `recipients` among `clients` with latency bound
    /// `window`, over a run of `duration`.
    pub fn new(clients: usize, recipients: Vec<u32>, window: Duration, duration: Duration) -> Self {
        let mut slot = vec![None; clients];
        for (i, &r) in recipients.iter().enumerate() {
            if let Some(s) = slot.get_mut(r as usize) {
                *s = Some(i as u32);
            }
        }
        let n = recipients.len();
        let every = (duration / CURVE_POINTS as u32).max(window);
        IntersectionAttack {
            window,
            slot,
            hits: vec![vec![0; clients]; n],
            deliveries: vec![0; n],
            truth: vec![BTreeSet::new(); n],
            reference: vec![0; clients],
            references: 0,
            next_reference: window,
            every,
            next_point: every,
            curve: Vec::new(),
            recipients,
        }
    }

    /// Takes the reference samples and curve points due by `now`.
    pub fn advance(&mut self, now: Duration, log: &OnlineLog) {
        while self.next_reference <= now {
            let at = self.next_reference;
            for (c, count) in self.reference.iter_mut().enumerate() {
                if log.online_within(c, at, self.window) {
                    *count += 1;
                }
            }
            self.references += 1;
            self.next_reference += self.window;
        }
        while self.next_point <= now {
            let recall = self.recall();
            self.curve.push(DisclosurePoint {
                time_secs: self.next_point.as_secs_f64(),
                precision: recall,
                recall,
            });
            self.next_point += self.every;
        }
    }

    /// A real message from `sender` landed in `recipient`'s mailbox at `now`.
    pub fn observe_delivery(
        &mut self,
        now: Duration,
        recipient: usize,
        sender: u32,
        log: &OnlineLog,
    ) {
        self.advance(now, log);
        let Some(Some(i)) = self.slot.get(recipient).copied() else {
            return;
        };
        let i = i as usize;
        for (c, h) in self.hits[i].iter_mut().enumerate() {
            if log.online_within(c, now, self.window) {
                *h += 1;
            }
        }
        self.deliveries[i] += 1;
        self.truth[i].insert(sender);
    }

    /// Mean recall over the attacked recipients that received something:
    /// the guess has as many clients as the recipient has correspondents,
    /// so precision equals recall.
    pub fn recall(&self) -> f64 {
        let refs = f64::from(self.references.max(1));
        let mut total = 0.0;
        let mut counted = 0usize;
        for (i, &r) in self.recipients.iter().enumerate() {
            let truth = &self.truth[i];
            if truth.is_empty() {
                continue;
            }
            let n = f64::from(self.deliveries[i]);
            let mut scored: Vec<(f64, u32)> = self.hits[i]
                .iter()
                .zip(&self.reference)
                .enumerate()
                .filter(|&(c, _)| c != r as usize)
                .map(|(c, (&h, &p))| (f64::from(h) - n * f64::from(p) / refs, c as u32))
                .collect();
            let k = truth.len().min(scored.len());
            if k == 0 {
                continue;
            }
            if k < scored.len() {
                scored
                    .select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            }
            let found = scored[..k]
                .iter()
                .filter(|(_, c)| truth.contains(c))
                .count();
            total += found as f64 / truth.len() as f64;
            counted += 1;
        }
        if counted == 0 {
            0.0
        } else {
            total / counted as f64
        }
    }

    /// Recall over time.
    pub fn curve(&self) -> &[DisclosurePoint] {
        &self.curve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    #[test]
    fn a_correspondent_who_is_online_only_when_messages_land_is_found() {
        // Client 1 writes to 0; client 2 is online half the time at random,
        // client 3 always. Client 1 is online in hours 0, 2, 4, …
        let mut log = OnlineLog::new(vec![true, false, false, true]);
        let mut a = IntersectionAttack::new(4, vec![0], s(60), s(40 * 3600));
        for hour in 0..40u64 {
            let t = s(hour * 3600);
            log.set(1, hour % 2 == 0, t);
            log.set(2, (hour * 7 + 3) % 5 < 2, t);
            if hour % 2 == 0 {
                a.observe_delivery(t + s(1800), 0, 1, &log);
            } else {
                a.advance(t + s(1800), &log);
            }
        }
        a.advance(s(40 * 3600), &log);
        assert_eq!(a.recall(), 1.0);
        assert!(!a.curve().is_empty());
    }

    #[test]
    fn against_clients_always_online_the_scores_are_flat() {
        let log = OnlineLog::new(vec![true; 50]);
        let mut a = IntersectionAttack::new(50, vec![0], s(60), s(3600));
        for i in 0..30 {
            a.observe_delivery(s(100 + i * 100), 0, 7, &log);
        }
        a.advance(s(3600), &log);
        // Every candidate scores zero; ties go to the lowest id, which is
        // not the sender here: the attack learns nothing.
        assert_eq!(a.recall(), 0.0);
    }

    #[test]
    fn online_within_counts_a_client_that_left_inside_the_window() {
        let mut log = OnlineLog::new(vec![true]);
        log.set(0, false, s(100));
        assert!(log.online_within(0, s(150), s(60)));
        assert!(!log.online_within(0, s(161), s(60)));
    }
}
