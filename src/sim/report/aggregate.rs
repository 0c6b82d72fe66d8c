//! The report of one strategy's run, summed up as the run goes: the simulated API feeds it
//! every attempt as it arrives and the runner every request as it ends, and it keeps only
//! counters per second and per model plus a latency histogram. Memory is bounded by the
//! run's length in seconds times its models, not by its number of requests, so an hour at
//! 50 requests a second costs what a minute does, give or take the timeline.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::metrics::{capacity, incident_load, ratio, time_to_recover};
use super::{StrategyReport, Timeline};
use crate::load::Latency;
use crate::sim::scenario::SimScenario;
use crate::sim::strategy::{RequestOutcome, StrategyName};
use crate::sim::upstream::SeenAttempt;

/// Significant digits the latency histogram keeps: microseconds exact up to 262 ms, and
/// within 128 us (0.0008%) up to the longest deadline, so percentiles printed in whole
/// milliseconds come out as the exact nearest-rank ones would.
const SIGNIFICANT_DIGITS: u8 = 5;

/// One strategy's run, summed up so far.
#[derive(Clone, Debug)]
pub struct Aggregate {
    name: StrategyName,
    incident: (Duration, Duration),
    primary: Option<String>,
    chain: Vec<String>,
    requests: Vec<u64>,
    succeeded: Vec<u64>,
    /// Latencies in microseconds.
    latency: Histogram<u32>,
    slowest: Duration,
    answered_by: BTreeMap<String, u64>,
    /// Answers to requests arriving during the incident, and how many the primary gave.
    incident_answers: (u64, u64),
    /// Requests arriving during the incident.
    incident_arrivals: u64,
    attempts: u64,
    wasted: u64,
    last_attempt: Duration,
    attempts_by_second: BTreeMap<String, Vec<u64>>,
    incident_hits: BTreeMap<String, u64>,
}

impl Aggregate {
    /// An empty summary of `name`'s run of `scenario`.
    ///
    /// # Panics
    ///
    /// Never: the histogram's precision is a valid constant.
    pub fn new(scenario: &SimScenario, name: StrategyName) -> Self {
        let seconds = scenario.duration.as_secs() as usize + 1;
        Self {
            name,
            incident: (scenario.incident.start, scenario.incident.end),
            primary: scenario.chain.first().cloned(),
            chain: scenario.chain.clone(),
            requests: Vec::with_capacity(seconds),
            succeeded: Vec::with_capacity(seconds),
            latency: Histogram::new(SIGNIFICANT_DIGITS)
                .expect("5 significant digits is within hdrhistogram's range"),
            slowest: Duration::ZERO,
            answered_by: BTreeMap::new(),
            incident_answers: (0, 0),
            incident_arrivals: 0,
            attempts: 0,
            wasted: 0,
            last_attempt: Duration::ZERO,
            attempts_by_second: BTreeMap::new(),
            incident_hits: BTreeMap::new(),
        }
    }

    fn during_incident(&self, at: Duration) -> bool {
        self.incident.0 <= at && at < self.incident.1
    }

    /// Counts a request that has ended.
    pub fn request(&mut self, outcome: &RequestOutcome) {
        let second = outcome.arrived.as_secs() as usize;
        *slot(&mut self.requests, second) += 1;
        *slot(&mut self.succeeded, second) += u64::from(outcome.succeeded());
        let micros = (outcome.latency.as_nanos() + 500) / 1000;
        let micros = u64::try_from(micros).unwrap_or(u64::MAX);
        if self.latency.record(micros).is_err() {
            self.latency.saturating_record(micros);
        }
        self.slowest = self.slowest.max(outcome.latency);
        self.incident_arrivals += u64::from(self.during_incident(outcome.arrived));
        let Some(model) = &outcome.answered_by else {
            return;
        };
        bump(&mut self.answered_by, model);
        if self.during_incident(outcome.arrived) {
            self.incident_answers.0 += 1;
            self.incident_answers.1 += u64::from(self.primary.as_ref() == Some(model));
        }
    }

    /// Counts an attempt the simulated API saw.
    pub fn attempt(&mut self, attempt: SeenAttempt<'_>) {
        self.attempts += 1;
        self.wasted += u64::from(matches!(attempt.status, 429 | 529));
        self.last_attempt = self.last_attempt.max(attempt.at);
        if !self.attempts_by_second.contains_key(attempt.model) {
            let series = Vec::with_capacity(self.requests.capacity());
            self.attempts_by_second
                .insert(attempt.model.to_owned(), series);
        }
        if let Some(series) = self.attempts_by_second.get_mut(attempt.model) {
            *slot(series, attempt.at.as_secs() as usize) += 1;
        }
        if self.during_incident(attempt.at) {
            bump(&mut self.incident_hits, attempt.model);
        }
    }

    /// The report of the run so far.
    pub fn report(&self, scenario: &SimScenario) -> StrategyReport {
        let requests: u64 = self.requests.iter().sum();
        let succeeded: u64 = self.succeeded.iter().sum();
        let timeline = self.timeline(scenario);
        let (answers, by_primary) = self.incident_answers;
        StrategyReport {
            name: self.name,
            requests,
            succeeded,
            success_rate: ratio(succeeded, requests),
            latency_ms: self.latency(requests),
            attempts: self.attempts,
            attempts_per_request: ratio(self.attempts, requests),
            wasted_attempts: self.wasted,
            answered_by: self.answered_by.clone(),
            incident_load: incident_load(scenario, &self.incident_hits),
            primary_share_during_incident: (self.primary.is_some() && answers > 0)
                .then(|| ratio(by_primary, answers)),
            primary_use_of_capacity: self.primary.as_deref().and_then(|primary| {
                let incident = &scenario.incident;
                let room = capacity(scenario, primary, incident.start, incident.end)
                    .min(self.incident_arrivals as f64);
                (room > 0.0).then(|| by_primary as f64 / room)
            }),
            time_to_recover_s: time_to_recover(scenario, &timeline),
            breaker_opens: None,
            timeline,
        }
    }

    /// Nearest-rank percentiles, as [`Latency::of`] takes them from every sample.
    fn latency(&self, requests: u64) -> Latency {
        let slowest = self.slowest.as_secs_f64() * 1000.0;
        let at = |q: f64| {
            if requests == 0 {
                return 0.0;
            }
            let rank = ((q * requests as f64).ceil() as u64).clamp(1, requests);
            let mut seen = 0;
            let micros = self
                .latency
                .iter_recorded()
                .find(|v| {
                    seen += v.count_since_last_iteration();
                    seen >= rank
                })
                .map_or(0, |v| self.latency.median_equivalent(v.value_iterated_to()));
            (micros as f64 / 1000.0).min(slowest)
        };
        Latency {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: if requests == 0 { 0.0 } else { slowest },
        }
    }

    /// Second `i` covers `[i, i + 1)`; the timeline runs to the later of the arrivals' end
    /// and the last attempt.
    fn timeline(&self, scenario: &SimScenario) -> Timeline {
        let seconds = scenario.duration.max(self.last_attempt).as_secs() as usize + 1;
        let requests = fit(&self.requests, seconds);
        let succeeded = fit(&self.succeeded, seconds);
        let mut attempts: BTreeMap<String, Vec<u64>> = self
            .attempts_by_second
            .iter()
            .map(|(model, series)| (model.clone(), fit(series, seconds)))
            .collect();
        for model in &self.chain {
            attempts
                .entry(model.clone())
                .or_insert_with(|| vec![0; seconds]);
        }
        let success_rate = requests
            .iter()
            .zip(&succeeded)
            .map(|(&n, &ok)| (n > 0).then(|| ratio(ok, n)))
            .collect();
        Timeline {
            requests,
            succeeded,
            success_rate,
            attempts,
        }
    }
}

/// The counter for second `index`, growing the series as needed.
fn slot(series: &mut Vec<u64>, index: usize) -> &mut u64 {
    if series.len() <= index {
        series.resize(index + 1, 0);
    }
    &mut series[index]
}

/// Adds one to the count of `key`; allocates only for a key not seen before.
fn bump(counts: &mut BTreeMap<String, u64>, key: &str) {
    if let Some(n) = counts.get_mut(key) {
        *n += 1;
    } else {
        counts.insert(key.to_owned(), 1);
    }
}

/// `series` as exactly `seconds` counters: padded with zeros, or with any later seconds
/// counted in the last.
fn fit(series: &[u64], seconds: usize) -> Vec<u64> {
    let mut fitted = vec![0; seconds];
    for (index, &n) in series.iter().enumerate() {
        fitted[index.min(seconds - 1)] += n;
    }
    fitted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> SimScenario {
        let text = r#"
duration = "3s"
chain = ["p", "f"]
incident = { start = "1s", end = "2s" }
[models.p]
slots = 1
service-time = "500ms"
[models.f]
slots = 1
"#;
        SimScenario::from_toml(text).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn outcome(arrived: Duration, latency: Duration, by: Option<&str>) -> RequestOutcome {
        RequestOutcome {
            arrived,
            latency,
            answered_by: by.map(str::to_owned),
            attempts: Vec::new(),
        }
    }

    #[test]
    fn percentiles_are_the_nearest_rank_ones() {
        let scenario = scenario();
        let mut aggregate = Aggregate::new(&scenario, StrategyName::None);
        let mut samples: Vec<Duration> = (1..=200)
            .map(|i| Duration::from_micros(i * i * 10 + 3))
            .collect();
        for &latency in &samples {
            aggregate.request(&outcome(ms(0), latency, Some("p")));
        }
        let exact = Latency::of(&mut samples);
        let report = aggregate.report(&scenario).latency_ms;
        for (got, want) in [
            (report.p50, exact.p50),
            (report.p95, exact.p95),
            (report.p99, exact.p99),
        ] {
            assert!((got - want).abs() <= want * 1e-5, "{got} against {want}");
        }
        assert_eq!(exact.max.to_bits(), report.max.to_bits());
        // Below 262 ms, microseconds are exact.
        assert!(exact.p50 < 262.0);
        assert!((exact.p50 - report.p50).abs() < 1e-9, "{}", report.p50);
    }

    #[test]
    fn no_request_gives_zero_latencies_and_no_share() {
        let scenario = scenario();
        let report = Aggregate::new(&scenario, StrategyName::None).report(&scenario);
        assert_eq!(Latency::default(), report.latency_ms);
        assert_eq!(None, report.primary_share_during_incident);
        assert_eq!(None, report.primary_use_of_capacity);
        assert_eq!(vec![0; 4], report.timeline.requests);
        assert_eq!(vec![0; 4], report.timeline.attempts["f"]);
    }

    #[test]
    fn counts_go_to_their_second_the_incident_and_their_model() {
        let scenario = scenario();
        let mut aggregate = Aggregate::new(&scenario, StrategyName::None);
        aggregate.request(&outcome(ms(1500), ms(10), Some("p")));
        aggregate.request(&outcome(ms(1600), ms(10), Some("f")));
        aggregate.request(&outcome(ms(1700), ms(10), None));
        aggregate.request(&outcome(ms(2500), ms(10), Some("f")));
        for (at, model, status) in [(1200, "p", 529), (1300, "f", 200), (5200, "x", 404)] {
            let at = ms(at);
            aggregate.attempt(SeenAttempt { at, model, status });
        }
        let report = aggregate.report(&scenario);
        assert_eq!((4, 3), (report.requests, report.succeeded));
        assert_eq!(Some(0.5), report.primary_share_during_incident);
        // p's one slot at 500 ms serves 2 of the 3 arrivals in the 1 s incident; it gave 1.
        let used = report.primary_use_of_capacity.unwrap();
        assert!((used - 0.5).abs() < 1e-9, "{used}");
        assert_eq!((3, 1), (report.attempts, report.wasted_attempts));
        assert_eq!(vec![0, 3, 1, 0, 0, 0], report.timeline.requests);
        assert_eq!(vec![0, 1, 0, 0, 0, 0], report.timeline.attempts["p"]);
        assert_eq!(vec![0, 0, 0, 0, 0, 1], report.timeline.attempts["x"]);
        let hits: Vec<u64> = report.incident_load.iter().map(|l| l.attempts).collect();
        assert_eq!(vec![1, 1], hits);
    }
}
