//! [`BatchOptions`]: how a run goes (concurrency, pacing, the deadline of one try, the
//! backoff of an item put back), as `batch run`'s flags set them.

use std::time::Duration;

use crate::store::Requeue;

/// How a run goes.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Requests in flight at once. Default: 16.
    pub concurrency: usize,
    /// Requests started per second at most; `None` for no pacing. Default: none.
    pub rps: Option<f64>,
    /// How long the runtime may work on one try of a request (retries and fallbacks
    /// included) before the item goes back to pending. Default: 120s.
    pub deadline: Duration,
    /// The first backoff of an item put back; it doubles per try. Default: 1s.
    pub backoff: Duration,
    /// The longest backoff. Default: 60s.
    pub max_backoff: Duration,
    /// Store invalid lines as `errored` results instead of refusing to start. Default: false.
    pub skip_invalid: bool,
    /// How long a run may go without an item becoming final while attempts fail (a dead or
    /// refusing upstream) before it ends with [`BatchError::Stalled`](super::BatchError);
    /// `None` never ends it. Default: 5 minutes.
    pub max_stall: Option<Duration>,
    /// Fixes the jitter of the backoffs, for reproducible runs. Default: none (drawn from
    /// entropy).
    pub seed: Option<u64>,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            rps: None,
            deadline: Duration::from_secs(120),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            skip_invalid: false,
            max_stall: Some(Duration::from_secs(300)),
            seed: None,
        }
    }
}

impl BatchOptions {
    /// How an item put back is delayed.
    pub(super) fn requeue(&self) -> Requeue {
        Requeue {
            first: self.backoff,
            max: self.max_backoff,
            seed: self.seed,
        }
    }
}
