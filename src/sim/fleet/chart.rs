//! The fleet chart (`--chart PATH`): against the fleet's size, wasted attempts (left) and
//! probes per open period (right), a line each for `shared` and `local`, both axes on a log
//! scale (a figure that grows with the fleet is a rising straight line; a point at 0 is left
//! out). PNG, or SVG when the path ends in `.svg`; the font is the embedded one the other
//! charts use.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{FleetReport, FleetRow, Variant};
use crate::sim::report::plot::{PlotError, register_font};

/// Chart size in pixels.
const SIZE: (u32, u32) = (1200, 520);

/// One panel: its title, y-axis label, and the value of a row.
struct Panel {
    title: String,
    y_label: &'static str,
    value: fn(&FleetRow) -> Option<f64>,
}

/// Writes the chart of `report` to `path`.
///
/// # Errors
/// [`PlotError`] naming the file if it cannot be drawn or written.
pub fn write_chart(report: &FleetReport, path: &Path) -> Result<(), PlotError> {
    register_font();
    let svg = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("svg"));
    let drawn = if svg {
        draw(&SVGBackend::new(path, SIZE).into_drawing_area(), report)
    } else {
        draw(&BitMapBackend::new(path, SIZE).into_drawing_area(), report)
    };
    drawn.map_err(|reason| PlotError {
        file: path.display().to_string(),
        reason,
    })
}

fn panels(report: &FleetReport) -> [Panel; 2] {
    let outage = report
        .store_outage
        .map_or_else(String::new, |o| format!(", store down {o}"));
    [
        Panel {
            title: format!(
                "{}: wasted attempts (529/429), store {} ms{outage}",
                report.scenario, report.store_latency_ms
            ),
            y_label: "wasted attempts (log scale)",
            value: |row| Some(row.wasted_attempts as f64),
        },
        Panel {
            title: format!(
                "{}: probes at {} per open period",
                report.scenario, report.primary
            ),
            y_label: "probes per open period (log scale)",
            value: |row| row.probes_per_open_period,
        },
    ]
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &FleetReport,
) -> Result<(), String> {
    draw_inner(root, report).map_err(|e| e.to_string())
}

fn draw_inner<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &FleetReport,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let halves = root.split_evenly((1, 2));
    for (area, panel) in halves.iter().zip(panels(report)) {
        draw_panel(area, report, &panel)?;
    }
    root.present()
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    report: &FleetReport,
    panel: &Panel,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let lines: Vec<(Variant, Vec<(f64, f64)>)> = Variant::BOTH
        .iter()
        .map(|&variant| {
            let points = report
                .rows
                .iter()
                .filter(|row| row.variant == variant)
                .filter_map(|row| Some((f64::from(row.replicas), (panel.value)(row)?)))
                .filter(|&(_, y)| y > 0.0)
                .collect();
            (variant, points)
        })
        .collect();
    let points = lines.iter().flat_map(|(_, points)| points);
    let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max) * 1.3;
    let y_min = points.clone().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y_min = if y_min.is_finite() { y_min / 2.0 } else { 0.5 };
    let y_max = points.map(|p| p.1).fold(1.0, f64::max) * 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0.8..x_max).log_scale(), (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("replicas (log scale)")
        .y_desc(panel.y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()?;
    for (i, (variant, points)) in lines.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(variant.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(
            points
                .iter()
                .map(|&point| Circle::new(point, 4, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
