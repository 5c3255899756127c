//! End-to-end latency distribution in bounded memory.

use serde::Serialize;

/// Bins per decade of the logarithmic histogram (about 2.3% wide each).
const BINS_PER_DECADE: f64 = 100.0;
/// Smallest latency resolved: 10 µs; anything shorter shares the first bin.
const FLOOR_SECS: f64 = 1e-5;
/// Decades covered above the floor (up to 10^5 s).
const DECADES: usize = 10;

/// Latencies in logarithmic bins, with exact count, mean and maximum.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    bins: Vec<u64>,
    count: u64,
    sum: f64,
    max: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            bins: vec![0; DECADES * BINS_PER_DECADE as usize + 1],
            count: 0,
            sum: 0.0,
            max: 0.0,
        }
    }
}

/// Quantiles of a latency distribution, seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one latency in seconds.
    pub fn record(&mut self, secs: f64) {
        let i = ((secs.max(FLOOR_SECS) / FLOOR_SECS).log10() * BINS_PER_DECADE) as usize;
        let last = self.bins.len() - 1;
        self.bins[i.min(last)] += 1;
        self.count += 1;
        self.sum += secs;
        self.max = self.max.max(secs);
    }

    /// Upper edge of bin `i`, seconds.
    fn upper(i: usize) -> f64 {
        FLOOR_SECS * 10f64.powf((i + 1) as f64 / BINS_PER_DECADE)
    }

    /// The `q`-quantile (upper edge of its bin, capped at the maximum seen).
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let want = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &b) in self.bins.iter().enumerate() {
            seen += b;
            if seen >= want {
                return Self::upper(i).min(self.max);
            }
        }
        self.max
    }

    /// Count, mean and quantiles.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count,
            mean: if self.count == 0 {
                0.0
            } else {
                self.sum / self.count as f64
            },
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            max: self.max,
        }
    }

    /// The empirical CDF as (latency upper edge, fraction ≤) at non-empty bins.
    pub fn cdf(&self) -> Vec<(f64, f64)> {
        let mut seen = 0;
        let n = self.count.max(1) as f64;
        self.bins
            .iter()
            .enumerate()
            .filter(|(_, b)| **b > 0)
            .map(|(i, &b)| {
                seen += b;
                (Self::upper(i), seen as f64 / n)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bin_of_the_truth() {
        let mut h = LatencyHistogram::new();
        for i in 1..=1000 {
            h.record(i as f64 / 1000.0);
        }
        let s = h.summary();
        assert!((s.p50 - 0.5).abs() < 0.5 * 0.03, "{s:?}");
        assert!((s.p99 - 0.99).abs() < 0.99 * 0.03, "{s:?}");
        assert!((s.mean - 0.5005).abs() < 1e-9);
        assert_eq!(s.max, 1.0);
    }
}
