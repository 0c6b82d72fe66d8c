//! The model catalogue's rules as the mock enforces them: a request to a model the catalogue
//! knows is checked before it costs any capacity, and the first rule it breaks answers 400
//! `invalid_request_error` with a message naming the field, as the real API's do.
//!
//! Pure: a request body (JSON) and a [`ModelSpec`] in, a [`Violation`] or nothing out. The
//! thinking rules live in `rules/thinking.rs`, those on the conversation's history in
//! `rules/history.rs`.

use serde_json::Value;

use crate::catalog::{Catalog, ModelSpec, PrefillRule, SamplingRule, ThinkingType};

mod history;
mod thinking;
mod violation;

#[cfg(test)]
mod tests;

use history::messages;
use thinking::Requested;
pub(crate) use violation::{Rule, Violation};

/// The catalogue's verdict on a request body: the first rule it breaks, or, when it breaks
/// none, the catalogue id of its model if thinking is on (the id that signs the answer's
/// thinking). A model the catalogue does not know takes anything, with thinking off.
pub(crate) fn judge(catalog: &Catalog, body: &Value) -> Result<Option<String>, Violation> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(spec) = catalog.get(model) else {
        return Ok(None);
    };
    let requested = check(spec, catalog, body)?;
    Ok(spec
        .thinking_on(requested.thinking)
        .then(|| spec.id.clone()))
}

/// Checks `body`, a request for `spec`'s model, against every rule; `catalog` resolves the
/// models named in thinking signatures. A valid request's thinking type and effort come back.
pub(crate) fn check(
    spec: &ModelSpec,
    catalog: &Catalog,
    body: &Value,
) -> Result<Requested, Violation> {
    max_tokens(spec, body)?;
    let requested = thinking::check(spec, body)?;
    let on = spec.thinking_on(requested.thinking);
    sampling(spec, body, on)?;
    tool_choice(spec, body, requested.thinking)?;
    prefill(spec, body, on)?;
    if !spec.inference_geo && is_set(body, "inference_geo") {
        let message = format!("inference_geo: not supported by {}", spec.id);
        return Err(Violation::new(Rule::InferenceGeo, message));
    }
    refused_tools(spec, body)?;
    history::check(spec, catalog, body, requested.thinking)?;
    Ok(requested)
}

fn max_tokens(spec: &ModelSpec, body: &Value) -> Result<(), Violation> {
    let asked = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(0);
    if asked > u64::from(spec.max_output_tokens) {
        let message = format!(
            "max_tokens: {asked} > {}, which is the maximum allowed number of output tokens \
             for {}",
            spec.max_output_tokens, spec.id
        );
        return Err(Violation::new(Rule::MaxTokens, message));
    }
    Ok(())
}

fn sampling(spec: &ModelSpec, body: &Value, thinking_on: bool) -> Result<(), Violation> {
    let refuse =
        |field: &str, why: String| Err(Violation::new(Rule::Sampling, format!("{field}: {why}")));
    let sent = ["temperature", "top_p", "top_k"]
        .into_iter()
        .filter(|field| is_set(body, field));
    match spec.sampling {
        SamplingRule::Refused => {
            if let Some(field) = sent.clone().next() {
                let why = format!(
                    "not supported by {}: remove temperature, top_p and top_k",
                    spec.id
                );
                return refuse(field, why);
            }
        }
        SamplingRule::ThinkingOffOnly if thinking_on => {
            for field in sent.clone() {
                if field != "top_p" {
                    return refuse(field, "may not be set while thinking is on".into());
                }
                let top_p = body.get("top_p").and_then(Value::as_f64);
                if !top_p.is_some_and(|p| (0.95..=1.0).contains(&p)) {
                    let why = "must be between 0.95 and 1 while thinking is on".into();
                    return refuse(field, why);
                }
            }
        }
        SamplingRule::Any | SamplingRule::ThinkingOffOnly => {}
    }
    if spec.temperature_xor_top_p && is_set(body, "temperature") && is_set(body, "top_p") {
        let message = "`temperature` and `top_p` cannot both be specified for this model. \
                       Please use only one.";
        return Err(Violation::new(Rule::TemperatureXorTopP, message));
    }
    Ok(())
}

fn tool_choice(
    spec: &ModelSpec,
    body: &Value,
    thinking: Option<ThinkingType>,
) -> Result<(), Violation> {
    let kind = body
        .get("tool_choice")
        .and_then(|choice| choice.get("type"))
        .and_then(Value::as_str);
    let Some(kind @ ("any" | "tool")) = kind else {
        return Ok(());
    };
    if thinking == Some(ThinkingType::Enabled) {
        let message = "Thinking may not be enabled when tool_choice forces tool use.";
        return Err(Violation::new(Rule::ForcedToolChoice, message));
    }
    if !spec.forced_tool_choice {
        let message = format!(
            "tool_choice: \"{kind}\" forces tool use, which {} does not support; use \"auto\" \
             or \"none\"",
            spec.id
        );
        return Err(Violation::new(Rule::ForcedToolChoice, message));
    }
    Ok(())
}

fn prefill(spec: &ModelSpec, body: &Value, thinking_on: bool) -> Result<(), Violation> {
    let last_role = messages(body)
        .last()
        .and_then(|message| message.get("role"))
        .and_then(Value::as_str);
    if last_role != Some("assistant") {
        return Ok(());
    }
    let message = match spec.prefill {
        PrefillRule::Allowed => return Ok(()),
        PrefillRule::RefusedWithThinking if !thinking_on => return Ok(()),
        PrefillRule::RefusedWithThinking => {
            "Prefilling the assistant message is not supported while thinking is on. The \
             conversation must end with a user message."
        }
        PrefillRule::Refused => {
            "This model does not support assistant message prefill. The conversation must end \
             with a user message."
        }
    };
    Err(Violation::new(Rule::Prefill, message))
}

fn refused_tools(spec: &ModelSpec, body: &Value) -> Result<(), Violation> {
    let tools = body.get("tools").and_then(Value::as_array);
    for (index, tool) in tools.into_iter().flatten().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str);
        if let Some(kind) = kind.filter(|kind| spec.refuses_tool(kind)) {
            let message = format!(
                "tools.{index}.type: \"{kind}\" is not supported by {}",
                spec.id
            );
            return Err(Violation::new(Rule::RefusedTool, message));
        }
    }
    Ok(())
}

/// Whether the top-level `field` is present and not null.
fn is_set(body: &Value, field: &str) -> bool {
    body.get(field).is_some_and(|value| !value.is_null())
}
