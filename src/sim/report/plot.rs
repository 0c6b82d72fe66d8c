//! Charts of a simulation, drawn with plotters as PNG and SVG: the success rate over time, and
//! the attempts reaching each model of the chain over time, one line per strategy, with the
//! incident shaded.
//!
//! Only pure-Rust backends are used, and text is drawn with the DejaVu Sans font embedded in
//! the binary (`dejavu` crate, through plotters' `ab_glyph` feature), so drawing needs no
//! system font library.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::SimReport;

/// Chart size in pixels.
const SIZE: (u32, u32) = (1100, 520);
/// About how many points a line has: seconds are summed into bins so lines stay readable.
const POINTS: usize = 150;

/// Why a chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw chart {file}: {reason}")]
pub struct PlotError {
    /// The chart's file name.
    pub file: String,
    /// What went wrong.
    pub reason: String,
}

/// One chart: its file stem, title, y-axis label, and a line per strategy.
struct Chart {
    stem: String,
    title: String,
    y_label: &'static str,
    lines: Vec<(String, Vec<(f64, f64)>)>,
}

/// Writes every chart into `dir` as PNG and SVG; returns the PNG file names.
///
/// # Errors
/// [`PlotError`] naming the first chart that could not be drawn or written.
pub fn write_charts(report: &SimReport, dir: &Path) -> Result<Vec<String>, PlotError> {
    register_font();
    let mut written = Vec::new();
    for chart in charts(report) {
        let incident = (report.incident.start_s, report.incident.end_s);
        for ext in ["png", "svg"] {
            let file = format!("{}.{ext}", chart.stem);
            let path = dir.join(&file);
            let drawn = if ext == "png" {
                draw(
                    &BitMapBackend::new(&path, SIZE).into_drawing_area(),
                    &chart,
                    incident,
                )
            } else {
                draw(
                    &SVGBackend::new(&path, SIZE).into_drawing_area(),
                    &chart,
                    incident,
                )
            };
            drawn.map_err(|reason| PlotError {
                file: file.clone(),
                reason,
            })?;
            if ext == "png" {
                written.push(file);
            }
        }
    }
    Ok(written)
}

pub(crate) fn register_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        // The embedded font is a valid TTF; were it not, text would be left out, not fail.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

fn charts(report: &SimReport) -> Vec<Chart> {
    let seconds = report
        .strategies
        .iter()
        .map(|s| s.timeline.requests.len())
        .max()
        .unwrap_or(0);
    let bin = seconds.div_ceil(POINTS).max(1);
    let mut charts = vec![success_chart(report, bin)];
    charts.extend(
        report
            .chain
            .iter()
            .map(|model| attempts_chart(report, model, bin)),
    );
    charts
}

fn success_chart(report: &SimReport, bin: usize) -> Chart {
    let lines = report.strategies.iter().map(|s| {
        let t = &s.timeline;
        let rate = |range: std::ops::Range<usize>| {
            let n: u64 = t.requests[range.clone()].iter().sum();
            let ok: u64 = t.succeeded[range].iter().sum();
            (n > 0).then(|| ok as f64 / n as f64 * 100.0)
        };
        (s.name.to_string(), binned(bin, rate, t.requests.len()))
    });
    Chart {
        stem: "success-rate".into(),
        title: format!(
            "{}: requests answered (by arrival, {bin} s bins)",
            report.scenario
        ),
        y_label: "% answered",
        lines: lines.collect(),
    }
}

fn attempts_chart(report: &SimReport, model: &str, bin: usize) -> Chart {
    let lines = report.strategies.iter().map(|s| {
        let series = s.timeline.attempts.get(model).cloned().unwrap_or_default();
        let per_second = |range: std::ops::Range<usize>| {
            let width = range.len() as f64;
            Some(series[range].iter().sum::<u64>() as f64 / width)
        };
        (s.name.to_string(), binned(bin, per_second, series.len()))
    });
    Chart {
        stem: format!("attempts-{model}"),
        title: format!(
            "{}: upstream attempts at {model} ({bin} s bins)",
            report.scenario
        ),
        y_label: "attempts per second",
        lines: lines.collect(),
    }
}

/// `value` of each bin of `bin` seconds over `len` seconds, placed at the bin's middle.
fn binned(
    bin: usize,
    value: impl Fn(std::ops::Range<usize>) -> Option<f64>,
    len: usize,
) -> Vec<(f64, f64)> {
    (0..len)
        .step_by(bin)
        .filter_map(|start| {
            let range = start..(start + bin).min(len);
            let middle = (range.start + range.end) as f64 / 2.0;
            value(range).map(|v| (middle, v))
        })
        .collect()
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
    incident: (f64, f64),
) -> Result<(), String> {
    draw_inner(root, chart, incident).map_err(|e| e.to_string())
}

fn draw_inner<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
    (start, end): (f64, f64),
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let points = chart.lines.iter().flat_map(|(_, points)| points);
    let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max).ceil();
    let y_max = (points.map(|p| p.1).fold(1.0, f64::max) * 1.1).ceil();
    root.fill(&WHITE)?;
    let mut plot = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    plot.configure_mesh()
        .x_desc("seconds since start")
        .y_desc(chart.y_label)
        .draw()?;
    if end > start {
        let shade = RGBColor(235, 225, 225).filled();
        plot.draw_series(std::iter::once(Rectangle::new(
            [(start, 0.0), (end, y_max)],
            shade,
        )))?;
    }
    for (i, (name, points)) in chart.lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        plot.draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(2),
        ))?
        .label(name)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    plot.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()
}
