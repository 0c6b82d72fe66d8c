//! What the upstream's own `GET /v1/models` says about the models the catalogue knows: the
//! `capabilities` of recent API versions (thinking types, effort levels), `max_tokens`,
//! `max_input_tokens` and `lifecycle`, as overrides under the ones `breakwater.toml` gives.
//!
//! Only models the catalogue already knows learn anything: a model it does not know has no
//! rules for the rest (sampling, prefill, signatures), and nothing is guessed.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::overrides::{EffortOverride, LifecycleOverride, ModelOverride, ThinkingOverride};
use super::spec::LifecycleStatus;
use super::wire::{Effort, ThinkingType};

/// One entry of `GET /v1/models`, as far as the catalogue reads it.
#[derive(Debug, Deserialize)]
pub struct ModelInfo {
    id: String,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_input_tokens: Option<u64>,
    #[serde(default)]
    lifecycle: Option<String>,
    #[serde(default)]
    capabilities: Option<Capabilities>,
}

impl ModelInfo {
    /// The model's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Debug, Deserialize)]
struct Capabilities {
    #[serde(default)]
    thinking: Option<Thinking>,
    #[serde(default)]
    effort: Option<Levels>,
}

#[derive(Debug, Deserialize)]
struct Thinking {
    #[serde(default)]
    types: BTreeMap<String, Support>,
}

#[derive(Debug, Deserialize)]
struct Levels {
    supported: bool,
    #[serde(flatten)]
    levels: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Support {
    supported: bool,
}

/// What learning needs of a catalogue: the id a name stands for (the catalogue implements
/// it; taking the trait rather than the catalogue keeps this module below it).
pub(super) trait ResolveId {
    /// The id of the model called `name`, if known.
    fn resolve_id(&self, name: &str) -> Option<&str>;
}

impl<T: ResolveId> ResolveId for std::sync::Arc<T> {
    fn resolve_id(&self, name: &str) -> Option<&str> {
        T::resolve_id(self, name)
    }
}

/// Overrides for every model of `models` that `catalog` knows, keyed by its catalogue id.
pub(super) fn learned(
    models: &[ModelInfo],
    catalog: &impl ResolveId,
) -> BTreeMap<String, ModelOverride> {
    let mut found = BTreeMap::new();
    for model in models {
        let Some(id) = catalog.resolve_id(&model.id) else {
            continue;
        };
        let learned = learn(model);
        if learned != ModelOverride::default() {
            found.insert(id.to_owned(), learned);
        }
    }
    found
}

fn learn(model: &ModelInfo) -> ModelOverride {
    let capabilities = model.capabilities.as_ref();
    let accepted = capabilities
        .and_then(|c| c.thinking.as_ref())
        .map(|thinking| {
            ThinkingType::ALL
                .into_iter()
                .filter(|ty| thinking.types.get(ty.as_str()).is_some_and(|s| s.supported))
                .collect::<Vec<_>>()
        })
        .filter(|accepted| !accepted.is_empty());
    let levels = capabilities.and_then(|c| c.effort.as_ref()).map(|effort| {
        if !effort.supported {
            return Vec::new();
        }
        Effort::ALL
            .into_iter()
            .filter(|level| {
                effort
                    .levels
                    .get(level.as_str())
                    .and_then(|v| v.get("supported"))
                    .and_then(serde_json::Value::as_bool)
                    == Some(true)
            })
            .collect()
    });
    let status = match model.lifecycle.as_deref() {
        Some("active") => Some(LifecycleStatus::Active),
        Some("deprecated") => Some(LifecycleStatus::Deprecated),
        Some("retired") => Some(LifecycleStatus::Retired),
        _ => None,
    };
    ModelOverride {
        max_output_tokens: model.max_tokens,
        context_window: model.max_input_tokens,
        thinking: accepted.map(|accepted| ThinkingOverride {
            accepted: Some(accepted),
            ..ThinkingOverride::default()
        }),
        effort: levels.map(|levels| EffortOverride {
            levels: Some(levels),
            ..EffortOverride::default()
        }),
        lifecycle: status.map(|status| LifecycleOverride {
            status: Some(status),
            ..LifecycleOverride::default()
        }),
        ..ModelOverride::default()
    }
}

/// `user` with what it leaves unset taken from `learned`: what `breakwater.toml` says wins,
/// key by key.
pub(super) fn under(
    user: &BTreeMap<String, ModelOverride>,
    learned: BTreeMap<String, ModelOverride>,
    catalog: &impl ResolveId,
) -> BTreeMap<String, ModelOverride> {
    let mut merged = user.clone();
    for (id, learned) in learned {
        let key = user
            .keys()
            .find(|name| catalog.resolve_id(name) == Some(id.as_str()))
            .cloned()
            .unwrap_or(id);
        let entry = merged.entry(key).or_default();
        fill(entry, learned);
    }
    merged
}

fn fill(user: &mut ModelOverride, learned: ModelOverride) {
    user.max_output_tokens = user.max_output_tokens.or(learned.max_output_tokens);
    user.context_window = user.context_window.or(learned.context_window);
    if let Some(learned) = learned.thinking {
        let thinking = user.thinking.get_or_insert_with(ThinkingOverride::default);
        thinking.accepted = thinking.accepted.take().or(learned.accepted);
    }
    if let Some(learned) = learned.effort {
        let effort = user.effort.get_or_insert_with(EffortOverride::default);
        effort.levels = effort.levels.take().or(learned.levels);
    }
    if let Some(learned) = learned.lifecycle {
        let lifecycle = user
            .lifecycle
            .get_or_insert_with(LifecycleOverride::default);
        lifecycle.status = lifecycle.status.or(learned.status);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Catalog;
    use super::*;
    use serde_json::json;

    fn info(value: serde_json::Value) -> ModelInfo {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn capabilities_of_a_known_model_become_overrides() {
        let catalog = Catalog::builtin();
        let models = [info(json!({
            "id": "claude-haiku-4-5", "max_tokens": 32000, "max_input_tokens": 200_000,
            "lifecycle": "deprecated",
            "capabilities": {
                "thinking": {"supported": true, "types": {
                    "adaptive": {"supported": true}, "enabled": {"supported": true},
                    "disabled": {"supported": true}, "between_tools": {"supported": false}}},
                "effort": {"supported": true, "low": {"supported": true}, "medium": {"supported": false},
                    "high": {"supported": true}, "max": {"supported": false}},
                "batch": {"supported": true}
            }
        }))];
        let learned = learned(&models, &catalog);
        let haiku = &learned["claude-haiku-4-5-20251001"];
        assert_eq!(haiku.max_output_tokens, Some(32000));
        let accepted = haiku.thinking.as_ref().unwrap().accepted.clone().unwrap();
        assert_eq!(
            accepted,
            [
                ThinkingType::Enabled,
                ThinkingType::Adaptive,
                ThinkingType::Disabled
            ]
        );
        assert_eq!(
            haiku.effort.as_ref().unwrap().levels,
            Some(vec![Effort::Low, Effort::High])
        );
        let updated = catalog.with_overrides(&learned).unwrap();
        let spec = updated.get("claude-haiku-4-5").unwrap();
        assert!(spec.thinking.accepts(ThinkingType::Adaptive, None));
        assert_eq!(spec.max_output_tokens, 32000);
    }

    #[test]
    fn unknown_models_and_bare_entries_teach_nothing() {
        let catalog = Catalog::builtin();
        let models = [
            info(json!({"id": "claude-unknown-9", "max_tokens": 1})),
            info(json!({"id": "claude-opus-5-5", "display_name": "Opus"})),
        ];
        assert!(learned(&models, &catalog).is_empty());
    }

    #[test]
    fn what_breakwater_toml_says_wins_key_by_key() {
        let catalog = Catalog::builtin();
        let mut user = BTreeMap::new();
        user.insert(
            "claude-haiku-4-5".to_owned(),
            ModelOverride {
                max_output_tokens: Some(1000),
                ..ModelOverride::default()
            },
        );
        let mut learned = BTreeMap::new();
        learned.insert(
            "claude-haiku-4-5-20251001".to_owned(),
            ModelOverride {
                max_output_tokens: Some(32000),
                context_window: Some(150_000),
                ..ModelOverride::default()
            },
        );
        let merged = under(&user, learned, &catalog);
        assert_eq!(merged.len(), 1, "merged under the user's own name");
        assert_eq!(merged["claude-haiku-4-5"].max_output_tokens, Some(1000));
        assert_eq!(merged["claude-haiku-4-5"].context_window, Some(150_000));
    }
}
