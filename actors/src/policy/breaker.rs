//! The per-target circuit breaker: a pure state machine the breaker actor feeds with outcomes
//! and asks before each attempt.
//!
//! Why: a model that answers most calls with 529 gains nothing from more calls, and its
//! callers lose the time each one takes to fail. After a run of health failures (or too high a
//! failure ratio over a window) the breaker opens: the dispatcher sends that target nothing and
//! falls back along the chain at once. After a jittered interval it goes half-open and lets a
//! few real requests through as probes; enough successes close it, a failure reopens it for
//! longer. Growing, jittered intervals keep a fleet of breakers from probing a recovering model
//! in lock-step, and no interval is shorter than a `retry-after` the upstream gave.
//!
//! Only health failures count ([`Class::counts_toward_breaker`]): a 429 is our quota and a 400
//! our mistake, so they neither trip the breaker nor reset its run of failures.

use std::ops::RangeInclusive;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::budget::SlidingWindow;
use super::gate::absorbs;
use super::limit::LimitView;
use crate::upstream::Class;

mod config;
mod state;

pub use config::BreakerConfig;
pub use state::{Admission, BreakerState, StateKind, Transition, TransitionReason};

/// What an outcome says about the target's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Healthy,
    /// A health failure, how long the upstream asked us to stay away (zero if it did not),
    /// and whether it is a shortage of capacity the adaptive limit answers (a 529, a
    /// timeout) rather than a sign the target is down.
    Unhealthy(Duration, bool),
    Neutral,
}

impl Verdict {
    fn of(class: Option<Class>, retry_after: Option<Duration>) -> Self {
        let retry_after = retry_after.unwrap_or_default();
        match class {
            None => Verdict::Healthy,
            Some(class) if class.counts_toward_breaker() => {
                Verdict::Unhealthy(retry_after, absorbs(class))
            }
            Some(_) => Verdict::Neutral,
        }
    }
}

/// One target's circuit breaker; see the module docs.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    rng: SmallRng,
    state: BreakerState,
    // (calls, health failures) while closed
    window: SlidingWindow,
    consecutive: u32,
    // Failed half-open rounds since the breaker last closed.
    rounds: u32,
    // Probes admitted and not yet recorded or released, whatever the state: they are real
    // requests in flight, so they hold their slots across transitions.
    probes_out: u32,
    probe_successes: u32,
    /// The target's adaptive limit, if it has one; see [`set_limit`](Self::set_limit).
    limit: Option<LimitView>,
    /// When the outcome recorded next started, and the oldest attempt still running then.
    round: (Option<Instant>, Option<Instant>),
    /// When the first failed attempt of the current run of consecutive failures started.
    run_began: Option<Instant>,
    /// Overloads and timeouts in a row met with the limit at its floor.
    floor_run: u32,
    /// What the outcome recorded last says to a fleet; see [`evidence`](Self::evidence).
    evidence: Evidence,
}

/// What a recorded outcome adds to a fleet's evidence about the target (see
/// `crate::fleet`): the fleet's breaker trips on failures that would count toward this
/// breaker's own run, and any success resets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// A success while closed.
    Healthy,
    /// A health failure while closed that may end a run in a trip here: not a 529 or timeout
    /// the adaptive limit is answering.
    Failure,
    /// A 529 or timeout while closed that the adaptive limit is answering (met while older
    /// attempts still run, with the limit above its floor): it counts toward the run of
    /// failures, but cannot be the one that trips the breaker.
    Shortage,
    /// Nothing: a 429, an invalid request, a straggler while open, a probe.
    Nothing,
}

impl CircuitBreaker {
    /// A closed breaker whose jitter is fixed by `seed`.
    pub fn new(config: BreakerConfig, seed: u64) -> Self {
        Self {
            config,
            rng: SmallRng::seed_from_u64(seed),
            state: BreakerState::Closed,
            window: SlidingWindow::new(config.window),
            consecutive: 0,
            rounds: 0,
            probes_out: 0,
            probe_successes: 0,
            limit: None,
            round: (None, None),
            run_began: None,
            floor_run: 0,
            evidence: Evidence::Nothing,
        }
    }

    /// A breaker taking over from one that crashed, in `state`, the state that one last
    /// published: open until the same time, half-open with no probe out, isolated, or
    /// closed. The rest of its history (the window, the run of failures, the failed rounds
    /// that lengthen the next open interval) went with it.
    pub fn resume(config: BreakerConfig, seed: u64, state: BreakerState) -> Self {
        Self {
            state,
            ..Self::new(config, seed)
        }
    }

    /// The breaker's shape.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state, as last moved by a call (see [`poll`](Self::poll)).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// When an open breaker may go half-open: the time to set the actor's timer for.
    pub fn open_until(&self) -> Option<Instant> {
        match self.state {
            BreakerState::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Probes admitted and not yet recorded or released.
    pub fn outstanding_probes(&self) -> u32 {
        self.probes_out
    }

    /// Moves an open breaker whose interval has passed to half-open.
    pub fn poll(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            BreakerState::Open { until } if now >= until => {
                Some(self.enter(BreakerState::HalfOpen, now, TransitionReason::OpenElapsed))
            }
            _ => None,
        }
    }

    /// Decides whether a call may start now, taking a probe slot if it is admitted as a probe.
    ///
    /// Polls first, so an elapsed open interval is never reported as open; the transition, if
    /// any, comes back alongside for the actor to publish.
    pub fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        let transition = self.poll(now);
        let admission = match self.state {
            BreakerState::Closed => Admission::Allowed,
            BreakerState::Open { until } => Admission::Rejected { until: Some(until) },
            BreakerState::HalfOpen if self.probes_out < self.config.probes.get() => {
                self.probes_out += 1;
                Admission::Probe
            }
            BreakerState::HalfOpen | BreakerState::Isolated => Admission::Rejected { until: None },
        };
        (admission, transition)
    }

    /// Tells the breaker of the target's adaptive limit (`None`: it has none), as the outcome
    /// recorded next found it. With one, overloads and timeouts are the limit's to answer:
    /// the breaker is for a target that is down, the limit for one serving less. They open
    /// the breaker only after `consecutive-failures` in a row that took a whole round (no
    /// attempt that started before the run is still running: everything sent failed, see
    /// [`set_round`](Self::set_round)), or in a row with the limit at its floor, where it
    /// cannot shrink further; never by the failure ratio. Failures the limit does not answer
    /// (connect failures, 5xx) open it as before.
    pub fn set_limit(&mut self, limit: Option<LimitView>) {
        self.limit = limit;
    }

    /// Tells the breaker when the outcome recorded next started, and the oldest attempt
    /// still running then. A burst of 529s met by new attempts while older ones are still
    /// being served is a target short of capacity, not down: it opens the breaker only once
    /// those older attempts have ended and failed too.
    pub fn set_round(&mut self, started: Instant, oldest_running: Option<Instant>) {
        self.round = (Some(started), oldest_running);
    }

    /// Frees the slot of a probe whose caller went away without an outcome.
    pub fn release_probe(&mut self) {
        self.probes_out = self.probes_out.saturating_sub(1);
    }

    /// Records the outcome of a call: `class` is `None` for a success, and `probe` says whether
    /// [`admit`](Self::admit) let the call through as a probe.
    ///
    /// While open or half-open, outcomes of ordinary calls are stragglers started before the
    /// breaker opened: they never move it, though a health failure's `retry_after` still
    /// extends an open deadline. A 429 or an invalid request is neither success nor failure.
    pub fn record(
        &mut self,
        class: Option<Class>,
        retry_after: Option<Duration>,
        probe: bool,
        now: Instant,
    ) -> Option<Transition> {
        if probe {
            self.release_probe();
        }
        self.evidence = Evidence::Nothing;
        match (self.state, Verdict::of(class, retry_after)) {
            (BreakerState::Closed, verdict) => self.record_closed(verdict, now),
            (BreakerState::Open { .. }, Verdict::Unhealthy(retry_after, _)) => {
                self.extend_open(deadline(now, retry_after));
                None
            }
            (BreakerState::HalfOpen, verdict) if probe => self.record_probe(verdict, now),
            _ => None,
        }
    }

    /// What the outcome recorded last adds to a fleet's evidence.
    pub fn evidence(&self) -> Evidence {
        self.evidence
    }

    /// Moves to `to` because the fleet's breaker did (see `crate::fleet`): into open or
    /// half-open with no history of its own, or closed, forgetting it. An open breaker takes
    /// the fleet's deadline, earlier or later. Isolation is an operator's, and stays.
    pub fn follow(&mut self, to: BreakerState, now: Instant) -> Option<Transition> {
        match (self.state, to) {
            (BreakerState::Isolated, _) => None,
            (BreakerState::Open { .. }, BreakerState::Open { until }) => {
                self.state = BreakerState::Open { until };
                None
            }
            (from, to) if from.kind() == to.kind() => None,
            (_, to) => {
                self.forget();
                Some(self.enter(to, now, TransitionReason::Fleet))
            }
        }
    }

    /// Pushes an open deadline out to `until` if that is later; it never moves earlier.
    /// Returns the deadline now in force, or `None` if the breaker is not open.
    pub fn extend_open(&mut self, until: Instant) -> Option<Instant> {
        let BreakerState::Open { until: current } = &mut self.state else {
            return None;
        };
        *current = (*current).max(until);
        Some(*current)
    }

    /// Rejects every call until [`reset`](Self::reset).
    pub fn isolate(&mut self, now: Instant) -> Option<Transition> {
        let moves = self.state != BreakerState::Isolated;
        moves.then(|| self.enter(BreakerState::Isolated, now, TransitionReason::Isolated))
    }

    /// Closes the breaker and forgets its history (probes in flight keep their slots).
    pub fn reset(&mut self, now: Instant) -> Option<Transition> {
        self.forget();
        let moves = self.state != BreakerState::Closed;
        moves.then(|| self.enter(BreakerState::Closed, now, TransitionReason::Reset))
    }

    fn record_closed(&mut self, verdict: Verdict, now: Instant) -> Option<Transition> {
        match verdict {
            Verdict::Neutral => None,
            Verdict::Healthy => {
                self.consecutive = 0;
                self.floor_run = 0;
                self.window.record(now, 1, 0);
                self.evidence = Evidence::Healthy;
                None
            }
            Verdict::Unhealthy(retry_after, shortage) => {
                if self.consecutive == 0 {
                    self.run_began = self.round.0;
                }
                if shortage && self.limit.is_some_and(|view| view.at_floor) {
                    self.floor_run = self.floor_run.saturating_add(1);
                }
                self.consecutive = self.consecutive.saturating_add(1);
                self.window.record(now, 1, 1);
                let floored = self.limit.is_some_and(|view| view.at_floor);
                self.evidence =
                    if !shortage || self.limit.is_none() || self.whole_round() || floored {
                        Evidence::Failure
                    } else {
                        Evidence::Shortage
                    };
                let reason = self.trip_reason(shortage, now)?;
                Some(self.open(reason, retry_after, now))
            }
        }
    }

    fn trip_reason(&self, shortage: bool, now: Instant) -> Option<TransitionReason> {
        let in_a_row = self.config.consecutive_failures.get();
        if shortage && let Some(view) = self.limit {
            // The adaptive limit answers a brownout; see `set_limit`.
            let outage = self.consecutive >= in_a_row && self.whole_round();
            let floored = view.at_floor && self.floor_run >= in_a_row;
            return (outage || floored).then_some(TransitionReason::ConsecutiveFailures);
        }
        let (calls, failures) = self.window.totals(now);
        if self.consecutive >= in_a_row {
            return Some(TransitionReason::ConsecutiveFailures);
        }
        let judged = calls > 0 && calls >= u64::from(self.config.min_calls);
        // Dividing (rather than multiplying the ratio) keeps 3 of 10 equal to a ratio of 0.3.
        let tripped = judged && failures as f64 / calls as f64 >= self.config.failure_ratio;
        tripped.then_some(TransitionReason::FailureRatio)
    }

    /// Whether every attempt still running started after the current run of failures began.
    fn whole_round(&self) -> bool {
        match (self.round.1, self.run_began) {
            (Some(oldest), Some(began)) => oldest > began,
            _ => true,
        }
    }

    fn record_probe(&mut self, verdict: Verdict, now: Instant) -> Option<Transition> {
        match verdict {
            Verdict::Neutral => None,
            Verdict::Healthy => {
                self.probe_successes += 1;
                if self.probe_successes < self.config.successes_to_close.get() {
                    return None;
                }
                self.forget();
                let reason = TransitionReason::ProbesSucceeded;
                Some(self.enter(BreakerState::Closed, now, reason))
            }
            Verdict::Unhealthy(retry_after, _) => {
                self.rounds = self.rounds.saturating_add(1);
                Some(self.open(TransitionReason::ProbeFailed, retry_after, now))
            }
        }
    }

    fn open(&mut self, reason: TransitionReason, at_least: Duration, now: Instant) -> Transition {
        let range = self.config.open_range(self.rounds);
        let interval = uniform(&mut self.rng, range).max(at_least);
        self.consecutive = 0;
        self.floor_run = 0;
        self.probe_successes = 0;
        self.window.clear();
        let until = deadline(now, interval);
        self.enter(BreakerState::Open { until }, now, reason)
    }

    fn forget(&mut self) {
        self.consecutive = 0;
        self.floor_run = 0;
        self.rounds = 0;
        self.probe_successes = 0;
        self.window.clear();
    }

    fn enter(&mut self, to: BreakerState, at: Instant, reason: TransitionReason) -> Transition {
        let from = self.state.kind();
        self.state = to;
        Transition {
            from,
            to: to.kind(),
            at,
            reason,
        }
    }
}

fn uniform(rng: &mut SmallRng, range: RangeInclusive<Duration>) -> Duration {
    let (low, high) = (nanos(*range.start()), nanos(*range.end()));
    if high <= low {
        return *range.start();
    }
    Duration::from_nanos(rng.random_range(low..=high))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `now + after`, or tokio's own "far future" (30 years) if that is beyond the clock's range.
fn deadline(now: Instant, after: Duration) -> Instant {
    let far_future = Duration::from_secs(86_400 * 365 * 30);
    now.checked_add(after).unwrap_or_else(|| now + far_future)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::num::NonZeroU32;

    const OVERLOADED: Option<Class> = Some(Class::Overloaded);
    const OK: Option<Class> = None;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn exact() -> BreakerConfig {
        BreakerConfig {
            open_jitter: 0.0,
            ..BreakerConfig::default()
        }
    }

    fn count(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("tests use positive counts")
    }

    /// Records `classes` at `now` as ordinary calls, returning the index of the first one that
    /// moved the breaker, and the move.
    fn feed(
        b: &mut CircuitBreaker,
        classes: &[Option<Class>],
        now: Instant,
    ) -> Option<(usize, Transition)> {
        classes
            .iter()
            .enumerate()
            .find_map(|(i, class)| b.record(*class, None, false, now).map(|t| (i, t)))
    }

    /// A breaker tripped at `t0` by five 529s.
    fn tripped(config: BreakerConfig, t0: Instant) -> CircuitBreaker {
        let mut b = CircuitBreaker::new(config, 0);
        feed(&mut b, &[OVERLOADED; 5], t0).expect("five 529s open the breaker");
        b
    }

    /// Waits out the open interval, takes a probe and fails it; returns the new interval.
    fn fail_probe(b: &mut CircuitBreaker) -> Duration {
        let now = b.open_until().expect("open");
        assert_eq!(b.admit(now).0, Admission::Probe);
        let t = b.record(OVERLOADED, None, true, now).expect("reopens");
        assert_eq!(
            (t.from, t.to, t.reason),
            (
                StateKind::HalfOpen,
                StateKind::Open,
                TransitionReason::ProbeFailed
            )
        );
        b.open_until().expect("open") - now
    }

    fn view(at_floor: bool) -> LimitView {
        LimitView { at_floor }
    }

    #[test]
    fn overloads_with_the_limit_at_its_floor_open_after_five_in_a_row_met_there() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(exact(), 0);
        // Older attempts are still out the whole time: only the floor rule can open it.
        b.set_round(t0 + secs(1), Some(t0));
        b.set_limit(Some(view(false)));
        assert_eq!(feed(&mut b, &[OVERLOADED; 9], t0), None);
        b.set_limit(Some(view(true)));
        assert_eq!(
            feed(&mut b, &[OVERLOADED; 4], t0),
            None,
            "four met at the floor"
        );
        let (_, t) = feed(&mut b, &[OVERLOADED], t0).expect("the fifth at the floor opens it");
        assert_eq!(t.reason, TransitionReason::ConsecutiveFailures);
    }

    #[test]
    fn a_burst_of_overloads_while_older_attempts_are_served_does_not_open() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(exact(), 0);
        b.set_limit(Some(view(false)));
        // New attempts meet 529s while one started at t0 is still being served.
        b.set_round(t0 + secs(1), Some(t0));
        assert_eq!(
            feed(&mut b, &[OVERLOADED; 8], t0),
            None,
            "a burst, not an outage"
        );
        // The older one ends, failed too, with nothing else out: everything sent failed.
        b.set_round(t0, None);
        let (_, t) = feed(&mut b, &[OVERLOADED], t0).expect("a whole round failed");
        assert_eq!(t.reason, TransitionReason::ConsecutiveFailures);
    }

    #[test]
    fn five_overloads_in_a_row_with_nothing_else_out_open_it_whatever_the_limit() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(exact(), 0);
        b.set_limit(Some(view(false)));
        b.set_round(t0, None);
        let (index, t) = feed(&mut b, &[OVERLOADED; 5], t0).expect("opens");
        assert_eq!(
            (index, t.reason),
            (4, TransitionReason::ConsecutiveFailures)
        );
    }

    #[test]
    fn a_failure_ratio_a_limit_absorbs_does_not_open() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(exact(), 0);
        b.set_limit(Some(view(false)));
        // Two in three fail, never three in a row: a brownout the limit is shrinking to.
        let calls: Vec<_> = [OK, OVERLOADED, OVERLOADED].repeat(10);
        assert_eq!(feed(&mut b, &calls, t0), None);
        b.set_limit(None);
        let (_, t) = feed(&mut b, &[OVERLOADED], t0).expect("at its floor, it opens");
        assert_eq!(t.reason, TransitionReason::FailureRatio);
    }

    #[test]
    fn failures_a_limit_does_not_answer_open_as_before_whatever_the_limit() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(exact(), 0);
        b.set_limit(Some(view(false)));
        let (index, t) = feed(&mut b, &[Some(Class::Connect); 5], t0).expect("opens");
        assert_eq!(
            (index, t.reason),
            (4, TransitionReason::ConsecutiveFailures)
        );
    }

    #[test]
    fn five_consecutive_overloads_open_at_exactly_the_fifth() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(exact(), 0);
        let (index, transition) = feed(&mut b, &[OVERLOADED; 5], t0).expect("opens");
        assert_eq!(index, 4);
        assert_eq!(
            transition,
            Transition {
                from: StateKind::Closed,
                to: StateKind::Open,
                at: t0,
                reason: TransitionReason::ConsecutiveFailures
            }
        );
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t0 + secs(5)
            }
        );
        assert_eq!(
            b.admit(t0).0,
            Admission::Rejected {
                until: Some(t0 + secs(5))
            }
        );
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(exact(), 0);
        let calls = [OVERLOADED, OVERLOADED, OVERLOADED, OVERLOADED, OK];
        assert_eq!(feed(&mut b, &calls, t0), None);
        assert_eq!(feed(&mut b, &[OVERLOADED; 4], t0), None);
        assert_eq!(feed(&mut b, &[OVERLOADED], t0).map(|(i, _)| i), Some(0));
    }

    #[test]
    fn rate_limits_invalid_requests_and_local_faults_never_open_nor_reset_the_count() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(exact(), 0);
        let neutral = [
            Some(Class::RateLimited),
            Some(Class::Invalid),
            Some(Class::Local),
        ];
        for _ in 0..100 {
            assert_eq!(feed(&mut b, &neutral, t0), None);
        }
        let mixed = [
            OVERLOADED,
            OVERLOADED,
            Some(Class::RateLimited),
            Some(Class::Local),
            OVERLOADED,
            OVERLOADED,
        ];
        assert_eq!(feed(&mut b, &mixed, t0), None);
        let (index, t) =
            feed(&mut b, &[Some(Class::Invalid), Some(Class::Timeout)], t0).expect("opens");
        assert_eq!(
            (index, t.reason),
            (1, TransitionReason::ConsecutiveFailures)
        );
    }

    const SPREAD: [Option<Class>; 10] = [
        OVERLOADED, OK, OVERLOADED, OK, OVERLOADED, OK, OVERLOADED, OK, OK, OVERLOADED,
    ];

    #[test]
    fn failure_ratio_opens_at_the_tenth_call_not_before() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(exact(), 0);
        assert_eq!(feed(&mut b, &SPREAD[..9], t0), None);
        let (index, t) = feed(&mut b, &SPREAD[9..], t0).expect("opens");
        assert_eq!((index, t.reason), (0, TransitionReason::FailureRatio));
    }

    #[test]
    fn nine_calls_with_five_failures_are_too_few_to_judge() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(exact(), 0);
        let nine = [
            OVERLOADED, OK, OVERLOADED, OK, OVERLOADED, OK, OVERLOADED, OK, OVERLOADED,
        ];
        assert_eq!(feed(&mut b, &nine, t0), None);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn outcomes_older_than_the_window_stop_counting() {
        let t0 = Instant::now();
        let mut stale = CircuitBreaker::new(exact(), 0);
        assert_eq!(feed(&mut stale, &SPREAD[..9], t0), None);
        assert_eq!(feed(&mut stale, &SPREAD[9..], t0 + secs(11)), None);
        let mut fresh = CircuitBreaker::new(exact(), 0);
        assert_eq!(feed(&mut fresh, &SPREAD[..9], t0), None);
        assert!(feed(&mut fresh, &SPREAD[9..], t0 + secs(9)).is_some());
    }

    #[test]
    fn open_interval_doubles_per_failed_round_up_to_the_cap() {
        let mut b = tripped(exact(), Instant::now());
        let mut intervals = vec![secs(5)];
        intervals.extend((0..7).map(|_| fail_probe(&mut b)));
        let expected: Vec<_> = [5, 10, 20, 40, 80, 120, 120, 120].map(secs).to_vec();
        assert_eq!(intervals, expected);
    }

    #[test]
    fn retry_after_lengthens_the_first_interval() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(exact(), 0);
        feed(&mut b, &[OVERLOADED; 4], t0);
        let t = b
            .record(OVERLOADED, Some(secs(30)), false, t0)
            .expect("opens");
        assert_eq!(t.to, StateKind::Open);
        assert_eq!(b.open_until(), Some(t0 + secs(30)));
    }

    #[test]
    fn extending_never_shrinks_the_open_deadline() {
        let t0 = Instant::now();
        let mut b = tripped(exact(), t0);
        assert_eq!(b.extend_open(t0 + secs(1)), Some(t0 + secs(5)));
        assert_eq!(b.extend_open(t0 + secs(8)), Some(t0 + secs(8)));
        assert_eq!(
            b.record(OVERLOADED, Some(secs(1)), false, t0 + secs(1)),
            None
        );
        assert_eq!(b.open_until(), Some(t0 + secs(8)));
        assert_eq!(
            b.record(OVERLOADED, Some(secs(9)), false, t0 + secs(1)),
            None
        );
        assert_eq!(b.open_until(), Some(t0 + secs(10)));
        assert_eq!(
            b.record(Some(Class::RateLimited), Some(secs(60)), false, t0),
            None
        );
        assert_eq!(b.open_until(), Some(t0 + secs(10)));
    }

    #[test]
    fn open_becomes_half_open_exactly_when_the_interval_passes() {
        let t0 = Instant::now();
        let mut b = tripped(exact(), t0);
        assert_eq!(b.poll(t0 + Duration::from_millis(4_999)), None);
        let t = b.poll(t0 + secs(5)).expect("half-opens");
        assert_eq!(
            (t.from, t.to, t.reason),
            (
                StateKind::Open,
                StateKind::HalfOpen,
                TransitionReason::OpenElapsed
            )
        );
        assert_eq!(b.poll(t0 + secs(6)), None);
    }

    #[test]
    fn admit_half_opens_an_elapsed_breaker_and_reports_it() {
        let t0 = Instant::now();
        let mut b = tripped(exact(), t0);
        let (admission, t) = b.admit(t0 + secs(5));
        assert_eq!(admission, Admission::Probe);
        assert_eq!(t.map(|t| t.to), Some(StateKind::HalfOpen));
    }

    fn half_open_admits_exactly(probes: u32) {
        let t0 = Instant::now();
        let config = BreakerConfig {
            probes: count(probes),
            ..exact()
        };
        let mut b = tripped(config, t0);
        let now = t0 + secs(5);
        for _ in 0..probes {
            assert_eq!(b.admit(now).0, Admission::Probe);
        }
        assert_eq!(b.admit(now).0, Admission::Rejected { until: None });
        assert_eq!(b.outstanding_probes(), probes);
    }

    #[test]
    fn half_open_admits_one_probe_then_rejects() {
        half_open_admits_exactly(1);
    }

    #[test]
    fn half_open_admits_three_probes_then_rejects() {
        half_open_admits_exactly(3);
    }

    #[test]
    fn a_failed_probe_reopens_with_a_doubled_interval() {
        let mut b = tripped(exact(), Instant::now());
        assert_eq!(fail_probe(&mut b), secs(10));
    }

    #[test]
    fn two_successful_probes_close_when_two_are_needed() {
        let t0 = Instant::now();
        let config = BreakerConfig {
            probes: count(2),
            successes_to_close: count(2),
            ..exact()
        };
        let mut b = tripped(config, t0);
        let now = t0 + secs(5);
        assert_eq!(b.admit(now).0, Admission::Probe);
        assert_eq!(b.admit(now).0, Admission::Probe);
        assert_eq!(b.record(OK, None, true, now), None);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let t = b.record(OK, None, true, now).expect("closes");
        assert_eq!(
            (t.from, t.to, t.reason),
            (
                StateKind::HalfOpen,
                StateKind::Closed,
                TransitionReason::ProbesSucceeded
            )
        );
        assert_eq!(b.admit(now).0, Admission::Allowed);
    }

    #[test]
    fn closing_forgets_failed_rounds_and_the_window() {
        let t0 = Instant::now();
        let mut b = tripped(exact(), t0);
        fail_probe(&mut b);
        let now = b.open_until().expect("open");
        assert_eq!(b.admit(now).0, Admission::Probe);
        assert!(b.record(OK, None, true, now).is_some());
        assert_eq!(feed(&mut b, &[OVERLOADED; 4], now), None);
        assert!(feed(&mut b, &[OVERLOADED], now).is_some());
        assert_eq!(b.open_until(), Some(now + secs(5)));
    }

    #[test]
    fn stragglers_never_close_an_open_or_half_open_breaker() {
        let t0 = Instant::now();
        let mut b = tripped(exact(), t0);
        assert_eq!(feed(&mut b, &[OK; 20], t0 + secs(1)), None);
        assert_eq!(
            b.poll(t0 + secs(5)).map(|t| t.to),
            Some(StateKind::HalfOpen)
        );
        assert_eq!(feed(&mut b, &[OK, OVERLOADED, OK], t0 + secs(5)), None);
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn release_probe_and_neutral_probe_outcomes_free_the_slot() {
        let t0 = Instant::now();
        let mut b = tripped(exact(), t0);
        let now = t0 + secs(5);
        assert_eq!(b.admit(now).0, Admission::Probe);
        b.release_probe();
        assert_eq!(b.outstanding_probes(), 0);
        assert_eq!(b.admit(now).0, Admission::Probe);
        assert_eq!(b.record(Some(Class::RateLimited), None, true, now), None);
        assert_eq!(
            (b.state(), b.outstanding_probes()),
            (BreakerState::HalfOpen, 0)
        );
        assert_eq!(b.admit(now).0, Admission::Probe);
    }

    #[test]
    fn isolated_rejects_everything_until_reset() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(exact(), 0);
        let t = b.isolate(t0).expect("isolates");
        assert_eq!(
            (t.from, t.to, t.reason),
            (
                StateKind::Closed,
                StateKind::Isolated,
                TransitionReason::Isolated
            )
        );
        assert_eq!(b.isolate(t0), None);
        assert_eq!(
            b.admit(t0 + secs(1_000)).0,
            Admission::Rejected { until: None }
        );
        assert_eq!(feed(&mut b, &[OK; 20], t0), None);
        let t = b.reset(t0 + secs(1)).expect("closes");
        assert_eq!(
            (t.from, t.to, t.reason),
            (
                StateKind::Isolated,
                StateKind::Closed,
                TransitionReason::Reset
            )
        );
        assert_eq!(b.admit(t0 + secs(1)).0, Admission::Allowed);
        assert_eq!(b.reset(t0 + secs(1)), None);
    }

    #[test]
    fn reset_clears_the_consecutive_count() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(exact(), 0);
        feed(&mut b, &[OVERLOADED; 4], t0);
        assert_eq!(b.reset(t0), None);
        assert_eq!(feed(&mut b, &[OVERLOADED; 4], t0), None);
    }

    #[test]
    fn validate_names_the_bad_field() {
        let bad = |config: BreakerConfig| config.validate().unwrap_err().to_string();
        let base = BreakerConfig::default();
        assert_eq!(base.validate(), Ok(()));
        assert_eq!(
            bad(BreakerConfig {
                failure_ratio: 0.0,
                ..base
            }),
            "invalid failure-ratio: 0 is not in (0, 1]"
        );
        assert_eq!(
            bad(BreakerConfig {
                failure_ratio: f64::NAN,
                ..base
            }),
            "invalid failure-ratio: NaN is not in (0, 1]"
        );
        assert_eq!(
            bad(BreakerConfig {
                open_jitter: -0.5,
                ..base
            }),
            "invalid open-jitter: -0.5 is not a finite, non-negative number"
        );
        assert_eq!(
            bad(BreakerConfig {
                window: Duration::ZERO,
                ..base
            }),
            "invalid window: must be longer than zero"
        );
        assert_eq!(
            bad(BreakerConfig {
                open_for: secs(121),
                ..base
            }),
            "invalid open-for: 121s is longer than max-open-for"
        );
    }

    #[test]
    fn jitter_is_fixed_by_the_seed() {
        let t0 = Instant::now();
        let until = |seed| {
            let mut b = CircuitBreaker::new(BreakerConfig::default(), seed);
            feed(&mut b, &[OVERLOADED; 5], t0);
            b.open_until().expect("open")
        };
        assert_eq!(until(7), until(7));
        assert_ne!(until(7), until(8));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Admit,
        Record {
            class: Option<Class>,
            retry_after: Option<u64>,
            as_probe: bool,
        },
        Release,
        Advance(u64),
    }

    fn class() -> impl Strategy<Value = Option<Class>> {
        prop_oneof![
            3 => Just(OVERLOADED),
            2 => Just(OK),
            1 => proptest::sample::select(Class::ALL.to_vec()).prop_map(Some),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        let record = (class(), proptest::option::of(0u64..20_000), any::<bool>()).prop_map(
            |(class, retry_after, as_probe)| Op::Record {
                class,
                retry_after,
                as_probe,
            },
        );
        prop_oneof![
            3 => Just(Op::Admit),
            4 => record,
            1 => Just(Op::Release),
            2 => (0u64..10_000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #[test]
        fn probes_in_flight_never_exceed_the_limit_and_open_deadlines_never_shrink(
            probes in 1u32..4, seed: u64, ops in proptest::collection::vec(op(), 0..300),
        ) {
            let config = BreakerConfig {
                consecutive_failures: count(2), probes: count(probes),
                successes_to_close: count(2), open_for: secs(1), max_open_for: secs(8),
                ..BreakerConfig::default()
            };
            let mut b = CircuitBreaker::new(config, seed);
            let mut now = Instant::now();
            let mut held = 0u32;
            let mut last_until = None;
            for op in ops {
                match op {
                    Op::Admit => if b.admit(now).0 == Admission::Probe { held += 1 },
                    Op::Record { class, retry_after, as_probe } => {
                        let probe = as_probe && held > 0;
                        held -= u32::from(probe);
                        b.record(class, retry_after.map(Duration::from_millis), probe, now);
                    }
                    Op::Release => if held > 0 { held -= 1; b.release_probe(); },
                    Op::Advance(ms) => now += Duration::from_millis(ms),
                }
                prop_assert!(b.outstanding_probes() <= probes);
                prop_assert_eq!(b.outstanding_probes(), held);
                let until = b.open_until();
                if let (Some(before), Some(after)) = (last_until, until) {
                    prop_assert!(after >= before);
                }
                last_until = until;
            }
        }

        #[test]
        fn every_open_interval_is_jittered_base_or_retry_after(
            seed: u64, jitter in 0.0f64..1.0,
            retry_afters in proptest::collection::vec(proptest::option::of(0u64..200_000), 1..12),
        ) {
            let config = BreakerConfig { open_jitter: jitter, ..BreakerConfig::default() };
            let mut b = CircuitBreaker::new(config, seed);
            let mut now = Instant::now();
            feed(&mut b, &[OVERLOADED; 4], now);
            for (rounds, retry_after) in retry_afters.into_iter().enumerate() {
                let retry_after = retry_after.map(Duration::from_millis);
                let probe = b.admit(now).0 == Admission::Probe;
                prop_assert!(b.record(OVERLOADED, retry_after, probe, now).is_some());
                let interval = b.open_until().expect("open") - now;
                let range = config.open_range(rounds as u32);
                let floor = retry_after.unwrap_or_default();
                prop_assert!(interval >= *range.start() && interval >= floor);
                prop_assert!(interval <= (*range.end()).max(floor));
                let stretched = range.start().mul_f64(1.0 + jitter);
                prop_assert!(*range.end() <= stretched + Duration::from_nanos(1));
                now += interval;
            }
        }
    }
}
