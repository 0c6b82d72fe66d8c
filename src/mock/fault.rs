//! Scripted faults: what the mock does instead of (or on top of) an honest answer.
//!
//! Faults are tried in scenario order; the first one whose window is open and whose coin
//! flip comes up wins. Stream faults only apply to streaming requests, so a non-streaming
//! request never burns a coin flip on them.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The longest `delay` a `slow` fault may have.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(60 * 60);

/// What a fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Answer with `status` and an error body of `error-type`, or with `body` verbatim.
    Status,
    /// Close the connection before any response byte.
    Drop,
    /// Wait `delay` (holding no slot), then answer normally: capacity still applies.
    Slow,
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Streaming only: send `after-events` events, then an SSE `error` event, then end.
    StreamError,
    /// Streaming only: send `after-events` events, then cut the connection.
    StreamDrop,
    /// Streaming only: send `after-events` events, then end the body cleanly, without
    /// `message_stop`.
    StreamEnd,
}

impl FaultKind {
    /// Whether the fault only applies to streaming requests.
    pub fn is_stream_only(self) -> bool {
        matches!(self, Self::StreamError | Self::StreamDrop | Self::StreamEnd)
    }
}

/// One scripted fault (`[[models.NAME.faults]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Fault {
    /// What the fault does. Required.
    pub kind: FaultKind,
    /// Chance, in 0..=1, that a request in the window is hit. Default: 1.0
    #[serde(default = "always")]
    pub probability: f64,
    /// Window start, time since server start. Default: none (from the start)
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub start: Option<Duration>,
    /// Window end, time since server start. Default: none (forever)
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub end: Option<Duration>,
    /// `status`: the HTTP status to answer. Default: 500
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `status` and `stream-error`: the `error.type`. Default: the type that goes with the
    /// status (`api_error` for 500), `overloaded_error` for `stream-error`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// `status`: a `retry-after` header value, sent verbatim. Default: none
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
    /// `status`: a raw body sent verbatim instead of the JSON error body, as a CDN's 413 or
    /// 502 page would be (`""` for an empty body). Sent as `text/plain` unless `headers`
    /// names a `content-type`. Default: none (the API's JSON error body)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `status`: extra headers, e.g. `x-should-retry = "false"`. Default: none
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `slow`: how long to wait before answering, at most 1h. Default: 1s
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
    /// `stream-error`, `stream-drop` and `stream-end`: events sent before the fault (the first is
    /// `message_start`, then `ping`), capped so `message_stop` is never sent. Default: 3
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_events: Option<usize>,
}

fn always() -> f64 {
    1.0
}

impl Fault {
    /// A fault of `kind` that always fires, with every other setting at its default.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            probability: 1.0,
            start: None,
            end: None,
            status: None,
            error_type: None,
            retry_after: None,
            body: None,
            headers: BTreeMap::new(),
            delay: None,
            after_events: None,
        }
    }

    /// The status a `status` fault answers with.
    pub fn status_code(&self) -> u16 {
        self.status.unwrap_or(500)
    }

    /// How long a `slow` fault waits.
    pub fn delay(&self) -> Duration {
        self.delay.unwrap_or(Duration::from_secs(1))
    }

    /// How many events a stream fault lets through first.
    pub fn after_events(&self) -> usize {
        self.after_events.unwrap_or(3)
    }

    /// Whether `elapsed` (time since server start) falls in the fault's window.
    pub fn is_active(&self, elapsed: Duration) -> bool {
        self.start.is_none_or(|start| elapsed >= start) && self.end.is_none_or(|end| elapsed < end)
    }

    /// Checks the fault's settings; `at` names it (`models.x.faults[0]`). An error is the
    /// bad field's dotted path and what is wrong with it.
    pub(crate) fn validate(&self, at: &str) -> Result<(), (String, String)> {
        if !(0.0..=1.0).contains(&self.probability) {
            let reason = format!("must be within 0..=1, got {}", self.probability);
            return Err((format!("{at}.probability"), reason));
        }
        if self
            .start
            .zip(self.end)
            .is_some_and(|(start, end)| end < start)
        {
            return Err((format!("{at}.end"), "must not be before start".into()));
        }
        if self
            .status
            .is_some_and(|status| !(100..=999).contains(&status))
        {
            return Err((
                format!("{at}.status"),
                "must be an HTTP status (100..=999)".into(),
            ));
        }
        if self.delay.is_some_and(|delay| delay > MAX_DELAY) {
            return Err((format!("{at}.delay"), "must be at most 1h".into()));
        }
        for (name, value) in &self.headers {
            let valid = http::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && http::HeaderValue::from_str(value).is_ok();
            if !valid {
                return Err((
                    format!("{at}.headers.{name}"),
                    "must be a valid HTTP header".into(),
                ));
            }
        }
        let retry_after = self.retry_after.as_deref();
        if retry_after.is_some_and(|value| http::HeaderValue::from_str(value).is_err()) {
            return Err((
                format!("{at}.retry-after"),
                "must be a valid header value".into(),
            ));
        }
        Ok(())
    }
}

/// Picks the fault, if any, that hits a request arriving `elapsed` after server start.
pub(crate) fn pick<'a, R: Rng>(
    faults: &'a [Fault],
    elapsed: Duration,
    streaming: bool,
    rng: &mut R,
) -> Option<&'a Fault> {
    faults
        .iter()
        .filter(|fault| streaming || !fault.kind.is_stream_only())
        .filter(|fault| fault.is_active(elapsed))
        .find(|fault| fault.probability >= 1.0 || rng.random_bool(fault.probability.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn window_bounds_are_start_inclusive_end_exclusive() {
        let fault = Fault {
            start: Some(Duration::from_secs(1)),
            end: Some(Duration::from_secs(2)),
            ..Fault::new(FaultKind::Drop)
        };
        assert!(!fault.is_active(Duration::from_millis(999)));
        assert!(fault.is_active(Duration::from_secs(1)));
        assert!(!fault.is_active(Duration::from_secs(2)));
    }

    #[test]
    fn stream_faults_skip_plain_requests() {
        let faults = [
            Fault::new(FaultKind::StreamError),
            Fault::new(FaultKind::Malformed),
        ];
        let mut rng = SmallRng::seed_from_u64(0);
        let plain = pick(&faults, Duration::ZERO, false, &mut rng).map(|f| f.kind);
        let streamed = pick(&faults, Duration::ZERO, true, &mut rng).map(|f| f.kind);
        assert_eq!(Some(FaultKind::Malformed), plain);
        assert_eq!(Some(FaultKind::StreamError), streamed);
    }

    #[test]
    fn zero_probability_never_fires() {
        let faults = [Fault {
            probability: 0.0,
            ..Fault::new(FaultKind::Drop)
        }];
        let mut rng = SmallRng::seed_from_u64(7);
        assert!((0..100).all(|_| pick(&faults, Duration::ZERO, true, &mut rng).is_none()));
    }

    #[test]
    fn validate_bounds_the_delay() {
        let fault = Fault {
            delay: Some(Duration::from_secs(3601)),
            ..Fault::new(FaultKind::Slow)
        };
        let (field, _) = fault.validate("models.m.faults[0]").unwrap_err();
        assert_eq!("models.m.faults[0].delay", field);
    }

    #[test]
    fn stream_end_is_stream_only() {
        assert!(FaultKind::StreamEnd.is_stream_only());
    }

    #[test]
    fn validate_names_the_bad_probability() {
        let fault = Fault {
            probability: 1.5,
            ..Fault::new(FaultKind::Drop)
        };
        let (field, _) = fault.validate("models.m.faults[0]").unwrap_err();
        assert_eq!("models.m.faults[0].probability", field);
    }
}
