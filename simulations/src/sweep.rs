//! Parameter sweeps: one scenario, a grid of overrides, one run per point.
//!
//! `--param mixing.mu=200,20,2` sets the dotted TOML key to each value in
//! turn; several `--param`s form their Cartesian product. With
//! `--replicates N` every grid point runs N times, replicate r with the
//! point's seed + r, and the table gives each figure's mean and the
//! half-width of its 95 % confidence interval (Student's t with N − 1
//! degrees of freedom).

use std::fmt::Write as _;

use serde::Serialize;

use crate::report::Report;
use crate::{Scenario, SimError};

/// One swept key and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepParam {
    /// Dotted key, e.g. `mixing.mu`.
    pub key: String,
    /// Values in order.
    pub values: Vec<toml::Value>,
}

/// One grid point: its overrides and the scenario they produce.
#[derive(Clone, Debug)]
pub struct GridPoint {
    /// `key=value` pairs, in `--param` order.
    pub overrides: Vec<(String, String)>,
    /// The scenario with the overrides applied.
    pub scenario: Scenario,
}

/// The headline numbers of one run, for the sweep table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepRow {
    /// `key=value` pairs.
    pub overrides: Vec<(String, String)>,
    /// The run's seed.
    pub seed: u64,
    /// Mean sender entropy (network) or mean measured entropy (single mix), bits.
    pub entropy_bits: f64,
    /// Mean min-entropy, bits.
    pub min_entropy_bits: f64,
    /// Mean top-1 guess success.
    pub top1: f64,
    /// Mean latency, seconds (network only).
    pub latency_mean: f64,
    /// 99th percentile latency, seconds (network only).
    pub latency_p99: f64,
    /// Cover overhead factor (network only).
    pub overhead: f64,
    /// Final disclosure-attack recall (network only).
    pub disclosure_recall: f64,
    /// Final intersection-attack recall (network with churn only).
    pub intersection_recall: f64,
    /// Seconds until the attacked mix's alarm in an n−1 attack (NaN: no
    /// attack, or not detected).
    pub n_minus_one_detection_secs: f64,
    /// Flow correlation's true-positive rate at its false-positive rate,
    /// over the longest observation (NaN: not run).
    pub flow_tpr: f64,
    /// Share of real packets delivered, with faults (NaN: no faults).
    pub delivery_ratio: f64,
}

/// Parses `key=v1,v2,...`; values are read as TOML integers, floats,
/// booleans, or else strings.
pub fn parse_param(arg: &str) -> Result<SweepParam, SimError> {
    let (key, values) = arg
        .split_once('=')
        .ok_or_else(|| SimError::Sweep(format!("{arg:?}: expected key=value[,value...]")))?;
    let key = key.trim();
    if key.is_empty() || values.trim().is_empty() {
        return Err(SimError::Sweep(format!("{arg:?}: empty key or values")));
    }
    let values = values.split(',').map(|v| parse_value(v.trim())).collect();
    Ok(SweepParam {
        key: key.to_string(),
        values,
    })
}

fn parse_value(v: &str) -> toml::Value {
    if let Ok(i) = v.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(f) = v.parse::<f64>() {
        toml::Value::Float(f)
    } else if let Ok(b) = v.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(v.to_string())
    }
}

fn set(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), SimError> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let leaf = parts.pop().unwrap_or_default();
    let mut t = table;
    for p in parts {
        t = t
            .entry(p)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| SimError::Sweep(format!("{key}: {p} is not a table")))?;
    }
    // A float field given an integer value stays a float.
    let value = match (t.get(leaf), value) {
        (Some(toml::Value::Float(_)), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
        (_, v) => v,
    };
    t.insert(leaf.to_string(), value);
    Ok(())
}

/// Every grid point of `params` applied to the scenario text `base`.
pub fn grid(base: &str, params: &[SweepParam]) -> Result<Vec<GridPoint>, SimError> {
    let table: toml::Table = toml::from_str(base).map_err(|e| SimError::Format(e.to_string()))?;
    let mut points = vec![(table, Vec::new())];
    for p in params {
        let mut next = Vec::new();
        for (t, overrides) in &points {
            for v in &p.values {
                let mut t = t.clone();
                set(&mut t, &p.key, v.clone())?;
                let mut o: Vec<(String, String)> = overrides.clone();
                o.push((p.key.clone(), v.to_string().trim_matches('"').to_string()));
                next.push((t, o));
            }
        }
        points = next;
    }
    points
        .into_iter()
        .map(|(t, overrides)| {
            let text = toml::to_string(&t).map_err(|e| SimError::Format(e.to_string()))?;
            let scenario = Scenario::from_toml(&text)
                .map_err(|e| SimError::Sweep(format!("{overrides:?}: {e}")))?;
            Ok(GridPoint {
                overrides,
                scenario,
            })
        })
        .collect()
}

/// The headline numbers of `report`.
pub fn row(overrides: Vec<(String, String)>, report: &Report) -> SweepRow {
    match report {
        Report::SingleMix(r) => {
            let n = r.points.len().max(1) as f64;
            let mean =
                |f: &dyn Fn(&crate::SingleMixPoint) -> f64| r.points.iter().map(f).sum::<f64>() / n;
            SweepRow {
                overrides,
                seed: r.seed,
                entropy_bits: mean(&|p| p.entropy_bits),
                min_entropy_bits: mean(&|p| p.min_entropy_bits),
                top1: mean(&|p| p.top1),
                latency_mean: 0.0,
                latency_p99: 0.0,
                overhead: 0.0,
                disclosure_recall: 0.0,
                intersection_recall: 0.0,
                n_minus_one_detection_secs: f64::NAN,
                flow_tpr: f64::NAN,
                delivery_ratio: f64::NAN,
            }
        }
        Report::Network(r) => {
            let a = r.anonymity.clone().unwrap_or_default();
            SweepRow {
                overrides,
                seed: r.seed,
                entropy_bits: a.entropy_bits,
                min_entropy_bits: a.min_entropy_bits,
                top1: a.top1,
                latency_mean: r.latency.mean,
                latency_p99: r.latency.p99,
                overhead: r.bandwidth.overhead,
                disclosure_recall: r.disclosure.last().map_or(0.0, |p| p.recall),
                intersection_recall: r.intersection.last().map_or(0.0, |p| p.recall),
                n_minus_one_detection_secs: r
                    .n_minus_one
                    .as_ref()
                    .and_then(|a| a.detected_after_secs)
                    .unwrap_or(f64::NAN),
                flow_tpr: r
                    .flow
                    .as_ref()
                    .and_then(|f| f.points.last())
                    .map_or(f64::NAN, |p| p.tpr),
                delivery_ratio: r.faults.as_ref().map_or(f64::NAN, |f| f.delivery_ratio),
            }
        }
    }
}

/// The figures of a row, in table order, with their column names.
const FIGURES: [&str; 11] = [
    "entropy_bits",
    "min_entropy_bits",
    "top1",
    "latency_mean",
    "latency_p99",
    "overhead",
    "disclosure_recall",
    "intersection_recall",
    "n_minus_one_detection_secs",
    "flow_tpr",
    "delivery_ratio",
];

impl SweepRow {
    fn figures(&self) -> [f64; 11] {
        [
            self.entropy_bits,
            self.min_entropy_bits,
            self.top1,
            self.latency_mean,
            self.latency_p99,
            self.overhead,
            self.disclosure_recall,
            self.intersection_recall,
            self.n_minus_one_detection_secs,
            self.flow_tpr,
            self.delivery_ratio,
        ]
    }
}

/// One run to do: replicate `replicate` of grid point `point`.
#[derive(Clone, Debug)]
pub struct Task {
    /// Index into the grid.
    pub point: usize,
    /// 0-based replicate.
    pub replicate: usize,
    /// The point's scenario with the replicate's seed.
    pub scenario: Scenario,
}

/// Every (point, replicate) of `grid`, point-major; replicate r runs with
/// the point's seed + r.
pub fn tasks(grid: &[GridPoint], replicates: usize) -> Vec<Task> {
    let mut out = Vec::new();
    for (point, g) in grid.iter().enumerate() {
        for replicate in 0..replicates.max(1) {
            let mut scenario = g.scenario.clone();
            let bump = replicate as u64;
            match &mut scenario {
                Scenario::SingleMix(s) => s.seed = s.seed.wrapping_add(bump),
                Scenario::Network(s) => s.seed = s.seed.wrapping_add(bump),
            }
            out.push(Task {
                point,
                replicate,
                scenario,
            });
        }
    }
    out
}

/// Two-sided 95 % quantile of Student's t with `df` degrees of freedom
/// (published table values; the normal 1.960 beyond 30).
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        _ => 1.960,
    }
}

/// A figure over replicates: the mean and the half-width of its 95 %
/// confidence interval (NaN with one replicate).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// Sample mean.
    pub mean: f64,
    /// t(0.975, n − 1) · s / √n.
    pub ci95: f64,
}

impl Estimate {
    /// The estimate from samples `xs`.
    pub fn of(xs: &[f64]) -> Self {
        let n = xs.len();
        if n == 0 {
            return Estimate {
                mean: f64::NAN,
                ci95: f64::NAN,
            };
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
        Estimate {
            mean,
            ci95: t_975(n - 1) * (var / n as f64).sqrt(),
        }
    }
}

/// A grid point over its replicates.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointSummary {
    /// `key=value` pairs.
    pub overrides: Vec<(String, String)>,
    /// Seeds of the replicates, in order.
    pub seeds: Vec<u64>,
    /// Each figure of [`SweepRow`], in table order.
    pub figures: Vec<(String, Estimate)>,
}

impl PointSummary {
    /// Summarises the replicates `rows` of one grid point.
    pub fn of(rows: &[SweepRow]) -> Self {
        let figures = FIGURES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let xs: Vec<f64> = rows.iter().map(|r| r.figures()[i]).collect();
                ((*name).to_string(), Estimate::of(&xs))
            })
            .collect();
        PointSummary {
            overrides: rows
                .first()
                .map(|r| r.overrides.clone())
                .unwrap_or_default(),
            seeds: rows.iter().map(|r| r.seed).collect(),
            figures,
        }
    }

    /// The estimate of figure `name`.
    pub fn figure(&self, name: &str) -> Option<Estimate> {
        self.figures
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| *e)
    }
}

fn key_columns(s: &mut String, overrides: &[(String, String)]) {
    for (k, _) in overrides {
        let _ = write!(s, "{k},");
    }
}

/// The sweep table as CSV: one row per grid point, one column per swept
/// key, the number of replicates, then each figure's mean and 95 % CI
/// half-width.
pub fn to_csv(points: &[PointSummary]) -> String {
    let mut s = String::new();
    if let Some(first) = points.first() {
        key_columns(&mut s, &first.overrides);
    }
    s.push_str("replicates");
    for f in FIGURES {
        let _ = write!(s, ",{f},{f}_ci95");
    }
    s.push('\n');
    for p in points {
        for (_, v) in &p.overrides {
            let _ = write!(s, "{v},");
        }
        let _ = write!(s, "{}", p.seeds.len());
        for (_, e) in &p.figures {
            let _ = write!(s, ",{:.6},{:.6}", e.mean, e.ci95);
        }
        s.push('\n');
    }
    s
}

/// Every run as CSV: swept keys, seed, then the figures.
pub fn runs_csv(rows: &[SweepRow]) -> String {
    let mut s = String::new();
    if let Some(first) = rows.first() {
        key_columns(&mut s, &first.overrides);
    }
    s.push_str("seed");
    for f in FIGURES {
        let _ = write!(s, ",{f}");
    }
    s.push('\n');
    for r in rows {
        for (_, v) in &r.overrides {
            let _ = write!(s, "{v},");
        }
        let _ = write!(s, "{}", r.seed);
        for x in r.figures() {
            let _ = write!(s, ",{x:.6}");
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "kind = \"single-mix\"\nname = \"g\"\nseed = 1\nlambdas = [10.0]\nmus = [1.0]\n";

    #[test]
    fn the_grid_is_the_cartesian_product_of_params() {
        let a = parse_param("seed=1,2,3").unwrap();
        let b = parse_param("targets=5,6").unwrap();
        let g = grid(BASE, &[a, b]).unwrap();
        assert_eq!(g.len(), 6);
        assert_eq!(
            g[5].overrides,
            vec![("seed".into(), "3".into()), ("targets".into(), "6".into())]
        );
        match &g[5].scenario {
            Scenario::SingleMix(s) => assert_eq!((s.seed, s.targets), (3, 6)),
            Scenario::Network(_) => panic!("wrong kind"),
        }
    }

    #[test]
    fn replicates_take_consecutive_seeds_and_give_a_t_interval() {
        let g = grid(BASE, &[parse_param("targets=5,6").unwrap()]).unwrap();
        let t = tasks(&g, 3);
        assert_eq!(t.len(), 6);
        let seeds: Vec<u64> = t
            .iter()
            .map(|t| match &t.scenario {
                Scenario::SingleMix(s) => s.seed,
                Scenario::Network(s) => s.seed,
            })
            .collect();
        assert_eq!(seeds, [1, 2, 3, 1, 2, 3]);
        assert_eq!((t[4].point, t[4].replicate), (1, 1));
        // Samples 1, 2, 3: mean 2, s = 1, half-width t(0.975, 2)/√3 = 4.303/1.732.
        let e = Estimate::of(&[1.0, 2.0, 3.0]);
        assert!((e.mean - 2.0).abs() < 1e-12);
        assert!((e.ci95 - 4.303 / 3f64.sqrt()).abs() < 1e-9, "{e:?}");
        assert!(Estimate::of(&[5.0]).ci95.is_nan());
        assert_eq!(t_975(1000), 1.960);
    }

    #[test]
    fn bad_params_are_reported() {
        assert!(parse_param("nokey").is_err());
        assert!(grid(BASE, &[parse_param("targets=abc").unwrap()]).is_err());
    }
}
