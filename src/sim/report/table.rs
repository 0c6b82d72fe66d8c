//! The results table, one row per strategy: aligned text for the terminal, or Markdown.

use std::fmt::Write as _;

use super::{SimReport, StrategyReport};

/// The table's header and rows, as text cells.
pub fn cells(report: &SimReport) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header: Vec<String> = [
        "strategy",
        "success",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "att/req",
        "wasted",
        "primary share",
        "primary use",
        "recover s",
    ]
    .map(String::from)
    .to_vec();
    for model in &report.chain {
        header.push(format!("load {model}"));
    }
    let rows = report.strategies.iter().map(row).collect();
    (header, rows)
}

fn row(s: &StrategyReport) -> Vec<String> {
    let l = s.latency_ms;
    let mut row = vec![
        s.name.to_string(),
        format!("{:.2}%", s.success_rate * 100.0),
        format!("{:.0}", l.p50),
        format!("{:.0}", l.p95),
        format!("{:.0}", l.p99),
        format!("{:.0}", l.max),
        format!("{:.2}", s.attempts_per_request),
        s.wasted_attempts.to_string(),
        percent(s.primary_share_during_incident),
        percent(s.primary_use_of_capacity),
        s.time_to_recover_s
            .map_or_else(|| "never".into(), |t| format!("{t:.0}")),
    ];
    row.extend(s.incident_load.iter().map(|m| format!("{:.2}x", m.load)));
    row
}

fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "-".into(), |share| format!("{:.0}%", share * 100.0))
}

/// Aligned columns for the terminal, with a header line.
pub fn text(report: &SimReport) -> String {
    let (header, rows) = cells(report);
    aligned(&header, &rows, 0)
}

/// `header` and `rows` as columns two spaces apart, each as wide as its widest cell: column
/// `left` aligned left (the names), the others right (the figures).
pub(crate) fn aligned<S: AsRef<str>>(
    header: &[S],
    rows: &[impl AsRef<[String]>],
    left: usize,
) -> String {
    let header: Vec<&str> = header.iter().map(AsRef::as_ref).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.as_ref().get(i).map(String::len))
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let lines = std::iter::once(header).chain(
        rows.iter()
            .map(|r| r.as_ref().iter().map(String::as_str).collect()),
    );
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| {
                if i == left {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

/// A Markdown table.
pub fn markdown(report: &SimReport) -> String {
    let (header, rows) = cells(report);
    let mut out = format!("| {} |\n", header.join(" | "));
    let rule: Vec<&str> = (0..header.len())
        .map(|i| if i == 0 { "---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "| {} |", rule.join(" | "));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}
