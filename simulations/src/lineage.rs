//! Lineage tracking: the observer's distribution over a target packet's
//! sender, computed backward from the pools' logs when the target is
//! delivered, instead of carried forward as one dense vector per packet.
//!
//! Each observer pool (a node and the class of link its packets arrived on)
//! logs its arrivals: when, the pool's running log-scale at that moment, and
//! where the packet came from (a client, or a departure from another pool).
//! A departure is summarised by four numbers: the pool, how many arrivals
//! it had seen, the log-scale and the number of packets held. Its
//! distribution over the pool's arrivals is the probability-tracking
//! mixture: arrival `j` weighs `exp(ls_dep − ls_j) / held_dep`, exactly what
//! [`crate::MixturePool`] computes forward (the same model, not an
//! approximation of it).
//!
//! At delivery the target's departure is expanded layer by layer back to the
//! clients. All departures that fall in one pool are expanded together in
//! one backward pass over its log (their weights summed with a running
//! factor), so a level costs the number of arrivals in the window that
//! matters, not a product over paths. Arrivals older than the horizon are
//! forgotten, and weights below a cut-off are not followed; the mass lost
//! either way is returned with the result, and bounds the error of the
//! entropy computed from the rest (see [`entropy_error_bound`]).
//!
//! Memory is the arrivals within the horizon (about 48 bytes each), so the
//! client population no longer matters: this is what lets a run of a
//! million clients report sender anonymity.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, DefaultHasher};

/// A hash map whose iteration order depends only on what was inserted (a
/// fixed hasher), so sums over it, and the report, repeat bit for bit.
pub type FixedMap<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

/// Weights below this share of a level's mass are not followed further.
const CUTOFF: f64 = 1e-12;

/// Added to the log-scale when a pool empties: arrivals before that moment
/// then weigh exp(−1000) = 0 in every later departure, as they must.
const EMPTIED: f64 = -1000.0;

/// Where a packet held in a pool came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Source {
    /// Sent by this client (its link to the gateway is observed).
    Client(u32),
    /// Left this pool: its distribution is that pool's mixture then.
    Departure(Departure),
}

/// One departure from a pool, enough to recompute its mixture later.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Departure {
    pool: u32,
    /// Arrivals the pool had logged (sequence numbers below this are in the mixture).
    bound: u64,
    log_scale: f64,
    held: u32,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    at: f64,
    log_scale: f64,
    source: Source,
}

#[derive(Clone, Debug, Default)]
struct LogPool {
    log_scale: f64,
    held: u32,
    /// Sequence number of `entries[0]`.
    first: u64,
    entries: VecDeque<Entry>,
}

/// The observer's view of a target: mass per candidate sender.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SenderMass {
    /// Probability per sender (sums to 1 − `lost`).
    pub mass: FixedMap<u32, f64>,
    /// Mass not attributed: arrivals past the horizon or below the cut-off.
    pub lost: f64,
}

/// The pools' logs.
#[derive(Clone, Debug)]
pub struct Lineage {
    pools: Vec<LogPool>,
    horizon: f64,
}

impl Lineage {
    /// `pools` pools whose arrivals are kept for `horizon_secs` seconds.
    pub fn new(pools: usize, horizon_secs: f64) -> Self {
        Lineage {
            pools: vec![LogPool::default(); pools],
            horizon: horizon_secs,
        }
    }

    /// A packet from `source` entered `pool` at `now` (seconds).
    pub fn arrive(&mut self, pool: usize, now: f64, source: Source) {
        let Some(p) = self.pools.get_mut(pool) else {
            return;
        };
        while p.entries.front().is_some_and(|e| e.at < now - self.horizon) {
            p.entries.pop_front();
            p.first += 1;
        }
        p.entries.push_back(Entry {
            at: now,
            log_scale: p.log_scale,
            source,
        });
        p.held += 1;
    }

    /// Everything `pool` held is gone at once (its node stopped): later
    /// departures owe nothing to what arrived before.
    pub fn clear(&mut self, pool: usize) {
        if let Some(p) = self.pools.get_mut(pool) {
            p.log_scale += EMPTIED;
            p.held = 0;
        }
    }

    /// A packet left `pool`; returns what the next pool logs as its source.
    pub fn depart(&mut self, pool: usize) -> Source {
        let Some(p) = self.pools.get_mut(pool) else {
            return Source::Client(u32::MAX);
        };
        let departure = Departure {
            pool: pool as u32,
            bound: p.first + p.entries.len() as u64,
            log_scale: p.log_scale,
            held: p.held.max(1),
        };
        if p.held <= 1 {
            p.log_scale += EMPTIED;
            p.held = 0;
        } else {
            p.log_scale += (1.0 - 1.0 / f64::from(p.held)).ln();
            p.held -= 1;
        }
        Source::Departure(departure)
    }

    /// Arrivals currently logged, over all pools (the memory in use).
    pub fn logged(&self) -> usize {
        self.pools.iter().map(|p| p.entries.len()).sum()
    }

    /// The distribution over senders of a packet whose last source is `source`.
    pub fn senders(&self, source: Source) -> SenderMass {
        let mut out = SenderMass::default();
        let mut level: FixedMap<u32, Vec<(Departure, f64)>> = FixedMap::default();
        match source {
            Source::Client(c) => {
                out.mass.insert(c, 1.0);
                return out;
            }
            Source::Departure(d) => {
                level.insert(d.pool, vec![(d, 1.0)]);
            }
        }
        while !level.is_empty() {
            let mut next: FixedMap<u32, Vec<(Departure, f64)>> = FixedMap::default();
            for (pool, departures) in level {
                self.expand(pool, departures, &mut out, &mut next);
            }
            level = next;
        }
        let attributed: f64 = out.mass.values().sum();
        out.lost = (1.0 - attributed).max(0.0);
        out
    }

    /// One backward pass over `pool`'s log for all `departures` from it:
    /// arrival j weighs Σ_{d: bound_d > j} w_d · exp(ls_d − ls_j) / held_d.
    fn expand(
        &self,
        pool: u32,
        mut departures: Vec<(Departure, f64)>,
        out: &mut SenderMass,
        next: &mut FixedMap<u32, Vec<(Departure, f64)>>,
    ) {
        let Some(p) = self.pools.get(pool as usize) else {
            return;
        };
        let total: f64 = departures.iter().map(|(_, w)| w).sum();
        let cutoff = CUTOFF * total;
        departures.sort_by_key(|(d, _)| std::cmp::Reverse(d.bound));
        let mut pending = departures.iter().peekable();
        // Running Σ over active departures of c_d · exp(ls_d − ls_j).
        let mut acc = 0.0f64;
        let Some(top) = departures.first().map(|(d, _)| d.bound) else {
            return;
        };
        let mut j = top;
        let mut prev_ls: Option<f64> = None;
        while j > p.first {
            j -= 1;
            let Some(e) = p.entries.get((j - p.first) as usize) else {
                break;
            };
            if let Some(l) = prev_ls {
                acc *= (l - e.log_scale).exp();
            }
            prev_ls = Some(e.log_scale);
            while let Some((d, w)) = pending.next_if(|(d, _)| d.bound > j) {
                acc += w / f64::from(d.held) * (d.log_scale - e.log_scale).exp();
            }
            if acc < cutoff {
                if pending.peek().is_none() {
                    break; // only ever smaller from here on
                }
                continue;
            }
            match e.source {
                Source::Client(c) => *out.mass.entry(c).or_insert(0.0) += acc,
                Source::Departure(d) => next.entry(d.pool).or_default().push((d, acc)),
            }
        }
    }
}

/// An upper bound on how far the entropy of the attributed mass
/// (renormalised) can be from the entropy of the whole distribution when a
/// share `lost` of it is missing, over `senders` candidates: by the grouping
/// rule H(q) = h(δ) + (1 − δ)·H(p) + δ·H(r), the difference is at most
/// h(δ) + δ·log2(senders).
pub fn entropy_error_bound(lost: f64, senders: usize) -> f64 {
    let d = lost.clamp(0.0, 1.0);
    let h = |x: f64| if x <= 0.0 { 0.0 } else { -x * x.log2() };
    h(d) + h(1.0 - d) + d * (senders.max(1) as f64).log2()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anonymity::{MixturePool, SenderDist};
    use rand::{RngExt, SeedableRng};

    /// Two pools in a chain, driven at random: the backward expansion gives
    /// exactly the mixture the forward pools compute.
    #[test]
    fn backward_expansion_equals_forward_pool_tracking() {
        let senders = 6usize;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut lineage = Lineage::new(2, 1e9);
        let mut forward = [MixturePool::new(senders), MixturePool::new(senders)];
        // Packets held per pool: (forward distribution, lineage source).
        let mut held: [Vec<(SenderDist, Source)>; 2] = [Vec::new(), Vec::new()];
        let mut checked = 0;
        for step in 0..4000 {
            let now = f64::from(step);
            match rng.random_range(0..4) {
                0 | 1 => {
                    let c = rng.random_range(0..senders as u32);
                    forward[0].arrive(&SenderDist::Point(c));
                    lineage.arrive(0, now, Source::Client(c));
                    held[0].push((SenderDist::Point(c), Source::Client(c)));
                }
                2 if !held[0].is_empty() => {
                    let i = rng.random_range(0..held[0].len());
                    held[0].swap_remove(i);
                    let d = forward[0].depart();
                    let s = lineage.depart(0);
                    forward[1].arrive(&d);
                    lineage.arrive(1, now, s);
                    held[1].push((d, s));
                }
                3 if !held[1].is_empty() => {
                    let i = rng.random_range(0..held[1].len());
                    held[1].swap_remove(i);
                    let want = forward[1].depart().to_dense(senders);
                    let last = lineage.depart(1);
                    let got = lineage.senders(last);
                    assert!(got.lost < 1e-9, "{got:?}");
                    for (c, w) in want.iter().enumerate() {
                        let g = got.mass.get(&(c as u32)).copied().unwrap_or(0.0);
                        assert!((g - w).abs() < 1e-5, "sender {c}: {g} vs {w}");
                    }
                    checked += 1;
                }
                _ => {}
            }
        }
        assert!(checked > 300, "{checked}");
    }

    #[test]
    fn forgotten_arrivals_are_reported_as_lost_mass() {
        let mut lineage = Lineage::new(1, 5.0);
        lineage.arrive(0, 0.0, Source::Client(1));
        lineage.arrive(0, 10.0, Source::Client(2));
        // The first arrival is past the horizon: half the mass is unknown.
        let last = lineage.depart(0);
        let got = lineage.senders(last);
        assert!((got.lost - 0.5).abs() < 1e-12, "{got:?}");
        assert!((got.mass[&2] - 0.5).abs() < 1e-12);
        assert!(entropy_error_bound(0.0, 1000) == 0.0);
        let b = entropy_error_bound(0.01, 1024);
        assert!((b - (0.0808 + 0.1)).abs() < 0.001, "{b}");
    }

    #[test]
    fn an_emptied_pool_forgets_what_it_held() {
        let mut lineage = Lineage::new(1, 1e9);
        lineage.arrive(0, 0.0, Source::Client(1));
        let d = lineage.depart(0);
        let first = lineage.senders(d);
        assert_eq!(first.mass[&1], 1.0);
        lineage.arrive(0, 1.0, Source::Client(2));
        let d = lineage.depart(0);
        let second = lineage.senders(d);
        assert_eq!(second.mass.get(&1).copied().unwrap_or(0.0), 0.0);
        assert!((second.mass[&2] - 1.0).abs() < 1e-12);
    }
}
