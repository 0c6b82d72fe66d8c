//! The one place that reads the wall clock. Everything else runs on tokio's clock, so tests
//! can pause it; wall-clock time is only needed to turn absolute timestamps the API sends
//! (HTTP dates, RFC 3339 resets) into durations, and to stamp what is stored.

use std::time::{Duration, UNIX_EPOCH};

/// Time since the Unix epoch, now.
#[allow(clippy::disallowed_types, clippy::disallowed_methods)]
pub fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The wall-clock instant `since_epoch` after the Unix epoch, for the few APIs that take a
/// `SystemTime` (SigV4 signing): the time itself still comes from [`unix_now`] or a test.
#[allow(clippy::disallowed_types)]
pub fn system_time(since_epoch: Duration) -> std::time::SystemTime {
    UNIX_EPOCH + since_epoch
}

/// Time since the Unix epoch at `at`, for the few APIs that give a `SystemTime` (credential
/// expiry); zero before the epoch.
#[allow(clippy::disallowed_types)]
pub fn since_epoch(at: std::time::SystemTime) -> Duration {
    at.duration_since(UNIX_EPOCH).unwrap_or_default()
}
