//! How a replica shares state with its fleet, and the fleet's common clock.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::policy::PolicyError;

/// How a replica shares state with its fleet. Every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct FleetConfig {
    /// This replica's name in the fleet, unique in it. Default: empty, for one made at start
    /// from the host name, the process id and a random suffix.
    pub replica: String,
    /// Replicas whose failures must make up a run before it opens the fleet's breaker, capped
    /// at the replicas alive (a lone replica is its own quorum). Default: 2.
    pub quorum: u32,
    /// How often this replica says it is alive. Default: 1s.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// How long a replica counts as alive after its last heartbeat. Default: 3s.
    #[serde(with = "humantime_serde")]
    pub member_ttl: Duration,
    /// The longest a store call may take before the replica goes local. Default: 500ms.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// How often every followed record is read again, to heal a missed message. Default: 2s.
    #[serde(with = "humantime_serde")]
    pub resync: Duration,
    /// How long after going local the store is tried again. Default: 1s.
    #[serde(with = "humantime_serde")]
    pub retry: Duration,
    /// How long a claimed probe is held before another replica may take it over (longer than
    /// an attempt may take). Default: 60s.
    #[serde(with = "humantime_serde")]
    pub probe_lease: Duration,
    /// How long a replica holding the probe waits for a request to probe with before it gives
    /// the probe up to the fleet. Default: 1s.
    #[serde(with = "humantime_serde")]
    pub probe_idle: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            replica: String::new(),
            quorum: 2,
            heartbeat: Duration::from_secs(1),
            member_ttl: Duration::from_secs(3),
            call_timeout: Duration::from_millis(500),
            resync: Duration::from_secs(2),
            retry: Duration::from_secs(1),
            probe_lease: Duration::from_secs(60),
            probe_idle: Duration::from_secs(1),
        }
    }
}

impl FleetConfig {
    /// Checks that every field is usable.
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] naming the first bad field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.replica.len() > 200 || self.replica.chars().any(char::is_control) {
            let reason = "must be at most 200 characters, none of them control characters";
            return Err(PolicyError::invalid("replica", reason));
        }
        if self.quorum == 0 {
            return Err(PolicyError::invalid("quorum", "must be at least 1"));
        }
        for (name, value) in [
            ("heartbeat", self.heartbeat),
            ("call-timeout", self.call_timeout),
            ("resync", self.resync),
            ("retry", self.retry),
            ("probe-lease", self.probe_lease),
            ("probe-idle", self.probe_idle),
        ] {
            if value.is_zero() {
                return Err(PolicyError::invalid(name, "must be longer than zero"));
            }
        }
        if self.member_ttl <= self.heartbeat {
            let reason = format!("{:?} is not longer than heartbeat", self.member_ttl);
            return Err(PolicyError::invalid("member-ttl", reason));
        }
        Ok(())
    }
}

/// A replica name for a process that was given none.
pub(crate) fn default_replica() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".to_owned());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// Unix milliseconds from tokio's clock, anchored once, so that virtual time moves it too.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    anchor: Instant,
    anchor_ms: u64,
}

impl Clock {
    pub(crate) fn new((anchor, anchor_ms): (Instant, u64)) -> Self {
        Self { anchor, anchor_ms }
    }

    pub(crate) fn now_us(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.anchor);
        (self.anchor_ms.saturating_mul(1_000)).saturating_add(elapsed.as_micros() as u64)
    }

    pub(crate) fn now_ms(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.anchor);
        self.anchor_ms.saturating_add(elapsed.as_millis() as u64)
    }

    /// The instant `ms` stands for (now, if it is past).
    pub(crate) fn instant(&self, ms: u64) -> Instant {
        let now = Instant::now();
        let ahead = ms.saturating_sub(self.now_ms());
        now + Duration::from_millis(ahead)
    }
}
