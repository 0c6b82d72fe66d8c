//! [`App`]: the state every request of one mock server shares (the scenario's models, the
//! catalogue's rules, the seeded RNG, the request counter), and [`has_key`], the key check
//! every route makes.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, header};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use super::registry::{Registry, Stats};
use super::scenario::Scenario;
use super::tokens::IssuedTokens;
use crate::catalog::Catalog;

/// State shared by every request of one server.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) registry: Registry,
    /// The rules requests must keep; none when the scenario turns enforcement off.
    pub(super) catalog: Option<Arc<Catalog>>,
    /// The whole catalogue, for the models' platform ids, enforced or not.
    ids: Arc<Catalog>,
    rng: Mutex<SmallRng>,
    started: Instant,
    pub(super) requests: AtomicU64,
    /// The Vertex AI tokens `POST /token` issued.
    pub(crate) vertex_tokens: IssuedTokens,
}

impl App {
    pub(crate) fn new(scenario: Scenario, catalog: Arc<Catalog>) -> Self {
        let rng = Mutex::new(SmallRng::seed_from_u64(scenario.seed));
        let ids = Arc::clone(&catalog);
        let catalog = scenario.enforce_catalog.then_some(catalog);
        let registry = Registry::new(scenario);
        Self {
            registry,
            catalog,
            ids,
            rng,
            started: Instant::now(),
            requests: AtomicU64::new(0),
            vertex_tokens: IssuedTokens::default(),
        }
    }

    /// The model whose id on `platform` (`bedrock`, `vertex`) is `platform_id`, by the name
    /// the scenario gives it (a scenario may list a model by an alias), else by its API id.
    pub(super) fn platform_model(&self, platform: &str, platform_id: &str) -> Option<&str> {
        let on_platform = |name: &str| {
            self.ids
                .get(name)
                .and_then(|spec| spec.platforms.get(platform))
                .is_some_and(|id| id == platform_id)
        };
        let scenario = self.registry.scenario();
        scenario
            .models
            .keys()
            .map(String::as_str)
            .find(|name| on_platform(name))
            .or_else(|| self.ids.by_platform_id(platform, platform_id))
    }

    /// The server's counters.
    pub(super) fn stats(&self) -> Stats {
        Stats {
            tokens_issued: self.vertex_tokens.count(),
            ..self.registry.stats()
        }
    }

    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub(super) fn rng(&self) -> MutexGuard<'_, SmallRng> {
        // An RNG cannot be left inconsistent by a panic, so a poisoned lock is still usable.
        self.rng.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `headers` carry a key: a non-empty `x-api-key`, or `Authorization: Bearer`.
pub(super) fn has_key(headers: &HeaderMap) -> bool {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let api_key = value(HeaderName::from_static("x-api-key")).is_some_and(|key| !key.is_empty());
    let bearer = value(header::AUTHORIZATION)
        .and_then(|auth| auth.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()
        });
    api_key || bearer
}
