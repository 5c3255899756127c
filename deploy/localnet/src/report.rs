//! What the launcher counts and reports: the live summary for people and
//! the JSON report (`--report FILE`) for tests and tools.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Tally {
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub received: HashSet<String>,
    pub duplicates: u64,
    pub latencies: Vec<f64>,
    pub queued_at: HashMap<(String, u64), Instant>,
    pub texts: HashMap<(String, u64), String>,
    pub cover: BTreeMap<String, (u64, u64, u64, u64)>,
}

pub use aegis_testkit::percentile;

fn fmt_secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.2}s"))
}

/// A counter family by reason, summed over several `/metrics` endpoints.
pub async fn summed_by_reason(
    http: &reqwest::Client,
    metrics: &[String],
    family: &str,
) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for url in metrics {
        let Ok(r) = http.get(url).send().await else {
            continue;
        };
        let Ok(text) = r.text().await else { continue };
        for (reason, count) in aegis_node::metrics::MetricsText(text).by_reason(family) {
            *sums.entry(reason).or_insert(0) += count;
        }
    }
    sums
}

/// Loop alarms raised, summed over the nodes' `/metrics`.
pub async fn loop_alarms(http: &reqwest::Client, metrics: &[String]) -> u64 {
    let mut sum = 0;
    for url in metrics {
        let Ok(r) = http.get(url).send().await else {
            continue;
        };
        let Ok(text) = r.text().await else { continue };
        sum += aegis_node::metrics::MetricsText(text)
            .value("aegis_node_loop_alarms_total")
            .unwrap_or(0);
    }
    sum
}

/// Drops by reason, summed over the nodes' `/metrics`.
pub async fn node_drops(http: &reqwest::Client, metrics: &[String]) -> BTreeMap<String, u64> {
    summed_by_reason(http, metrics, "aegis_node_dropped_total").await
}

pub fn handle_event(tally: &mut Tally, who: &str, event: &serde_json::Value) {
    let kind = event["event"].as_str().unwrap_or("");
    match kind {
        "queued" => {
            if let Some(id) = event["id"].as_u64() {
                tally.queued_at.insert((who.to_owned(), id), Instant::now());
            }
        }
        "status" => {
            let (Some(id), Some(status)) = (event["id"].as_u64(), event["status"].as_str()) else {
                return;
            };
            match status {
                "delivered" => {
                    tally.delivered += 1;
                    if let Some(at) = tally.queued_at.remove(&(who.to_owned(), id)) {
                        tally.latencies.push(at.elapsed().as_secs_f64());
                    }
                }
                "failed" => tally.failed += 1,
                _ => {}
            }
        }
        "message" => {
            let text = event["text"].as_str().unwrap_or("").to_owned();
            if !tally.received.insert(text) {
                tally.duplicates += 1;
            }
        }
        "stats" => {
            let g = |k: &str| event[k].as_u64().unwrap_or(0);
            tally.cover.insert(
                who.to_owned(),
                (
                    g("real_sent"),
                    g("loops_sent"),
                    g("drops_sent"),
                    g("loops_returned"),
                ),
            );
        }
        "error" => eprintln!("{who}: {}", event["message"]),
        _ => {}
    }
}

/// The figures of a run, as the JSON report holds them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// Seconds since the messages started.
    pub elapsed_s: u64,
    /// Messages sent.
    pub sent: u64,
    /// Messages whose sender saw them delivered.
    pub delivered: u64,
    /// Distinct messages received.
    pub received: u64,
    /// Messages whose sender saw them fail.
    pub failed: u64,
    /// Messages received more than once.
    pub duplicates: u64,
    /// End-to-end latency percentiles (queued to delivered), seconds.
    pub latency_p50_s: Option<f64>,
    /// 90th percentile.
    pub latency_p90_s: Option<f64>,
    /// 99th percentile.
    pub latency_p99_s: Option<f64>,
    /// Real packets the clients sent.
    pub real_packets: u64,
    /// Cover packets (loops and drops) the clients sent.
    pub cover_packets: u64,
    /// The clients' loops sent and back.
    pub loops_sent: u64,
    /// Loops back.
    pub loops_returned: u64,
    /// Packets the nodes dropped, by reason.
    pub node_drops: BTreeMap<String, u64>,
    /// Descriptor uploads the authorities refused, by reason.
    #[serde(default)]
    pub descriptors_refused: BTreeMap<String, u64>,
    /// Loop-loss alarms the nodes raised, all nodes together.
    #[serde(default)]
    pub loop_alarms: u64,
    /// The n−1 fault, if it was injected.
    #[serde(default)]
    pub n_minus_one: Option<NMinusOne>,
    /// The rogue-authority fault, if it was injected.
    #[serde(default)]
    pub rogue_authority: Option<RogueAuthority>,
}

/// What the faults that report figures of their own did.
#[derive(Debug, Default)]
pub struct Faults {
    /// The n−1 fault.
    pub n_minus_one: Option<NMinusOne>,
    /// The rogue-authority fault.
    pub rogue_authority: Option<RogueAuthority>,
}

/// What the rogue-authority fault did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RogueAuthority {
    /// The node restarted while the rogue answered.
    pub restarted: String,
    /// Whether that node came back on the honest epoch clock.
    pub restarted_on_honest_clock: bool,
    /// Signed rogue clocks the rogue handed out.
    pub rogue_clocks_served: u64,
    /// Forged documents the rogue handed out.
    pub forged_documents_served: u64,
}

/// What the n−1 fault did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NMinusOne {
    /// The mix whose input was cut.
    pub victim: String,
    /// Seconds from the cut until its loop alarm was raised (none: never).
    pub alarm_after_s: Option<f64>,
    /// Seconds the links stayed cut.
    pub cut_for_s: f64,
}

impl Tally {
    /// The run's figures.
    pub fn report(&self, drops: &BTreeMap<String, u64>, elapsed: Duration) -> Report {
        let mut lat = self.latencies.clone();
        lat.sort_by(f64::total_cmp);
        let (real, loops, dropc, returned) = self.cover.values().fold((0, 0, 0, 0), |a, v| {
            (a.0 + v.0, a.1 + v.1, a.2 + v.2, a.3 + v.3)
        });
        Report {
            elapsed_s: elapsed.as_secs(),
            sent: self.sent,
            delivered: self.delivered,
            received: self.received.len() as u64,
            failed: self.failed,
            duplicates: self.duplicates,
            latency_p50_s: percentile(&lat, 0.5),
            latency_p90_s: percentile(&lat, 0.9),
            latency_p99_s: percentile(&lat, 0.99),
            real_packets: real,
            cover_packets: loops + dropc,
            loops_sent: loops,
            loops_returned: returned,
            node_drops: drops.clone(),
            descriptors_refused: BTreeMap::new(),
            loop_alarms: 0,
            n_minus_one: None,
            rogue_authority: None,
        }
    }
}

/// The one-line summary for people.
pub fn print_summary(report: &Report) {
    let ratio = if report.real_packets > 0 {
        format!(
            "{:.1}",
            report.cover_packets as f64 / report.real_packets as f64
        )
    } else {
        "-".into()
    };
    let drops_text = if report.node_drops.is_empty() {
        "none".to_owned()
    } else {
        report
            .node_drops
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "[{:>4}s] messages sent {} delivered {} received {} failed {} duplicates {} | \
         latency p50 {} p90 {} p99 {} | packets real {} cover {} (cover/real {ratio}), loops back {}/{} | node drops: {drops_text}",
        report.elapsed_s,
        report.sent,
        report.delivered,
        report.received,
        report.failed,
        report.duplicates,
        fmt_secs(report.latency_p50_s),
        fmt_secs(report.latency_p90_s),
        fmt_secs(report.latency_p99_s),
        report.real_packets,
        report.cover_packets,
        report.loops_returned,
        report.loops_sent,
    );
}
