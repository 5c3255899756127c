//! Flow correlation on long conversations.
//!
//! Alice writes to Bob for a long time. The adversary watches Alice's link
//! (every packet she sends, real or cover, looks alike) and Bob's mailbox
//! (when each sealed box lands in it: Bob's gateway sees this, or Bob
//! himself when he wants to know who writes to him). Pulls are padded, so a
//! wire observer alone does not see the arrivals; the mailbox gateway does.
//! It asks of every (sender, recipient) pair it watches whether the
//! recipient's arrivals follow the sender's packets by the network's delay
//! more often than chance, as MixMatch (Oldenburg et al., PoPETs 2024) asks
//! of Nym's flows, with a matched filter in place of their learned one.
//!
//! **The statistic.** Let K be the density of the delay from a packet
//! leaving the sender to its landing in a mailbox: k delaying hops of mean
//! 1/μ each (Gamma(k, 1/μ)) after a constant link latency. For sender flow
//! S (times sᵢ) and recipient flow R (times rⱼ) over [0, T]:
//!
//!   score = Σⱼ Σᵢ K(rⱼ − sᵢ).
//!
//! If the sender is unrelated to the recipient, then given R and the count
//! N = |S| its packets are uniform on [0, T] (as for a Poisson process), so
//! the score is a sum of N independent g(s) = Σⱼ K(rⱼ − s) with
//! ∫ g = Σⱼ F(rⱼ) (F the distribution function of K) and
//! ∫ g² = Σⱼ Σⱼ' C(rⱼ − rⱼ'), C(d) = ∫ K(x) K(x + d) dx. The adversary
//! scores each pair by
//!
//!   z = (score − N ∫g / T) / √(N (∫g² / T − (∫g / T)²)),
//!
//! approximately standard normal for an unrelated pair. Each of the n
//! packets of S that the network delivered into R adds, in expectation,
//! ∫ K² = C(0) to the score when it is a typical point of S (a client
//! without a shaper sends each message when written), so a conversation's
//! z is shifted by n C(0) over that standard deviation and, at the normal
//! threshold z₁₋α, is found with probability Φ(shift − z₁₋α); ∫ K² for
//! Gamma(k, 1/μ) is μ Γ(2k − 1) / (Γ(k)² 2^(2k−1)). With Loopix shaping a
//! real packet is not a typical point: it takes the first payload slot
//! after it was written, so no payload slot lies in the Exp(λP) gap before
//! it, and its neighbours on the link add less than a Poisson stream's
//! would. The gain per packet becomes C(0) − ∫₀^∞ λP e^(−λP v) C(v) dv
//! ([`DelayKernel::slot_gap`]); at λP = 2/s and 50 ms hops that is a third
//! less. The report gives the prediction beside the measured rate.
//!
//! **The measure.** `pairs` conversations run beside the background traffic;
//! the z of every conversation is a positive, the z of every cross pair
//! (sender of one, recipient of another, between whom nothing was ever
//! delivered) a negative. The threshold is the negatives' (1 − α) quantile,
//! and the true-positive rate at α false positives is the share of
//! conversations above it, at each observation length.

use serde::{Deserialize, Serialize};

use crate::SimError;

/// Points of the tabulated delay density.
const TABLE: usize = 2048;

/// Standard deviations of the delay beyond its mean that the kernel keeps.
const TAIL_SDS: f64 = 12.0;

/// The flow-correlation experiment of a network scenario.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    /// Conversations (0 turns the attack off). They use the last
    /// 2 · `pairs` clients: each even one writes to the next.
    #[serde(default)]
    pub pairs: usize,
    /// Messages per second each conversation's sender writes to its
    /// partner (Poisson), beside its ordinary traffic.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Observation lengths, seconds from the start; those beyond the run
    /// are left out (default: the run's length and its halves down to a
    /// sixteenth).
    #[serde(default)]
    pub observe_secs: Vec<f64>,
    /// α, the false-positive rate at which true positives are counted.
    #[serde(default = "default_fpr")]
    pub false_positive_rate: f64,
}

fn default_rate() -> f64 {
    0.05
}

fn default_fpr() -> f64 {
    0.01
}

impl Default for FlowSpec {
    fn default() -> Self {
        FlowSpec {
            pairs: 0,
            rate: default_rate(),
            observe_secs: Vec::new(),
            false_positive_rate: default_fpr(),
        }
    }
}

impl FlowSpec {
    /// Whether the attack runs.
    pub fn enabled(&self) -> bool {
        self.pairs > 0
    }

    /// Checks the spec against the run's clients, length and mixing.
    pub fn validate(&self, clients: usize, poisson: bool) -> Result<(), SimError> {
        if !self.enabled() {
            return Ok(());
        }
        let bad = |m: &str| Err(SimError::Invalid(format!("flow: {m}")));
        if self.pairs < 2 || 2 * self.pairs > clients {
            return bad("pairs must be at least 2 and at most half the clients");
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return bad("rate must be positive");
        }
        if !(self.false_positive_rate > 0.0 && self.false_positive_rate < 1.0) {
            return bad("false_positive_rate must be in (0, 1)");
        }
        if self
            .observe_secs
            .iter()
            .any(|&t| !(t > 0.0 && t.is_finite()))
        {
            return bad("every observe_secs must be positive");
        }
        if !poisson {
            return bad("the delay model needs mixing.strategy = \"poisson\"");
        }
        Ok(())
    }

    /// The observation lengths, ascending: those of `observe_secs` within
    /// the run (so a sweep over `duration_secs` keeps one list), or the
    /// run's length and its halves down to a sixteenth.
    pub fn lengths(&self, duration: f64) -> Vec<f64> {
        let mut lengths: Vec<f64> = self
            .observe_secs
            .iter()
            .copied()
            .filter(|&t| t <= duration)
            .collect();
        if lengths.is_empty() {
            lengths = (0..5)
                .rev()
                .map(|i| duration / f64::from(1u32 << i))
                .collect();
        }
        lengths.sort_by(f64::total_cmp);
        lengths.dedup();
        lengths
    }
}

/// The adversary's model of the delay from a sender's link to a mailbox:
/// Gamma(k, 1/μ) after a constant `shift`, tabulated with its distribution
/// function and its autocorrelation C.
#[derive(Clone, Debug)]
pub struct DelayKernel {
    shift: f64,
    step: f64,
    density: Vec<f64>,
    cdf: Vec<f64>,
    overlap: Vec<f64>,
}

/// ln((n)!) for small n.
fn ln_factorial(n: u32) -> f64 {
    (2..=n).map(|j| f64::from(j).ln()).sum()
}

/// ∫ f² of the Gamma(k, 1/μ) density f: μ Γ(2k − 1) / (Γ(k)² 2^(2k−1)).
pub fn gamma_self_overlap(hops: u32, mu: f64) -> f64 {
    let k = hops.max(1);
    let ln = ln_factorial(2 * k - 2) - 2.0 * ln_factorial(k - 1) - f64::from(2 * k - 1) * 2f64.ln();
    mu * ln.exp()
}

/// Linear interpolation in `table` at `x / step`; 0 outside.
fn lookup(table: &[f64], step: f64, x: f64) -> f64 {
    if x < 0.0 {
        return 0.0;
    }
    let at = x / step;
    let i = at.floor() as usize;
    match (table.get(i), table.get(i + 1)) {
        (Some(&a), Some(&b)) => a + (b - a) * (at - i as f64),
        (Some(&a), None) if at == i as f64 => a,
        _ => 0.0,
    }
}

impl DelayKernel {
    /// `hops` exponential delays of rate `mu` after `shift` seconds.
    pub fn gamma(hops: u32, mu: f64, shift: f64) -> Self {
        let k = f64::from(hops.max(1));
        let width = (k + TAIL_SDS * k.sqrt()) / mu;
        let step = width / (TABLE - 1) as f64;
        let ln_norm = k * mu.ln() - ln_factorial(hops.max(1) - 1);
        let density: Vec<f64> = (0..TABLE)
            .map(|n| {
                let x = n as f64 * step;
                if x == 0.0 {
                    if hops <= 1 { mu } else { 0.0 }
                } else {
                    (ln_norm + (k - 1.0) * x.ln() - mu * x).exp()
                }
            })
            .collect();
        // Trapezoid rule for the distribution function and for
        // C(m·step) = ∫ K(x) K(x + m·step) dx.
        let mut cdf = Vec::with_capacity(TABLE);
        let mut acc = 0.0;
        for n in 0..TABLE {
            if n > 0 {
                acc += 0.5 * step * (density[n - 1] + density[n]);
            }
            cdf.push(acc);
        }
        let overlap = (0..TABLE)
            .map(|m| {
                let products = density.iter().zip(&density[m..]).map(|(a, b)| a * b);
                let count = TABLE - m;
                let sum: f64 = products.sum();
                let ends = density[0] * density[m] + density[count - 1] * density[TABLE - 1];
                step * (sum - 0.5 * ends)
            })
            .collect();
        DelayKernel {
            shift,
            step,
            density,
            cdf,
            overlap,
        }
    }

    /// K at a delay of `delay` seconds.
    pub fn density(&self, delay: f64) -> f64 {
        lookup(&self.density, self.step, delay - self.shift)
    }

    /// F, the probability that the delay is at most `delay`.
    pub fn cdf(&self, delay: f64) -> f64 {
        let x = delay - self.shift;
        if x >= self.span() {
            self.cdf[TABLE - 1]
        } else {
            lookup(&self.cdf, self.step, x)
        }
    }

    /// C(lag) = ∫ K(x) K(x + lag) dx.
    pub fn overlap(&self, lag: f64) -> f64 {
        lookup(&self.overlap, self.step, lag.abs())
    }

    /// ∫₀^∞ r e^(−r v) C(v) dv: what a real packet's neighbours on its
    /// sender's link fall short of a Poisson stream's by, when it leaves in
    /// the first slot of a Poisson slot stream of rate r after being
    /// written (no slot of that stream lies between the writing and the
    /// packet, a gap Exp(r) long).
    pub fn slot_gap(&self, rate: f64) -> f64 {
        let weight = |m: usize| {
            let v = m as f64 * self.step;
            rate * (-rate * v).exp() * self.overlap[m]
        };
        let inner: f64 = (1..TABLE - 1).map(weight).sum();
        self.step * (inner + 0.5 * (weight(0) + weight(TABLE - 1)))
    }

    /// The shortest delay the kernel allows.
    pub fn shift(&self) -> f64 {
        self.shift
    }

    /// How far past the shift the kernel reaches.
    pub fn span(&self) -> f64 {
        self.step * (TABLE - 1) as f64
    }
}

/// Φ, the standard normal distribution function (erfc by the Chebyshev
/// fit of Numerical Recipes, relative error below 1.2e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

/// Φ⁻¹(p) for p in (0, 1), by bisection on [`normal_cdf`].
pub fn normal_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0_f64, 40.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// What the adversary knows about a recipient's flow up to each
/// observation length: arrivals, Σ F and Σ Σ C.
struct RecipientSums {
    mean: Vec<f64>,
    var: Vec<f64>,
}

fn recipient_sums(kernel: &DelayKernel, arrived: &[f64], lengths: &[f64]) -> RecipientSums {
    let (mut mean, mut var) = (Vec::new(), Vec::new());
    let (mut m, mut v) = (0.0, 0.0);
    let mut next = 0;
    for (a, &r) in arrived.iter().enumerate() {
        while next < lengths.len() && r > lengths[next] {
            mean.push(m);
            var.push(v);
            next += 1;
        }
        m += kernel.cdf(r);
        v += kernel.overlap(0.0);
        for &earlier in arrived[..a].iter().rev() {
            let lag = r - earlier;
            if lag >= kernel.span() {
                break;
            }
            v += 2.0 * kernel.overlap(lag);
        }
    }
    while next < lengths.len() {
        mean.push(m);
        var.push(v);
        next += 1;
    }
    RecipientSums { mean, var }
}

/// The z of "`sent` feeds `arrived`" at each observation length.
pub fn z_scores(kernel: &DelayKernel, sent: &[f64], arrived: &[f64], lengths: &[f64]) -> Vec<f64> {
    let sums = recipient_sums(kernel, arrived, lengths);
    let scores = pair_scores(kernel, sent, arrived, lengths);
    (0..lengths.len())
        .map(|l| z_of(scores[l], sent, lengths[l], sums.mean[l], sums.var[l]))
        .collect()
}

/// The score's mean and standard deviation for an unrelated sender that
/// put `count` packets on its link in [0, `length`]: given the count, its
/// packets are uniform there, so the score is a sum of `count` independent
/// g(s) = Σⱼ K(rⱼ − s), s uniform, with ∫ g = `mean` and ∫ g² = `var`.
fn null_moments(count: usize, length: f64, mean: f64, var: f64) -> (f64, f64) {
    let n = count as f64;
    let first = mean / length;
    let second = var / length;
    (n * first, (n * (second - first * first)).max(0.0).sqrt())
}

fn z_of(score: f64, sent: &[f64], length: f64, mean: f64, var: f64) -> f64 {
    let count = sent.partition_point(|&s| s <= length);
    let (expected, spread) = null_moments(count, length, mean, var);
    if spread > 0.0 {
        (score - expected) / spread
    } else {
        0.0
    }
}

/// Σⱼ Σᵢ K(rⱼ − sᵢ) over rⱼ ≤ each length.
fn pair_scores(kernel: &DelayKernel, sent: &[f64], arrived: &[f64], lengths: &[f64]) -> Vec<f64> {
    let reach = kernel.shift() + kernel.span();
    let mut out = Vec::with_capacity(lengths.len());
    let mut score = 0.0;
    let mut first = 0;
    let mut next = 0;
    for &r in arrived {
        while next < lengths.len() && r > lengths[next] {
            out.push(score);
            next += 1;
        }
        while first < sent.len() && sent[first] < r - reach {
            first += 1;
        }
        for &s in &sent[first..] {
            if s >= r {
                break;
            }
            score += kernel.density(r - s);
        }
    }
    while next < lengths.len() {
        out.push(score);
        next += 1;
    }
    out
}

/// The attack's result at one observation length.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowPoint {
    /// Seconds observed.
    pub observe_secs: f64,
    /// Conversations found at α false positives (the negatives' threshold).
    pub tpr: f64,
    /// That threshold: the negatives' (1 − α) quantile of z.
    pub threshold: f64,
    /// Share of negatives above the normal quantile z₁₋α: α if the null
    /// model holds.
    pub fpr_at_normal: f64,
    /// Share of conversations above z₁₋α.
    pub tpr_at_normal: f64,
    /// The closed form's share above z₁₋α (see the module documentation).
    pub predicted_tpr: f64,
    /// Mean messages of a conversation delivered by then.
    pub messages: f64,
}

/// The flow-correlation attack's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowReport {
    /// Conversations (positives).
    pub pairs: usize,
    /// Cross pairs between whom nothing was delivered (negatives).
    pub negatives: usize,
    /// α.
    pub false_positive_rate: f64,
    /// Delaying hops in the adversary's delay model.
    pub hops: u32,
    /// Its constant link latency, seconds.
    pub shift_secs: f64,
    /// One point per observation length.
    pub points: Vec<FlowPoint>,
}

/// How a sender's real packets take their place on its link, for the
/// closed form's prediction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Slots {
    /// Each leaves when written (no shaper): a typical point of the link.
    AtOnce,
    /// Each takes the next slot of a Poisson payload stream of this rate.
    Poisson(f64),
    /// Anything else (constant-rate slots): no prediction.
    Other,
}

/// The observations of the conversations' flows.
#[derive(Clone, Debug)]
pub struct FlowAttack {
    first: usize,
    pairs: usize,
    /// Per conversation: its sender's packets on the link.
    sent: Vec<Vec<f64>>,
    /// Per conversation: boxes landing in its recipient's mailbox.
    arrived: Vec<Vec<f64>>,
    /// Per conversation: which of those came from its own sender.
    delivered: Vec<Vec<f64>>,
    /// `linked[i · pairs + j]`: sender i delivered something to recipient j.
    linked: Vec<bool>,
}

impl FlowAttack {
    /// `pairs` conversations among the last 2 · `pairs` of `clients`.
    pub fn new(clients: usize, pairs: usize) -> Self {
        FlowAttack {
            first: clients.saturating_sub(2 * pairs),
            pairs,
            sent: vec![Vec::new(); pairs],
            arrived: vec![Vec::new(); pairs],
            delivered: vec![Vec::new(); pairs],
            linked: vec![false; pairs * pairs],
        }
    }

    /// Conversation `i`'s (sender, recipient).
    pub fn pair(&self, i: usize) -> (usize, usize) {
        let sender = self.first + 2 * i;
        (sender, sender + 1)
    }

    fn slot(&self, client: usize, recipient: bool) -> Option<usize> {
        let offset = client.checked_sub(self.first)?;
        let i = offset / 2;
        (i < self.pairs && (offset % 2 == 1) == recipient).then_some(i)
    }

    /// `client` put a packet on its link at `at`.
    pub fn observe_send(&mut self, client: usize, at: f64) {
        if let Some(i) = self.slot(client, false) {
            self.sent[i].push(at);
        }
    }

    /// A box from `from` landed in `client`'s mailbox at `at`.
    pub fn observe_arrival(&mut self, client: usize, at: f64, from: usize) {
        let Some(j) = self.slot(client, true) else {
            return;
        };
        self.arrived[j].push(at);
        if let Some(i) = self.slot(from, false) {
            self.linked[i * self.pairs + j] = true;
            if i == j {
                self.delivered[j].push(at);
            }
        }
    }

    /// Scores every pair at every length in `lengths` (ascending).
    /// `slots` is how real packets leave: see [`Slots`].
    pub fn evaluate(
        &self,
        kernel: &DelayKernel,
        lengths: &[f64],
        alpha: f64,
        slots: Slots,
    ) -> Vec<FlowPoint> {
        let gain = match slots {
            Slots::AtOnce => Some(kernel.overlap(0.0)),
            Slots::Poisson(rate) => Some(kernel.overlap(0.0) - kernel.slot_gap(rate)),
            Slots::Other => None,
        };
        let sums: Vec<RecipientSums> = self
            .arrived
            .iter()
            .map(|a| recipient_sums(kernel, a, lengths))
            .collect();
        let mut positives = vec![Vec::new(); lengths.len()];
        let mut negatives = vec![Vec::new(); lengths.len()];
        let mut predicted = vec![0.0; lengths.len()];
        let normal = normal_quantile(1.0 - alpha);
        for i in 0..self.pairs {
            for (j, sum) in sums.iter().enumerate() {
                if i != j && self.linked[i * self.pairs + j] {
                    continue;
                }
                let scores = pair_scores(kernel, &self.sent[i], &self.arrived[j], lengths);
                for (l, &length) in lengths.iter().enumerate() {
                    let (mean, var) = (sum.mean[l], sum.var[l]);
                    let z = z_of(scores[l], &self.sent[i], length, mean, var);
                    if i == j {
                        positives[l].push(z);
                        let n = self.delivered[j].partition_point(|&t| t <= length);
                        let count = self.sent[i].partition_point(|&s| s <= length);
                        let (_, spread) = null_moments(count, length, mean, var);
                        predicted[l] += match gain {
                            Some(gain) if spread > 0.0 => {
                                normal_cdf(n as f64 * gain / spread - normal)
                            }
                            Some(_) => normal_cdf(-normal),
                            None => f64::NAN,
                        };
                    } else {
                        negatives[l].push(z);
                    }
                }
            }
        }
        let share = |zs: &[f64], above: f64| {
            zs.iter().filter(|&&z| z > above).count() as f64 / zs.len().max(1) as f64
        };
        lengths
            .iter()
            .enumerate()
            .map(|(l, &length)| {
                let mut neg = negatives[l].clone();
                neg.sort_by(|a, b| b.total_cmp(a));
                let k =
                    ((alpha * neg.len() as f64).floor() as usize).min(neg.len().saturating_sub(1));
                let threshold = neg.get(k).copied().unwrap_or(f64::INFINITY);
                let messages = self
                    .delivered
                    .iter()
                    .map(|d| d.partition_point(|&t| t <= length) as f64)
                    .sum::<f64>()
                    / self.pairs.max(1) as f64;
                FlowPoint {
                    observe_secs: length,
                    tpr: share(&positives[l], threshold),
                    threshold,
                    fpr_at_normal: share(&negatives[l], normal),
                    tpr_at_normal: share(&positives[l], normal),
                    predicted_tpr: predicted[l] / self.pairs.max(1) as f64,
                    messages,
                }
            })
            .collect()
    }

    /// Cross pairs that count as negatives.
    pub fn negatives(&self) -> usize {
        (0..self.pairs)
            .flat_map(|i| (0..self.pairs).map(move |j| (i, j)))
            .filter(|&(i, j)| i != j && !self.linked[i * self.pairs + j])
            .count()
    }
}

#[cfg(test)]
mod tests;
