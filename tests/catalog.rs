//! The built-in catalogue against the documented facts, one row per model: a change to
//! `models.toml` that contradicts the docs fails here, naming the model.

use breakwater::catalog::{
    Catalog, Effort, LifecycleStatus, ModelSpec, PrefillRule, SamplingRule, ThinkingType,
};

use Effort::{High, Max, Medium, Xhigh};
use ThinkingType::{Adaptive, BetweenTools, Disabled, Enabled};

/// What the docs say of one model: id, output ceiling, thinking types accepted, thinking on
/// by default, sampling rule, forced tool choice taken, default effort, lifecycle status.
type Row = (
    &'static str,
    u32,
    &'static [ThinkingType],
    bool,
    SamplingRule,
    bool,
    Option<Effort>,
    LifecycleStatus,
);

const K128: u32 = 128_000;
const K64: u32 = 64_000;
const REFUSED: SamplingRule = SamplingRule::Refused;
const OFF_ONLY: SamplingRule = SamplingRule::ThinkingOffOnly;
const ACTIVE: LifecycleStatus = LifecycleStatus::Active;
const LEGACY: LifecycleStatus = LifecycleStatus::Legacy;
const DEPRECATED: LifecycleStatus = LifecycleStatus::Deprecated;

#[rustfmt::skip]
const ROWS: [Row; 19] = [
    ("claude-fable-5-2", K128, &[Adaptive], true, REFUSED, false, Some(High), ACTIVE),
    ("claude-mythos-5-2", K128, &[Adaptive], true, REFUSED, false, Some(High), ACTIVE),
    ("claude-fable-5-1", K128, &[Adaptive], true, REFUSED, false, Some(High), ACTIVE),
    ("claude-mythos-5-1", K128, &[Adaptive], true, REFUSED, false, Some(High), ACTIVE),
    ("claude-fable-5", K128, &[Adaptive], true, REFUSED, true, Some(High), LEGACY),
    ("claude-mythos-5", K128, &[Adaptive], true, REFUSED, true, Some(High), LEGACY),
    ("claude-mythos-preview", K128, &[Adaptive, Enabled], true, REFUSED, true, None, DEPRECATED),
    ("claude-opus-5-5", K128, &[Adaptive], true, REFUSED, false, Some(Medium), ACTIVE),
    ("claude-opus-5", K128, &[Adaptive, Disabled], true, REFUSED, true, Some(High), LEGACY),
    ("claude-sonnet-5-5", K128, &[Adaptive, BetweenTools], true, REFUSED, false, Some(High), ACTIVE),
    ("claude-sonnet-5", K128, &[Adaptive, Disabled], true, REFUSED, true, Some(High), LEGACY),
    ("claude-haiku-5-5", K128, &[Adaptive, Disabled], true, REFUSED, true, Some(Medium), ACTIVE),
    ("claude-opus-4-8", K128, &[Adaptive, Disabled], false, REFUSED, true, Some(High), LEGACY),
    ("claude-opus-4-7", K128, &[Adaptive, Disabled], false, REFUSED, true, Some(High), LEGACY),
    ("claude-opus-4-6", K128, &[Adaptive, Enabled, Disabled], false, OFF_ONLY, true, Some(High), LEGACY),
    ("claude-sonnet-4-6", K128, &[Adaptive, Enabled, Disabled], false, OFF_ONLY, true, Some(High), LEGACY),
    ("claude-opus-4-5", K64, &[Enabled, Disabled], false, OFF_ONLY, true, None, DEPRECATED),
    ("claude-sonnet-4-5", K64, &[Enabled, Disabled], false, OFF_ONLY, true, None, DEPRECATED),
    ("claude-haiku-4-5", K64, &[Enabled, Disabled], false, OFF_ONLY, true, None, LEGACY),
];

fn spec(id: &str) -> ModelSpec {
    Catalog::builtin()
        .get(id)
        .unwrap_or_else(|| panic!("{id} is in the catalogue"))
        .clone()
}

#[test]
fn every_model_matches_its_documented_row() {
    let catalog = Catalog::builtin();
    assert_eq!(ROWS.len(), catalog.ids().count());
    for (id, out, accepted, default_on, sampling, forced, effort, status) in ROWS {
        let spec = spec(id);
        assert_eq!(out, spec.max_output_tokens, "{id}");
        let mut taken = spec.thinking.accepted.clone();
        taken.sort();
        let mut expected = accepted.to_vec();
        expected.sort();
        assert_eq!(expected, taken, "{id}");
        assert_eq!(default_on, spec.thinking.default_on, "{id}");
        assert_eq!(sampling, spec.sampling, "{id}");
        assert_eq!(forced, spec.forced_tool_choice, "{id}");
        assert_eq!(effort, spec.effort.default, "{id}");
        assert_eq!(status, spec.lifecycle.status, "{id}");
        let window = if out == K64 { 200_000 } else { 1_000_000 };
        if id != "claude-mythos-preview" {
            assert_eq!(window, spec.context_window, "{id}");
        }
    }
}

#[test]
fn effort_conditional_thinking_refusals() {
    let opus5 = spec("claude-opus-5");
    assert!(opus5.accepts_thinking(Disabled, Some(High)));
    assert!(!opus5.accepts_thinking(Disabled, Some(Xhigh)));
    let haiku = spec("claude-haiku-5-5");
    assert!(haiku.accepts_thinking(Disabled, None), "default medium");
    assert!(!haiku.accepts_thinking(Disabled, Some(Max)));
    let sonnet = spec("claude-sonnet-5-5");
    assert!(sonnet.accepts_thinking(BetweenTools, Some(High)));
    assert!(!sonnet.accepts_thinking(BetweenTools, Some(Max)));
    assert!(!sonnet.accepts_thinking(Disabled, None));
    assert!(!spec("claude-opus-5-5").accepts_thinking(Enabled, Some(Medium)));
}

#[test]
fn effort_levels_follow_the_xhigh_and_max_columns() {
    assert!(spec("claude-opus-4-6").effort.supports(Max));
    assert!(!spec("claude-opus-4-6").effort.supports(Xhigh));
    assert_eq!(Some(High), spec("claude-sonnet-4-6").effort.clamp(Xhigh));
    assert!(!spec("claude-mythos-preview").effort.supports(Xhigh));
    assert_eq!(None, spec("claude-haiku-4-5").effort.clamp(Max));
    assert!(!spec("claude-sonnet-4-5").effort.is_supported());
}

#[test]
fn request_parts_tied_to_the_model() {
    assert!(spec("claude-haiku-4-5").temperature_xor_top_p);
    for refuses_geo in ["claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5"] {
        assert!(!spec(refuses_geo).inference_geo, "{refuses_geo}");
    }
    assert!(spec("claude-opus-4-6").inference_geo);
    for refuses_prefill in ["claude-sonnet-5-5", "claude-haiku-5-5"] {
        assert_eq!(PrefillRule::Refused, spec(refuses_prefill).prefill);
    }
    assert_eq!(
        PrefillRule::RefusedWithThinking,
        spec("claude-opus-4-8").prefill
    );
    for refuses in ["claude-opus-5-5", "claude-sonnet-5-5", "claude-fable-5-2"] {
        assert!(spec(refuses).refuses_tool("computer_20251124"), "{refuses}");
    }
    assert!(spec("claude-haiku-5-5").refuses_tool("computer_20250124"));
    assert!(!spec("claude-opus-4-8").refuses_tool("computer_20251124"));
}

#[test]
fn who_reads_whose_thinking() {
    let catalog = Catalog::builtin();
    let reads = |target: &str, source: &str| catalog.reads_thinking_of(target, source);
    assert!(reads("claude-opus-5-5", "claude-opus-5"));
    assert!(reads("claude-opus-5-5", "claude-haiku-4-5"));
    assert!(!reads("claude-opus-5-5", "claude-fable-5"));
    assert!(reads("claude-fable-5-1", "claude-opus-4-6"));
    assert!(reads("claude-fable-5-1", "claude-opus-5-5"));
    assert!(!reads("claude-mythos-5-1", "claude-opus-5-5"));
    assert!(
        !reads("claude-opus-4-6", "claude-fable-5-1"),
        "no earlier model reads 5.1"
    );
    assert!(reads("claude-mythos-5-2", "claude-fable-5-2"));
    assert!(!reads("claude-opus-5-5", "claude-fable-5-2"));
    // Field reports: 400s after Opus 4.6 <-> 4.8 switches, so neither reads the other.
    assert!(!reads("claude-opus-4-8", "claude-opus-4-6"));
    assert!(!reads("claude-opus-4-6", "claude-opus-4-8"));
}

#[test]
fn lifecycle_dates_and_platform_ids() {
    let sonnet = spec("claude-sonnet-4-5");
    assert_eq!(Some("2026-11-30"), sonnet.lifecycle.retires.as_deref());
    assert!(sonnet.lifecycle.is_retired_on("2026-12-01"));
    let opus = spec("claude-opus-5-5");
    assert_eq!(
        Some("2027-09-22"),
        opus.lifecycle.retires_not_before.as_deref()
    );
    assert_eq!("anthropic.claude-opus-5-5", opus.platforms["bedrock"]);
    let opus45 = spec("claude-opus-4-5");
    assert_eq!("claude-opus-4-5@20251101", opus45.platforms["vertex"]);
    assert_eq!(
        "anthropic.claude-opus-4-6-v1",
        spec("claude-opus-4-6").platforms["bedrock-invoke"]
    );
}
