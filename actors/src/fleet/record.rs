//! One target's breaker as the fleet shares it: a record under one key, and the pure rules
//! that move it. The link reads the record, applies one [`Op`] here, and writes the result
//! back by compare-and-swap, so the rules live in Rust only, whatever the store.
//!
//! The fleet trips on fleet evidence: qualifying health failures in a row across every
//! replica (any success resets the run), from at least a quorum of replicas. One replica
//! whose own network is failing cannot open everyone's breaker, because the others'
//! successes keep resetting the run and it is a quorum of one. When the open interval ends,
//! exactly one replica claims the probe (a lease, so a replica that dies holding it does not
//! hold the fleet for ever); its outcome closes the fleet's breaker or reopens it for longer.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::policy::BreakerConfig;

/// The format of the record this version writes; a record of another format is garbage to it.
pub const FORMAT: u32 = 1;

/// The shared breaker of one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedBreaker {
    /// [`FORMAT`].
    pub format: u32,
    /// Where the fleet's breaker is.
    pub state: SharedState,
    /// Failed half-open rounds since it last closed (each doubles the next open interval).
    pub rounds: u32,
    /// Qualifying health failures in a row, fleet-wide, while closed.
    pub run: u32,
    /// The replicas whose failures make up the run.
    pub voters: Vec<String>,
    /// The replica that wrote this, and when (its Unix microseconds): for the propagation lag.
    pub by: String,
    /// See `by`.
    pub at_us: u64,
}

/// Where a shared breaker is. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SharedState {
    /// Traffic flows.
    Closed,
    /// Nothing is sent until `until_ms`; then one replica may claim the probe.
    Open {
        /// See the variant.
        until_ms: u64,
    },
    /// `owner` holds the fleet's one probe until `lease_until_ms`.
    HalfOpen {
        /// The replica probing.
        owner: String,
        /// When another replica may take the probe over.
        lease_until_ms: u64,
    },
}

/// What a replica asks of the shared breaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Outcomes since the last report: health `failures`, `successes`, how many of the
    /// failures came after the last success (`trailing`; all of them if there was none), and
    /// how many of those may end a run in a trip (`qualifying`: not a 529 or timeout the
    /// reporting replica's adaptive limit is answering; see `CircuitBreaker::evidence`).
    Evidence {
        /// See the variant.
        failures: u32,
        /// See the variant.
        successes: u32,
        /// See the variant.
        trailing: u32,
        /// See the variant.
        qualifying: u32,
        /// The longest `retry-after` the failures came with: an open interval is never
        /// shorter.
        retry_after: Duration,
    },
    /// The open interval has passed here: take the probe if nobody holds it.
    Claim,
    /// The probe this replica holds ended: `ok` closes the breaker, a failure reopens it for
    /// at least `retry_after`.
    ProbeDone {
        /// See the variant.
        ok: bool,
        /// See the variant.
        retry_after: Duration,
    },
    /// This replica holds the probe but has no request to probe with: give it up.
    Release,
}

/// Who applies an op, when, and under what rules.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// The replica applying it.
    pub replica: &'a str,
    /// Its clock, in Unix milliseconds.
    pub now_ms: u64,
    /// Replicas whose failures must make up a run before it opens the breaker (already
    /// capped at the live replicas).
    pub quorum: u32,
    /// The target's breaker settings: the run's length and the open intervals.
    pub config: BreakerConfig,
    /// How long a claimed probe is held before another replica may take it over.
    pub lease: Duration,
}

impl SharedBreaker {
    /// A closed breaker with no history.
    pub fn closed(by: &str, at_us: u64) -> Self {
        Self {
            format: FORMAT,
            state: SharedState::Closed,
            rounds: 0,
            run: 0,
            voters: Vec::new(),
            by: by.to_owned(),
            at_us,
        }
    }

    /// Reads a record, or says why it is not one this version wrote.
    ///
    /// # Errors
    /// A message naming what is wrong: not JSON of this shape, or another format.
    pub fn parse(text: &str) -> Result<Self, String> {
        let record: Self =
            serde_json::from_str(text).map_err(|e| format!("not a breaker record ({e})"))?;
        if record.format != FORMAT {
            return Err(format!("a breaker record of format {}", record.format));
        }
        Ok(record)
    }

    /// The record as stored.
    ///
    /// # Panics
    /// Never: a record holds only strings and numbers, which always serialize.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a breaker record always serializes")
    }

    /// The record after `op`, or `None` if `op` changes nothing (nothing to write).
    pub fn apply(&self, op: &Op, cx: &Context<'_>, rng: &mut impl Rng) -> Option<Self> {
        let mut next = self.clone();
        let changed = match (&self.state, op) {
            (SharedState::Closed, Op::Evidence { .. }) => next.evidence(op, cx, rng),
            (SharedState::Open { until_ms }, Op::Claim) if cx.now_ms >= *until_ms => {
                next.claim(cx);
                true
            }
            (
                SharedState::HalfOpen {
                    owner,
                    lease_until_ms,
                },
                Op::Claim,
            ) if owner != cx.replica && cx.now_ms >= *lease_until_ms => {
                next.claim(cx);
                true
            }
            (SharedState::HalfOpen { owner, .. }, Op::ProbeDone { ok, retry_after })
                if owner == cx.replica =>
            {
                if *ok {
                    next.state = SharedState::Closed;
                    next.rounds = 0;
                } else {
                    next.rounds = next.rounds.saturating_add(1);
                    next.open(cx, *retry_after, rng);
                }
                true
            }
            (SharedState::HalfOpen { owner, .. }, Op::Release) if owner == cx.replica => {
                next.state = SharedState::Open {
                    until_ms: cx.now_ms,
                };
                true
            }
            _ => false,
        };
        changed.then(|| {
            next.by = cx.replica.to_owned();
            next.at_us = cx.now_ms.saturating_mul(1_000);
            next
        })
    }

    /// Whether `replica` holds the probe.
    pub fn probing(&self, replica: &str) -> bool {
        matches!(&self.state, SharedState::HalfOpen { owner, .. } if owner == replica)
    }

    fn evidence(&mut self, op: &Op, cx: &Context<'_>, rng: &mut impl Rng) -> bool {
        let Op::Evidence {
            failures,
            successes,
            trailing,
            qualifying,
            retry_after,
        } = *op
        else {
            return false;
        };
        let before = (self.run, self.voters.clone());
        if successes > 0 {
            self.run = trailing;
            self.voters.clear();
        } else {
            self.run = self.run.saturating_add(failures);
        }
        let voted = if successes > 0 { trailing } else { failures };
        if voted > 0 && !self.voters.iter().any(|v| v == cx.replica) {
            self.voters.push(cx.replica.to_owned());
        }
        let quorum = cx.quorum.max(1) as usize;
        // As on one replica: the run counts every failure, but only one that may trip (not a
        // shortage the limits are answering) ends it in a trip.
        let long_enough = self.run >= cx.config.consecutive_failures.get();
        if long_enough && self.voters.len() >= quorum && qualifying > 0 {
            self.open(cx, retry_after, rng);
            return true;
        }
        (self.run, &self.voters) != (before.0, &before.1)
    }

    fn claim(&mut self, cx: &Context<'_>) {
        self.state = SharedState::HalfOpen {
            owner: cx.replica.to_owned(),
            lease_until_ms: cx.now_ms.saturating_add(millis(cx.lease)),
        };
    }

    fn open(&mut self, cx: &Context<'_>, at_least: Duration, rng: &mut impl Rng) {
        let range = cx.config.open_range(self.rounds);
        let (low, high) = (millis(*range.start()), millis(*range.end()));
        let interval = if high > low {
            rng.random_range(low..=high)
        } else {
            low
        };
        self.state = SharedState::Open {
            until_ms: cx.now_ms.saturating_add(interval.max(millis(at_least))),
        };
        self.run = 0;
        self.voters.clear();
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn cx(replica: &str, now_ms: u64, quorum: u32) -> Context<'_> {
        Context {
            replica,
            now_ms,
            quorum,
            config: BreakerConfig {
                open_jitter: 0.0,
                ..BreakerConfig::default()
            },
            lease: Duration::from_secs(30),
        }
    }

    fn fail(n: u32) -> Op {
        Op::Evidence {
            failures: n,
            successes: 0,
            trailing: n,
            qualifying: n,
            retry_after: Duration::ZERO,
        }
    }

    fn run(
        record: &SharedBreaker,
        steps: &[(&str, Op)],
        now_ms: u64,
        quorum: u32,
    ) -> SharedBreaker {
        let mut rng = SmallRng::seed_from_u64(0);
        steps.iter().fold(record.clone(), |r, (who, op)| {
            r.apply(op, &cx(who, now_ms, quorum), &mut rng).unwrap_or(r)
        })
    }

    /// The fleet opened at 0 by a and b, and a claimed the probe at 5 s.
    fn claimed_by_a() -> SharedBreaker {
        let open = run(
            &SharedBreaker::closed("a", 0),
            &[("a", fail(3)), ("b", fail(2))],
            0,
            2,
        );
        let mut rng = SmallRng::seed_from_u64(0);
        open.apply(&Op::Claim, &cx("a", 5_000, 2), &mut rng)
            .expect("claims")
    }

    #[test]
    fn five_failures_in_a_row_from_two_replicas_open_the_fleet_breaker() {
        let start = SharedBreaker::closed("a", 0);
        let r = run(&start, &[("a", fail(3)), ("b", fail(2))], 1_000, 2);
        assert_eq!(r.state, SharedState::Open { until_ms: 6_000 });
        assert_eq!((r.run, r.voters.len(), r.by.as_str()), (0, 0, "b"));
    }

    #[test]
    fn one_replica_alone_cannot_open_it_while_another_is_alive() {
        let start = SharedBreaker::closed("a", 0);
        let r = run(&start, &[("a", fail(50))], 1_000, 2);
        assert_eq!(r.state, SharedState::Closed);
        assert_eq!(r.run, 50);
        // Alone in the fleet, its quorum is itself.
        let alone = run(&start, &[("a", fail(5))], 1_000, 1);
        assert!(matches!(alone.state, SharedState::Open { .. }));
    }

    #[test]
    fn another_replicas_success_resets_the_run() {
        let start = SharedBreaker::closed("a", 0);
        let success = Op::Evidence {
            failures: 0,
            successes: 1,
            trailing: 0,
            qualifying: 0,
            retry_after: Duration::ZERO,
        };
        let r = run(
            &start,
            &[("a", fail(4)), ("b", success), ("a", fail(1))],
            1,
            2,
        );
        assert_eq!((r.run, r.voters.clone()), (1, vec!["a".to_owned()]));
        assert_eq!(r.state, SharedState::Closed);
    }

    #[test]
    fn a_success_with_nothing_to_reset_writes_nothing() {
        let start = SharedBreaker::closed("a", 0);
        let success = Op::Evidence {
            failures: 0,
            successes: 3,
            trailing: 0,
            qualifying: 0,
            retry_after: Duration::ZERO,
        };
        let mut rng = SmallRng::seed_from_u64(0);
        assert_eq!(start.apply(&success, &cx("b", 5, 2), &mut rng), None);
    }

    #[test]
    fn one_replica_claims_the_probe_and_its_outcome_decides() {
        let open = run(
            &SharedBreaker::closed("a", 0),
            &[("a", fail(3)), ("b", fail(2))],
            0,
            2,
        );
        let mut rng = SmallRng::seed_from_u64(0);
        // Too early: nobody may claim.
        assert_eq!(open.apply(&Op::Claim, &cx("a", 4_999, 2), &mut rng), None);
        let claimed = open
            .apply(&Op::Claim, &cx("a", 5_000, 2), &mut rng)
            .expect("claims");
        assert!(claimed.probing("a"));
        // Another replica cannot take it while the lease runs, nor report its outcome.
        assert_eq!(
            claimed.apply(&Op::Claim, &cx("b", 5_001, 2), &mut rng),
            None
        );
        let done = Op::ProbeDone {
            ok: true,
            retry_after: Duration::ZERO,
        };
        assert_eq!(claimed.apply(&done, &cx("b", 5_002, 2), &mut rng), None);
        // After the lease, it can.
        let taken = claimed.apply(&Op::Claim, &cx("b", 35_000, 2), &mut rng);
        assert!(taken.expect("the lease ran out").probing("b"));
        let closed = claimed
            .apply(&done, &cx("a", 5_100, 2), &mut rng)
            .expect("closes");
        assert_eq!((closed.state, closed.rounds), (SharedState::Closed, 0));
    }

    #[test]
    fn a_failed_probe_reopens_for_twice_as_long_or_the_retry_after() {
        let mut rng = SmallRng::seed_from_u64(0);
        let claimed = claimed_by_a();
        let failed = Op::ProbeDone {
            ok: false,
            retry_after: Duration::ZERO,
        };
        let reopened = claimed
            .apply(&failed, &cx("a", 5_000, 2), &mut rng)
            .expect("reopens");
        assert_eq!(reopened.state, SharedState::Open { until_ms: 15_000 });
        assert_eq!(reopened.rounds, 1);
        let long = Op::ProbeDone {
            ok: false,
            retry_after: Duration::from_secs(60),
        };
        let waited = claimed
            .apply(&long, &cx("a", 5_000, 2), &mut rng)
            .expect("reopens");
        assert_eq!(waited.state, SharedState::Open { until_ms: 65_000 });
    }

    #[test]
    fn a_released_probe_can_be_claimed_at_once() {
        let mut rng = SmallRng::seed_from_u64(0);
        let claimed = claimed_by_a();
        let released = claimed
            .apply(&Op::Release, &cx("a", 5_100, 2), &mut rng)
            .expect("frees");
        let taken = released
            .apply(&Op::Claim, &cx("b", 5_100, 2), &mut rng)
            .expect("claims");
        assert!(taken.probing("b"));
    }

    #[test]
    fn records_round_trip_and_garbage_is_named() {
        let r = SharedBreaker::closed("a", 7);
        assert_eq!(SharedBreaker::parse(&r.to_json()), Ok(r.clone()));
        assert!(
            SharedBreaker::parse("hello")
                .unwrap_err()
                .contains("not a breaker record")
        );
        let other = r.to_json().replace("\"format\":1", "\"format\":9");
        assert_eq!(
            SharedBreaker::parse(&other).unwrap_err(),
            "a breaker record of format 9"
        );
    }

    #[test]
    fn shortages_count_toward_the_run_but_only_a_failure_that_may_trip_ends_it() {
        let start = SharedBreaker::closed("a", 0);
        let shortage = |n| Op::Evidence {
            failures: n,
            successes: 0,
            trailing: n,
            qualifying: 0,
            retry_after: Duration::ZERO,
        };
        let r = run(&start, &[("a", shortage(4)), ("b", shortage(4))], 1, 2);
        assert_eq!((r.state.clone(), r.run), (SharedState::Closed, 8));
        let r = run(&r, &[("a", fail(1))], 1, 2);
        assert!(matches!(r.state, SharedState::Open { .. }));
    }
}
