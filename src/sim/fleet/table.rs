//! The fleet table: one row per fleet size and variant, aligned for the terminal.

use super::{FleetReport, FleetRow};
use crate::sim::report::table::aligned;

const HEADER: [&str; 10] = [
    "replicas",
    "variant",
    "answered",
    "max ms",
    "wasted",
    "429s",
    "primary att",
    "probes",
    "open periods",
    "probes/open",
];

fn row(r: &FleetRow) -> [String; 10] {
    [
        r.replicas.to_string(),
        r.variant.to_string(),
        format!(
            "{}/{} ({:.2}%)",
            r.answered,
            r.requests,
            r.success_rate * 100.0
        ),
        format!("{:.0}", r.latency_ms.max),
        r.wasted_attempts.to_string(),
        r.rate_limited.to_string(),
        r.primary_incident_attempts.to_string(),
        r.probes.to_string(),
        format!("{:.2}", r.open_periods),
        r.probes_per_open_period
            .map_or_else(|| "-".to_owned(), |p| format!("{p:.2}")),
    ]
}

/// The table as aligned text: a line about the run, a header, a line per fleet.
pub fn text(report: &FleetReport) -> String {
    let rows: Vec<[String; 10]> = report.rows.iter().map(row).collect();
    let outage = report
        .store_outage
        .map_or_else(|| "never".to_owned(), |o| o.to_string());
    let mut out = format!(
        "{}: {:.0} s at {} requests/s over the fleet; store latency {} ms, store down {outage}\n",
        report.scenario, report.duration_s, report.rps, report.store_latency_ms
    );
    out.push_str(&aligned(&HEADER, &rows, 1));
    out
}
