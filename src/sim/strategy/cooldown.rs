//! A router in the style of LiteLLM's: each model of the chain gets a few retries, then the
//! request falls back to the next; a model that fails `allowed_fails` times within a minute
//! is put in a fixed cooldown and skipped until it ends. There is no half-open probing: when
//! the cooldown ends, all traffic returns to the model at once, healthy or not.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::SmallRng;

use super::baseline::{SDK_RETRIES, sdk_delay};
use super::trip::Trip;
use crate::engine::{Class, Target};

/// The router's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CooldownConfig {
    /// Failures within `window` that put a model in cooldown. Default: 3
    pub allowed_fails: usize,
    /// The window failures are counted over. Default: 60s
    pub window: Duration,
    /// How long a model is skipped once in cooldown. Default: 5s (LiteLLM's
    /// `DEFAULT_COOLDOWN_TIME_SECONDS`)
    pub cooldown: Duration,
    /// Retries on one model before falling back. Default: 2
    pub retries: u32,
}

impl Default for CooldownConfig {
    fn default() -> Self {
        Self {
            allowed_fails: 3,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(5),
            retries: SDK_RETRIES,
        }
    }
}

#[derive(Default)]
struct Health {
    failures: VecDeque<Duration>,
    cooling_until: Option<Duration>,
}

/// The router's shared state: one health record per model.
pub(super) struct CooldownRouter {
    chain: Vec<Target>,
    config: CooldownConfig,
    health: Mutex<HashMap<String, Health>>,
}

impl CooldownRouter {
    pub(super) fn new(chain: Vec<Target>, config: CooldownConfig) -> Self {
        Self {
            chain,
            config,
            health: Mutex::new(HashMap::new()),
        }
    }

    /// Serves one request down the chain; the answering model, or `None`.
    pub(super) async fn serve(&self, trip: &mut Trip<'_>, rng: &mut SmallRng) -> Option<String> {
        for target in &self.chain {
            let mut retries = 0;
            while !self.cooling(target, trip.upstream.elapsed()) {
                match trip.attempt(target).await {
                    Ok(()) => return Some(target.model().to_owned()),
                    Err(failure) if failure.class() == Class::Invalid => return None,
                    Err(failure) => {
                        self.failed(target, trip.upstream.elapsed());
                        if retries >= self.config.retries {
                            break;
                        }
                        tokio::time::sleep(sdk_delay(&failure, retries, rng)).await;
                        retries += 1;
                    }
                }
            }
        }
        None
    }

    fn cooling(&self, target: &Target, now: Duration) -> bool {
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        health
            .get(target.model())
            .and_then(|h| h.cooling_until)
            .is_some_and(|until| now < until)
    }

    fn failed(&self, target: &Target, now: Duration) {
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let health = health.entry(target.model().to_owned()).or_default();
        health.failures.push_back(now);
        while health
            .failures
            .front()
            .is_some_and(|&at| now.saturating_sub(at) > self.config.window)
        {
            health.failures.pop_front();
        }
        if health.failures.len() >= self.config.allowed_fails {
            health.cooling_until = Some(now + self.config.cooldown);
            health.failures.clear();
        }
    }
}
