//! The model catalogue: per Claude model, what makes a request valid for it and not for
//! another (output ceiling, thinking types, sampling, effort, forced tool choice, prefill,
//! `inference_geo`, refused tools, whose thinking blocks it reads) and its lifecycle.
//!
//! The facts are data, not code: `models.toml` at the repository root, compiled in as the
//! built-in catalogue ([`Catalog::builtin`]) and corrected per deployment by
//! `[catalog.models.ID]` in `breakwater.toml` ([`Catalog::with_overrides`]). A model the
//! catalogue does not know is not guessed at: [`Catalog::get`] answers `None`. The mock server
//! enforces the catalogue; a fallback adapts a request to the next model by it.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

mod error;
mod learned;
mod overrides;
mod spec;
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

/// Models by id, and their aliases. Cheap to share: entries are behind `Arc`s.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    models: BTreeMap<String, Arc<ModelSpec>>,
    /// Alias -> id.
    aliases: BTreeMap<String, String>,
}

/// The shape of `models.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    models: BTreeMap<String, ModelSpec>,
}

impl Catalog {
    /// The built-in catalogue, parsed from `models.toml` once.
    ///
    /// # Panics
    ///
    /// Never: this module's tests parse and validate the built-in catalogue.
    pub fn builtin() -> Arc<Catalog> {
        static BUILTIN: LazyLock<Arc<Catalog>> = LazyLock::new(|| {
            Arc::new(Catalog::from_toml(BUILTIN_TOML).expect("models.toml is valid, see tests"))
        });
        Arc::clone(&BUILTIN)
    }

    /// Parses and validates a catalogue in the `models.toml` format.
    ///
    /// # Errors
    ///
    /// [`CatalogError::Toml`] when the text does not have the format (with line and column),
    /// [`CatalogError::Invalid`] naming `models.ID.KEY` when an entry contradicts itself, an
    /// alias is taken twice, or `reads-thinking-from` names a model not in the catalogue.
    pub fn from_toml(text: &str) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = toml::from_str(text).map_err(CatalogError::Toml)?;
        let specs = file
            .models
            .into_iter()
            .map(|(id, mut spec)| {
                spec.id.clone_from(&id);
                (id, spec)
            })
            .collect();
        Catalog::build(specs, &BTreeMap::new())
    }

    /// This catalogue with `overrides` applied: each entry overrides the keys it gives of the
    /// model it names (by id or alias), or adds a model the catalogue does not know.
    ///
    /// # Errors
    ///
    /// [`CatalogError::Invalid`] naming `models.NAME.KEY` (the name as given): a required key
    /// missing for a new model, or any error [`Catalog::from_toml`] reports for an entry.
    pub fn with_overrides(
        &self,
        overrides: &BTreeMap<String, ModelOverride>,
    ) -> Result<Catalog, CatalogError> {
        let mut specs: BTreeMap<String, ModelSpec> = self
            .models
            .iter()
            .map(|(id, spec)| (id.clone(), ModelSpec::clone(spec)))
            .collect();
        let mut written = BTreeMap::new();
        for (name, model) in overrides {
            if let Some(spec) = self.resolve(name).and_then(|id| specs.get_mut(id)) {
                model.apply(spec);
                written.insert(spec.id.clone(), name.clone());
            } else {
                let spec = model
                    .to_new_spec(name)
                    .map_err(|problem| CatalogError::at(name, problem))?;
                specs.insert(name.clone(), spec);
            }
        }
        Catalog::build(specs, &written)
    }

    /// The built-in catalogue with `overrides` (from `breakwater.toml`) over what the
    /// upstream's `GET /v1/models` said of the models it knows (see [`ModelInfo`]): the
    /// overrides win key by key; models it does not know learn nothing.
    ///
    /// # Errors
    /// As [`Catalog::with_overrides`].
    pub fn with_learned(
        overrides: &BTreeMap<String, ModelOverride>,
        models: &[ModelInfo],
    ) -> Result<Catalog, CatalogError> {
        let builtin = Catalog::builtin();
        let learned = learned::learned(models, &builtin);
        builtin.with_overrides(&learned::under(overrides, learned, &builtin))
    }

    /// The model called `model`, by id or alias; `None` for a model the catalogue does not
    /// know.
    pub fn get(&self, model: &str) -> Option<&ModelSpec> {
        let id = self.resolve(model)?;
        self.models.get(id).map(AsRef::as_ref)
    }

    /// The id of the model called `model` (itself for an id, the model's id for an alias).
    pub fn resolve(&self, model: &str) -> Option<&str> {
        if let Some((id, _)) = self.models.get_key_value(model) {
            return Some(id);
        }
        self.aliases.get(model).map(String::as_str)
    }

    /// Every model id, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// The id of the model whose id on `platform` (a `platforms` key: `bedrock`, `vertex`)
    /// is `platform_id`.
    pub fn by_platform_id(&self, platform: &str, platform_id: &str) -> Option<&str> {
        self.models
            .iter()
            .find(|(_, spec)| spec.platforms.get(platform).map(String::as_str) == Some(platform_id))
            .map(|(id, _)| id.as_str())
    }

    /// Every entry, by id.
    pub fn specs(&self) -> impl Iterator<Item = &ModelSpec> {
        self.models.values().map(AsRef::as_ref)
    }

    /// Whether `target` reads thinking blocks made by `source`, both by id or alias. A target
    /// the catalogue does not know reads only its own blocks.
    pub fn reads_thinking_of(&self, target: &str, source: &str) -> bool {
        let source = self.resolve(source).unwrap_or(source);
        match self.get(target) {
            Some(spec) => spec.reads_thinking_of(source),
            None => target == source,
        }
    }

    /// Checks every entry and the names across them; `written` maps an id to the name an
    /// override gave it, for errors.
    fn build(
        mut specs: BTreeMap<String, ModelSpec>,
        written: &BTreeMap<String, String>,
    ) -> Result<Catalog, CatalogError> {
        let name = |id: &str| written.get(id).map_or(id, String::as_str).to_owned();
        let mut aliases = BTreeMap::new();
        for (id, spec) in &specs {
            validate::validate(spec).map_err(|problem| CatalogError::at(&name(id), problem))?;
            for (index, alias) in spec.aliases.iter().enumerate() {
                let taken = specs.contains_key(alias) || aliases.contains_key(alias);
                if taken {
                    let field = format!("models.{}.aliases[{index}]", name(id));
                    let reason = format!("{alias} already names another model");
                    return Err(CatalogError::invalid(field, reason));
                }
                aliases.insert(alias.clone(), id.clone());
            }
        }
        let ids: Vec<String> = specs.keys().cloned().collect();
        for (id, spec) in &mut specs {
            for (index, source) in spec.reads_thinking_from.iter_mut().enumerate() {
                let canonical = ids.iter().find(|known| *known == source);
                let Some(canonical) = canonical.or_else(|| aliases.get(source.as_str())) else {
                    let field = format!("models.{}.reads-thinking-from[{index}]", name(id));
                    let reason = format!("{source} is not in the catalogue");
                    return Err(CatalogError::invalid(field, reason));
                };
                source.clone_from(canonical);
            }
        }
        let models = specs
            .into_iter()
            .map(|(id, spec)| (id, Arc::new(spec)))
            .collect();
        Ok(Catalog { models, aliases })
    }
}

impl learned::ResolveId for Catalog {
    fn resolve_id(&self, name: &str) -> Option<&str> {
        self.resolve(name)
    }
}

#[cfg(test)]
mod tests {
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
