//! One case per rule, each named after the rule it encodes: the request that breaks it, and
//! the nearest request that does not.

use serde_json::{Value, json};

use super::{Rule, check};
use crate::catalog::Catalog;
use crate::mock::signature;

/// A one-turn request to `model`, with `patch`'s top-level fields set over it.
fn request(model: &str, patch: &Value) -> Value {
    let mut body = json!({
        "model": model,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "hi"}],
    });
    if let (Some(body), Some(patch)) = (body.as_object_mut(), patch.as_object()) {
        body.extend(patch.clone());
    }
    body
}

/// The rule `body` breaks, if any.
fn broken(body: &Value) -> Option<Rule> {
    let catalog = Catalog::builtin();
    let model = body["model"].as_str().expect("model");
    let spec = catalog.get(model).expect("a catalogued model");
    check(spec, &catalog, body)
        .err()
        .map(|violation| violation.rule)
}

fn thinking_turn(signed_by: &str, then: &Value) -> Value {
    json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "...", "signature": signature::encode(signed_by, 1)},
            then,
        ]},
        {"role": "user", "content": "and?"},
    ])
}

fn tool_turn(first: Option<Value>) -> Value {
    let mut assistant = vec![json!({"type": "tool_use", "id": "t1", "name": "f", "input": {}})];
    if let Some(first) = first {
        assistant.insert(0, first);
    }
    json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": assistant},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
    ])
}

fn enabled(budget: u32) -> Value {
    json!({"type": "enabled", "budget_tokens": budget})
}

#[test]
fn max_tokens_at_most_the_output_ceiling() {
    let over = json!({"max_tokens": 64_001});
    assert_eq!(
        Some(Rule::MaxTokens),
        broken(&request("claude-haiku-4-5", &over))
    );
    let at = json!({"max_tokens": 64_000});
    assert_eq!(None, broken(&request("claude-haiku-4-5", &at)));
    assert_eq!(
        None,
        broken(&request("claude-opus-5-5", &json!({"max_tokens": 128_000})))
    );
}

#[test]
fn thinking_type_must_be_accepted() {
    let cases = [
        ("claude-opus-5-5", json!({"thinking": enabled(2048)})),
        ("claude-opus-5-5", json!({"thinking": {"type": "disabled"}})),
        ("claude-opus-4-5", json!({"thinking": {"type": "adaptive"}})),
        ("claude-opus-4-8", json!({"thinking": enabled(2048)})),
        (
            "claude-sonnet-4-6",
            json!({"thinking": {"type": "between_tools"}}),
        ),
        (
            "claude-sonnet-4-6",
            json!({"thinking": {"type": "sometimes"}}),
        ),
        (
            "claude-sonnet-4-6",
            json!({"thinking": {"budget_tokens": 2048}}),
        ),
    ];
    for (model, patch) in cases {
        let body = request(model, &patch);
        assert_eq!(Some(Rule::ThinkingType), broken(&body), "{body}");
    }
    let adaptive = json!({"thinking": {"type": "adaptive"}});
    assert_eq!(None, broken(&request("claude-opus-5-5", &adaptive)));
}

#[test]
fn thinking_type_refused_at_some_efforts() {
    let at = |ty: &str, effort: &str| json!({"thinking": {"type": ty}, "output_config": {"effort": effort}});
    let cases = [
        (
            "claude-opus-5",
            at("disabled", "xhigh"),
            Some(Rule::ThinkingType),
        ),
        ("claude-opus-5", at("disabled", "high"), None),
        (
            "claude-opus-5",
            json!({"thinking": {"type": "disabled"}}),
            None,
        ),
        (
            "claude-haiku-5-5",
            at("disabled", "max"),
            Some(Rule::ThinkingType),
        ),
        (
            "claude-haiku-5-5",
            json!({"thinking": {"type": "disabled"}}),
            None,
        ),
        (
            "claude-sonnet-5-5",
            at("between_tools", "max"),
            Some(Rule::ThinkingType),
        ),
        ("claude-sonnet-5-5", at("between_tools", "high"), None),
    ];
    for (model, patch, rule) in cases {
        let body = request(model, &patch);
        assert_eq!(rule, broken(&body), "{body}");
    }
}

#[test]
fn budget_tokens_at_least_the_minimum_and_below_max_tokens() {
    let model = "claude-sonnet-4-6";
    let small = json!({"thinking": enabled(1000)});
    assert_eq!(Some(Rule::BudgetTokens), broken(&request(model, &small)));
    let whole = json!({"thinking": enabled(4096)});
    assert_eq!(Some(Rule::BudgetTokens), broken(&request(model, &whole)));
    let missing = json!({"thinking": {"type": "enabled"}});
    assert_eq!(Some(Rule::BudgetTokens), broken(&request(model, &missing)));
    let fits = json!({"thinking": enabled(1024)});
    assert_eq!(None, broken(&request(model, &fits)));
}

#[test]
fn effort_must_be_a_level_the_model_takes() {
    let effort = |level: &str| json!({"output_config": {"effort": level}});
    assert_eq!(
        Some(Rule::Effort),
        broken(&request("claude-haiku-4-5", &effort("low")))
    );
    assert_eq!(
        Some(Rule::Effort),
        broken(&request("claude-opus-4-6", &effort("xhigh")))
    );
    assert_eq!(
        Some(Rule::Effort),
        broken(&request("claude-opus-5-5", &effort("extreme")))
    );
    assert_eq!(None, broken(&request("claude-opus-4-6", &effort("max"))));
}

#[test]
fn sampling_refused_or_only_with_thinking_off() {
    let adaptive = json!({"type": "adaptive"});
    let cases = [
        (
            "claude-opus-5-5",
            json!({"temperature": 1.0}),
            Some(Rule::Sampling),
        ),
        (
            "claude-sonnet-5-5",
            json!({"top_k": 5}),
            Some(Rule::Sampling),
        ),
        ("claude-sonnet-4-6", json!({"temperature": 0.2}), None),
        (
            "claude-sonnet-4-6",
            json!({"temperature": 0.2, "thinking": adaptive}),
            Some(Rule::Sampling),
        ),
        (
            "claude-sonnet-4-6",
            json!({"top_k": 5, "thinking": enabled(1024)}),
            Some(Rule::Sampling),
        ),
        (
            "claude-sonnet-4-6",
            json!({"top_p": 0.9, "thinking": enabled(1024)}),
            Some(Rule::Sampling),
        ),
        (
            "claude-sonnet-4-6",
            json!({"top_p": 0.95, "thinking": enabled(1024)}),
            None,
        ),
        ("claude-opus-5-5", json!({"temperature": null}), None),
    ];
    for (model, patch, rule) in cases {
        let body = request(model, &patch);
        assert_eq!(rule, broken(&body), "{body}");
    }
}

#[test]
fn temperature_xor_top_p() {
    let both = json!({"temperature": 0.5, "top_p": 0.9});
    assert_eq!(
        Some(Rule::TemperatureXorTopP),
        broken(&request("claude-haiku-4-5", &both))
    );
    assert_eq!(None, broken(&request("claude-sonnet-4-6", &both)));
    let one = json!({"temperature": 0.5});
    assert_eq!(None, broken(&request("claude-haiku-4-5", &one)));
}

#[test]
fn forced_tool_choice_where_refused_and_with_manual_thinking() {
    let any = json!({"type": "any"});
    let cases = [
        (
            "claude-opus-5-5",
            json!({"tool_choice": any}),
            Some(Rule::ForcedToolChoice),
        ),
        (
            "claude-sonnet-5-5",
            json!({"tool_choice": {"type": "tool", "name": "f"}}),
            Some(Rule::ForcedToolChoice),
        ),
        (
            "claude-sonnet-4-6",
            json!({"tool_choice": any, "thinking": enabled(1024)}),
            Some(Rule::ForcedToolChoice),
        ),
        ("claude-sonnet-4-6", json!({"tool_choice": any}), None),
        (
            "claude-opus-5-5",
            json!({"tool_choice": {"type": "auto"}}),
            None,
        ),
    ];
    for (model, patch, rule) in cases {
        let body = request(model, &patch);
        assert_eq!(rule, broken(&body), "{body}");
    }
}

#[test]
fn prefill_where_refused_or_while_thinking_is_on() {
    let prefill = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Sure,"},
    ]);
    let adaptive = json!({"type": "adaptive"});
    let cases = [
        (
            "claude-sonnet-5-5",
            json!({"messages": prefill}),
            Some(Rule::Prefill),
        ),
        (
            "claude-opus-5-5",
            json!({"messages": prefill}),
            Some(Rule::Prefill),
        ),
        ("claude-opus-4-8", json!({"messages": prefill}), None),
        (
            "claude-opus-4-8",
            json!({"messages": prefill, "thinking": adaptive}),
            Some(Rule::Prefill),
        ),
    ];
    for (model, patch, rule) in cases {
        let body = request(model, &patch);
        assert_eq!(rule, broken(&body), "{body}");
    }
}

#[test]
fn inference_geo_where_refused() {
    let geo = json!({"inference_geo": "us"});
    assert_eq!(
        Some(Rule::InferenceGeo),
        broken(&request("claude-opus-4-5", &geo))
    );
    assert_eq!(None, broken(&request("claude-opus-4-6", &geo)));
}

#[test]
fn refused_tool_types() {
    let computer = json!({"tools": [
        {"name": "f", "input_schema": {"type": "object"}},
        {"type": "computer_20251124", "name": "computer", "display_width_px": 1024},
    ]});
    assert_eq!(
        Some(Rule::RefusedTool),
        broken(&request("claude-opus-5-5", &computer))
    );
    assert_eq!(None, broken(&request("claude-opus-4-8", &computer)));
}

#[test]
fn thinking_signatures_bound_to_the_model_that_made_them() {
    let text = json!({"type": "text", "text": "hello"});
    let from = |maker: &str| json!({"messages": thinking_turn(maker, &text)});
    let cases = [
        (
            "claude-opus-5-5",
            from("claude-fable-5-1"),
            Some(Rule::Signature),
        ),
        ("claude-opus-5-5", from("claude-opus-5"), None),
        ("claude-opus-5-5", from("claude-haiku-4-5"), None),
        ("claude-haiku-4-5", from("claude-haiku-4-5-20251001"), None),
        (
            "claude-opus-4-8",
            from("claude-opus-4-6"),
            Some(Rule::Signature),
        ),
        ("claude-opus-4-8", from("claude-a"), Some(Rule::Signature)),
    ];
    for (model, patch, rule) in cases {
        let body = request(model, &patch);
        assert_eq!(rule, broken(&body), "{body}");
    }
    let mut body = request("claude-opus-5-5", &from("claude-fable-5-1"));
    let catalog = Catalog::builtin();
    let spec = catalog.get("claude-opus-5-5").expect("known");
    let message = check(spec, &catalog, &body).unwrap_err().message;
    assert_eq!(
        "messages.1.content.0: Invalid `signature` in `thinking` block",
        message
    );
    body["messages"][1]["content"][0]["signature"] = json!("");
    assert_eq!(Some(Rule::Signature), broken(&body), "an empty signature");
    body["messages"][1]["content"][0] = json!({"type": "thinking", "thinking": "..."});
    assert_eq!(Some(Rule::Signature), broken(&body), "no signature");
    body["messages"][1]["content"][0] = json!({"type": "redacted_thinking", "data": "EqQK"});
    assert_eq!(Some(Rule::Signature), broken(&body), "not a mock signature");
    let data = signature::encode("claude-opus-5", 3);
    body["messages"][1]["content"][0] = json!({"type": "redacted_thinking", "data": data});
    assert_eq!(None, broken(&body), "redacted thinking the target reads");
}

#[test]
fn thinking_tool_turn_opens_with_thinking_in_manual_mode() {
    let model = "claude-sonnet-4-6";
    let bare = json!({"thinking": enabled(1024), "messages": tool_turn(None)});
    assert_eq!(Some(Rule::ThinkingToolTurn), broken(&request(model, &bare)));
    let block =
        json!({"type": "thinking", "thinking": "...", "signature": signature::encode(model, 1)});
    let opened = json!({"thinking": enabled(1024), "messages": tool_turn(Some(block))});
    assert_eq!(None, broken(&request(model, &opened)));
    let adaptive = json!({"thinking": {"type": "adaptive"}, "messages": tool_turn(None)});
    assert_eq!(
        None,
        broken(&request(model, &adaptive)),
        "adaptive relaxes it"
    );
}
