//! Telling an attack on a node's input from the network's own loss, by the
//! node's loop cover.
//!
//! An n−1 (blending) attacker holds back a mix's honest input and lets only
//! its own packets through, to follow them. The node's loops are part of
//! that input and look like any other packet, so the attacker holds them
//! back too: their loss jumps from what the network loses anyway to nearly
//! all. [`LossAlarm`] judges each loop as it is resolved (back in time, or
//! overdue) and raises an alarm when the losses among the last `window`
//! loops are implausible under the loss the node has seen over a long
//! horizon (never taken below `floor`): the binomial upper tail
//! `P[X ≥ lost]`, `X ~ Binomial(window, p)`, falls below `alpha`. It clears
//! when that tail rises above `clear_above` again. Nothing is judged before
//! `warmup` loops are resolved (a starting node loses loops while its links
//! come up). The baseline learns only
//! while no alarm is raised, so a slow attack does not teach it that heavy
//! loss is normal.
//!
//! This is the defence Loopix describes for its mixes' loops (Piotrowska et
//! al., USENIX Security 2017, section 4.2.2); the statistics here are ours.

use std::collections::VecDeque;
use std::time::Duration;

/// How the alarm judges loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossAlarmConfig {
    /// Loops judged together: the alarm cannot fire before this many are
    /// resolved, and forgets older ones.
    pub window: usize,
    /// The lowest loss rate the baseline is taken to be: some loss is
    /// normal (restarts, full queues), and a baseline of zero would make a
    /// single lost loop an alarm.
    pub floor: f64,
    /// Loops over which the baseline averages (an exponential moving
    /// average with weight `1 / horizon`).
    pub horizon: u32,
    /// The tail probability below which the window's loss is an alarm: the
    /// chance of a false alarm per judged window when loss is the baseline.
    pub alpha: f64,
    /// The tail probability above which a raised alarm clears.
    pub clear_above: f64,
    /// Loops resolved before the first judgement: while a node starts, its
    /// links and documents come up and early loops are lost for reasons
    /// that end by themselves.
    pub warmup: u64,
}

impl Default for LossAlarmConfig {
    fn default() -> Self {
        LossAlarmConfig {
            window: 20,
            floor: 0.05,
            horizon: 1_000,
            alpha: 1e-6,
            clear_above: 0.01,
            warmup: 40,
        }
    }
}

/// A change of the alarm's state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AlarmChange {
    /// Loss in the window is far above the baseline.
    Raised {
        /// Loops lost among the window's.
        lost: usize,
        /// Loops in the window.
        window: usize,
        /// The baseline loss rate it was judged against.
        baseline: f64,
    },
    /// Loss is back within what the baseline explains.
    Cleared,
}

/// The alarm: a window of resolved loops and a long-run baseline.
#[derive(Clone, Debug)]
pub struct LossAlarm {
    config: LossAlarmConfig,
    recent: VecDeque<bool>,
    lost_in_window: usize,
    baseline: f64,
    raised: bool,
    resolved: u64,
}

impl LossAlarm {
    /// An alarm with no history: its baseline starts at the floor.
    pub fn new(config: LossAlarmConfig) -> Self {
        LossAlarm {
            config,
            recent: VecDeque::with_capacity(config.window),
            lost_in_window: 0,
            baseline: config.floor,
            raised: false,
            resolved: 0,
        }
    }

    /// One loop resolved: `lost` if it did not come back in time.
    pub fn observe(&mut self, lost: bool) -> Option<AlarmChange> {
        let window = self.config.window.max(1);
        if self.recent.len() == window && self.recent.pop_front() == Some(true) {
            self.lost_in_window -= 1;
        }
        self.recent.push_back(lost);
        if lost {
            self.lost_in_window += 1;
        }
        if !self.raised {
            let weight = 1.0 / f64::from(self.config.horizon.max(1));
            let x = if lost { 1.0 } else { 0.0 };
            self.baseline += weight * (x - self.baseline);
        }
        self.resolved = self.resolved.saturating_add(1);
        if self.recent.len() < window || self.resolved < self.config.warmup {
            return None;
        }
        let p = self.baseline.max(self.config.floor).min(1.0);
        let tail = binomial_upper_tail(window, p, self.lost_in_window);
        if !self.raised && tail < self.config.alpha {
            self.raised = true;
            return Some(AlarmChange::Raised {
                lost: self.lost_in_window,
                window,
                baseline: p,
            });
        }
        if self.raised && tail > self.config.clear_above {
            self.raised = false;
            return Some(AlarmChange::Cleared);
        }
        None
    }

    /// Several loops resolved the same way.
    pub fn observe_many(&mut self, lost: bool, count: usize) -> Option<AlarmChange> {
        let mut last = None;
        for _ in 0..count {
            if let Some(change) = self.observe(lost) {
                last = Some(change);
            }
        }
        last
    }

    /// Whether the alarm is raised.
    pub fn raised(&self) -> bool {
        self.raised
    }

    /// The long-run loss rate (before the floor is applied).
    pub fn baseline(&self) -> f64 {
        self.baseline
    }

    /// Loops lost among the window's.
    pub fn lost_in_window(&self) -> usize {
        self.lost_in_window
    }
}

/// `P[X ≥ k]` for `X ~ Binomial(n, p)`, summed in log space so that tiny
/// tails do not underflow to zero before they are compared.
pub fn binomial_upper_tail(n: usize, p: f64, k: usize) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (ln_p, ln_q) = (p.ln(), (1.0 - p).ln());
    let mut ln_choose = ln_choose(n, k);
    let mut total = 0.0;
    for i in k..=n {
        total += (ln_choose + i as f64 * ln_p + (n - i) as f64 * ln_q).exp();
        // C(n, i+1) = C(n, i) · (n − i) / (i + 1)
        ln_choose += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
    }
    total.min(1.0)
}

fn ln_choose(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (0..k)
        .map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln())
        .sum()
}

/// What a node adds to a loop's deadline for links and queues.
pub const NODE_LINK_SLACK: Duration = Duration::from_secs(5);

/// How long a node waits for one of its loops before it counts as lost:
/// long enough that a loop through `hops` hops with exponential delays of
/// mean `mean_delay` is overdue with probability below 10⁻¹² (the sum of
/// the delays is Gamma(hops, mean); 40 means for four hops), plus
/// `link_slack` for links and queues, and never under 10 s nor over
/// `ceiling`.
pub fn loop_deadline(
    hops: usize,
    mean_delay: Duration,
    link_slack: Duration,
    ceiling: Duration,
) -> Duration {
    let means = 10 * hops.max(1) as u32;
    (mean_delay * means + link_slack).clamp(Duration::from_secs(10), ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn the_binomial_tail_matches_its_closed_forms() {
        // P[X ≥ n] = pⁿ; P[X ≥ 1] = 1 − (1 − p)ⁿ; the tail is 1 at 0.
        assert!((binomial_upper_tail(20, 0.05, 20) - 0.05f64.powi(20)).abs() < 1e-30);
        let at_least_one = 1.0 - 0.95f64.powi(20);
        assert!((binomial_upper_tail(20, 0.05, 1) - at_least_one).abs() < 1e-12);
        assert_eq!(binomial_upper_tail(20, 0.05, 0), 1.0);
        assert_eq!(binomial_upper_tail(20, 0.05, 21), 0.0);
        // R's pbinom(3, 20, 0.05, lower.tail = FALSE) and
        // pbinom(4, 20, 0.05, lower.tail = FALSE).
        assert!((binomial_upper_tail(20, 0.05, 4) - 0.015_901_526).abs() < 1e-8);
        assert!((binomial_upper_tail(20, 0.05, 5) - 0.002_573_940).abs() < 1e-8);
    }

    #[test]
    fn an_attack_on_the_input_raises_the_alarm_and_normal_loss_does_not() {
        let config = LossAlarmConfig::default();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let mut alarm = LossAlarm::new(config);
        // A start with heavy loss is forgiven.
        alarm.observe_many(true, 10);
        assert!(!alarm.raised());
        // Ten thousand loops at 3 % loss, below the floor: no alarm.
        for _ in 0..10_000 {
            let lost = rng.random_bool(0.03);
            assert_eq!(alarm.observe(lost), None);
        }
        assert!(alarm.baseline() < 0.05);
        // The input is blocked: every loop is lost. The alarm is raised
        // within one window.
        let raised_after = (1..=config.window)
            .find(|_| matches!(alarm.observe(true), Some(AlarmChange::Raised { .. })))
            .expect("alarm raised");
        assert!(raised_after <= config.window, "{raised_after}");
        assert!(alarm.raised());
        // The attack lasts; the baseline does not learn from it.
        let baseline = alarm.baseline();
        alarm.observe_many(true, 1_000);
        assert_eq!(alarm.baseline(), baseline);
        // It stops: the alarm clears within two windows.
        let cleared_after = (1..=2 * config.window)
            .find(|_| alarm.observe(false) == Some(AlarmChange::Cleared))
            .expect("alarm cleared");
        assert!(cleared_after <= 2 * config.window);
    }

    #[test]
    fn false_alarms_are_as_rare_as_alpha_says() {
        // At exactly the floor's loss rate the strict default raises no
        // alarm over 200,000 loops. With alpha = 1e-2 one judged window
        // (a fresh alarm per 20 loops) fires when 5 or more of 20 are lost,
        // which happens with probability P[X ≥ 5] = 0.00257: about 26 of
        // 10,000 windows.
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let mut strict = LossAlarm::new(LossAlarmConfig::default());
        let loose = LossAlarmConfig {
            alpha: 1e-2,
            horizon: u32::MAX,
            warmup: 0,
            ..LossAlarmConfig::default()
        };
        let windows = 10_000;
        let mut fired = 0;
        for _ in 0..windows {
            let mut judged = LossAlarm::new(loose);
            for _ in 0..loose.window {
                let lost = rng.random_bool(0.05);
                assert!(!matches!(
                    strict.observe(lost),
                    Some(AlarmChange::Raised { .. })
                ));
                judged.observe(lost);
            }
            if judged.raised() {
                fired += 1;
            }
        }
        let k = (0..=20)
            .find(|&k| binomial_upper_tail(20, 0.05, k) < loose.alpha)
            .unwrap();
        assert_eq!(k, 5);
        let expected = binomial_upper_tail(20, 0.05, k) * f64::from(windows);
        let seen = f64::from(fired);
        assert!(
            (seen - expected).abs() < 4.0 * expected.sqrt(),
            "{seen} alarms, about {expected} expected"
        );
    }

    #[test]
    fn the_deadline_covers_the_route_and_stays_in_bounds() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        assert_eq!(loop_deadline(4, ms(50), s(1), s(120)), s(10));
        assert_eq!(loop_deadline(4, ms(500), s(1), s(120)), s(21));
        assert_eq!(loop_deadline(4, s(10), s(1), s(120)), s(120));
        // Gamma(4, 1) beyond 40: e^-40 (1 + 40 + 800 + 10,666) ≈ 5e-14.
        let tail: f64 = (-40f64).exp() * (1.0 + 40.0 + 800.0 + 64_000.0 / 6.0);
        assert!(tail < 1e-12);
    }
}
