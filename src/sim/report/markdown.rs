//! `report.md`: the scenario, the results table, how to read it, and one paragraph per
//! strategy, with the charts beside it.

use std::fmt::Write as _;

use super::{RECOVERED_RATE, RECOVERY_WINDOW, SimReport, StrategyReport, table};

/// The Markdown report; `charts` are file names (relative to the report) to embed.
pub fn render(report: &SimReport, charts: &[String]) -> String {
    let mut out = format!("# breakwater sim: {}\n\n", report.scenario);
    if !report.description.is_empty() {
        let _ = writeln!(out, "{}\n", report.description);
    }
    let _ = writeln!(
        out,
        "Seed {}, {:.0} s of Poisson arrivals at {} requests/s, deadline {:.0} s per request, \
         chain {}; incident from {:.0} s to {:.0} s.\n",
        report.seed,
        report.duration_s,
        report.rps,
        report.deadline_s,
        report.chain.join(" -> "),
        report.incident.start_s,
        report.incident.end_s,
    );
    out.push_str(&table::markdown(report));
    out.push_str(&legend());
    out.push_str("\n## Strategies\n\n");
    for strategy in &report.strategies {
        let _ = writeln!(out, "{}\n", paragraph(report, strategy));
    }
    if !charts.is_empty() {
        out.push_str("## Charts\n\n");
        for chart in charts {
            let _ = writeln!(out, "![{chart}]({chart})\n");
        }
    }
    out
}

fn legend() -> String {
    format!(
        "\n*success*: requests answered by their deadline. *att/req*: upstream attempts per \
         request. *wasted*: attempts answered 529 or 429. *primary share*: share of the answers \
         to requests arriving during the incident given by the primary. *primary use*: those \
         answers against how many of the arrivals its capacity then could serve. *recover s*: from the \
         incident's end to the first {} s window of arrivals at least {}% answered. *load M*: \
         attempts at M during the incident divided by its capacity then, the integral of its \
         slots over the incident divided by its mean service time (slots x duration / service \
         time when the slots do not change).\n",
        RECOVERY_WINDOW.as_secs(),
        RECOVERED_RATE * 100.0,
    )
}

fn paragraph(report: &SimReport, s: &StrategyReport) -> String {
    let mut text = format!(
        "**{}** ({}) answered {:.2}% of {} requests (p50 {:.0} ms, p99 {:.0} ms) with {:.2} \
         upstream attempts per request, {} of them wasted on 529 or 429.",
        s.name,
        s.name.describe(),
        s.success_rate * 100.0,
        s.requests,
        s.latency_ms.p50,
        s.latency_ms.p99,
        s.attempts_per_request,
        s.wasted_attempts,
    );
    for load in &s.incident_load {
        let _ = write!(
            text,
            " During the incident it sent {} attempts to {} ({:.2}x its capacity of {:.0}).",
            load.attempts, load.model, load.load, load.capacity
        );
    }
    if let (Some(share), Some(primary)) = (s.primary_share_during_incident, report.chain.first()) {
        let _ = write!(
            text,
            " {primary} gave {:.0}% of the answers to requests arriving then",
            share * 100.0
        );
        match s.primary_use_of_capacity {
            Some(used) => {
                let _ = write!(
                    text,
                    ", {:.0}% of what its capacity could serve.",
                    used * 100.0
                );
            }
            None => text.push('.'),
        }
    }
    match s.time_to_recover_s {
        Some(t) => {
            let _ = write!(text, " It recovered {t:.0} s after the incident ended.");
        }
        None => text.push_str(" It never recovered within the run."),
    }
    text
}
