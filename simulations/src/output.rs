//! Writing a report: JSON, CSV files and a terminal summary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::report::{NetworkReport, Report, SingleMixReport};
use crate::{EngineStats, SimError};

/// Writes `text` to `dir/name`, returning the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> Result<PathBuf, SimError> {
    std::fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| SimError::io(&path, e))?;
    Ok(path)
}

/// The report as pretty JSON (deterministic for a given scenario and seed).
pub fn to_json(report: &Report) -> Result<String, SimError> {
    Ok(serde_json::to_string_pretty(report)? + "\n")
}

/// Writes `report.json` and the CSV tables of `report` into `dir`; returns
/// the files written.
pub fn write_report(dir: &Path, report: &Report) -> Result<Vec<PathBuf>, SimError> {
    let mut files = vec![write_file(dir, "report.json", &to_json(report)?)?];
    match report {
        Report::SingleMix(r) => {
            files.push(write_file(dir, "single_mix.csv", &single_mix_csv(r))?);
        }
        Report::Network(r) => {
            files.push(write_file(dir, "targets.csv", &targets_csv(r))?);
            files.push(write_file(dir, "latency_cdf.csv", &latency_csv(r))?);
            files.push(write_file(dir, "disclosure.csv", &disclosure_csv(r))?);
            if !r.intersection.is_empty() {
                files.push(write_file(dir, "intersection.csv", &intersection_csv(r))?);
            }
            if let Some(flow) = &r.flow {
                files.push(write_file(dir, "flow.csv", &flow_csv(flow))?);
            }
        }
    }
    Ok(files)
}

/// What produced an output folder: the program and version, the command
/// line, and the seeds, written beside the resolved scenario.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Provenance {
    /// `aegis-sim`.
    pub program: &'static str,
    /// The crate version of the binary.
    pub version: &'static str,
    /// The command line, as given.
    pub command: Vec<String>,
    /// Seeds of the runs in the folder.
    pub seeds: Vec<u64>,
}

impl Provenance {
    /// This binary's provenance for runs with `seeds`.
    pub fn new(seeds: Vec<u64>) -> Self {
        Provenance {
            program: "aegis-sim",
            version: env!("CARGO_PKG_VERSION"),
            command: std::env::args().collect(),
            seeds,
        }
    }
}

/// Writes `scenario.toml` (the scenario with every default filled in, so
/// the folder reruns without the original file) and `provenance.json`.
pub fn write_provenance(
    dir: &Path,
    scenario: &crate::Scenario,
    provenance: &Provenance,
) -> Result<Vec<PathBuf>, SimError> {
    let text = toml::to_string(scenario).map_err(|e| SimError::Format(e.to_string()))?;
    Ok(vec![
        write_file(dir, "scenario.toml", &text)?,
        write_file(
            dir,
            "provenance.json",
            &(serde_json::to_string_pretty(provenance)? + "\n"),
        )?,
    ])
}

/// Writes the wall-clock figures of a run to `dir/perf.json`.
pub fn write_stats(dir: &Path, stats: &EngineStats) -> Result<PathBuf, SimError> {
    write_file(
        dir,
        "perf.json",
        &(serde_json::to_string_pretty(stats)? + "\n"),
    )
}

fn single_mix_csv(r: &SingleMixReport) -> String {
    let mut s = String::from(
        "lambda,mu,closed_form_bits,entropy_bits,entropy_stderr,min_entropy_bits,top1,samples\n",
    );
    for p in &r.points {
        let _ = writeln!(
            s,
            "{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{}",
            p.lambda,
            p.mu,
            p.closed_form_bits,
            p.entropy_bits,
            p.entropy_stderr,
            p.min_entropy_bits,
            p.top1,
            p.samples
        );
    }
    s
}

fn targets_csv(r: &NetworkReport) -> String {
    let mut s = String::from(
        "message,sender,written_secs,delivered_secs,entropy_bits,min_entropy_bits,top1,topk,fully_corrupt_path\n",
    );
    for t in &r.targets {
        let _ = writeln!(
            s,
            "{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{}",
            t.message,
            t.sender,
            t.written_secs,
            t.delivered_secs,
            t.guess.entropy_bits,
            t.guess.min_entropy_bits,
            t.guess.top1,
            t.guess.topk,
            t.fully_corrupt_path
        );
    }
    s
}

fn latency_csv(r: &NetworkReport) -> String {
    let mut s = String::from("latency_secs,cdf\n");
    for (x, y) in &r.latency_cdf {
        let _ = writeln!(s, "{x:.6},{y:.6}");
    }
    s
}

fn disclosure_csv(r: &NetworkReport) -> String {
    let mut s = String::from("system,time_secs,precision,recall\n");
    let relay = r
        .relay_disclosure
        .iter()
        .flatten()
        .map(|p| ("dumb-relay", p));
    for (system, p) in r.disclosure.iter().map(|p| ("this", p)).chain(relay) {
        let _ = writeln!(
            s,
            "{system},{},{:.6},{:.6}",
            p.time_secs, p.precision, p.recall
        );
    }
    s
}

fn intersection_csv(r: &NetworkReport) -> String {
    let mut s = String::from("time_secs,recall\n");
    for p in &r.intersection {
        let _ = writeln!(s, "{},{:.6}", p.time_secs, p.recall);
    }
    s
}

fn flow_csv(f: &crate::flow::FlowReport) -> String {
    let mut s = String::from(
        "observe_secs,tpr,threshold,fpr_at_normal,tpr_at_normal,predicted_tpr,messages\n",
    );
    for p in &f.points {
        let _ = writeln!(
            s,
            "{},{:.6},{:.4},{:.6},{:.6},{:.6},{:.2}",
            p.observe_secs,
            p.tpr,
            p.threshold,
            p.fpr_at_normal,
            p.tpr_at_normal,
            p.predicted_tpr,
            p.messages
        );
    }
    s
}

/// A human-readable summary table.
pub fn summary(report: &Report) -> String {
    let mut s = String::new();
    match report {
        Report::SingleMix(r) => {
            let _ = writeln!(
                s,
                "single mix {} (seed {}, delay cap {})",
                r.name, r.seed, r.delay_cap
            );
            let _ = writeln!(
                s,
                "{:>8} {:>8} {:>10} {:>10} {:>8} {:>10} {:>7}",
                "lambda", "mu", "H closed", "H sim", "±se", "H_min", "top1"
            );
            for p in &r.points {
                let _ = writeln!(
                    s,
                    "{:>8} {:>8} {:>10.3} {:>10.3} {:>8.3} {:>10.3} {:>7.4}",
                    p.lambda,
                    p.mu,
                    p.closed_form_bits,
                    p.entropy_bits,
                    p.entropy_stderr,
                    p.min_entropy_bits,
                    p.top1
                );
            }
        }
        Report::Network(r) => {
            let _ = writeln!(
                s,
                "network {} (seed {}, {} clients, {} s, adversary {})",
                r.name, r.seed, r.clients, r.duration_secs, r.adversary
            );
            if let Some(a) = &r.anonymity {
                let _ = writeln!(
                    s,
                    "  sender anonymity over {} targets: H = {:.3} bits (ideal {:.3}, min {:.3}), H_min = {:.3}, top-1 = {:.4}, top-{} = {:.4}",
                    a.targets,
                    a.entropy_bits,
                    a.ideal_bits,
                    a.entropy_min_bits,
                    a.min_entropy_bits,
                    a.top1,
                    a.k,
                    a.topk
                );
                let _ = writeln!(
                    s,
                    "  fully corrupt paths: {:.4} (b^L = {:.4})",
                    a.fully_corrupt_paths, a.predicted_fully_corrupt
                );
                if let Some(h) = a.chain_closed_form_bits {
                    let _ = writeln!(
                        s,
                        "  chain closed form log2(λ) + h(Gamma(k, 1/μ)) = {h:.3} bits (inputs; an upper bound on senders)"
                    );
                }
            }
            let l = &r.latency;
            let _ = writeln!(
                s,
                "  latency over {} messages: mean {:.3} s, p50 {:.3}, p90 {:.3}, p99 {:.3}, max {:.3}",
                l.count, l.mean, l.p50, l.p90, l.p99, l.max
            );
            let b = &r.bandwidth;
            let _ = writeln!(
                s,
                "  traffic: {} written, {} real / {} loop / {} drop packets sent; overhead ×{:.2}; {:.2} hops per delivered message; {} queue drops, {} refused",
                b.messages_written,
                b.real_sent,
                b.loop_sent,
                b.drop_sent,
                b.overhead,
                b.hops_per_delivered_message,
                b.messages_queue_dropped,
                b.refused_by_nodes
            );
            let last = |c: &[crate::DisclosurePoint]| {
                c.last().map_or("-".to_string(), |p| {
                    format!(
                        "precision {:.3} recall {:.3} after {} s",
                        p.precision, p.recall, p.time_secs
                    )
                })
            };
            if !r.disclosure.is_empty() {
                let _ = writeln!(s, "  disclosure attack: {}", last(&r.disclosure));
            }
            if let Some(a) = &r.n_minus_one {
                let detected = a
                    .detected_after_secs
                    .map_or("not detected".to_string(), |t| {
                        format!("detected after {t:.1} s")
                    });
                let _ = writeln!(
                    s,
                    "  n-1 attack on mix {} (layer {}) from {:.0} s, λM = {}: {detected}; {} false alarms before, {} alarms at other mixes after; {} packets held back",
                    a.mix,
                    a.layer,
                    a.start_secs,
                    a.loop_rate,
                    a.false_alarms,
                    a.collateral_alarms,
                    a.held_back
                );
            }
            if let Some(p) = r.intersection.last() {
                let _ = writeln!(
                    s,
                    "  intersection attack on who is online: recall {:.3} after {:.1} days",
                    p.recall,
                    p.time_secs / 86_400.0
                );
            }
            if let Some(f) = &r.faults {
                let _ = writeln!(
                    s,
                    "  faults: {} real packets delivered, {} lost (ratio {:.4}; link loss {} alone leaves {:.4}); {} packets lost on links, {} at stopped nodes",
                    f.real_delivered,
                    f.real_lost,
                    f.delivery_ratio,
                    f.link_loss,
                    f.link_loss_closed_form,
                    f.lost_on_links,
                    f.lost_at_failed_nodes
                );
                for o in &f.outages {
                    let alarm = o
                        .first_alarm_after_secs
                        .map_or("no mix alarmed".to_string(), |t| {
                            format!("first alarm at another mix after {t:.1} s")
                        });
                    let _ = writeln!(
                        s,
                        "  node {} down from {:.0} s: {} packets held lost, {} arrived while down; {alarm}",
                        o.node, o.start_secs, o.held_at_failure, o.arrived_while_down
                    );
                }
            }
            if let Some(f) = &r.flow {
                for p in &f.points {
                    let _ = writeln!(
                        s,
                        "  flow correlation after {:.0} s ({:.1} messages per conversation): TPR {:.3} at FPR {} over {} conversations and {} cross pairs (closed form at z {:.2}: {:.3}, measured {:.3}; cross pairs above it {:.4})",
                        p.observe_secs,
                        p.messages,
                        p.tpr,
                        f.false_positive_rate,
                        f.pairs,
                        f.negatives,
                        crate::flow::normal_quantile(1.0 - f.false_positive_rate),
                        p.predicted_tpr,
                        p.tpr_at_normal,
                        p.fpr_at_normal
                    );
                }
            }
            if let Some(c) = &r.relay_disclosure {
                let _ = writeln!(s, "  disclosure attack on a dumb relay: {}", last(c));
            }
        }
    }
    s
}
