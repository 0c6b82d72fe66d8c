//! [`Gateway`]: what the gateway's handlers share (the runtime, the `[gateway]` settings, the
//! metrics handle and the body-memory budget).

use std::sync::{Arc, OnceLock};

use metrics::Counter;
use metrics_exporter_prometheus::PrometheusHandle;

use super::body::BodyBudget;
use crate::config::GatewayConfig;
use crate::runtime::Runtime;

/// What the gateway's handlers share.
pub struct Gateway {
    pub(super) runtime: Arc<Runtime>,
    pub(super) config: GatewayConfig,
    pub(super) metrics: Option<PrometheusHandle>,
    pub(super) bodies: BodyBudget,
    /// `breakwater_gateway_requests_total` for answers with status 200, whole then streamed,
    /// fetched from the recorder on first use and kept: counting one is then an atomic add,
    /// not a lookup of its labels in the recorder's registry.
    pub(super) answered: [OnceLock<Counter>; 2],
}

impl Gateway {
    /// A gateway over `runtime`, with the `[gateway]` settings of its configuration.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        let config = runtime.config().gateway.clone();
        let bodies = BodyBudget::new(config.body_memory.as_u64(), config.body_memory_wait);
        Self {
            runtime,
            config,
            metrics: None,
            bodies,
            answered: Default::default(),
        }
    }

    /// Serves `GET /metrics` from this Prometheus recorder's handle (without it, the route
    /// answers 404).
    #[must_use]
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// The settings it runs with.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The runtime requests go through.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }
}
