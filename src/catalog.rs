//! The model catalogue: per Claude model, what makes a request valid for it and not for
//! another (output ceiling, thinking types, sampling, effort, forced tool choice, prefill,
//! `inference_geo`, refused tools, whose thinking blocks it reads) and its lifecycle.
//!
//! The facts are data, not code: `models.toml` at the repository root, compiled in as the
//! built-in catalogue ([`Catalog::builtin`]) and corrected per deployment by
//! `[catalog.models.ID]` in `breakwater.toml` ([`Catalog::with_overrides`]). A model the
//! catalogue does not know is not guessed at: [`Catalog::get`] answers `None`. The mock server
//! enforces the catalogue; a fallback adapts a request to the next model by it.

use serde::{Deserialize, Serialize};

mod error;
mod learned;
mod overrides;
mod spec;
mod table;
mod validate;
mod wire;

pub use error::CatalogError;
pub use learned::ModelInfo;
pub use overrides::{
    CatalogConfig, EffortOverride, LifecycleOverride, ModelOverride, ThinkingOverride,
};
pub use spec::{
    EffortRefusal, EffortSpec, Lifecycle, LifecycleStatus, ModelSpec, PrefillRule, SamplingRule,
    ThinkingSpec,
};
pub use table::Catalog;
pub use wire::{Effort, ThinkingType, UnknownName};

/// The built-in catalogue's text: `models.toml`.
pub const BUILTIN_TOML: &str = include_str!("../models.toml");

/// Whether a request that moves to another model of its chain is first adapted to that
/// model's rules (the top-level `adapt` key and `[chain-adapt]` of `breakwater.toml`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdaptMode {
    /// `"adapt"`: rewrite what the next model would refuse.
    #[default]
    Adapt,
    /// `"skip"`: send the request as it came.
    Skip,
}

impl AdaptMode {
    /// The name in `breakwater.toml`: `"adapt"` or `"skip"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdaptMode::Adapt => "adapt",
            AdaptMode::Skip => "skip",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const ONE: &str = r#"
        [models.claude-x]
        aliases = ["claude-x-latest"]
        max-output-tokens = 8000
        context-window = 2000
        sampling = "any"
        thinking = { accepted = ["enabled", "disabled"] }
        effort = { levels = [] }
        lifecycle = { status = "active" }
    "#;

    fn overrides(text: &str) -> BTreeMap<String, ModelOverride> {
        let config: CatalogConfig = toml::from_str(text).expect("overrides parse");
        config.models
    }

    fn invalid_field(result: Result<Catalog, CatalogError>) -> String {
        let error = result.expect_err("refused");
        error.field().expect("an Invalid error").to_owned()
    }

    #[test]
    fn builtin_parses_and_validates() {
        let catalog = Catalog::from_toml(BUILTIN_TOML).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(19, catalog.ids().count());
        assert_eq!(*Catalog::builtin(), catalog);
    }

    #[test]
    fn aliases_resolve_to_the_id() {
        let catalog = Catalog::builtin();
        let by_alias = catalog.get("claude-haiku-4-5").expect("alias");
        assert_eq!("claude-haiku-4-5-20251001", by_alias.id);
        assert_eq!(Some(by_alias), catalog.get("claude-haiku-4-5-20251001"));
        assert_eq!(None, catalog.get("claude-a"));
    }

    #[test]
    fn defaults_fill_optional_keys() {
        let catalog = Catalog::from_toml(ONE).unwrap();
        let spec = catalog.get("claude-x-latest").expect("by alias");
        assert!(spec.forced_tool_choice && spec.inference_geo);
        assert_eq!(PrefillRule::RefusedWithThinking, spec.prefill);
        assert_eq!(1024, spec.thinking.min_budget_tokens);
        assert!(!spec.thinking.default_on);
    }

    #[test]
    fn errors_name_the_model_and_key() {
        let zero = ONE.replace("max-output-tokens = 8000", "max-output-tokens = 0");
        let error = Catalog::from_toml(&zero).unwrap_err();
        assert_eq!(
            "invalid models.claude-x.max-output-tokens: must be at least 1",
            error.to_string()
        );
        let always = ONE.replace("[\"enabled\", \"disabled\"]", "[\"enabled\"]");
        let field = invalid_field(Catalog::from_toml(&always));
        assert_eq!("models.claude-x.thinking.always-on", field);
        let missing = ONE.replace("context-window = 2000", "");
        let message = Catalog::from_toml(&missing).unwrap_err().to_string();
        assert!(
            message.contains("[models.claude-x]") && message.contains("context-window"),
            "{message}"
        );
    }

    #[test]
    fn names_across_entries_are_checked() {
        let second = ONE
            .replace("claude-x-latest", "claude-x")
            .replace("models.claude-x]", "models.claude-y]");
        let clash = format!("{ONE}{second}");
        let field = invalid_field(Catalog::from_toml(&clash));
        assert_eq!("models.claude-y.aliases[0]", field);
        let unknown = ONE.replace("sampling", "reads-thinking-from = [\"claude-q\"]\nsampling");
        let field = invalid_field(Catalog::from_toml(&unknown));
        assert_eq!("models.claude-x.reads-thinking-from[0]", field);
    }

    #[test]
    fn reads_thinking_from_is_kept_as_ids() {
        let catalog = Catalog::builtin();
        let opus = catalog.get("claude-opus-5-5").expect("known");
        assert!(opus.reads_thinking_of("claude-haiku-4-5-20251001"));
        assert!(opus.reads_thinking_of("claude-opus-5-5"));
        assert!(!opus.reads_thinking_of("claude-fable-5-1"));
        assert!(catalog.reads_thinking_of("claude-opus-5-5", "claude-haiku-4-5"));
        assert!(catalog.reads_thinking_of("claude-haiku-4-5", "claude-haiku-4-5-20251001"));
        assert!(!catalog.reads_thinking_of("claude-a", "claude-b"));
        assert!(catalog.reads_thinking_of("claude-a", "claude-a"));
    }

    #[test]
    fn overrides_change_only_the_keys_given() {
        let builtin = Catalog::builtin();
        let text = "[models.claude-haiku-4-5]\nmax-output-tokens = 32000\n\
                    [models.claude-haiku-4-5.thinking]\nmin-budget-tokens = 2048\n\
                    [models.claude-haiku-4-5.platforms]\nbedrock-invoke = \"x\"\n";
        let catalog = builtin.with_overrides(&overrides(text)).unwrap();
        let haiku = catalog.get("claude-haiku-4-5").expect("known");
        let before = builtin.get("claude-haiku-4-5").expect("known");
        assert_eq!(32000, haiku.max_output_tokens);
        assert_eq!(2048, haiku.thinking.min_budget_tokens);
        assert_eq!(before.thinking.accepted, haiku.thinking.accepted);
        assert_eq!(3, haiku.platforms.len());
        assert_eq!(before.platforms["vertex"], haiku.platforms["vertex"]);
    }

    #[test]
    fn a_new_model_needs_the_required_keys() {
        let builtin = Catalog::builtin();
        let partial = "[models.claude-new]\nmax-output-tokens = 8000\ncontext-window = 100000\n";
        let field = invalid_field(builtin.with_overrides(&overrides(partial)));
        assert_eq!("models.claude-new.thinking.accepted", field);
        let whole = format!(
            "{partial}sampling = \"refused\"\nreads-thinking-from = [\"claude-opus-4-5\"]\n\
             thinking = {{ accepted = [\"adaptive\", \"disabled\"] }}\n\
             effort = {{ levels = [\"high\"], default = \"high\" }}\n\
             lifecycle = {{ status = \"active\" }}\n"
        );
        let catalog = builtin.with_overrides(&overrides(&whole)).unwrap();
        let new = catalog.get("claude-new").expect("added");
        assert_eq!(vec!["claude-opus-4-5-20251101"], new.reads_thinking_from);
        assert_eq!(20, catalog.ids().count());
    }

    #[test]
    fn override_errors_use_the_name_given() {
        let text = "[models.claude-haiku-4-5.effort]\ndefault = \"max\"\n";
        let field = invalid_field(Catalog::builtin().with_overrides(&overrides(text)));
        assert_eq!("models.claude-haiku-4-5.effort.default", field);
    }

    #[test]
    fn new_levels_drop_a_default_they_do_not_hold() {
        let text = "[models.claude-opus-5-5.effort]\nlevels = [\"low\", \"high\"]\n";
        let catalog = Catalog::builtin().with_overrides(&overrides(text)).unwrap();
        let opus = catalog.get("claude-opus-5-5").expect("known");
        assert_eq!(None, opus.effort.default);
        assert_eq!(Some(Effort::High), opus.effort.clamp(Effort::Max));
    }
}
