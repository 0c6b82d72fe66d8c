//! The catalogue itself: models by id and alias, built from `models.toml` or from overrides,
//! every entry validated and every cross-reference (aliases, `reads-thinking-from`) resolved.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde::Deserialize;

use super::BUILTIN_TOML;
use super::error::CatalogError;
use super::overrides::ModelOverride;
use super::spec::ModelSpec;
use super::validate;

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
