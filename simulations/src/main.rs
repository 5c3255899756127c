//! `aegis-sim`: run a scenario or sweep one over a parameter grid.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use aegis_sim::{Report, Scenario, output, plot, sweep};
use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

/// AegisLink simulator: metadata leakage of the real mixing and cover-traffic code.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario and write report.json, CSV tables and plots to DIR.
    Run {
        /// Scenario TOML file.
        scenario: PathBuf,
        /// Output directory.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Skip the plots (JSON and CSV only).
        #[arg(long)]
        no_plots: bool,
    },
    /// Run a scenario over a grid of parameter values.
    Sweep {
        /// Scenario TOML file.
        scenario: PathBuf,
        /// `dotted.key=v1,v2,...`; repeat for a Cartesian product.
        #[arg(long = "param", required = true)]
        params: Vec<String>,
        /// Output directory (one subdirectory per grid point, plus sweep.csv).
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Runs per grid point; replicate r uses the point's seed + r.
        #[arg(long, default_value_t = 1)]
        replicates: usize,
        /// Runs at once (default: one per core).
        #[arg(long)]
        jobs: Option<usize>,
        /// Skip the plots.
        #[arg(long)]
        no_plots: bool,
    },
}

fn progress_bar(label: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(1000);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {percent}% eta {eta}")
    {
        bar.set_style(style);
    }
    bar.set_message(label.to_string());
    bar
}

/// Runs `scenario`, writes its outputs to `out`, and returns the report.
fn run_one(scenario: &Scenario, out: &Path, plots: bool, bar: bool) -> anyhow::Result<Report> {
    let seed = match scenario {
        Scenario::Network(n) => n.seed,
        Scenario::SingleMix(s) => s.seed,
    };
    output::write_provenance(out, scenario, &output::Provenance::new(vec![seed]))
        .with_context(|| format!("writing outputs to {}", out.display()))?;
    let bar = if bar {
        progress_bar(scenario.name())
    } else {
        ProgressBar::hidden()
    };
    let mut tick = |f: f64| bar.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
    let report = match scenario {
        Scenario::Network(n) => {
            let (report, stats) = aegis_sim::run_network(n, &mut tick)?;
            output::write_stats(out, &stats)?;
            eprintln!(
                "{}: {} events, {} packet-hops in {:.2} s wall ({:.0} events/s, {:.0} packet-hops/s)",
                n.name,
                stats.events,
                stats.packet_hops,
                stats.wall_secs,
                stats.events_per_sec,
                stats.packet_hops_per_sec
            );
            Report::Network(Box::new(report))
        }
        Scenario::SingleMix(_) => aegis_sim::run(scenario, &mut tick)?,
    };
    bar.finish_and_clear();
    output::write_report(out, &report)
        .with_context(|| format!("writing outputs to {}", out.display()))?;
    if plots && let Err(e) = plot::plot_report(out, &report) {
        eprintln!("plots skipped: {e}");
    }
    Ok(report)
}

/// Runs every task on `jobs` threads; returns the rows in task order.
fn run_tasks(
    tasks: &[sweep::Task],
    grid: &[sweep::GridPoint],
    out: &Path,
    replicates: usize,
    jobs: usize,
    plots: bool,
) -> anyhow::Result<Vec<sweep::SweepRow>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<anyhow::Result<sweep::SweepRow>>>> =
        Mutex::new((0..tasks.len()).map(|_| None).collect());
    let single = jobs == 1;
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(tasks.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(task) = tasks.get(i) else {
                        break;
                    };
                    let point = &grid[task.point];
                    let label: Vec<String> = point
                        .overrides
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    eprintln!(
                        "[{}/{}] {} (replicate {})",
                        i + 1,
                        tasks.len(),
                        label.join(" "),
                        task.replicate + 1
                    );
                    let mut dir = out.join(format!("point-{:03}", task.point + 1));
                    if replicates > 1 {
                        dir = dir.join(format!("replicate-{:02}", task.replicate + 1));
                    }
                    let row = run_one(&task.scenario, &dir, plots, single)
                        .map(|report| sweep::row(point.overrides.clone(), &report));
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(row);
                    }
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a sweep worker panicked"))?;
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("a sweep run did not finish"))))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenario,
            out,
            no_plots,
        } => {
            let s = Scenario::load(&scenario)
                .with_context(|| format!("loading {}", scenario.display()))?;
            let report = run_one(&s, &out, !no_plots, true)?;
            print!("{}", output::summary(&report));
            println!("outputs in {}", out.display());
        }
        Command::Sweep {
            scenario,
            params,
            out,
            replicates,
            jobs,
            no_plots,
        } => {
            let text = std::fs::read_to_string(&scenario)
                .with_context(|| format!("reading {}", scenario.display()))?;
            let params = params
                .iter()
                .map(|p| sweep::parse_param(p))
                .collect::<Result<Vec<_>, _>>()?;
            let grid = sweep::grid(&text, &params)?;
            let replicates = replicates.max(1);
            let jobs = jobs
                .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
                .unwrap_or(1)
                .max(1);
            let tasks = sweep::tasks(&grid, replicates);
            let rows = run_tasks(&tasks, &grid, &out, replicates, jobs, !no_plots)?;
            let points: Vec<sweep::PointSummary> = rows
                .chunks(replicates)
                .map(sweep::PointSummary::of)
                .collect();
            let seeds = rows.iter().map(|r| r.seed).collect();
            output::write_file(
                &out,
                "provenance.json",
                &(serde_json::to_string_pretty(&output::Provenance::new(seeds))? + "\n"),
            )?;
            output::write_file(&out, "runs.csv", &sweep::runs_csv(&rows))?;
            let path = output::write_file(&out, "sweep.csv", &sweep::to_csv(&points))?;
            if !no_plots
                && let Err(e) = plot::draw(&out, "tradeoff", &plot::tradeoff_chart(&points))
            {
                eprintln!("plots skipped: {e}");
            }
            print!("{}", std::fs::read_to_string(&path)?);
            println!("sweep table in {}", path.display());
        }
    }
    Ok(())
}
