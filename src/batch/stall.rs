//! [`StallWatch`]: whether a run is stuck on its upstream. A run makes progress when an item
//! becomes final (succeeded or errored); it is stalled when none has for a while and attempts
//! have failed since the last one (a dead or refusing upstream), not when requests are merely
//! slow. A stall is shown at once, with the last failure as its cause, and ends the run after
//! `max-stall`.
//!
//! Why a stall needs its own watch: a request behind an open breaker is parked in the engine
//! until its deadline, so the items in flight report nothing, and a run at a dead upstream
//! would otherwise show "in flight 20, 0.0 req/s" forever.

use std::time::Duration;

use tokio::time::Instant;

use crate::runtime::LastFailure;
use crate::store::Counts;

/// How long without progress before a stall is shown.
const SHOWN_AFTER: Duration = Duration::from_secs(2);

/// A run without progress, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    /// How long since an item last became final (or since the run started).
    pub since: Duration,
    /// The last failure, e.g. `connect: connection failed: ... (upstream 127.0.0.1:9)`.
    pub cause: String,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let since = Duration::from_secs(self.since.as_secs());
        write!(
            f,
            "no progress for {}: {}",
            humantime::format_duration(since),
            self.cause
        )
    }
}

/// What the watch makes of the run now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Watch {
    /// Progress, or not long enough without to say.
    Moving,
    /// Stalled: show why.
    Stalled(Stall),
    /// Stalled for `max-stall`: end the run.
    GiveUp(Stall),
}

/// Tracks the last progress of a run.
#[derive(Debug)]
pub(super) struct StallWatch {
    max_stall: Option<Duration>,
    /// Where the upstream is, named in the cause (`host:port`).
    upstream: Option<String>,
    done: u64,
    progressed: Instant,
}

impl StallWatch {
    /// A watch from `now`, ending the run after `max_stall` without progress (`None`: never).
    pub(super) fn new(max_stall: Option<Duration>, upstream: Option<String>, now: Instant) -> Self {
        StallWatch {
            max_stall,
            upstream,
            done: 0,
            progressed: now,
        }
    }

    /// The run's state at `now`, from its `counts` and the runtime's last failure.
    pub(super) fn check(
        &mut self,
        counts: &Counts,
        last: Option<&LastFailure>,
        now: Instant,
    ) -> Watch {
        let done = counts.succeeded + counts.errored;
        if done > self.done {
            self.done = done;
            self.progressed = now;
        }
        let since = now.saturating_duration_since(self.progressed);
        let Some(last) = last.filter(|last| last.at >= self.progressed) else {
            return Watch::Moving;
        };
        if since < SHOWN_AFTER.min(self.max_stall.unwrap_or(SHOWN_AFTER)) {
            return Watch::Moving;
        }
        let mut cause = format!("{} (model {})", last.failure, last.target);
        if let Some(upstream) = &self.upstream {
            cause = format!("{cause} at {upstream}");
        }
        let stall = Stall { since, cause };
        match self.max_stall {
            Some(max) if since >= max => Watch::GiveUp(stall),
            _ => Watch::Stalled(stall),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Class, Failure, Target};

    const SECOND: Duration = Duration::from_secs(1);

    fn failure(at: Instant) -> LastFailure {
        LastFailure {
            at,
            target: Target::new("a"),
            failure: Failure::new(Class::Connect, "refused"),
        }
    }

    fn done(n: u64) -> Counts {
        Counts {
            succeeded: n,
            ..Counts::default()
        }
    }

    #[test]
    fn slow_requests_without_failures_are_not_a_stall() {
        let start = Instant::now();
        let mut watch = StallWatch::new(Some(SECOND * 5), None, start);
        assert_eq!(
            watch.check(&done(0), None, start + SECOND * 60),
            Watch::Moving
        );
    }

    #[test]
    fn failures_without_progress_are_shown_then_end_the_run() {
        let start = Instant::now();
        let mut watch = StallWatch::new(Some(SECOND * 5), Some("127.0.0.1:9".into()), start);
        let last = failure(start + SECOND);
        assert_eq!(
            watch.check(&done(0), Some(&last), start + SECOND),
            Watch::Moving
        );
        let Watch::Stalled(stall) = watch.check(&done(0), Some(&last), start + SECOND * 3) else {
            panic!("a stall is shown after two seconds");
        };
        assert_eq!(
            stall.to_string(),
            "no progress for 3s: connect: refused (model a) at 127.0.0.1:9"
        );
        let ended = watch.check(&done(0), Some(&last), start + SECOND * 5);
        assert!(matches!(ended, Watch::GiveUp(_)), "{ended:?}");
    }

    #[test]
    fn progress_resets_the_watch_and_older_failures_no_longer_count() {
        let start = Instant::now();
        let mut watch = StallWatch::new(Some(SECOND * 5), None, start);
        let last = failure(start + SECOND);
        assert_eq!(
            watch.check(&done(1), Some(&last), start + SECOND * 4),
            Watch::Moving
        );
        assert_eq!(
            watch.check(&done(1), Some(&last), start + SECOND * 20),
            Watch::Moving
        );
    }

    #[test]
    fn without_max_stall_a_stall_is_only_shown() {
        let start = Instant::now();
        let mut watch = StallWatch::new(None, None, start);
        let last = failure(start);
        let seen = watch.check(&done(0), Some(&last), start + SECOND * 3600);
        assert!(matches!(seen, Watch::Stalled(_)), "{seen:?}");
    }
}
