//! The thinking rules: `thinking.type` and `output_config.effort` must be ones the model
//! takes (some types only below some efforts), and `enabled` thinking needs a
//! `budget_tokens` of at least the minimum and below `max_tokens`.

use serde_json::Value;

use super::violation::{Rule, Violation};
use crate::catalog::{Effort, ModelSpec, ThinkingType};

/// What a request asks of thinking: its `thinking.type` and `output_config.effort`, if sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Requested {
    pub(crate) thinking: Option<ThinkingType>,
    pub(crate) effort: Option<Effort>,
}

/// Checks the thinking and effort of `body` against `spec`.
pub(super) fn check(spec: &ModelSpec, body: &Value) -> Result<Requested, Violation> {
    let requested = read(body)?;
    effort(spec, requested.effort)?;
    if let Some(ty) = requested.thinking {
        accepted(spec, ty, requested.effort)?;
    }
    if requested.thinking == Some(ThinkingType::Enabled) {
        budget(spec, body)?;
    }
    Ok(requested)
}

/// Reads `thinking.type` and `output_config.effort`, refusing names the API does not know.
fn read(body: &Value) -> Result<Requested, Violation> {
    let thinking = match body.get("thinking").filter(|value| !value.is_null()) {
        None => None,
        Some(thinking) => {
            let Some(name) = thinking.get("type").and_then(Value::as_str) else {
                return Err(Violation::new(
                    Rule::ThinkingType,
                    "thinking.type: Field required",
                ));
            };
            let ty = name.parse::<ThinkingType>().map_err(|error| {
                Violation::new(Rule::ThinkingType, format!("thinking.type: {error}"))
            })?;
            Some(ty)
        }
    };
    let effort = body
        .get("output_config")
        .and_then(|config| config.get("effort"))
        .filter(|value| !value.is_null());
    let effort = match effort {
        None => None,
        Some(effort) => {
            let name = effort.as_str().unwrap_or_default();
            let level = name.parse::<Effort>().map_err(|error| {
                Violation::new(Rule::Effort, format!("output_config.effort: {error}"))
            })?;
            Some(level)
        }
    };
    Ok(Requested { thinking, effort })
}

fn effort(spec: &ModelSpec, effort: Option<Effort>) -> Result<(), Violation> {
    let Some(effort) = effort else {
        return Ok(());
    };
    if !spec.effort.is_supported() {
        let message = format!(
            "output_config.effort: {} does not support the effort parameter",
            spec.id
        );
        return Err(Violation::new(Rule::Effort, message));
    }
    if !spec.effort.supports(effort) {
        let levels: Vec<&str> = spec.effort.levels.iter().map(|e| e.as_str()).collect();
        let message = format!(
            "output_config.effort: \"{effort}\" is not supported by {} (supported: {})",
            spec.id,
            levels.join(", ")
        );
        return Err(Violation::new(Rule::Effort, message));
    }
    Ok(())
}

fn accepted(spec: &ModelSpec, ty: ThinkingType, effort: Option<Effort>) -> Result<(), Violation> {
    if !spec.thinking.accepted.contains(&ty) {
        let accepted: Vec<&str> = spec.thinking.accepted.iter().map(|t| t.as_str()).collect();
        let mut message = format!(
            "thinking.type: \"{ty}\" is not supported by {} (supported: {})",
            spec.id,
            accepted.join(", ")
        );
        if ty == ThinkingType::Disabled {
            message.push_str("; thinking is always on for this model");
        }
        return Err(Violation::new(Rule::ThinkingType, message));
    }
    let effective = spec.effort.effective(effort);
    if let (Some(_), Some(level)) = (spec.thinking.refused_at(ty, effective), effective) {
        let message = format!(
            "thinking.type: \"{ty}\" is not supported by {} at effort \"{level}\"",
            spec.id
        );
        return Err(Violation::new(Rule::ThinkingType, message));
    }
    Ok(())
}

fn budget(spec: &ModelSpec, body: &Value) -> Result<(), Violation> {
    let budget = body
        .get("thinking")
        .and_then(|thinking| thinking.get("budget_tokens"))
        .and_then(Value::as_u64);
    let Some(budget) = budget else {
        let message = "thinking.enabled.budget_tokens: Field required";
        return Err(Violation::new(Rule::BudgetTokens, message));
    };
    let least = spec.thinking.min_budget_tokens;
    if budget < u64::from(least) {
        let message = format!(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to {least}"
        );
        return Err(Violation::new(Rule::BudgetTokens, message));
    }
    let max_tokens = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(0);
    if budget >= max_tokens {
        let message = "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult \
                       our documentation at \
                       https://platform.claude.com/docs/en/build-with-claude/thinking";
        return Err(Violation::new(Rule::BudgetTokens, message));
    }
    Ok(())
}
