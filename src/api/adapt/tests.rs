//! One test per rule, on the built-in catalogue; each names the rule and where it comes
//! from (docs/MODELS.md lists the sources).

use bytes::Bytes;
use serde_json::{Value, json};

use super::*;
use crate::catalog::Catalog;

const SONNET_46: &str = "claude-sonnet-4-6";
const HAIKU_45: &str = "claude-haiku-4-5";
const OPUS_55: &str = "claude-opus-5-5";
const SONNET_55: &str = "claude-sonnet-5-5";
const OPUS_48: &str = "claude-opus-4-8";

/// The attempt's body for `target`, and what changed; panics on a refusal.
fn adapted(request: &Value, requested: &str, target: &str) -> (Value, Vec<&'static str>) {
    match verdict(request, requested, target) {
        Verdict::Same => (request.clone(), vec![]),
        Verdict::Adapted { edit, changes } => {
            let body = Bytes::from(serde_json::to_vec(request).unwrap());
            let joined = edit.apply(&body).expect("edits apply").join();
            (
                serde_json::from_slice(&joined).expect("valid JSON"),
                changes,
            )
        }
        Verdict::Refused(why) => panic!("refused: {why}"),
    }
}

fn verdict(request: &Value, requested: &str, target: &str) -> Verdict {
    let catalog = Catalog::builtin();
    let body = serde_json::to_vec(request).unwrap();
    adapt(
        &body,
        catalog.get(requested),
        catalog.get(target).expect("known"),
    )
    .unwrap()
}

fn base(extra: &Value) -> Value {
    let mut request = json!({
        "model": SONNET_46, "max_tokens": 4096,
        "messages": [{"role": "user", "content": "hi"}],
    });
    for (key, value) in extra.as_object().unwrap() {
        request[key] = value.clone();
    }
    request
}

#[test]
fn the_same_model_or_a_request_the_target_takes_is_sent_as_it_came() {
    let request = base(&json!({"thinking": {"type": "enabled", "budget_tokens": 2048}}));
    assert_eq!(verdict(&request, SONNET_46, SONNET_46), Verdict::Same);
    assert_eq!(verdict(&request, SONNET_46, HAIKU_45), Verdict::Same);
}

#[test]
fn max_tokens_above_the_targets_ceiling_is_clamped() {
    // Haiku 4.5's output ceiling is 64K, Sonnet 4.6's 128K (models overview).
    let (body, changes) = adapted(&base(&json!({"max_tokens": 100_000})), SONNET_46, HAIKU_45);
    assert_eq!(body["max_tokens"], 64_000);
    assert_eq!(changes, ["max_tokens"]);
}

#[test]
fn max_tokens_the_requested_model_refuses_is_left_for_its_own_400() {
    let request = base(&json!({"max_tokens": 200_000}));
    assert_eq!(verdict(&request, SONNET_46, HAIKU_45), Verdict::Same);
}

#[test]
fn adaptive_thinking_becomes_manual_where_adaptive_is_refused() {
    // `adaptive` is a 400 on the 4.5 models (thinking troubleshooting).
    let request = base(&json!({"thinking": {"type": "adaptive"}, "max_tokens": 8000}));
    let (body, changes) = adapted(&request, SONNET_46, HAIKU_45);
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 4000})
    );
    assert_eq!(changes, ["thinking"]);
}

#[test]
fn adaptive_thinking_with_too_few_tokens_for_a_budget_falls_to_the_default() {
    let request = base(&json!({"thinking": {"type": "adaptive"}, "max_tokens": 1024}));
    let (body, _) = adapted(&request, SONNET_46, HAIKU_45);
    assert_eq!(
        body.get("thinking"),
        None,
        "below the 1024-token minimum budget"
    );
}

#[test]
fn manual_thinking_becomes_adaptive_where_manual_is_refused() {
    // `enabled` + `budget_tokens` is a 400 on Claude 4.7 and later (thinking troubleshooting).
    let request = base(
        &json!({"thinking": {"type": "enabled", "budget_tokens": 2048, "display": "summarized"}}),
    );
    let (body, changes) = adapted(&request, SONNET_46, OPUS_48);
    assert_eq!(
        body["thinking"],
        json!({"type": "adaptive", "display": "summarized"})
    );
    assert_eq!(changes, ["thinking"]);
}

#[test]
fn a_budget_at_or_above_the_clamped_max_tokens_is_lowered() {
    let request = base(
        &json!({"max_tokens": 100_000, "thinking": {"type": "enabled", "budget_tokens": 80_000}}),
    );
    let (body, changes) = adapted(&request, SONNET_46, HAIKU_45);
    assert_eq!(body["max_tokens"], 64_000);
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 32_000})
    );
    assert_eq!(changes, ["max_tokens", "thinking"]);
}

#[test]
fn disabled_thinking_on_an_always_on_model_is_left_to_its_default() {
    // `disabled` is a 400 on always-on models (Opus 5.5: what's new).
    let request = base(&json!({"thinking": {"type": "disabled"}}));
    let (body, changes) = adapted(&request, SONNET_46, OPUS_55);
    assert_eq!(body.get("thinking"), None);
    assert_eq!(changes, ["thinking"]);
}

#[test]
fn sampling_parameters_a_model_refuses_are_dropped() {
    // Opus 5.5 refuses non-default temperature/top_p/top_k (thinking docs).
    let request = base(&json!({"temperature": 0.2, "top_k": 5}));
    let (body, changes) = adapted(&request, SONNET_46, OPUS_55);
    assert_eq!(body.get("temperature"), None);
    assert_eq!(body.get("top_k"), None);
    assert_eq!(changes, ["sampling"]);
}

#[test]
fn temperature_and_top_p_together_keep_temperature_on_haiku_45() {
    // "Use only temperature OR top_p, not both" (Haiku 4.5 migration guide).
    let request = base(&json!({"temperature": 0.2, "top_p": 0.9}));
    let (body, changes) = adapted(&request, SONNET_46, HAIKU_45);
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body.get("top_p"), None);
    assert_eq!(changes, ["sampling"]);
}

#[test]
fn a_forced_tool_choice_becomes_auto_where_refused() {
    // Forced tool_choice is a 400 on Opus 5.5 (thinking docs).
    let request = base(&json!({"tool_choice": {"type": "any", "disable_parallel_tool_use": true}}));
    let (body, changes) = adapted(&request, SONNET_46, OPUS_55);
    assert_eq!(
        body["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(changes, ["tool_choice"]);
}

#[test]
fn effort_a_model_lacks_is_dropped_or_lowered() {
    // Haiku 4.5 has no effort (models overview); Sonnet 4.6 has max but not xhigh.
    let request = base(&json!({"output_config": {"effort": "high"}}));
    let (body, changes) = adapted(&request, SONNET_46, HAIKU_45);
    assert_eq!(body.get("output_config"), None);
    assert_eq!(changes, ["effort"]);
    let request = base(
        &json!({"model": OPUS_48, "output_config": {"effort": "xhigh", "format": {"type": "json"}}}),
    );
    let (body, _) = adapted(&request, OPUS_48, SONNET_46);
    assert_eq!(
        body["output_config"],
        json!({"effort": "high", "format": {"type": "json"}})
    );
}

fn agent_turns(final_tool_turn: bool) -> Value {
    let mut assistant = vec![
        json!({"type": "thinking", "thinking": "hmm", "signature": "sig-sonnet"}),
        json!({"type": "redacted_thinking", "data": "abc"}),
    ];
    if final_tool_turn {
        assistant.push(json!({"type": "tool_use", "id": "tu_1", "name": "t", "input": {}}));
    } else {
        assistant.push(json!({"type": "text", "text": "done"}));
    }
    json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": assistant},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "ok"}]},
    ])
}

#[test]
fn thinking_blocks_a_target_cannot_read_are_stripped_whole() {
    // Haiku 4.5 does not read Sonnet 4.6's signatures (preserved thinking; field reports of
    // "Invalid signature in thinking block" after a model switch).
    let request = base(&json!({"messages": agent_turns(false)}));
    let (body, changes) = adapted(&request, SONNET_46, HAIKU_45);
    assert_eq!(
        body["messages"][1]["content"],
        json!([{"type": "text", "text": "done"}])
    );
    assert_eq!(changes, ["thinking_blocks"]);
}

#[test]
fn a_final_tool_turn_that_loses_its_thinking_turns_manual_thinking_off() {
    // With manual thinking the final assistant tool_use turn must begin with its thinking
    // block (thinking docs); Haiku 4.5 has no adaptive mode, so thinking goes off.
    let request = base(
        &json!({"messages": agent_turns(true), "thinking": {"type": "enabled", "budget_tokens": 2048}}),
    );
    let (body, changes) = adapted(&request, SONNET_46, HAIKU_45);
    assert_eq!(body["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(body["thinking"], json!({"type": "disabled"}));
    assert_eq!(changes, ["thinking", "thinking_blocks"]);
}

#[test]
fn blocks_a_target_reads_are_never_touched() {
    // Opus 5.5 reads Sonnet 4.6's blocks (preserved thinking).
    let request = base(&json!({"messages": agent_turns(true), "thinking": {"type": "adaptive"}}));
    assert_eq!(verdict(&request, SONNET_46, OPUS_55), Verdict::Same);
}

#[test]
fn a_prefill_with_thinking_turns_thinking_off_or_refuses() {
    // Prefill is refused while thinking is on (thinking docs); Sonnet 5.5 refuses it always.
    let messages =
        json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure:"}]);
    let request = base(&json!({"messages": messages, "model": OPUS_48}));
    assert!(matches!(
        verdict(&request, OPUS_48, SONNET_55),
        Verdict::Refused(_)
    ));
    // Opus 5 thinks by default but may be turned off; Opus 5.5 always thinks.
    let (body, changes) = adapted(&request, OPUS_48, "claude-opus-5");
    assert_eq!(body["thinking"], json!({"type": "disabled"}));
    assert_eq!(changes, ["thinking"]);
    assert!(matches!(
        verdict(&request, OPUS_48, OPUS_55),
        Verdict::Refused(_)
    ));
    // A prefill with thinking on is the requested model's own 400: sent as it came.
    let request = base(&json!({"messages": messages, "thinking": {"type": "adaptive"}}));
    assert_eq!(verdict(&request, SONNET_46, HAIKU_45), Verdict::Same);
}

#[test]
fn inference_geo_and_refused_tools_are_refusals_never_dropped() {
    // inference_geo is a 400 on the 4.5 models (data residency); computer_20251124 is
    // refused by Opus 5.5 (what's new).
    let request = base(&json!({"inference_geo": "us"}));
    assert!(
        matches!(verdict(&request, SONNET_46, HAIKU_45), Verdict::Refused(why) if why.contains("inference_geo"))
    );
    let request = base(&json!({"tools": [{"type": "computer_20251124", "name": "computer"}]}));
    assert!(matches!(
        verdict(&request, SONNET_46, OPUS_55),
        Verdict::Refused(_)
    ));
}

#[test]
fn an_unknown_requested_model_still_adapts_what_it_can() {
    let request = base(&json!({"model": "claude-new", "max_tokens": 100_000}));
    let catalog = Catalog::builtin();
    let body = serde_json::to_vec(&request).unwrap();
    let verdict = adapt(&body, None, catalog.get(HAIKU_45).unwrap()).unwrap();
    assert!(matches!(verdict, Verdict::Adapted { changes, .. } if changes == ["max_tokens"]));
}

#[test]
fn the_minimal_form_strips_every_thinking_block() {
    let request = base(
        &json!({"messages": agent_turns(true), "thinking": {"type": "enabled", "budget_tokens": 2048}}),
    );
    let body = serde_json::to_vec(&request).unwrap();
    let Some(Verdict::Adapted { edit, changes }) = minimal(&body, None).unwrap() else {
        panic!("a change");
    };
    let joined = edit.apply(&Bytes::from(body)).unwrap().join();
    let sent: Value = serde_json::from_slice(&joined).unwrap();
    assert_eq!(sent["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(sent.get("thinking"), None);
    assert_eq!(changes, ["thinking", "thinking_blocks"]);
    let plain = serde_json::to_vec(&base(&json!({}))).unwrap();
    assert_eq!(minimal(&plain, None).unwrap(), None);
}
