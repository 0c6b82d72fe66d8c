//! The rules on the conversation sent back: a thinking block is bound to the model that made
//! it (its signature names that model), so a model refuses blocks it does not read, and with
//! `enabled` thinking the final assistant tool-use turn must open with its thinking block.
//!
//! Why refuse rather than drop: the docs say the API drops blocks a model cannot read, but
//! field reports show 400 `Invalid signature` after some model switches. The mock plays the
//! stricter behaviour so that a fallback which forgets to strip foreign blocks fails in tests.

use serde_json::Value;

use super::violation::{Rule, Violation};
use crate::catalog::{Catalog, ModelSpec, ThinkingType};
use crate::mock::signature;

/// Checks every thinking block's signature, then the final tool-use turn.
pub(super) fn check(
    spec: &ModelSpec,
    catalog: &Catalog,
    body: &Value,
    thinking: Option<ThinkingType>,
) -> Result<(), Violation> {
    for (n, message) in messages(body).iter().enumerate() {
        for (m, block) in blocks(message).iter().enumerate() {
            let field = match kind(block) {
                Some("thinking") => "signature",
                Some("redacted_thinking") => "data",
                _ => continue,
            };
            signed(spec, catalog, block, field).map_err(|message| {
                Violation::new(
                    Rule::Signature,
                    format!("messages.{n}.content.{m}{message}"),
                )
            })?;
        }
    }
    if thinking == Some(ThinkingType::Enabled) {
        tool_turn(body)?;
    }
    Ok(())
}

/// Whether `block` carries in `field` a signature of a model `spec` reads; the error is the
/// rest of the message after the block's path.
fn signed(spec: &ModelSpec, catalog: &Catalog, block: &Value, field: &str) -> Result<(), String> {
    let Some(signature) = block.get(field).and_then(Value::as_str) else {
        return Err(format!(".{field}: Field required"));
    };
    let block_kind = kind(block).unwrap_or_default();
    let invalid = || format!(": Invalid `{field}` in `{block_kind}` block");
    let maker = signature::decode(signature).ok_or_else(invalid)?;
    if !catalog.reads_thinking_of(&spec.id, &maker) {
        return Err(invalid());
    }
    Ok(())
}

/// With `enabled` thinking, the last assistant message, when it calls a tool, must begin
/// with a thinking or redacted-thinking block.
fn tool_turn(body: &Value) -> Result<(), Violation> {
    let last = messages(body)
        .iter()
        .enumerate()
        .rev()
        .find(|(_, message)| message.get("role").and_then(Value::as_str) == Some("assistant"));
    let Some((n, message)) = last else {
        return Ok(());
    };
    let blocks = blocks(message);
    if !blocks.iter().any(|block| kind(block) == Some("tool_use")) {
        return Ok(());
    }
    let first = blocks.first().and_then(kind).unwrap_or_default();
    if matches!(first, "thinking" | "redacted_thinking") {
        return Ok(());
    }
    let message = format!(
        "messages.{n}.content.0.type: Expected `thinking` or `redacted_thinking`, but found \
         `{first}`. When `thinking` is enabled, a final `assistant` message must start with a \
         thinking block (preceding the lastmost set of `tool_use` and `tool_result` blocks). \
         To avoid this requirement, disable `thinking`."
    );
    Err(Violation::new(Rule::ThinkingToolTurn, message))
}

/// A message's content blocks (none for plain-string content).
fn blocks(message: &Value) -> &[Value] {
    message
        .get("content")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn kind(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

/// The request's messages (none when the field is not a list).
pub(super) fn messages(body: &Value) -> &[Value] {
    body.get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}
