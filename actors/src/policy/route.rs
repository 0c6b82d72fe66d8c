//! Where a request goes along its chain: to its target, past it, into the parking lot, or
//! back to its caller with an error, and what that error says about when to come back.
//!
//! The dispatcher applies these rules; each is a pure function of what it knows (the breaker
//! states it reads on the board, the job's place in its chain, the retry budget's answer), so
//! the routing rules are tested here with exact values, apart from the actors.
//!
//! Why park rather than fail: a request whose every target is open or isolated may still be
//! served once a breaker half-opens, if that happens before its deadline; one whose targets
//! all refused it for good (a permanent failure) or stay unavailable past its deadline gains
//! nothing from waiting, and is answered at once.

use std::num::NonZeroU32;
use std::time::Duration;

use tokio::time::Instant;

use super::breaker::StateKind;
use super::decision::GiveUp;
use crate::request::Priority;
use crate::upstream::Class;

/// Where a request arriving at its current target goes, by the target's breaker state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Closed: send it (unless the client-side throttle turns it away).
    Send,
    /// Half-open: ask the breaker whether it may go as a probe.
    AskBreaker,
    /// Open or isolated: fall back past the target at once.
    PassOver,
}

/// How a request ends when the engine gives up on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Shed: its priority lost to others.
    Shed,
    /// Its deadline came before another attempt could start.
    Deadline,
    /// The last failure is permanent: it is the answer.
    Permanent,
    /// No target of its chain can serve it in time.
    Exhausted,
}

/// What follows a failed attempt the [`RetryPolicy`](super::RetryPolicy) would retry in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InPlace {
    /// Retry on the same target after the delay.
    Retry,
    /// The target's retry budget is spent and there is nowhere to fall back to: more retries
    /// would feed a retry storm, so end the request now.
    BudgetSpent,
    /// Fall back past the target.
    PassOver,
}

/// What becomes of a request no target of its chain can take now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parking {
    /// Wait in the parking lot for a breaker to let it through.
    Park,
    /// Waiting cannot help: end it as [`Ending::Exhausted`].
    Fail,
}

/// Whether a job its target cannot start now waits there or moves on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spill {
    /// Wait for the target.
    Wait,
    /// Move on to the next target without an attempt (spillover).
    MoveOn,
}

/// Whether a job its full target cannot start now moves on: when it is `allowed` to (it
/// allows spillover and has a next target), it is no `probe` (a probe must run here), and a
/// `later` target of its chain (each its breaker state and whether it is full) is closed
/// and has room. A full target in between passes it on again in turn.
pub fn spill(
    allowed: bool,
    probe: bool,
    later: impl IntoIterator<Item = (StateKind, bool)>,
) -> Spill {
    let room = |(state, full): (StateKind, bool)| state == StateKind::Closed && !full;
    if allowed && !probe && later.into_iter().any(room) {
        Spill::MoveOn
    } else {
        Spill::Wait
    }
}

/// Where a request arriving at a target in `state` goes.
pub fn arrival(state: StateKind) -> Arrival {
    match state {
        StateKind::Closed => Arrival::Send,
        StateKind::HalfOpen => Arrival::AskBreaker,
        StateKind::Open | StateKind::Isolated => Arrival::PassOver,
    }
}

/// How a request the client-side throttle turned away goes on: to the next target if it
/// `can_fall_back`; else a `Sheddable` one is shed, and any other ends exhausted.
pub fn turned_away(can_fall_back: bool, priority: Priority) -> Option<Ending> {
    match (can_fall_back, priority) {
        (true, _) => None,
        (false, Priority::Sheddable) => Some(Ending::Shed),
        (false, _) => Some(Ending::Exhausted),
    }
}

/// Whether a retry the retry policy chose happens in place. It does when the attempt was no
/// probe (a failed probe always moves on, so its caller never sees it), the target's
/// `breaker` is still closed, and its retry budget allowed a withdrawal (`budget`).
pub fn in_place(was_probe: bool, breaker: StateKind, budget: bool, can_fall_back: bool) -> InPlace {
    let closed = !was_probe && breaker == StateKind::Closed;
    if closed && budget {
        InPlace::Retry
    } else if closed && !can_fall_back {
        InPlace::BudgetSpent
    } else {
        InPlace::PassOver
    }
}

/// How a request ends when the retry policy gives up for `reason`.
pub fn ending(reason: GiveUp) -> Ending {
    match reason {
        GiveUp::Permanent => Ending::Permanent,
        GiveUp::Deadline => Ending::Deadline,
        _ => Ending::Exhausted,
    }
}

/// When a target in `state` (with `open_until` while open) may take a parked request: now,
/// unless it is open (then when it half-opens) or isolated (never, until it is reset).
pub fn reopens_at(state: StateKind, open_until: Option<Instant>, now: Instant) -> Option<Instant> {
    match state {
        StateKind::Open => open_until,
        StateKind::Isolated => None,
        StateKind::Closed | StateKind::HalfOpen => Some(now),
    }
}

/// Whether a request no target can take now waits, given the class of its `last` failure and
/// the earliest time one of its targets `reopens` ([`reopens_at`]).
pub fn parking(last: Option<Class>, reopens: Option<Instant>, deadline: Instant) -> Parking {
    if last.is_some_and(|class| !class.is_transient()) || reopens.is_some_and(|at| at >= deadline) {
        Parking::Fail
    } else {
        Parking::Park
    }
}

/// How many parked requests a breaker that moved `to` a state may take now: all when it
/// closed, its `probes` when it half-opened, none (`None`) otherwise.
pub fn releasable(to: StateKind, probes: NonZeroU32) -> Option<usize> {
    match to {
        StateKind::Closed => Some(usize::MAX),
        StateKind::HalfOpen => Some(probes.get() as usize),
        StateKind::Open | StateKind::Isolated => None,
    }
}

/// When an exhausted request's caller should come back: once the first of its `targets`
/// (each a breaker state and its `open_until`) that is open half-opens, and never before
/// the `hinted` delay the last failure carried. Only an open circuit says when to come
/// back; a closed one that failed says nothing.
pub fn retry_after(
    targets: impl IntoIterator<Item = (StateKind, Option<Instant>)>,
    hinted: Option<Duration>,
    now: Instant,
) -> Option<Duration> {
    let reopen = targets
        .into_iter()
        .filter_map(|(state, open_until)| open_until.filter(|_| state == StateKind::Open))
        .min()
        .map(|at| at.saturating_duration_since(now));
    match (reopen, hinted) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn arrival_follows_the_breaker() {
        let cases = [
            (StateKind::Closed, Arrival::Send),
            (StateKind::HalfOpen, Arrival::AskBreaker),
            (StateKind::Open, Arrival::PassOver),
            (StateKind::Isolated, Arrival::PassOver),
        ];
        for (state, expected) in cases {
            assert_eq!(arrival(state), expected, "{state:?}");
        }
    }

    #[test]
    fn a_job_spills_only_to_a_later_closed_target_with_room() {
        use StateKind::{Closed, Open};
        let cases = [
            ((true, false, vec![(Closed, false)]), Spill::MoveOn),
            (
                (true, false, vec![(Closed, true), (Closed, false)]),
                Spill::MoveOn,
            ),
            (
                (true, false, vec![(Closed, true), (Open, false)]),
                Spill::Wait,
            ),
            ((true, false, vec![]), Spill::Wait),
            ((true, true, vec![(Closed, false)]), Spill::Wait),
            ((false, false, vec![(Closed, false)]), Spill::Wait),
        ];
        for ((allowed, probe, later), expected) in cases {
            let case = format!("{allowed} {probe} {later:?}");
            assert_eq!(spill(allowed, probe, later), expected, "{case}");
        }
    }

    #[test]
    fn a_request_turned_away_moves_on_or_ends_by_priority() {
        let cases = [
            (true, Priority::Sheddable, None),
            (true, Priority::Critical, None),
            (false, Priority::Sheddable, Some(Ending::Shed)),
            (false, Priority::Normal, Some(Ending::Exhausted)),
            (false, Priority::Critical, Some(Ending::Exhausted)),
        ];
        for (can_fall_back, priority, expected) in cases {
            assert_eq!(turned_away(can_fall_back, priority), expected);
        }
    }

    #[test]
    fn a_retry_stays_in_place_only_on_a_closed_target_with_budget() {
        use StateKind::{Closed, HalfOpen, Open};
        // (was_probe, breaker, budget, can_fall_back)
        let cases = [
            ((false, Closed, true, true), InPlace::Retry),
            ((false, Closed, true, false), InPlace::Retry),
            ((false, Closed, false, false), InPlace::BudgetSpent),
            ((false, Closed, false, true), InPlace::PassOver),
            ((false, Open, true, false), InPlace::PassOver),
            ((false, HalfOpen, false, false), InPlace::PassOver),
            ((true, Closed, true, false), InPlace::PassOver),
            ((true, Closed, false, false), InPlace::PassOver),
        ];
        for ((was_probe, breaker, budget, can_fall_back), expected) in cases {
            let got = in_place(was_probe, breaker, budget, can_fall_back);
            let case = format!("{was_probe} {breaker:?} {budget} {can_fall_back}");
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn giving_up_ends_by_reason() {
        let cases = [
            (GiveUp::Permanent, Ending::Permanent),
            (GiveUp::Deadline, Ending::Deadline),
            (GiveUp::RetryForbidden, Ending::Exhausted),
            (GiveUp::QuotaSpent, Ending::Exhausted),
            (GiveUp::AttemptsExhausted, Ending::Exhausted),
            (GiveUp::ChainExhausted, Ending::Exhausted),
            (GiveUp::Local, Ending::Exhausted),
        ];
        for (reason, expected) in cases {
            assert_eq!(ending(reason), expected, "{reason:?}");
        }
    }

    #[test]
    fn a_target_reopens_now_when_half_open_at_open_until_when_open_never_when_isolated() {
        let now = Instant::now();
        let later = Some(now + secs(5));
        let cases = [
            (StateKind::Closed, None, Some(now)),
            (StateKind::HalfOpen, None, Some(now)),
            (StateKind::Open, later, later),
            (StateKind::Open, None, None),
            (StateKind::Isolated, later, None),
        ];
        for (state, open_until, expected) in cases {
            assert_eq!(reopens_at(state, open_until, now), expected, "{state:?}");
        }
    }

    #[test]
    fn a_request_parks_unless_its_failure_is_permanent_or_no_target_reopens_in_time() {
        let now = Instant::now();
        let deadline = now + secs(10);
        let cases = [
            (None, None, Parking::Park),
            (Some(Class::Overloaded), Some(now + secs(9)), Parking::Park),
            (Some(Class::Overloaded), Some(deadline), Parking::Fail),
            (Some(Class::Invalid), Some(now), Parking::Fail),
            (Some(Class::Unsuitable), None, Parking::Fail),
            (Some(Class::RateLimited), None, Parking::Park),
        ];
        for (last, reopens, expected) in cases {
            assert_eq!(
                parking(last, reopens, deadline),
                expected,
                "{last:?} {reopens:?}"
            );
        }
    }

    #[test]
    fn a_closed_breaker_releases_all_a_half_open_one_its_probes() {
        let probes = NonZeroU32::new(3).expect("3 is not zero");
        let cases = [
            (StateKind::Closed, Some(usize::MAX)),
            (StateKind::HalfOpen, Some(3)),
            (StateKind::Open, None),
            (StateKind::Isolated, None),
        ];
        for (to, expected) in cases {
            assert_eq!(releasable(to, probes), expected, "{to:?}");
        }
    }

    #[test]
    fn retry_after_is_the_first_reopening_and_never_below_the_hint() {
        let now = Instant::now();
        let open = |s| (StateKind::Open, Some(now + secs(s)));
        let closed = (StateKind::Closed, None);
        let isolated = (StateKind::Isolated, Some(now + secs(1)));
        assert_eq!(retry_after([open(7), open(4)], None, now), Some(secs(4)));
        assert_eq!(retry_after([open(4)], Some(secs(9)), now), Some(secs(9)));
        assert_eq!(retry_after([open(4)], Some(secs(2)), now), Some(secs(4)));
        assert_eq!(retry_after([closed], Some(secs(2)), now), Some(secs(2)));
        assert_eq!(retry_after([closed, isolated], None, now), None);
        let past = (StateKind::Open, Some(now));
        assert_eq!(
            retry_after([past], None, now + secs(1)),
            Some(Duration::ZERO)
        );
    }
}
