//! Thinking blocks of earlier turns, and `output_config.effort`: edits inside the messages
//! and the output configuration.

use std::ops::Range;

use super::shape::{Turn, Turns};
use crate::api::json::{self, JsonError, ObjectEdit, Patch};
use crate::catalog::{Effort, ModelSpec};

/// Thinking blocks removed from the turns that held them.
pub(super) struct Stripped {
    pub(super) patch: Patch,
    /// Whether the final assistant turn calls a tool and lost the thinking block it began
    /// with.
    pub(super) final_tool_turn_lost_thinking: bool,
}

/// Strips every thinking block when `target` cannot read the requested model's signatures.
/// Without a requested model in the catalogue, whose blocks they are is unknown: nothing is
/// stripped (the retry with [`strip_all`] covers a refusal).
pub(super) fn strip_unreadable(
    body: &[u8],
    turns: &Turns,
    requested: Option<&ModelSpec>,
    target: &ModelSpec,
) -> Result<Option<Stripped>, JsonError> {
    let Some(requested) = requested else {
        return Ok(None);
    };
    if target.reads_thinking_of(&requested.id) {
        return Ok(None);
    }
    strip_all(body, turns)
}

/// Strips every thinking and redacted-thinking block of the assistant turns; `None` when
/// there are none.
pub(super) fn strip_all(body: &[u8], turns: &Turns) -> Result<Option<Stripped>, JsonError> {
    let mut patch = Patch::new();
    let mut any = false;
    for turn in turns.messages.iter().filter(|t| t.assistant) {
        let Some(content) = &turn.content else {
            continue;
        };
        let thinking: Vec<usize> = turn
            .blocks
            .iter()
            .enumerate()
            .filter(|(_, (_, kind))| Turn::is_thinking(kind))
            .map(|(i, _)| i)
            .collect();
        if thinking.is_empty() {
            continue;
        }
        if thinking.len() == turn.blocks.len() {
            // A turn of thinking alone: left whole rather than emptied (an empty turn is
            // refused); the API drops what it cannot read.
            continue;
        }
        let entries = json::items(body, content.clone())?;
        patch.remove_entries(content, &entries, &thinking);
        any = true;
    }
    if !any {
        return Ok(None);
    }
    let last = turns.messages.iter().rev().find(|t| t.assistant);
    let lost = last.is_some_and(|turn| turn.has("tool_use") && turn.starts_with_thinking());
    Ok(Some(Stripped {
        patch,
        final_tool_turn_lost_thinking: lost,
    }))
}

/// Sets `output_config.effort` to `effort`, or removes it (and `output_config` when it held
/// nothing else) for `None`.
pub(super) fn set_effort(
    body: &[u8],
    edit: &mut ObjectEdit,
    effort: Option<Effort>,
) -> Result<(), JsonError> {
    let object = json::root(body)?;
    let members = json::members(body, object)?;
    let Some(config) = members.iter().find(|m| m.is("output_config")) else {
        return Ok(());
    };
    let range: Range<usize> = config.value.clone();
    let fields = json::members(body, range.clone())?;
    let Some(at) = fields.iter().position(|f| f.is("effort")) else {
        return Ok(());
    };
    match effort {
        Some(effort) => edit
            .inner()
            .replace_value(fields[at].value.clone(), &effort.as_str()),
        None if fields.len() == 1 => edit.remove("output_config"),
        None => edit.inner().remove_entries(&range, &fields, &[at]),
    }
    Ok(())
}
