//! Serde round trips of the Messages API types on real-shaped fixtures, and the stream
//! accumulator rebuilding a message from a recorded SSE transcript.

use breakwater::api::{
    ContentBlock, ErrorBody, ErrorType, Message, MessageAccumulator, MessageContent,
    MessageStreamEvent, MessagesRequest, System, WireRequest, stream_failure,
};
use breakwater::engine::{Class, StreamEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Parses `name` as `T`, checks that serializing it again gives the same JSON, and returns it.
fn round_trip<T: Serialize + DeserializeOwned>(name: &str) -> T {
    let text = fixture(name);
    let original: Value = serde_json::from_str(&text).unwrap();
    let parsed: T = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), original, "{name}");
    parsed
}

/// The (event, data) pairs of an SSE transcript, split on blank lines.
fn sse_events(name: &str) -> Vec<(String, String)> {
    fixture(name)
        .split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let field = |key: &str| {
                frame
                    .lines()
                    .find_map(|line| line.strip_prefix(key))
                    .map(|value| value.trim_start().to_owned())
                    .unwrap_or_default()
            };
            (field("event:"), field("data:"))
        })
        .collect()
}

fn parse_sse(name: &str) -> Vec<MessageStreamEvent> {
    sse_events(name)
        .iter()
        .map(|(event, data)| MessageStreamEvent::parse(event, data).unwrap())
        .collect()
}

#[test]
fn request_round_trips_with_tools_thinking_images_and_unknown_fields() {
    let request: MessagesRequest = round_trip("request_tools.json");
    assert_eq!(request.extra.get("future_field"), Some(&json!({"x": 1})));
    let Some(System::Blocks(system)) = &request.system else {
        panic!("system blocks expected: {:?}", request.system);
    };
    assert!(
        matches!(&system[0], ContentBlock::Text { extra, .. } if extra.contains_key("cache_control"))
    );
    let MessageContent::Blocks(blocks) = &request.messages[2].content else {
        panic!("blocks expected");
    };
    let kinds: Vec<_> = blocks.iter().map(ContentBlock::kind).collect();
    assert_eq!(kinds, [Some("tool_result"), Some("image"), Some("text")]);
    assert!(matches!(blocks[1], ContentBlock::Other(_)));
    assert_eq!(
        MessagesRequest::from_json(fixture("request_tools.json").as_bytes()),
        Ok(request)
    );
}

#[test]
fn to_body_sends_only_what_was_set() {
    let request: MessagesRequest = round_trip("request_tools.json");
    let wire = WireRequest::from(&request);
    let body = wire.body_for("claude-haiku-4-5", false).unwrap().join();
    let body: Value = serde_json::from_slice(&body).unwrap();
    let mut expected: Value = serde_json::from_str(&fixture("request_tools.json")).unwrap();
    expected["model"] = json!("claude-haiku-4-5");
    assert_eq!(body, expected);
    for absent in ["temperature", "top_p", "top_k", "stream"] {
        assert_eq!(body.get(absent), None, "{absent}");
    }
    let minimal = MessagesRequest::new("claude-a", 16).with_user("hi");
    let body = WireRequest::from(&minimal)
        .body_for("claude-a", true)
        .unwrap()
        .join();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        json!({"model": "claude-a", "max_tokens": 16, "stream": true,
               "messages": [{"role": "user", "content": "hi"}]})
    );
}

#[test]
fn response_round_trips_with_null_stop_sequence_and_unknown_usage() {
    let message: Message = round_trip("response_mixed.json");
    assert_eq!(message.stop_sequence, None);
    assert_eq!(message.stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(message.usage.cache_read_input_tokens, Some(1024));
    assert_eq!(
        message.usage.extra.get("service_tier"),
        Some(&json!("standard"))
    );
    assert_eq!(message.text(), "I'll check the weather for you.");
    let kinds: Vec<_> = message.content.iter().map(ContentBlock::kind).collect();
    assert_eq!(
        kinds,
        [
            Some("thinking"),
            Some("redacted_thinking"),
            Some("text"),
            Some("tool_use")
        ]
    );
}

#[test]
fn error_bodies_round_trip_with_and_without_request_id() {
    let overloaded: ErrorBody = round_trip("error_overloaded.json");
    assert_eq!(overloaded.error.kind, ErrorType::Overloaded);
    assert_eq!(
        overloaded.request_id.as_deref(),
        Some("req_011CSHoEeqs5C35K2UUqR7Fy")
    );
    let spend: ErrorBody = round_trip("error_spend_limit.json");
    assert_eq!(spend.request_id, None);
    assert_eq!(
        spend.error.details,
        Some(json!({"error_code": "enforced_spend_limit_reached"}))
    );
}

#[test]
fn every_sse_event_round_trips_its_data() {
    for name in ["stream_tool_use.sse", "stream_overloaded.sse"] {
        for (event, data) in sse_events(name) {
            let parsed = MessageStreamEvent::parse(&event, &data).unwrap();
            assert_eq!(parsed.event_name(), event);
            let back: Value = serde_json::from_str(&parsed.data()).unwrap();
            assert_eq!(
                back,
                serde_json::from_str::<Value>(&data).unwrap(),
                "{event}"
            );
            let sse = parsed.to_sse();
            assert!(sse.starts_with(&format!("event: {event}\ndata: ")) && sse.ends_with("\n\n"));
        }
    }
}

#[test]
fn accumulator_rebuilds_the_message_from_the_transcript() {
    let events = parse_sse("stream_tool_use.sse");
    assert!(matches!(events[1], MessageStreamEvent::Ping));
    assert!(events.iter().any(|e| e.event_name() == "future_event"));
    let first_commit = events.iter().position(StreamEvent::commits);
    assert_eq!(
        first_commit,
        Some(3),
        "message_start, ping and content_block_start do not commit; the first delta does"
    );
    let mut accumulator = MessageAccumulator::new();
    for event in &events {
        accumulator.push(event);
    }
    let expected: Message = round_trip("stream_tool_use.message.json");
    assert_eq!(accumulator.finish(), Some(expected));
}

#[test]
fn an_in_stream_overload_leaves_no_message_and_classifies_as_overloaded() {
    let events = parse_sse("stream_overloaded.sse");
    assert!(events.iter().all(|event| !event.commits()));
    let mut accumulator = MessageAccumulator::new();
    for event in &events {
        accumulator.push(event);
    }
    assert_eq!(accumulator.finish(), None);
    let Some(MessageStreamEvent::Error { error }) = events.last() else {
        panic!("an error event expected last");
    };
    let failure = stream_failure(error, Some("req_stream"));
    assert_eq!(failure.class(), Class::Overloaded);
    assert_eq!(failure.status(), Some(200));
    assert_eq!(failure.error_type(), Some("overloaded_error"));
}
