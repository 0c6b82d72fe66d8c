//! Fallback-safe requests: the body of an attempt at another model than the one the caller
//! asked for, changed only where the target's catalogue entry says it would refuse it.
//!
//! Why: a fallback exists to keep a request answered, and a 400 is worse than the 529 it
//! was meant to absorb (no SDK retries a 400). Models differ in what they take: thinking
//! types, output ceilings, sampling parameters, forced tool choice, prefill, effort levels,
//! whose thinking signatures they read (see `docs/MODELS.md`). [`adapt`] is a pure function
//! of the body and the two models' entries; it answers with edits to splice into the
//! caller's bytes ([`ObjectEdit`]), the names of what changed (for `x-breakwater-adapted`),
//! or why the target cannot take the request at all (a data-residency field it would refuse,
//! a tool version it lacks, a prefill it refuses).
//!
//! Three rules keep it honest:
//! - only what the *requested* model would take is adapted: a request its own model would
//!   refuse goes on unchanged, so its own 400 comes back, never hidden;
//! - a model the catalogue does not know is sent the request as it came;
//! - thinking blocks of earlier turns are stripped only when the target cannot read the
//!   requested model's signatures (the API drops such blocks, or refuses them), and never
//!   partially: the blocks of a turn go together. When that leaves a final `tool_use` turn
//!   without its thinking under manual (`enabled`) thinking, which the API refuses, thinking
//!   becomes adaptive (which relaxes the rule) or is turned off for that attempt.

mod blocks;
mod platform;
mod shape;
mod thinking;

use crate::api::json::{JsonError, ObjectEdit};
use crate::catalog::{ModelSpec, PrefillRule, SamplingRule, ThinkingType};

pub use platform::{PlatformKind, platform_refusal};
use shape::Shape;

/// What an attempt at a target needs done to the caller's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing: the target takes the request as it came.
    Same,
    /// These edits, which change what `changes` names.
    Adapted {
        /// The edits to the body.
        edit: ObjectEdit,
        /// What changed, by field (`max_tokens`, `thinking`, `thinking_blocks`,
        /// `sampling`, `tool_choice`, `effort`), in a stable order.
        changes: Vec<&'static str>,
    },
    /// The target cannot take this request in any form breakwater would send.
    Refused(String),
}

/// The body of an attempt at `target` for a request the caller addressed to `requested`
/// (`None`: a model the catalogue does not know).
///
/// # Errors
/// [`JsonError`] when the body is not a JSON object.
pub fn adapt(
    body: &[u8],
    requested: Option<&ModelSpec>,
    target: &ModelSpec,
) -> Result<Verdict, JsonError> {
    if requested.is_some_and(|r| r.id == target.id) {
        return Ok(Verdict::Same);
    }
    let shape: Shape<'_> = serde_json::from_slice(body).unwrap_or_default();
    let mut plan = Plan {
        edit: ObjectEdit::new(),
        changes: Vec::new(),
    };
    let turns = shape::turns(body)?;
    let prefill = turns.messages.last().is_some_and(|turn| turn.assistant);
    if let Some(requested) = requested
        && refused_by_its_own_model(&shape, prefill, requested)
    {
        // Its own model would answer 400: the fallback answers the same, and the caller
        // sees the error its request earned.
        return Ok(Verdict::Same);
    }
    // From here on the requested model takes the request as it is: every rule below only
    // asks what the target refuses.
    if let Some(refusal) = refusal(&shape, target) {
        return Ok(Verdict::Refused(refusal));
    }
    let max_tokens = plan.max_tokens(&shape, target);
    let effort = plan.effort(body, &shape, target)?;
    let mut chosen = thinking::choose(&shape, target, effort, max_tokens);
    if let Some(stripped) = blocks::strip_unreadable(body, &turns, requested, target)? {
        plan.edit_inner(stripped.patch);
        plan.changes.push("thinking_blocks");
        if stripped.final_tool_turn_lost_thinking && chosen.kind() == Some(ThinkingType::Enabled) {
            chosen = thinking::without_manual(target, effort);
        }
    }
    if prefill {
        match target.prefill {
            PrefillRule::Allowed => {}
            PrefillRule::Refused => {
                return Ok(Verdict::Refused(format!(
                    "{} refuses a prefilled (final assistant) turn",
                    target.id
                )));
            }
            PrefillRule::RefusedWithThinking => {
                if chosen.is_on(target) {
                    match thinking::off(target, effort) {
                        Some(off) => chosen = off,
                        None => {
                            return Ok(Verdict::Refused(format!(
                                "{} refuses a prefilled turn with thinking on, which it cannot turn off",
                                target.id
                            )));
                        }
                    }
                }
            }
        }
    }
    if chosen.write(&shape, &mut plan.edit) {
        plan.changes.push("thinking");
    }
    let thinking_on = chosen.is_on(target);
    plan.tool_choice(&shape, target, chosen.kind());
    plan.sampling(&shape, target, thinking_on);
    Ok(plan.finish())
}

/// A request the target refuses in every form: a data-residency field or a tool version it
/// lacks.
fn refusal(shape: &Shape<'_>, target: &ModelSpec) -> Option<String> {
    if shape.inference_geo.is_some() && !target.inference_geo {
        return Some(format!(
            "{} refuses inference_geo (a data-residency setting is never dropped)",
            target.id
        ));
    }
    let refused = shape
        .tools
        .iter()
        .flatten()
        .filter_map(|tool| tool.kind.as_deref())
        .find(|kind| target.refuses_tool(kind))?;
    Some(format!("{} refuses tools of type {refused}", target.id))
}

/// Whether the model the caller asked for would refuse the request as it is, by any rule the
/// adaptation knows.
fn refused_by_its_own_model(shape: &Shape<'_>, prefill: bool, spec: &ModelSpec) -> bool {
    let kind = shape.thinking_type();
    let on = spec.thinking_on(kind);
    shape.max_tokens.unwrap_or(0) > u64::from(spec.max_output_tokens)
        || kind.is_some_and(|kind| !spec.accepts_thinking(kind, shape.effort()))
        || shape
            .effort()
            .is_some_and(|effort| !spec.effort.supports(effort))
        || !refused_sampling(spec, shape, on).is_empty()
        || (shape.forces_a_tool()
            && (!spec.forced_tool_choice || kind == Some(ThinkingType::Enabled)))
        || (prefill && refuses_prefill(spec, on))
        || (shape.inference_geo.is_some() && !spec.inference_geo)
        || shape
            .tools
            .iter()
            .flatten()
            .filter_map(|tool| tool.kind.as_deref())
            .any(|kind| spec.refuses_tool(kind))
}

/// Whether `spec` refuses a prefill with thinking on or off.
fn refuses_prefill(spec: &ModelSpec, on: bool) -> bool {
    match spec.prefill {
        PrefillRule::Allowed => false,
        PrefillRule::RefusedWithThinking => on,
        PrefillRule::Refused => true,
    }
}

/// The sampling parameters `spec` refuses in `shape`, with thinking on or off.
fn refused_sampling(spec: &ModelSpec, shape: &Shape<'_>, thinking_on: bool) -> Vec<&'static str> {
    let present = [
        ("temperature", shape.temperature.is_some()),
        ("top_p", shape.top_p.is_some()),
        ("top_k", shape.top_k.is_some()),
    ];
    let mut refused: Vec<&'static str> = match spec.sampling {
        SamplingRule::Any => vec![],
        SamplingRule::Refused => present
            .iter()
            .filter(|(_, p)| *p)
            .map(|(k, _)| *k)
            .collect(),
        SamplingRule::ThinkingOffOnly if !thinking_on => vec![],
        SamplingRule::ThinkingOffOnly => {
            let top_p_out = shape.top_p.is_some_and(|p| !(0.95..=1.0).contains(&p));
            let mut out: Vec<&'static str> = vec![];
            if present[0].1 {
                out.push("temperature");
            }
            if top_p_out {
                out.push("top_p");
            }
            if present[2].1 {
                out.push("top_k");
            }
            out
        }
    };
    if spec.temperature_xor_top_p && present[0].1 && present[1].1 && !refused.contains(&"top_p") {
        refused.push("top_p");
    }
    refused
}

/// The order changes are named in.
const ORDER: [&str; 6] = [
    "max_tokens",
    "thinking",
    "thinking_blocks",
    "sampling",
    "tool_choice",
    "effort",
];

struct Plan {
    edit: ObjectEdit,
    changes: Vec<&'static str>,
}

impl Plan {
    fn edit_inner(&mut self, patch: crate::api::json::Patch) {
        self.edit.inner().extend(patch);
    }

    /// Clamps `max_tokens` to the target's ceiling; the value the attempt sends.
    fn max_tokens(&mut self, shape: &Shape<'_>, target: &ModelSpec) -> u64 {
        let asked = shape.max_tokens.unwrap_or(0);
        let ceiling = u64::from(target.max_output_tokens);
        if asked > ceiling {
            self.edit.set("max_tokens", &ceiling);
            self.changes.push("max_tokens");
            return ceiling;
        }
        asked
    }

    /// Drops or lowers `output_config.effort` where the target lacks the level; the effort
    /// the attempt asks for.
    fn effort(
        &mut self,
        body: &[u8],
        shape: &Shape<'_>,
        target: &ModelSpec,
    ) -> Result<Option<crate::catalog::Effort>, JsonError> {
        let Some(effort) = shape.effort() else {
            return Ok(None);
        };
        if target.effort.supports(effort) {
            return Ok(Some(effort));
        }
        let lowered = target.effort.clamp(effort);
        blocks::set_effort(body, &mut self.edit, lowered)?;
        self.changes.push("effort");
        Ok(lowered)
    }

    /// A forced tool choice the target refuses (with this thinking) becomes `auto`.
    fn tool_choice(
        &mut self,
        shape: &Shape<'_>,
        target: &ModelSpec,
        thinking: Option<ThinkingType>,
    ) {
        let refused = !target.forced_tool_choice || thinking == Some(ThinkingType::Enabled);
        if !shape.forces_a_tool() || !refused {
            return;
        }
        let mut auto = serde_json::json!({"type": "auto"});
        if let Some(flag) = shape
            .tool_choice
            .as_ref()
            .and_then(|c| c.disable_parallel_tool_use)
        {
            auto["disable_parallel_tool_use"] = flag.into();
        }
        self.edit.set("tool_choice", &auto);
        self.changes.push("tool_choice");
    }

    /// Removes the sampling parameters the target refuses.
    fn sampling(&mut self, shape: &Shape<'_>, target: &ModelSpec, on: bool) {
        let refused = refused_sampling(target, shape, on);
        for field in &refused {
            self.edit.remove(field);
        }
        if !refused.is_empty() {
            self.changes.push("sampling");
        }
    }

    fn finish(mut self) -> Verdict {
        if self.edit.is_empty() {
            return Verdict::Same;
        }

        self.changes
            .sort_by_key(|c| ORDER.iter().position(|o| o == c));
        self.changes.dedup();
        Verdict::Adapted {
            edit: self.edit,
            changes: self.changes,
        }
    }
}

/// The minimal safe form of a request for `target` (`None`: not in the catalogue), for a
/// second try after the target refused an attempt with 400: every thinking block of
/// earlier turns stripped, and manual thinking off where a final `tool_use` turn then lacks
/// its thinking. `None` when that changes nothing.
///
/// # Errors
/// [`JsonError`] when the body is not a JSON object.
pub fn minimal(body: &[u8], target: Option<&ModelSpec>) -> Result<Option<Verdict>, JsonError> {
    let shape: Shape<'_> = serde_json::from_slice(body).unwrap_or_default();
    let turns = shape::turns(body)?;
    let Some(stripped) = blocks::strip_all(body, &turns)? else {
        return Ok(None);
    };
    let mut plan = Plan {
        edit: ObjectEdit::new(),
        changes: vec!["thinking_blocks"],
    };
    plan.edit_inner(stripped.patch);
    if stripped.final_tool_turn_lost_thinking
        && shape.thinking_type() == Some(ThinkingType::Enabled)
    {
        let chosen = match target {
            Some(target) => thinking::without_manual(target, shape.effort()),
            None => thinking::Choice::Remove,
        };
        if chosen.write(&shape, &mut plan.edit) {
            plan.changes.push("thinking");
        }
    }
    Ok(Some(plan.finish()))
}

#[cfg(test)]
mod tests;
