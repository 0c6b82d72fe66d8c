//! The values a queue holds and reports: [`NewItem`] going in, [`Item`] and [`Finished`]
//! coming out, [`Counts`] summing a queue up. Plain data, no I/O.

use std::fmt;
use std::time::Duration;

/// Where an item is in its life. Only `Pending -> InFlight` (claim), `InFlight -> Pending`
/// (release, recover) and `InFlight -> Succeeded | Errored` (succeed, fail) happen; the last
/// two are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Waiting to be claimed, once its `not_before` has passed.
    Pending,
    /// Claimed by a worker, which must succeed, fail or release it. Its request may not be
    /// sent yet: [`Counts`] tells claimed from sent.
    InFlight,
    /// Done, with its result stored for good.
    Succeeded,
    /// Given up on, with its error stored for good.
    Errored,
}

impl State {
    /// Every state, in lifecycle order.
    pub const ALL: [State; 4] = [
        State::Pending,
        State::InFlight,
        State::Succeeded,
        State::Errored,
    ];

    /// The name stored in the `state` column, also used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::InFlight => "in_flight",
            State::Succeeded => "succeeded",
            State::Errored => "errored",
        }
    }

    /// Whether the item's outcome is stored for good.
    pub fn is_final(self) -> bool {
        matches!(self, State::Succeeded | State::Errored)
    }

    pub(super) fn parse(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == name)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An item to insert: a batch line, or a deferred request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewItem {
    /// Unique within its queue: the batch line's `custom_id`, or a ticket id.
    pub key: String,
    /// Where it sorts: the input line number for a batch. Unique within its queue.
    pub ordinal: u64,
    /// The request, as JSON text (a batch line's `params`). Stored as given.
    pub payload: String,
    /// Per-item options, as JSON text, if any. Stored as given.
    pub options: Option<String>,
    /// Not claimed before this time, in unix milliseconds. Default: 0 (at once).
    pub not_before: u64,
}

impl NewItem {
    /// An item with no options, due at once.
    pub fn new(key: impl Into<String>, ordinal: u64, payload: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            ordinal,
            payload: payload.into(),
            options: None,
            not_before: 0,
        }
    }

    /// Sets the options JSON text.
    #[must_use]
    pub fn with_options(mut self, options: impl Into<String>) -> Self {
        self.options = Some(options.into());
        self
    }

    /// Holds the item back until `not_before` (unix milliseconds).
    #[must_use]
    pub fn with_not_before(mut self, not_before: u64) -> Self {
        self.not_before = not_before;
        self
    }
}

/// An item as stored. Times are unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The queue it belongs to.
    pub queue: String,
    /// Its key, unique within the queue.
    pub key: String,
    /// Its place in the queue's order.
    pub ordinal: u64,
    /// The request, JSON text.
    pub payload: String,
    /// Its options, JSON text, if any.
    pub options: Option<String>,
    /// Where it is in its life.
    pub state: State,
    /// How many times it has been claimed, this claim included.
    pub attempts: u32,
    /// Not claimed before this time.
    pub not_before: u64,
    /// The latest error it met: from `release`, or its final one from `fail`.
    pub last_error: Option<String>,
    /// Its final body once it is final: the result (succeeded) or the error (errored).
    pub result: Option<String>,
    /// When it was inserted (wall clock).
    pub created_at: u64,
    /// When it last changed state (wall clock).
    pub updated_at: u64,
}

impl Item {
    /// Its final outcome, once it has one.
    pub fn outcome(&self) -> Option<Outcome> {
        Outcome::from_state(self.state, self.result.clone()?)
    }
}

/// What a final item ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The stored result, JSON text.
    Succeeded(String),
    /// The stored error, JSON text.
    Errored(String),
}

impl Outcome {
    pub(super) fn from_state(state: State, body: String) -> Option<Outcome> {
        match state {
            State::Succeeded => Some(Outcome::Succeeded(body)),
            State::Errored => Some(Outcome::Errored(body)),
            State::Pending | State::InFlight => None,
        }
    }

    /// The stored JSON text, result or error.
    pub fn body(&self) -> &str {
        match self {
            Outcome::Succeeded(body) | Outcome::Errored(body) => body,
        }
    }

    /// Whether it is a success.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded(_))
    }
}

/// A final item, as [`Store::finished`](super::Store::finished) pages them out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Its place in the queue's order; pass the last one seen to get the next page.
    pub ordinal: u64,
    /// Its key.
    pub key: String,
    /// What it ended with.
    pub outcome: Outcome,
}

/// What [`Store::insert_many`](super::Store::insert_many) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertReport {
    /// Items newly stored.
    pub inserted: u64,
    /// Items already there (same key and ordinal), left as they were.
    pub existing: u64,
}

/// A queue summed up, as of a time `now`. Times are unix milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Items waiting, due or not.
    pub pending: u64,
    /// Pending items whose `not_before` has passed: claimable now.
    pub due: u64,
    /// Items claimed ahead by a runner, their requests not yet sent: next to go.
    pub claimed: u64,
    /// Items whose requests are out (sent, not yet settled).
    pub in_flight: u64,
    /// Items that succeeded.
    pub succeeded: u64,
    /// Items that errored for good.
    pub errored: u64,
    /// When the oldest pending item was inserted, if any is pending.
    pub oldest_pending_since: Option<u64>,
    /// The earliest `not_before` among pending items (in the past when some are due).
    pub next_due_at: Option<u64>,
    /// The `now` these counts were taken at.
    pub now: u64,
}

impl Counts {
    /// Every item of the queue.
    pub fn total(&self) -> u64 {
        self.pending + self.claimed + self.in_flight + self.succeeded + self.errored
    }

    /// Items with no final outcome yet.
    pub fn unfinished(&self) -> u64 {
        self.pending + self.claimed + self.in_flight
    }

    /// Whether every item is final (also true of an empty queue).
    pub fn is_done(&self) -> bool {
        self.unfinished() == 0
    }

    /// How long the oldest pending item has been waiting.
    pub fn oldest_pending_age(&self) -> Option<Duration> {
        let since = self.oldest_pending_since?;
        Some(Duration::from_millis(self.now.saturating_sub(since)))
    }

    /// How long until a pending item is next due: zero when one is due now, none when none
    /// is pending.
    pub fn next_due_in(&self) -> Option<Duration> {
        let at = self.next_due_at?;
        Some(Duration::from_millis(at.saturating_sub(self.now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for state in State::ALL {
            assert_eq!(Some(state), State::parse(state.as_str()));
        }
        assert_eq!(None, State::parse("done"));
    }

    #[test]
    fn counts_ages_are_measured_from_now() {
        let counts = Counts {
            pending: 2,
            oldest_pending_since: Some(1_000),
            next_due_at: Some(4_000),
            now: 3_000,
            ..Counts::default()
        };
        assert_eq!(Some(Duration::from_secs(2)), counts.oldest_pending_age());
        assert_eq!(Some(Duration::from_secs(1)), counts.next_due_in());
        assert!(!counts.is_done());
        assert_eq!(None, Counts::default().next_due_in());
    }
}
