//! The spans of a Messages request and of its attempts, named and attributed after the
//! OpenTelemetry GenAI semantic conventions for Anthropic inference spans (semconv v1.41.0,
//! [`super::SEMCONV_VERSION`]): `chat {model}`, `gen_ai.*`, `server.*`, `error.type`, and
//! breakwater's own `breakwater.*`. They are `tracing` spans: where no layer wants them they
//! are disabled, and nothing here parses or formats anything for them.
//!
//! Never recorded: a key, a header, a prompt, a system prompt, a tool, an answer's text, an
//! error's message. What is: model names, token counts, ids, statuses, labels.

use std::borrow::Cow;

use serde::Deserialize;
use tracing::field::{Empty, display};
use tracing::{Instrument, Span};

use crate::api::{EventKind, WireEvent, WireRequest};
use crate::engine::trace::int;
use crate::engine::{Answer, Error, EventStream, Target};

/// The `tracing` target of every span here, which [`super::Telemetry::layer`] exports.
pub(crate) const TARGET: &str = "breakwater::telemetry";

/// `gen_ai.provider.name` (and the deprecated `gen_ai.system`, for backends that read it).
const PROVIDER: &str = "anthropic";

/// A request's span: `chat {requested model}`, the parent of its attempts' spans.
///
/// Token usage is on the attempt that spent it, not repeated here, so that a backend summing
/// `gen_ai.usage.*` over spans counts it once.
pub(crate) fn request_span(
    request: &WireRequest,
    stream: bool,
    url: Option<&str>,
    chain: impl FnOnce() -> Vec<Target>,
) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "chat",
        otel.name = %format_args!("chat {}", request.model()),
        otel.status_code = Empty,
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = PROVIDER,
        gen_ai.system = PROVIDER,
        gen_ai.request.model = request.model(),
        gen_ai.request.max_tokens = i64::from(request.max_tokens()),
        gen_ai.request.stream = stream,
        gen_ai.response.model = Empty,
        server.address = Empty,
        server.port = Empty,
        "error.type" = Empty,
        breakwater.chain = Empty,
        breakwater.attempts = Empty,
        breakwater.model = Empty,
        breakwater.adapted = Empty,
    );
    if !span.is_disabled() {
        record_server(&span, url);
        let chain: Vec<String> = chain().iter().map(ToString::to_string).collect();
        span.record("breakwater.chain", chain.join(","));
    }
    span
}

/// Runs `request` inside its `span` (so that its attempts' spans are the span's children),
/// and records how it ended.
pub(crate) async fn within<T>(
    span: Span,
    request: impl Future<Output = Result<Answer<T>, Error>>,
) -> Result<Answer<T>, Error> {
    let outcome = request.instrument(span.clone()).await;
    request_ended(&span, &outcome);
    outcome
}

/// Records how a request ended on its span: the model that answered, or the error's type.
fn request_ended<T>(span: &Span, outcome: &Result<Answer<T>, Error>) {
    if span.is_disabled() {
        return;
    }
    match outcome {
        Ok(answer) => {
            span.record("gen_ai.response.model", answer.target.model());
            span.record("breakwater.model", display(&answer.target));
            span.record("breakwater.attempts", int(answer.attempts.len()));
            if let Some(changes) = &answer.changes {
                span.record("breakwater.adapted", &**changes);
            }
        }
        Err(error) => {
            span.record("breakwater.attempts", int(error.attempts().len()));
            span.record("error.type", error_type(error));
            span.record("otel.status_code", "error");
        }
    }
}

/// `error.type` of a request that failed: the upstream's error type for a refusal, else
/// the kind of error (`exhausted`, `deadline_exceeded`, `shed`, ...).
fn error_type(error: &Error) -> &str {
    match error {
        Error::Upstream { failure, .. } => failure
            .error_type()
            .unwrap_or_else(|| failure.class().as_label()),
        other => other.kind().as_label(),
    }
}

/// An attempt's span: `chat {target model}`, kind client, with the fields the engine records
/// ([`crate::engine::trace::ATTEMPT_FIELDS`]) and those the client records on the answer.
pub(crate) fn attempt_span(
    parent: &Span,
    target: &Target,
    request: &WireRequest,
    url: &str,
) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        parent: parent,
        "chat",
        otel.name = %format_args!("chat {}", target.model()),
        otel.kind = "client",
        otel.status_code = Empty,
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = PROVIDER,
        gen_ai.system = PROVIDER,
        gen_ai.request.model = target.model(),
        gen_ai.request.max_tokens = i64::from(request.max_tokens()),
        gen_ai.response.model = Empty,
        gen_ai.response.id = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.cache_creation.input_tokens = Empty,
        server.address = Empty,
        server.port = Empty,
        "error.type" = Empty,
        breakwater.target = Empty,
        breakwater.attempt = Empty,
        breakwater.probe = Empty,
        breakwater.breaker = Empty,
        breakwater.class = Empty,
        breakwater.status = Empty,
        breakwater.decision = Empty,
        breakwater.adapted = Empty,
    );
    if !span.is_disabled() {
        record_server(&span, Some(url));
    }
    span
}

/// `server.address` and `server.port` of the upstream at `url`.
fn record_server(span: &Span, url: Option<&str>) {
    let Some(uri) = url.and_then(|url| url.parse::<http::Uri>().ok()) else {
        return;
    };
    let Some(host) = uri.host() else { return };
    span.record("server.address", host);
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("http") => 80,
        _ => 443,
    });
    span.record("server.port", i64::from(port));
}

/// What an answer says of itself, read without its content.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Usage,
}

/// Token counts, as an answer or a stream event reports them.
#[derive(Default, Deserialize)]
struct Usage {
    #[serde(rename = "input_tokens")]
    input: Option<u64>,
    #[serde(rename = "output_tokens")]
    output: Option<u64>,
    #[serde(rename = "cache_read_input_tokens")]
    cache_read: Option<u64>,
    #[serde(rename = "cache_creation_input_tokens")]
    cache_creation: Option<u64>,
}

impl Usage {
    fn record(&self, span: &Span) {
        let fields = [
            ("gen_ai.usage.input_tokens", self.input),
            ("gen_ai.usage.output_tokens", self.output),
            ("gen_ai.usage.cache_read.input_tokens", self.cache_read),
            (
                "gen_ai.usage.cache_creation.input_tokens",
                self.cache_creation,
            ),
        ];
        for (field, value) in fields {
            if let Some(value) = value {
                span.record(field, i64::try_from(value).unwrap_or(i64::MAX));
            }
        }
    }
}

impl Head<'_> {
    fn record(&self, span: &Span) {
        if let Some(id) = &self.id {
            span.record("gen_ai.response.id", &**id);
        }
        if let Some(model) = &self.model {
            span.record("gen_ai.response.model", &**model);
        }
        self.usage.record(span);
    }
}

/// Records what the current attempt's whole answer says of itself (`body`: its JSON) and
/// what was adapted for its target.
pub(crate) fn answered(body: &[u8], changes: &[&str]) {
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    if let Ok(head) = serde_json::from_slice::<Head<'_>>(body) {
        head.record(&span);
    }
    adapted(&span, changes);
}

/// The current attempt's stream, recording on its span what `message_start` and
/// `message_delta` say (id, model, token counts) as they pass. The span lasts as long as the
/// stream: a streamed attempt ends with its last event.
pub(crate) fn observed(events: EventStream<WireEvent>, changes: &[&str]) -> EventStream<WireEvent> {
    use futures::StreamExt;
    let span = Span::current();
    if span.is_disabled() {
        return events;
    }
    adapted(&span, changes);
    Box::pin(events.inspect(move |event| {
        if let Ok(event) = event {
            observe(&span, event);
        }
    }))
}

/// Records what `event` says of the answer: `message_start` its id, model and input tokens,
/// `message_delta` its output tokens (each field once: a span keeps every value recorded).
fn observe(span: &Span, event: &WireEvent) {
    #[derive(Deserialize)]
    struct Start<'a> {
        #[serde(borrow)]
        message: Head<'a>,
    }
    #[derive(Deserialize)]
    struct Delta {
        #[serde(default)]
        usage: Usage,
    }
    match event.kind() {
        EventKind::MessageStart => {
            if let Some(mut start) = event
                .data()
                .and_then(|d| serde_json::from_slice::<Start<'_>>(d).ok())
            {
                start.message.usage.output = None;
                start.message.record(span);
            }
        }
        EventKind::MessageDelta => {
            if let Some(delta) = event
                .data()
                .and_then(|d| serde_json::from_slice::<Delta>(d).ok())
            {
                let output = delta.usage.output;
                Usage {
                    output,
                    ..Usage::default()
                }
                .record(span);
            }
        }
        _ => {}
    }
}

fn adapted(span: &Span, changes: &[&str]) {
    if !changes.is_empty() {
        span.record("breakwater.adapted", changes.join(","));
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::engine::trace::ATTEMPT_FIELDS;

    fn request() -> WireRequest {
        let body = r#"{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
        WireRequest::from_json(Bytes::from_static(body.as_bytes())).expect("a valid request")
    }

    #[test]
    fn the_attempt_span_declares_every_field_the_engine_records() {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            let span = attempt_span(&Span::none(), &Target::new("m"), &request(), "https://x");
            let metadata = span.metadata().expect("an enabled span has metadata");
            for field in ATTEMPT_FIELDS {
                assert!(metadata.fields().field(field).is_some(), "{field}");
            }
        });
    }

    #[test]
    fn nothing_is_read_or_recorded_while_no_layer_wants_the_spans() {
        let span = request_span(&request(), false, Some("https://x"), || {
            unreachable!("the chain is not worked out for a disabled span")
        });
        assert!(span.is_disabled());
    }
}
