//! Parameter sweeps: one scenario, a grid of overrides, one run per point.
//!
//! `--param mixing.mu=200,20,2` sets the dotted TOML key to each value in
//! turn; several `--param`s form their Cartesian product.

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
                entropy_bits: mean(&|p| p.entropy_bits),
                min_entropy_bits: mean(&|p| p.min_entropy_bits),
                top1: mean(&|p| p.top1),
                latency_mean: 0.0,
                latency_p99: 0.0,
                overhead: 0.0,
                disclosure_recall: 0.0,
            }
        }
        Report::Network(r) => {
            let a = r.anonymity.clone().unwrap_or_default();
            SweepRow {
                overrides,
                entropy_bits: a.entropy_bits,
                min_entropy_bits: a.min_entropy_bits,
                top1: a.top1,
                latency_mean: r.latency.mean,
                latency_p99: r.latency.p99,
                overhead: r.bandwidth.overhead,
                disclosure_recall: r.disclosure.last().map_or(0.0, |p| p.recall),
            }
        }
    }
}

/// The sweep table as CSV, one column per swept key.
pub fn to_csv(rows: &[SweepRow]) -> String {
    let mut s = String::new();
    if let Some(first) = rows.first() {
        for (k, _) in &first.overrides {
            let _ = write!(s, "{k},");
        }
    }
    s.push_str(
        "entropy_bits,min_entropy_bits,top1,latency_mean,latency_p99,overhead,disclosure_recall\n",
    );
    for r in rows {
        for (_, v) in &r.overrides {
            let _ = write!(s, "{v},");
        }
        let _ = writeln!(
            s,
            "{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6}",
            r.entropy_bits,
            r.min_entropy_bits,
            r.top1,
            r.latency_mean,
            r.latency_p99,
            r.overhead,
            r.disclosure_recall
        );
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
    fn bad_params_are_reported() {
        assert!(parse_param("nokey").is_err());
        assert!(grid(BASE, &[parse_param("targets=abc").unwrap()]).is_err());
    }
}
