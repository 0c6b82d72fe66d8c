//! One model's entry in the catalogue, [`ModelSpec`], and the rules it is made of: what
//! thinking it takes, which sampling parameters and effort levels, and where it stands in its
//! lifecycle. Pure data with small predicates; the checks on an entry live in `validate.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::wire::{Effort, ThinkingType};

/// What one model accepts, as `models.toml` (or `[catalog.models.ID]`) describes it. Keys in
/// TOML are the field names in kebab-case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelSpec {
    /// The API model id: the table's name, not a key of its own.
    #[serde(skip)]
    pub id: String,
    /// Other names the API accepts for the model (`claude-haiku-4-5` for
    /// `claude-haiku-4-5-20251001`). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The most `max_tokens` may be. Required.
    pub max_output_tokens: u32,
    /// Input and output tokens the model can hold at once. Required.
    pub context_window: u64,
    /// The thinking types it takes, and when. Required (`accepted` at least).
    pub thinking: ThinkingSpec,
    /// Whether `temperature`, `top_p` and `top_k` may be sent. Required.
    pub sampling: SamplingRule,
    /// Whether `temperature` and `top_p` are refused together (only one of them). Default:
    /// false.
    #[serde(default)]
    pub temperature_xor_top_p: bool,
    /// The effort levels it takes. Required (`levels` at least; empty: no effort).
    pub effort: EffortSpec,
    /// Whether a forced `tool_choice` (`any` or `tool`) is taken; false: refused with 400.
    /// Default: true.
    #[serde(default = "yes")]
    pub forced_tool_choice: bool,
    /// Whether the request may end with an assistant message (a prefill). Default:
    /// `refused-with-thinking`, the documented rule for every model.
    #[serde(default)]
    pub prefill: PrefillRule,
    /// Whether a request may carry `inference_geo`; false: refused with 400. Default: true.
    #[serde(default = "yes")]
    pub inference_geo: bool,
    /// Tool `type` values the model refuses (`computer_20251124`). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_tools: Vec<String>,
    /// Models (besides itself) whose thinking blocks it reads; blocks of any other model are
    /// foreign to it. Catalogue ids once loaded (aliases are resolved). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads_thinking_from: Vec<String>,
    /// Where the model stands: active, legacy, deprecated or retired. Required (`status`).
    pub lifecycle: Lifecycle,
    /// The model's id on other platforms, by platform: `bedrock` (the Messages-API
    /// endpoint), `bedrock-invoke` (legacy InvokeModel ids), `vertex`. Default: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platforms: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

impl ModelSpec {
    /// The id, then the aliases: every name the model answers to.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// Whether the model reads thinking blocks made by `other_id`: true for its own names and
    /// for the models in `reads_thinking_from`. `other_id` is a catalogue id; to pass an alias,
    /// ask [`Catalog::reads_thinking_of`](super::Catalog::reads_thinking_of).
    pub fn reads_thinking_of(&self, other_id: &str) -> bool {
        self.names().any(|name| name == other_id)
            || self.reads_thinking_from.iter().any(|id| id == other_id)
    }

    /// Whether a request with `thinking.type = ty` is taken at `requested` effort (its
    /// `output_config.effort`; when absent, the model's default effort applies).
    pub fn accepts_thinking(&self, ty: ThinkingType, requested: Option<Effort>) -> bool {
        self.thinking.accepts(ty, self.effort.effective(requested))
    }

    /// Whether thinking is on for a request whose `thinking.type` is `requested`.
    pub fn thinking_on(&self, requested: Option<ThinkingType>) -> bool {
        self.thinking.is_on(requested)
    }

    /// Whether a tool of type `tool_type` is refused.
    pub fn refuses_tool(&self, tool_type: &str) -> bool {
        self.refused_tools
            .iter()
            .any(|refused| refused == tool_type)
    }
}

/// `[models.ID.thinking]`: which `thinking.type` values the model takes, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ThinkingSpec {
    /// The types taken. `disabled` is among them unless thinking is always on. Required.
    pub accepted: Vec<ThinkingType>,
    /// Whether thinking is on when the request sends no `thinking`. Default: false.
    #[serde(default)]
    pub default_on: bool,
    /// Whether thinking cannot be turned off (`disabled` refused). Default: false.
    #[serde(default)]
    pub always_on: bool,
    /// Types taken at some effort levels but refused at others, as
    /// `[{ type = "disabled", efforts = ["xhigh", "max"] }]`. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_at_effort: Vec<EffortRefusal>,
    /// The least `budget_tokens` with `enabled` thinking. Default: 1024.
    #[serde(default = "min_budget")]
    pub min_budget_tokens: u32,
}

fn min_budget() -> u32 {
    1024
}

impl ThinkingSpec {
    /// Whether `ty` is taken at `effort`, the effort the request runs at (its own, else the
    /// model's default; see [`EffortSpec::effective`]).
    pub fn accepts(&self, ty: ThinkingType, effort: Option<Effort>) -> bool {
        self.accepted.contains(&ty) && self.refused_at(ty, effort).is_none()
    }

    /// The refusal that rules out `ty` at `effort`, if one does.
    pub fn refused_at(&self, ty: ThinkingType, effort: Option<Effort>) -> Option<&EffortRefusal> {
        let effort = effort?;
        self.refused_at_effort
            .iter()
            .find(|refusal| refusal.thinking == ty && refusal.efforts.contains(&effort))
    }

    /// Whether thinking is on for a request whose `thinking.type` is `requested` (none: the
    /// model's default).
    pub fn is_on(&self, requested: Option<ThinkingType>) -> bool {
        requested.map_or(self.default_on, |ty| ty != ThinkingType::Disabled)
    }
}

/// A thinking type refused at some effort levels (`disabled` at `xhigh` and `max`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EffortRefusal {
    /// The thinking type, as `type` in TOML.
    #[serde(rename = "type")]
    pub thinking: ThinkingType,
    /// The levels at which it is refused.
    pub efforts: Vec<Effort>,
}

/// What to do with `temperature`, `top_p` and `top_k`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplingRule {
    /// `any`: each may be sent.
    #[default]
    Any,
    /// `thinking-off-only`: with thinking on, `temperature` and `top_k` are refused and `top_p`
    /// is taken only within [0.95, 1].
    ThinkingOffOnly,
    /// `refused`: any of them is a 400.
    Refused,
}

/// Whether a request may end with an assistant message (prefill the answer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrefillRule {
    /// `allowed`: always.
    Allowed,
    /// `refused-with-thinking`: only while thinking is off.
    #[default]
    RefusedWithThinking,
    /// `refused`: never.
    Refused,
}

/// `[models.ID.effort]`: the `output_config.effort` levels a model takes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EffortSpec {
    /// The levels taken; empty when the model takes no effort at all. Required.
    pub levels: Vec<Effort>,
    /// The level used when a request names none. Default: none (not documented).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Effort>,
}

impl EffortSpec {
    /// Whether the model takes an effort at all.
    pub fn is_supported(&self) -> bool {
        !self.levels.is_empty()
    }

    /// Whether the model takes `effort`.
    pub fn supports(&self, effort: Effort) -> bool {
        self.levels.contains(&effort)
    }

    /// The strongest level taken that is no stronger than `effort` (the weakest taken when
    /// all are stronger); none when the model takes no effort.
    pub fn clamp(&self, effort: Effort) -> Option<Effort> {
        let weaker = self.levels.iter().filter(|level| **level <= effort).max();
        weaker.or_else(|| self.levels.iter().min()).copied()
    }

    /// The level a request runs at: its own `requested`, else the default.
    pub fn effective(&self, requested: Option<Effort>) -> Option<Effort> {
        requested.or(self.default)
    }
}

/// `[models.ID.lifecycle]`: where a model stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lifecycle {
    /// Active, legacy, deprecated or retired. Required.
    pub status: LifecycleStatus,
    /// The announced retirement date, `YYYY-MM-DD`. Default: none (none announced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retires: Option<String>,
    /// The date before which the model is promised not to retire, `YYYY-MM-DD`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retires_not_before: Option<String>,
}

impl Lifecycle {
    /// Whether the model is retired on `date` (`YYYY-MM-DD`): marked retired, or its
    /// retirement date is `date` or earlier.
    pub fn is_retired_on(&self, date: &str) -> bool {
        self.status == LifecycleStatus::Retired
            || self
                .retires
                .as_deref()
                .is_some_and(|retires| retires <= date)
    }
}

/// A model's lifecycle status, as the models overview and deprecations pages name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleStatus {
    /// Current.
    Active,
    /// Superseded, still served.
    Legacy,
    /// Retirement announced.
    Deprecated,
    /// No longer served: requests get 404.
    Retired,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effort(levels: &[Effort]) -> EffortSpec {
        EffortSpec {
            levels: levels.to_vec(),
            default: None,
        }
    }

    #[test]
    fn clamp_takes_the_strongest_level_at_or_below() {
        use Effort::{High, Low, Max, Medium, Xhigh};
        let max_only = effort(&[Low, Medium, High, Max]);
        assert_eq!(Some(High), max_only.clamp(Xhigh));
        assert_eq!(Some(Max), max_only.clamp(Max));
        assert_eq!(Some(Low), max_only.clamp(Low));
        assert_eq!(Some(High), effort(&[High, Max]).clamp(Low));
        assert_eq!(None, effort(&[]).clamp(Max));
    }

    #[test]
    fn thinking_refused_at_an_effort_is_taken_below_it() {
        let spec = ThinkingSpec {
            accepted: vec![ThinkingType::Adaptive, ThinkingType::Disabled],
            default_on: true,
            always_on: false,
            refused_at_effort: vec![EffortRefusal {
                thinking: ThinkingType::Disabled,
                efforts: vec![Effort::Xhigh, Effort::Max],
            }],
            min_budget_tokens: 1024,
        };
        assert!(spec.accepts(ThinkingType::Disabled, Some(Effort::High)));
        assert!(spec.accepts(ThinkingType::Disabled, None));
        assert!(!spec.accepts(ThinkingType::Disabled, Some(Effort::Max)));
        assert!(spec.accepts(ThinkingType::Adaptive, Some(Effort::Max)));
        assert!(!spec.accepts(ThinkingType::Enabled, None));
        assert!(spec.is_on(None));
        assert!(!spec.is_on(Some(ThinkingType::Disabled)));
    }

    #[test]
    fn retirement_compares_dates() {
        let lifecycle = Lifecycle {
            status: LifecycleStatus::Deprecated,
            retires: Some("2026-11-30".into()),
            retires_not_before: None,
        };
        assert!(!lifecycle.is_retired_on("2026-11-29"));
        assert!(lifecycle.is_retired_on("2026-11-30"));
        assert!(lifecycle.is_retired_on("2027-01-01"));
    }
}
