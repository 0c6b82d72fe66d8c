//! The models a running mock server answers, each with its capacity and its counters, and
//! the [`Stats`] snapshot built from them. Models listed in the scenario exist from the
//! start; a `[default-model]` scenario adds any other name on its first request, up to
//! [`MAX_DEFAULT_MODELS`] names, and counts the rest together under [`OVERFLOW_MODEL`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use super::capacity::ModelCapacity;
use super::scenario::Scenario;

/// The most distinct names a `[default-model]` scenario tracks on their own. Names are chosen
/// by clients, so without a bound a client sending random names would grow the registry (and
/// `GET /stats`) without end.
pub const MAX_DEFAULT_MODELS: usize = 1000;

/// The entry that serves and counts every name past [`MAX_DEFAULT_MODELS`], sharing one
/// `[default-model]` capacity.
pub const OVERFLOW_MODEL: &str = "other";

/// What a mock server has seen, per model (also served as JSON at `GET /stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Counters by model name: every model the scenario lists, and any other name a
    /// `[default-model]` scenario has answered (past the first 1000 such names, all under
    /// `"other"`).
    pub models: BTreeMap<String, ModelStats>,
    /// `count_tokens` calls answered.
    #[serde(default)]
    pub count_tokens: u64,
    /// Vertex AI access tokens `POST /token` issued.
    #[serde(default)]
    pub tokens_issued: u64,
}

/// One model's counters. Requests rejected before the model was known (401, an unreadable
/// body's 400, 404) are not counted; one that breaks the model catalogue's rules counts as a
/// 400.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStats {
    /// Requests that named this model.
    pub requests: u64,
    /// Responses by status (`"200"`, `"529"`...); `"dropped"` counts connections a `drop`
    /// fault closed without a response.
    pub by_status: BTreeMap<String, u64>,
    /// Requests holding a slot now.
    pub in_flight: u32,
    /// The most requests that held a slot at once.
    pub max_in_flight: u32,
    /// Requests given a slot while one of the model's brownout windows was active: what it
    /// served of its residual capacity.
    #[serde(default)]
    pub admitted_in_brownout: u64,
}

/// One answered model: its capacity and counters.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) name: String,
    pub(crate) capacity: Arc<ModelCapacity>,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    requests: u64,
    by_status: BTreeMap<String, u64>,
}

impl Model {
    fn new(name: &str, capacity: ModelCapacity) -> Self {
        let counts = Mutex::new(Counts::default());
        Self {
            name: name.to_owned(),
            capacity: Arc::new(capacity),
            counts,
        }
    }

    /// Counts a request that named this model.
    pub(crate) fn count_request(&self) {
        self.counts().requests += 1;
    }

    /// Counts a response (or `"dropped"`) for this model.
    pub(crate) fn count_status(&self, status: &str) {
        *self
            .counts()
            .by_status
            .entry(status.to_owned())
            .or_default() += 1;
    }

    fn snapshot(&self) -> ModelStats {
        let counts = self.counts();
        ModelStats {
            requests: counts.requests,
            by_status: counts.by_status.clone(),
            in_flight: self.capacity.in_flight(),
            max_in_flight: self.capacity.max_in_flight(),
            admitted_in_brownout: self.capacity.admitted_in_brownout(),
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Plain counters cannot be left half-updated, so a poisoned lock is still usable.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The models a server answers, by name.
#[derive(Debug)]
pub(crate) struct Registry {
    scenario: Scenario,
    models: Mutex<BTreeMap<String, Arc<Model>>>,
    /// How many names `[default-model]` has added.
    added: Mutex<usize>,
    /// `count_tokens` calls answered.
    counted: AtomicU64,
}

impl Registry {
    /// A registry holding every model `scenario` lists.
    pub(crate) fn new(scenario: Scenario) -> Self {
        let models = scenario
            .models
            .iter()
            .map(|(name, spec)| {
                (
                    name.clone(),
                    Arc::new(Model::new(name, ModelCapacity::new(spec.clone()))),
                )
            })
            .collect();
        Self {
            scenario,
            models: Mutex::new(models),
            added: Mutex::new(0),
            counted: AtomicU64::new(0),
        }
    }

    /// The scenario being served.
    pub(crate) fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The model called `name`, created from `[default-model]` if need be; `None` means 404.
    /// Past [`MAX_DEFAULT_MODELS`] added names, every new name gets the [`OVERFLOW_MODEL`].
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Model>> {
        let mut models = self.models();
        if let Some(model) = models.get(name) {
            return Some(Arc::clone(model));
        }
        let spec = self.scenario.default_model.as_ref()?;
        let mut added = self.added.lock().unwrap_or_else(PoisonError::into_inner);
        let name = if *added < MAX_DEFAULT_MODELS {
            *added += 1;
            name
        } else {
            OVERFLOW_MODEL
        };
        let model = models
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Model::new(name, ModelCapacity::new(spec.clone()))));
        Some(Arc::clone(model))
    }

    /// A snapshot of every model's counters.
    pub(crate) fn stats(&self) -> Stats {
        let models = self
            .models()
            .iter()
            .map(|(name, model)| (name.clone(), model.snapshot()))
            .collect();
        Stats {
            models,
            count_tokens: self.counted.load(Ordering::Relaxed),
            tokens_issued: 0,
        }
    }

    /// Counts a `count_tokens` call answered.
    pub(crate) fn count_tokens_call(&self) {
        self.counted.fetch_add(1, Ordering::Relaxed);
    }

    fn models(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Model>>> {
        // The map is only ever inserted into whole, so a poisoned lock is still consistent.
        self.models.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::ModelSpec;

    #[test]
    fn default_model_names_past_the_cap_are_counted_under_other() {
        let scenario = Scenario {
            default_model: Some(ModelSpec::default()),
            ..Scenario::default()
        };
        let registry = Registry::new(scenario);
        for i in 0..MAX_DEFAULT_MODELS + 5 {
            registry.get(&format!("model-{i}")).unwrap().count_request();
        }
        registry.get("model-0").unwrap().count_request();
        let stats = registry.stats();
        assert_eq!(MAX_DEFAULT_MODELS + 1, stats.models.len());
        assert_eq!(5, stats.models[OVERFLOW_MODEL].requests);
        assert_eq!(2, stats.models["model-0"].requests);
    }

    #[test]
    fn listed_models_exist_and_others_need_a_default() {
        let mut scenario = Scenario::default();
        scenario.models.insert("a".into(), ModelSpec::default());
        let registry = Registry::new(scenario.clone());
        assert!(registry.get("a").is_some());
        assert!(registry.get("b").is_none());
        assert_eq!(
            vec!["a"],
            registry.stats().models.keys().collect::<Vec<_>>()
        );

        scenario.default_model = Some(ModelSpec::default());
        let registry = Registry::new(scenario);
        let b = registry.get("b").expect("default-model answers any name");
        b.count_request();
        b.count_status("200");
        let stats = registry.stats();
        assert_eq!(1, stats.models["b"].requests);
        assert_eq!(Some(&1), stats.models["b"].by_status.get("200"));
    }
}
