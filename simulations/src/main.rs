//! `aegis-sim`: run a scenario or sweep one over a parameter grid.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

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
fn run_one(scenario: &Scenario, out: &Path, plots: bool) -> anyhow::Result<Report> {
    let bar = progress_bar(scenario.name());
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
            let report = run_one(&s, &out, !no_plots)?;
            print!("{}", output::summary(&report));
            println!("outputs in {}", out.display());
        }
        Command::Sweep {
            scenario,
            params,
            out,
            no_plots,
        } => {
            let text = std::fs::read_to_string(&scenario)
                .with_context(|| format!("reading {}", scenario.display()))?;
            let params = params
                .iter()
                .map(|p| sweep::parse_param(p))
                .collect::<Result<Vec<_>, _>>()?;
            let grid = sweep::grid(&text, &params)?;
            let mut rows = Vec::new();
            for (i, point) in grid.into_iter().enumerate() {
                let label: Vec<String> = point
                    .overrides
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                eprintln!("[{}] {}", i + 1, label.join(" "));
                let dir = out.join(format!("point-{:03}", i + 1));
                let report = run_one(&point.scenario, &dir, !no_plots)?;
                rows.push(sweep::row(point.overrides, &report));
            }
            let path = output::write_file(&out, "sweep.csv", &sweep::to_csv(&rows))?;
            print!("{}", std::fs::read_to_string(&path)?);
            println!("sweep table in {}", path.display());
        }
    }
    Ok(())
}
