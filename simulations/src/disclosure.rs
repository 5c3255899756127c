//! The statistical disclosure attack (Danezis, 2003), in continuous time.
//!
//! Time is cut into rounds. For an attacked user u and each round t the
//! adversary counts x_u(t), the packets it saw u send, and y_r(t), the
//! packets it saw delivered to each recipient r. A contact of u receives more
//! in the rounds where u sends more, so the attack scores each r by the
//! covariance  Σ_t x_u(t)·y_r(t) − (Σ_t x_u(t))(Σ_t y_r(t))/T  and guesses
//! the best-scoring recipients. When the adversary sees (sender, recipient)
//! pairs outright — the dumb relay — the score is the pair count. Precision
//! and recall of the guess against the true contact list are recorded as the
//! observation grows.

use std::time::Duration;

use serde::Serialize;

/// Most points recorded on the precision/recall curve.
const CURVE_POINTS: u64 = 40;

/// Precision and recall of the guessed contacts after `time_secs` of observation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DisclosurePoint {
    /// Seconds observed.
    pub time_secs: f64,
    /// Share of guessed contacts that are true contacts, mean over users.
    pub precision: f64,
    /// Share of true contacts guessed, mean over users.
    pub recall: f64,
}

/// The attack's running state.
#[derive(Clone, Debug)]
pub struct DisclosureAttack {
    window: Duration,
    guesses: usize,
    linked: bool,
    /// Attacked users and their true contacts.
    users: Vec<(u32, Vec<u32>)>,
    /// For each client, its index in `users` if attacked.
    slot: Vec<Option<u32>>,
    round: u64,
    every: u64,
    sends: Vec<f64>,
    deliveries: Vec<u32>,
    sum_xy: Vec<Vec<f64>>,
    sum_x: Vec<f64>,
    sum_y: Vec<f64>,
    curve: Vec<DisclosurePoint>,
}

impl DisclosureAttack {
    /// An attack on `users` (each with its true contacts) among `clients`,
    /// with rounds of `window`, guessing `guesses` contacts per user, over a
    /// run of `duration`. `linked` means the adversary sees sender-recipient pairs.
    pub fn new(
        clients: usize,
        users: Vec<(u32, Vec<u32>)>,
        window: Duration,
        guesses: usize,
        duration: Duration,
        linked: bool,
    ) -> Self {
        let mut slot = vec![None; clients];
        for (i, (u, _)) in users.iter().enumerate() {
            if let Some(s) = slot.get_mut(*u as usize) {
                *s = Some(i as u32);
            }
        }
        let rounds = (duration.as_secs_f64() / window.as_secs_f64().max(1e-9)) as u64;
        let n = users.len();
        DisclosureAttack {
            window,
            guesses,
            linked,
            slot,
            round: 0,
            every: rounds.div_ceil(CURVE_POINTS).max(1),
            sends: vec![0.0; n],
            deliveries: Vec::new(),
            sum_xy: vec![vec![0.0; clients]; n],
            sum_x: vec![0.0; n],
            sum_y: vec![0.0; clients],
            curve: Vec::new(),
            users,
        }
    }

    /// The adversary saw `sender` send a packet at `at`.
    pub fn observe_send(&mut self, at: Duration, sender: usize) {
        self.advance(at);
        if let Some(Some(i)) = self.slot.get(sender) {
            self.sends[*i as usize] += 1.0;
        }
    }

    /// The adversary saw a packet delivered to `recipient` at `at`.
    pub fn observe_delivery(&mut self, at: Duration, recipient: usize) {
        self.advance(at);
        self.deliveries.push(recipient as u32);
    }

    /// The adversary saw `sender` write to `recipient` at `at` (a relay's view).
    pub fn observe_pair(&mut self, at: Duration, sender: usize, recipient: usize) {
        self.advance(at);
        if let Some(Some(i)) = self.slot.get(sender)
            && let Some(c) = self.sum_xy[*i as usize].get_mut(recipient)
        {
            *c += 1.0;
        }
    }

    /// Closes every round that ended by `now`.
    pub fn advance(&mut self, now: Duration) {
        while now >= self.window * (self.round as u32 + 1) {
            self.close_round();
        }
    }

    fn close_round(&mut self) {
        if !self.linked {
            for &r in &self.deliveries {
                self.sum_y[r as usize] += 1.0;
            }
            for (i, x) in self.sends.iter_mut().enumerate() {
                if *x > 0.0 {
                    for &r in &self.deliveries {
                        self.sum_xy[i][r as usize] += *x;
                    }
                    self.sum_x[i] += *x;
                }
                *x = 0.0;
            }
        }
        self.deliveries.clear();
        self.round += 1;
        if self.round.is_multiple_of(self.every) {
            let (precision, recall) = self.score();
            self.curve.push(DisclosurePoint {
                time_secs: (self.window * self.round as u32).as_secs_f64(),
                precision,
                recall,
            });
        }
    }

    /// Mean precision and recall of the current guesses.
    pub fn score(&self) -> (f64, f64) {
        if self.users.is_empty() {
            return (0.0, 0.0);
        }
        let rounds = self.round.max(1) as f64;
        let (mut p, mut r) = (0.0, 0.0);
        for (i, (user, truth)) in self.users.iter().enumerate() {
            let mut scored: Vec<(f64, u32)> = self.sum_xy[i]
                .iter()
                .enumerate()
                .filter(|&(c, _)| c != *user as usize)
                .map(|(c, &xy)| {
                    let s = if self.linked {
                        xy
                    } else {
                        xy - self.sum_x[i] * self.sum_y[c] / rounds
                    };
                    (s, c as u32)
                })
                .filter(|(s, _)| *s > 0.0)
                .collect();
            let k = self.guesses.min(scored.len());
            if k > 0 && k < scored.len() {
                scored
                    .select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            }
            let hits = scored[..k]
                .iter()
                .filter(|(_, c)| truth.contains(c))
                .count() as f64;
            p += if k == 0 { 0.0 } else { hits / k as f64 };
            r += hits / truth.len().max(1) as f64;
        }
        let n = self.users.len() as f64;
        (p / n, r / n)
    }

    /// Precision and recall over time.
    pub fn curve(&self) -> &[DisclosurePoint] {
        &self.curve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlated_rounds_reveal_a_contact() {
        let s = Duration::from_secs;
        let mut a = DisclosureAttack::new(4, vec![(0, vec![2])], s(1), 1, s(20), false);
        for t in 0..20u64 {
            // User 0 is active in odd rounds, and then 2 receives; 3 receives always.
            let at = Duration::from_millis(t * 1000 + 100);
            if t % 2 == 1 {
                a.observe_send(at, 0);
                a.observe_delivery(at, 2);
            }
            a.observe_delivery(at, 3);
        }
        a.advance(s(20));
        assert_eq!(a.score(), (1.0, 1.0));
        assert!(!a.curve().is_empty());
    }
}
