//! The thinking configuration of an attempt: the caller's, when the target takes it, else
//! the nearest one the target takes.
//!
//! Nearest means keeping the intent: manual thinking (`enabled`) becomes adaptive thinking,
//! which also thinks; adaptive becomes manual with a budget of half the answer's tokens
//! (at least the model's minimum, and below `max_tokens`); `disabled` on a model that always
//! thinks is left to the model's default; and when nothing fits, the field is removed so the
//! target's own default applies.

use serde_json::{Value, json};

use super::shape::Shape;
use crate::api::json::ObjectEdit;
use crate::catalog::{Effort, ModelSpec, ThinkingType};

/// What the attempt sends as `thinking`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    /// The caller's field, unchanged (or absent, when the caller sent none).
    Keep(Option<ThinkingType>),
    /// This type, with this budget for `enabled`.
    Set(ThinkingType, Option<u64>),
    /// No `thinking` field: the target's default.
    Remove,
}

impl Choice {
    /// The type the attempt asks for, if any.
    pub(crate) fn kind(self) -> Option<ThinkingType> {
        match self {
            Choice::Keep(kind) => kind,
            Choice::Set(kind, _) => Some(kind),
            Choice::Remove => None,
        }
    }

    /// Whether `target` thinks with this choice.
    pub(crate) fn is_on(self, target: &ModelSpec) -> bool {
        target.thinking_on(self.kind())
    }

    /// Writes this choice into `edit`; whether that changes the `thinking` field.
    pub(crate) fn write(self, shape: &Shape<'_>, edit: &mut ObjectEdit) -> bool {
        match self {
            Choice::Keep(_) => false,
            Choice::Remove if shape.thinking.is_none() => false,
            Choice::Remove => {
                edit.remove("thinking");
                true
            }
            Choice::Set(kind, budget) => {
                let mut value = json!({"type": kind.as_str()});
                if let Some(budget) = budget {
                    value["budget_tokens"] = budget.into();
                }
                if let Some(display) = shape.thinking.as_ref().and_then(|t| t.display)
                    && let Ok(display) = serde_json::from_str::<Value>(display.get())
                {
                    value["display"] = display;
                }
                edit.set("thinking", &value);
                true
            }
        }
    }
}

/// The thinking an attempt at `target` sends, for `max_tokens` and `effort` as the attempt
/// sends them.
pub(crate) fn choose(
    shape: &Shape<'_>,
    target: &ModelSpec,
    effort: Option<Effort>,
    max_tokens: u64,
) -> Choice {
    let Some(asked) = shape.thinking_type() else {
        return Choice::Keep(None);
    };
    let budget = shape.thinking.as_ref().and_then(|t| t.budget_tokens);
    if target.accepts_thinking(asked, effort) {
        if asked != ThinkingType::Enabled {
            return Choice::Keep(Some(asked));
        }
        let min = u64::from(target.thinking.min_budget_tokens);
        if budget.is_some_and(|b| b >= min && b < max_tokens) {
            return Choice::Keep(Some(asked));
        }
    }
    let candidates: &[ThinkingType] = match asked {
        ThinkingType::Enabled => &[ThinkingType::Enabled, ThinkingType::Adaptive],
        ThinkingType::Adaptive => &[ThinkingType::Enabled],
        ThinkingType::BetweenTools => &[ThinkingType::Adaptive, ThinkingType::Enabled],
        ThinkingType::Disabled => &[],
    };
    first_fit(candidates, target, effort, max_tokens, budget)
}

/// Thinking that does not need a final `tool_use` turn to start with a thinking block:
/// adaptive, else off, else the target's default.
pub(crate) fn without_manual(target: &ModelSpec, effort: Option<Effort>) -> Choice {
    first_fit(
        &[ThinkingType::Adaptive, ThinkingType::Disabled],
        target,
        effort,
        0,
        None,
    )
}

/// Thinking off, if `target` allows it.
pub(crate) fn off(target: &ModelSpec, effort: Option<Effort>) -> Option<Choice> {
    target
        .accepts_thinking(ThinkingType::Disabled, effort)
        .then_some(Choice::Set(ThinkingType::Disabled, None))
}

fn first_fit(
    candidates: &[ThinkingType],
    target: &ModelSpec,
    effort: Option<Effort>,
    max_tokens: u64,
    budget: Option<u64>,
) -> Choice {
    for &kind in candidates {
        if !target.accepts_thinking(kind, effort) {
            continue;
        }
        if kind != ThinkingType::Enabled {
            return Choice::Set(kind, None);
        }
        let min = u64::from(target.thinking.min_budget_tokens);
        let budget = budget
            .filter(|b| *b >= min && *b < max_tokens)
            .unwrap_or((max_tokens / 2).max(min));
        if budget < max_tokens {
            return Choice::Set(kind, Some(budget));
        }
    }
    Choice::Remove
}
