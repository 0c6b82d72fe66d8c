//! `[catalog.models.ID]` in `breakwater.toml`: per-key overrides of a model the built-in
//! catalogue knows, or the whole entry of one it does not. Same keys as `models.toml`, every
//! one optional; a model new to the catalogue must give the keys marked required there.
//!
//! Why overrides, not only a file: the catalogue is a snapshot and models change every few
//! months; an operator must be able to correct one fact today without a release.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spec::{
    EffortRefusal, EffortSpec, Lifecycle, LifecycleStatus, ModelSpec, PrefillRule, SamplingRule,
    ThinkingSpec,
};
use super::validate::Problem;
use super::wire::{Effort, ThinkingType};

/// `[catalog]`: overrides of the built-in model catalogue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CatalogConfig {
    /// `[catalog.models.ID]`, by model id or alias. Default: none (the built-in catalogue as
    /// it is).
    pub models: BTreeMap<String, ModelOverride>,
    /// Whether a runtime with an HTTP upstream reads `GET /v1/models` at start and takes what
    /// its `capabilities` say of the models the catalogue knows, under `models`, which win
    /// key by key. Default: true.
    pub refresh: bool,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            models: BTreeMap::new(),
            refresh: true,
        }
    }
}

/// One model's overrides: each key given replaces the built-in value (`platforms` entries are
/// added or replaced one by one). For a new model, `max-output-tokens`, `context-window`,
/// `thinking.accepted`, `sampling`, `effort.levels` and `lifecycle.status` are required.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelOverride {
    /// `aliases`: see [`ModelSpec::aliases`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    /// `max-output-tokens`: see [`ModelSpec::max_output_tokens`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// `context-window`: see [`ModelSpec::context_window`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// `thinking`: see [`ModelSpec::thinking`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkingOverride>,
    /// `sampling`: see [`ModelSpec::sampling`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<SamplingRule>,
    /// `temperature-xor-top-p`: see [`ModelSpec::temperature_xor_top_p`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature_xor_top_p: Option<bool>,
    /// `effort`: see [`ModelSpec::effort`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<EffortOverride>,
    /// `forced-tool-choice`: see [`ModelSpec::forced_tool_choice`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_tool_choice: Option<bool>,
    /// `prefill`: see [`ModelSpec::prefill`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill: Option<PrefillRule>,
    /// `inference-geo`: see [`ModelSpec::inference_geo`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_geo: Option<bool>,
    /// `refused-tools`: see [`ModelSpec::refused_tools`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_tools: Option<Vec<String>>,
    /// `reads-thinking-from`: see [`ModelSpec::reads_thinking_from`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads_thinking_from: Option<Vec<String>>,
    /// `lifecycle`: see [`ModelSpec::lifecycle`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleOverride>,
    /// `platforms`: see [`ModelSpec::platforms`].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub platforms: BTreeMap<String, String>,
}

/// `[catalog.models.ID.thinking]`: the [`ThinkingSpec`] keys, each optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ThinkingOverride {
    /// `accepted`: see [`ThinkingSpec::accepted`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Vec<ThinkingType>>,
    /// `default-on`: see [`ThinkingSpec::default_on`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_on: Option<bool>,
    /// `always-on`: see [`ThinkingSpec::always_on`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub always_on: Option<bool>,
    /// `refused-at-effort`: see [`ThinkingSpec::refused_at_effort`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_at_effort: Option<Vec<EffortRefusal>>,
    /// `min-budget-tokens`: see [`ThinkingSpec::min_budget_tokens`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_budget_tokens: Option<u32>,
}

/// `[catalog.models.ID.effort]`: the [`EffortSpec`] keys, each optional. New `levels` without
/// a `default` keep the old default only if the new levels hold it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EffortOverride {
    /// `levels`: see [`EffortSpec::levels`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub levels: Option<Vec<Effort>>,
    /// `default`: see [`EffortSpec::default`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Effort>,
}

/// `[catalog.models.ID.lifecycle]`: the [`Lifecycle`] keys, each optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LifecycleOverride {
    /// `status`: see [`Lifecycle::status`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<LifecycleStatus>,
    /// `retires`: see [`Lifecycle::retires`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retires: Option<String>,
    /// `retires-not-before`: see [`Lifecycle::retires_not_before`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retires_not_before: Option<String>,
}

impl ModelOverride {
    /// Writes every key given over `spec`.
    pub(super) fn apply(&self, spec: &mut ModelSpec) {
        set(&mut spec.aliases, self.aliases.as_ref());
        set(&mut spec.max_output_tokens, self.max_output_tokens.as_ref());
        set(&mut spec.context_window, self.context_window.as_ref());
        if let Some(thinking) = &self.thinking {
            thinking.apply(&mut spec.thinking);
        }
        set(&mut spec.sampling, self.sampling.as_ref());
        set(
            &mut spec.temperature_xor_top_p,
            self.temperature_xor_top_p.as_ref(),
        );
        if let Some(effort) = &self.effort {
            effort.apply(&mut spec.effort);
        }
        set(
            &mut spec.forced_tool_choice,
            self.forced_tool_choice.as_ref(),
        );
        set(&mut spec.prefill, self.prefill.as_ref());
        set(&mut spec.inference_geo, self.inference_geo.as_ref());
        set(&mut spec.refused_tools, self.refused_tools.as_ref());
        set(
            &mut spec.reads_thinking_from,
            self.reads_thinking_from.as_ref(),
        );
        if let Some(lifecycle) = &self.lifecycle {
            let target = &mut spec.lifecycle;
            set(&mut target.status, lifecycle.status.as_ref());
            set_some(&mut target.retires, lifecycle.retires.as_ref());
            set_some(
                &mut target.retires_not_before,
                lifecycle.retires_not_before.as_ref(),
            );
        }
        spec.platforms.extend(self.platforms.clone());
    }

    /// The entry of a model the catalogue does not know, named `id`: the required keys must
    /// be given, the others take the defaults `models.toml` documents.
    pub(super) fn to_new_spec(&self, id: &str) -> Result<ModelSpec, Problem> {
        let required = |key: &str| {
            let reason = "required for a model the built-in catalogue does not know";
            (key.to_owned(), reason.to_owned())
        };
        let thinking = self.thinking.as_ref();
        let accepted = thinking.and_then(|t| t.accepted.clone());
        let levels = self.effort.as_ref().and_then(|e| e.levels.clone());
        let status = self.lifecycle.as_ref().and_then(|l| l.status);
        let mut spec = ModelSpec {
            id: id.to_owned(),
            aliases: Vec::new(),
            max_output_tokens: self
                .max_output_tokens
                .ok_or_else(|| required("max-output-tokens"))?,
            context_window: self
                .context_window
                .ok_or_else(|| required("context-window"))?,
            thinking: ThinkingSpec {
                accepted: accepted.ok_or_else(|| required("thinking.accepted"))?,
                default_on: false,
                always_on: false,
                refused_at_effort: Vec::new(),
                min_budget_tokens: 1024,
            },
            sampling: self.sampling.ok_or_else(|| required("sampling"))?,
            temperature_xor_top_p: false,
            effort: EffortSpec {
                levels: levels.ok_or_else(|| required("effort.levels"))?,
                default: None,
            },
            forced_tool_choice: true,
            prefill: PrefillRule::default(),
            inference_geo: true,
            refused_tools: Vec::new(),
            reads_thinking_from: Vec::new(),
            lifecycle: Lifecycle {
                status: status.ok_or_else(|| required("lifecycle.status"))?,
                retires: None,
                retires_not_before: None,
            },
            platforms: BTreeMap::new(),
        };
        self.apply(&mut spec);
        Ok(spec)
    }
}

impl ThinkingOverride {
    fn apply(&self, spec: &mut ThinkingSpec) {
        set(&mut spec.accepted, self.accepted.as_ref());
        set(&mut spec.default_on, self.default_on.as_ref());
        set(&mut spec.always_on, self.always_on.as_ref());
        set(&mut spec.refused_at_effort, self.refused_at_effort.as_ref());
        set(&mut spec.min_budget_tokens, self.min_budget_tokens.as_ref());
    }
}

impl EffortOverride {
    fn apply(&self, spec: &mut EffortSpec) {
        if let Some(levels) = &self.levels {
            spec.levels.clone_from(levels);
            spec.default = spec.default.filter(|default| levels.contains(default));
        }
        set_some(&mut spec.default, self.default.as_ref());
    }
}

fn set<T: Clone>(target: &mut T, value: Option<&T>) {
    if let Some(value) = value {
        target.clone_from(value);
    }
}

fn set_some<T: Clone>(target: &mut Option<T>, value: Option<&T>) {
    if let Some(value) = value {
        *target = Some(value.clone());
    }
}
