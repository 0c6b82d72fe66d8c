//! Tracing for requests and their attempts, with `tracing` spans only: the engine knows no
//! exporter and no provider. A request's span is the caller's current span when it calls
//! [`Engine::send`](crate::Engine::send) or [`Engine::stream`](crate::Engine::stream) (none:
//! attempts are root spans). Each attempt gets a span of its own, a child of the request's,
//! made by [`Upstream::attempt_span`](crate::Upstream::attempt_span) so that an upstream can name it and add its own fields,
//! and entered while the attempt runs. The engine records on it the [`ATTEMPT_FIELDS`]:
//!
//! | field | recorded | value |
//! | --- | --- | --- |
//! | `breakwater.target` | at the start | the target (`model`, or `model@upstream`) |
//! | `breakwater.attempt` | at the start | its number in the request, from 1 |
//! | `breakwater.probe` | at the start | whether it is a half-open probe |
//! | `breakwater.breaker` | at the start | the target's breaker state (`closed`, `half_open`) |
//! | `breakwater.class` | at the end | `success`, or the failure's [`Class::as_label`](crate::Class::as_label) |
//! | `breakwater.status` | at the end | the status the upstream answered with, if any |
//! | `error.type` | at the end, failed | the upstream's error type, else the class |
//! | `otel.status_code` | at the end, failed | `error`: the span's status for an OpenTelemetry layer |
//! | `breakwater.decision` | after a failure | `retry`, `fall_back`, `park` (no target can take it now) or `give_up` |
//!
//! A span that does not declare a field (as `tracing::field::Empty`) drops what is recorded
//! on it. Nothing here reads a request or an answer: what they hold is the upstream's to
//! record, or not.

use tracing::Span;
use tracing::field::Empty;

use crate::upstream::{Failure, Target};

/// The `tracing` target of the default attempt span ([`attempt_span`]).
pub const SPAN_TARGET: &str = "breakwater_actors::trace";

/// The target (`model`, or `model@upstream`).
pub const TARGET: &str = "breakwater.target";
/// The attempt's number in its request, from 1.
pub const ATTEMPT: &str = "breakwater.attempt";
/// Whether the attempt is a half-open probe.
pub const PROBE: &str = "breakwater.probe";
/// The target's breaker state when the attempt started.
pub const BREAKER: &str = "breakwater.breaker";
/// `success`, or the failure's class.
pub const CLASS: &str = "breakwater.class";
/// The status the upstream answered with.
pub const STATUS: &str = "breakwater.status";
/// The upstream's error type (e.g. `overloaded_error`), else the failure's class.
pub const ERROR_TYPE: &str = "error.type";
/// `error` on a failed attempt: the span status an OpenTelemetry layer exports.
pub const STATUS_CODE: &str = "otel.status_code";
/// What the engine did after the attempt failed.
pub const DECISION: &str = "breakwater.decision";

/// Every field the engine records on an attempt's span.
pub const ATTEMPT_FIELDS: [&str; 9] = [
    TARGET,
    ATTEMPT,
    PROBE,
    BREAKER,
    CLASS,
    STATUS,
    ERROR_TYPE,
    STATUS_CODE,
    DECISION,
];

/// The default span of an attempt at `target`: `attempt`, a child of `parent`, with the
/// [`ATTEMPT_FIELDS`] declared.
pub fn attempt_span(parent: &Span, target: &Target) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        parent: parent,
        "attempt",
        otel.name = %format_args!("attempt {target}"),
        otel.status_code = Empty,
        "error.type" = Empty,
        breakwater.target = Empty,
        breakwater.attempt = Empty,
        breakwater.probe = Empty,
        breakwater.breaker = Empty,
        breakwater.class = Empty,
        breakwater.status = Empty,
        breakwater.decision = Empty,
    )
}

/// A job's spans: its request's, and its attempt's while the engine has yet to decide what
/// follows a failure. Boxed, and only when a span is enabled: a job moves from actor to actor,
/// and with tracing off it carries one empty pointer.
pub(crate) struct Spans(Option<Box<Held>>);

struct Held {
    request: Span,
    attempt: Option<Span>,
}

/// The parent of attempts whose request has no span.
static NO_SPAN: Span = Span::none();

impl Spans {
    pub(crate) fn new(request: Span) -> Self {
        Self((!request.is_disabled()).then(|| {
            Box::new(Held {
                request,
                attempt: None,
            })
        }))
    }

    pub(crate) fn request(&self) -> &Span {
        self.0.as_ref().map_or(&NO_SPAN, |held| &held.request)
    }

    pub(crate) fn keep(&mut self, attempt: Span) {
        let held = self.0.get_or_insert_with(|| {
            Box::new(Held {
                request: Span::none(),
                attempt: None,
            })
        });
        held.attempt = Some(attempt);
    }

    /// [`Spans::decided`] for a job moved past its target: to the next (`fall_back`), or
    /// parked when it has none (`park`).
    pub(crate) fn moved_on(&mut self, can_fall_back: bool) {
        self.decided(if can_fall_back { "fall_back" } else { "park" });
    }

    /// Records what follows the failed attempt, which ends its span. Nothing when no attempt
    /// awaits a decision (the job moves on without having been tried).
    pub(crate) fn decided(&mut self, decision: &'static str) {
        if let Some(span) = self.0.as_mut().and_then(|held| held.attempt.take()) {
            span.record(DECISION, decision);
        }
    }
}

/// A count as an `i64`: `tracing` layers record unsigned integers as text, where an
/// OpenTelemetry backend expects an integer.
pub fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Records how an attempt ended on its span.
pub(crate) fn ended(span: &Span, failure: Option<&Failure>) {
    let _entered = span.enter();
    let Some(failure) = failure else {
        span.record(CLASS, "success");
        tracing::debug!("attempt succeeded");
        return;
    };
    let class = failure.class().as_label();
    span.record(CLASS, class);
    if let Some(status) = failure.status() {
        span.record(STATUS, i64::from(status));
    }
    span.record(ERROR_TYPE, failure.error_type().unwrap_or(class));
    span.record(STATUS_CODE, "error");
    tracing::debug!(class, status = failure.status(), "attempt failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_span_declares_every_field_the_engine_records() {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            let span = attempt_span(&Span::none(), &Target::new("m"));
            let metadata = span.metadata().expect("an enabled span has metadata");
            for field in ATTEMPT_FIELDS {
                assert!(metadata.fields().field(field).is_some(), "{field}");
            }
        });
    }
}
