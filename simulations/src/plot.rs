//! The standard figures, as SVG and PNG.
//!
//! Text is drawn with a TrueType font registered at run time (no system
//! fontconfig): `$AEGIS_SIM_FONT` if set, else DejaVu Sans from Debian's
//! `fonts-dejavu-core`. Without a font, plotting fails with
//! [`SimError::Plot`] and the run's JSON and CSV are still written.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::SimError;
use crate::report::{NetworkReport, Report, SingleMixReport};

/// Where the font is looked for when `$AEGIS_SIM_FONT` is not set.
pub const DEFAULT_FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

const SIZE: (u32, u32) = (900, 600);
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One line of a chart.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (closed forms, baselines).
    pub dashed: bool,
    /// Palette index; lines sharing it share a colour.
    pub color: usize,
    /// Points drawn as markers, not joined.
    pub markers: bool,
    /// Half-widths of vertical error bars, one per point (none if empty).
    pub errors: Vec<f64>,
    /// Text drawn beside each point (none if empty).
    pub labels: Vec<String>,
}

/// A chart: title, axis labels, lines.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Caption.
    pub title: String,
    /// x axis label.
    pub x_label: String,
    /// y axis label.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Lines.
    pub series: Vec<Series>,
}

/// Registers the font once; a clear error if none is found.
pub fn ensure_font() -> Result<(), SimError> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates: Vec<PathBuf> = match std::env::var_os("AEGIS_SIM_FONT") {
            Some(p) => vec![PathBuf::from(p)],
            None => DEFAULT_FONTS.iter().map(PathBuf::from).collect(),
        };
        let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
            format!(
                "no TrueType font found (looked at {candidates:?}); install fonts-dejavu-core or set AEGIS_SIM_FONT"
            )
        })?;
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // plotters keeps registered fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{}: not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(SimError::Plot)
}

/// Draws `chart` to `dir/stem.svg` and `dir/stem.png`.
pub fn draw(dir: &Path, stem: &str, chart: &Chart) -> Result<Vec<PathBuf>, SimError> {
    ensure_font()?;
    std::fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    render(SVGBackend::new(&svg, SIZE).into_drawing_area(), chart)?;
    render(BitMapBackend::new(&png, SIZE).into_drawing_area(), chart)?;
    Ok(vec![svg, png])
}

fn bounds(chart: &Chart) -> ((f64, f64), (f64, f64)) {
    let pts = chart.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    if chart.log_x {
        x0 = x0.max(1e-9);
    } else if chart.series.iter().any(|s| s.markers) {
        // Room for the markers' labels on both sides.
        let pad = ((x1 - x0) * 0.1).max(x1.abs() * 0.05).max(1e-6);
        x0 -= pad;
        x1 += 2.0 * pad;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    (
        (x0, x1.max(x0 * 1.000_001 + 1e-9)),
        (y0.min(0.0).min(y0 - pad), y1 + pad),
    )
}

fn render<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), SimError> {
    let err = |e: &dyn std::fmt::Display| SimError::Plot(e.to_string());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let ((x0, x1), (y0, y1)) = bounds(chart);
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(&chart.title, ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60);
    if chart.log_x {
        let mut c = builder
            .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
            .map_err(|e| err(&e))?;
        c.configure_mesh()
            .x_desc(chart.x_label.as_str())
            .y_desc(chart.y_label.as_str())
            .draw()
            .map_err(|e| err(&e))?;
        draw_series(&mut c, chart)?;
    } else {
        let mut c = builder
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?;
        c.configure_mesh()
            .x_desc(chart.x_label.as_str())
            .y_desc(chart.y_label.as_str())
            .draw()
            .map_err(|e| err(&e))?;
        draw_series(&mut c, chart)?;
    }
    root.present().map_err(|e| err(&e))
}

fn draw_series<'a, DB, X, Y>(
    c: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    chart: &Chart,
) -> Result<(), SimError>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let err = |e: &dyn std::fmt::Display| SimError::Plot(e.to_string());
    for s in &chart.series {
        let color = PALETTE[s.color % PALETTE.len()];
        let style = color.stroke_width(2);
        for ((x, y), e) in s.points.iter().zip(&s.errors) {
            if e.is_finite() {
                c.draw_series(std::iter::once(PathElement::new(
                    vec![(*x, y - e), (*x, y + e)],
                    color.stroke_width(1),
                )))
                .map_err(|e| err(&e))?;
            }
        }
        for ((x, y), text) in s.points.iter().zip(&s.labels) {
            c.draw_series(std::iter::once(
                EmptyElement::at((*x, *y))
                    + Text::new(text.clone(), (8, -16), ("sans-serif", 14).into_font()),
            ))
            .map_err(|e| err(&e))?;
        }
        let anno = if s.markers {
            c.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| err(&e))?
        } else if s.dashed {
            c.draw_series(DashedLineSeries::new(s.points.iter().copied(), 8, 5, style))
                .map_err(|e| err(&e))?
        } else {
            c.draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(|e| err(&e))?
        };
        anno.label(s.label.clone()).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
        });
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| err(&e))
}

/// Entropy vs λ, one line per μ, closed form dashed (Loopix Fig. 4 layout).
pub fn single_mix_chart(r: &SingleMixReport) -> Chart {
    let mut mus: Vec<f64> = r.points.iter().map(|p| p.mu).collect();
    mus.dedup();
    let mut series = Vec::new();
    for (i, &mu) in mus.iter().enumerate() {
        let pts: Vec<_> = r.points.iter().filter(|p| p.mu == mu).collect();
        series.push(Series {
            label: format!("μ = {mu} (simulated)"),
            points: pts.iter().map(|p| (p.lambda, p.entropy_bits)).collect(),
            dashed: false,
            color: i,
            ..Series::default()
        });
        series.push(Series {
            label: format!("μ = {mu}: log2(eλ/μ)"),
            points: pts.iter().map(|p| (p.lambda, p.closed_form_bits)).collect(),
            dashed: true,
            color: i,
            ..Series::default()
        });
    }
    Chart {
        title: format!("Single Poisson mix: entropy vs arrival rate ({})", r.name),
        x_label: "λ (messages/s)".into(),
        y_label: "entropy (bits)".into(),
        log_x: false,
        series,
    }
}

/// Disclosure-attack precision and recall over time, with the dumb relay if run.
pub fn disclosure_chart(r: &NetworkReport) -> Chart {
    let mut series = Vec::new();
    let mut add = |name: &str, pts: &[crate::DisclosurePoint], color: usize| {
        series.push(Series {
            label: format!("{name} recall"),
            points: pts.iter().map(|p| (p.time_secs, p.recall)).collect(),
            dashed: false,
            color,
            ..Series::default()
        });
        series.push(Series {
            label: format!("{name} precision"),
            points: pts.iter().map(|p| (p.time_secs, p.precision)).collect(),
            dashed: true,
            color,
            ..Series::default()
        });
    };
    add(&r.adversary, &r.disclosure, 0);
    if let Some(relay) = &r.relay_disclosure {
        add("dumb relay", relay, 3);
    }
    Chart {
        title: format!("Statistical disclosure attack ({})", r.name),
        x_label: "observation time (s)".into(),
        y_label: "contacts recovered".into(),
        log_x: false,
        series,
    }
}

/// Intersection-attack recall against days observed.
pub fn intersection_chart(r: &NetworkReport) -> Chart {
    Chart {
        title: format!("Intersection attack on who is online ({})", r.name),
        x_label: "observation (days)".into(),
        y_label: "correspondents recovered".into(),
        log_x: false,
        series: vec![Series {
            label: "recall".into(),
            points: r
                .intersection
                .iter()
                .map(|p| (p.time_secs / 86_400.0, p.recall))
                .collect(),
            ..Series::default()
        }],
    }
}

/// Flow correlation: true positives at the false-positive rate, and the
/// closed form's prediction, against seconds observed.
pub fn flow_chart(r: &NetworkReport) -> Chart {
    let points = r.flow.as_ref().map_or(&[][..], |f| &f.points[..]);
    let line = |label: &str, value: fn(&crate::flow::FlowPoint) -> f64| Series {
        label: label.into(),
        points: points.iter().map(|p| (p.observe_secs, value(p))).collect(),
        ..Series::default()
    };
    Chart {
        title: format!("Flow correlation on conversations ({})", r.name),
        x_label: "observation (s)".into(),
        y_label: "conversations found".into(),
        log_x: true,
        series: vec![
            line("TPR at the FPR", |p| p.tpr),
            Series {
                dashed: true,
                ..line("closed form (normal threshold)", |p| p.predicted_tpr)
            },
        ],
    }
}

/// Empirical CDF of write-to-mailbox latency.
pub fn latency_chart(r: &NetworkReport) -> Chart {
    Chart {
        title: format!("End-to-end latency ({})", r.name),
        x_label: "latency (s)".into(),
        y_label: "fraction of messages".into(),
        log_x: true,
        series: vec![Series {
            label: "CDF".into(),
            points: r.latency_cdf.clone(),
            dashed: false,
            color: 0,
            ..Series::default()
        }],
    }
}

/// The anonymity–latency–bandwidth trade-off of a sweep: sender entropy
/// (mean and 95 % interval over replicates) against mean latency, each grid
/// point labelled with its swept values and its bandwidth overhead.
pub fn tradeoff_chart(points: &[crate::sweep::PointSummary]) -> Chart {
    let fig = |p: &crate::sweep::PointSummary, name: &str| {
        p.figure(name).unwrap_or(crate::sweep::Estimate {
            mean: f64::NAN,
            ci95: f64::NAN,
        })
    };
    let series = Series {
        label: "grid points (bars: 95 % CI)".into(),
        points: points
            .iter()
            .map(|p| (fig(p, "latency_mean").mean, fig(p, "entropy_bits").mean))
            .collect(),
        errors: points.iter().map(|p| fig(p, "entropy_bits").ci95).collect(),
        labels: points
            .iter()
            .map(|p| {
                let values: Vec<&str> = p.overrides.iter().map(|(_, v)| v.as_str()).collect();
                format!("{} ×{:.1}", values.join(", "), fig(p, "overhead").mean)
            })
            .collect(),
        markers: true,
        ..Series::default()
    };
    let keys: Vec<&str> = points
        .first()
        .map(|p| {
            p.overrides
                .iter()
                .map(|(k, _)| k.rsplit('.').next().unwrap_or(k))
                .collect()
        })
        .unwrap_or_default();
    Chart {
        title: format!(
            "Anonymity vs latency; labels: {} ×packets per message",
            keys.join(", ")
        ),
        x_label: "mean latency (s)".into(),
        y_label: "sender entropy (bits)".into(),
        log_x: false,
        series: vec![series],
    }
}

/// Draws every standard figure of `report` into `dir`.
pub fn plot_report(dir: &Path, report: &Report) -> Result<Vec<PathBuf>, SimError> {
    match report {
        Report::SingleMix(r) => draw(dir, "entropy_vs_lambda", &single_mix_chart(r)),
        Report::Network(r) => {
            let mut files = draw(dir, "latency_cdf", &latency_chart(r))?;
            if !r.disclosure.is_empty() {
                files.extend(draw(dir, "disclosure", &disclosure_chart(r))?);
            }
            if !r.intersection.is_empty() {
                files.extend(draw(dir, "intersection", &intersection_chart(r))?);
            }
            if r.flow.is_some() {
                files.extend(draw(dir, "flow", &flow_chart(r))?);
            }
            Ok(files)
        }
    }
}
