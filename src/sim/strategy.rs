//! The clients `breakwater sim` compares: the retry strategies people use today, each a small
//! loop over the [`Upstream`] trait, and breakwater itself, the real [`Runtime`] over the same
//! simulated API.
//!
//! A [`Strategy`] drives one request at a time (many at once, one task each) and returns a
//! [`RequestOutcome`] with every attempt. Every strategy honours the scenario's deadline: a
//! request not answered by then has failed, at the deadline. Jitter is seeded per request,
//! so a run does not depend on the order in which tasks happen to draw.
//!
//! [`Upstream`]: crate::engine::Upstream

mod baseline;
mod cooldown;
mod name;
mod trip;

use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::scenario::SimScenario;
use super::upstream::SimUpstream;
use crate::api::{MessagesRequest, WireRequest};
use crate::config::Config;
use crate::engine::fleet::Fleet;
use crate::engine::{RequestOptions, Target};
use crate::runtime::{DynUpstream, Runtime, RuntimeError};

pub use cooldown::CooldownConfig;
pub use name::{StrategyName, UnknownStrategy};
pub use trip::AttemptOutcome;

use trip::Trip;

/// How one request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestOutcome {
    /// When it arrived, time since the simulation's start.
    pub arrived: Duration,
    /// From arrival to answer or failure; never more than the deadline.
    pub latency: Duration,
    /// The model that answered, or `None` if the request failed.
    pub answered_by: Option<String>,
    /// Every attempt made, in order.
    pub attempts: Vec<AttemptOutcome>,
}

impl RequestOutcome {
    /// Whether the request was answered by its deadline.
    pub fn succeeded(&self) -> bool {
        self.answered_by.is_some()
    }
}

/// A strategy ready to drive requests against one run's simulated API.
pub struct Strategy {
    name: StrategyName,
    upstream: Arc<SimUpstream>,
    chain: Vec<Target>,
    deadline: Duration,
    seed: u64,
    request: WireRequest,
    kind: Kind,
}

enum Kind {
    Loop,
    Router(cooldown::CooldownRouter),
    Runtime(Runtime),
}

impl Strategy {
    /// Prepares `name` for `scenario` against `upstream`; for `breakwater`, starts a
    /// [`Runtime`] over it serving the scenario's chain, with the policies of `config` and
    /// the limits it gives the scenario's models when given (else the defaults), seeded by
    /// the scenario.
    ///
    /// # Errors
    /// [`RuntimeError`] if the runtime does not start.
    pub async fn start(
        name: StrategyName,
        scenario: &SimScenario,
        upstream: Arc<SimUpstream>,
        config: Option<&Config>,
    ) -> Result<Self, RuntimeError> {
        let chain: Vec<Target> = scenario
            .chain
            .iter()
            .map(|m| Target::new(m.as_str()))
            .collect();
        let kind = match name {
            StrategyName::CooldownRouter => Kind::Router(cooldown::CooldownRouter::new(
                chain.clone(),
                CooldownConfig::default(),
            )),
            StrategyName::Breakwater => {
                Kind::Runtime(start_runtime(scenario, &upstream, config, 0, None).await?)
            }
            _ => Kind::Loop,
        };
        Ok(Self::new(name, scenario, upstream, chain, kind))
    }

    fn new(
        name: StrategyName,
        scenario: &SimScenario,
        upstream: Arc<SimUpstream>,
        chain: Vec<Target>,
        kind: Kind,
    ) -> Self {
        let primary = scenario.chain.first().cloned().unwrap_or_default();
        Self {
            name,
            upstream,
            chain,
            deadline: scenario.deadline,
            seed: scenario.seed,
            request: MessagesRequest::new(primary, 256)
                .with_user("Say hello in one sentence.")
                .into(),
            kind,
        }
    }

    /// Replica number `replica` of a fleet of breakwater runtimes over one `upstream`: the
    /// `breakwater` strategy as [`Self::start`] starts it, seeded apart from the other
    /// replicas (replica 0 draws as the lone strategy does), and joined to `fleet` if given.
    ///
    /// # Errors
    /// [`RuntimeError`] if the runtime does not start (a bad fleet setting among them).
    pub async fn replica(
        scenario: &SimScenario,
        upstream: Arc<SimUpstream>,
        config: Option<&Config>,
        replica: u64,
        fleet: Option<Fleet>,
    ) -> Result<Self, RuntimeError> {
        let runtime = start_runtime(scenario, &upstream, config, replica, fleet).await?;
        let chain = scenario.chain.iter().map(|m| Target::new(m.as_str()));
        let kind = Kind::Runtime(runtime);
        Ok(Self::new(
            StrategyName::Breakwater,
            scenario,
            upstream,
            chain.collect(),
            kind,
        ))
    }

    /// The breakwater runtime, if this strategy has one.
    pub fn runtime(&self) -> Option<&Runtime> {
        match &self.kind {
            Kind::Runtime(runtime) => Some(runtime),
            _ => None,
        }
    }

    /// The strategy's name.
    pub fn name(&self) -> StrategyName {
        self.name
    }

    /// Drives request number `index`, which arrives now (scheduled at `arrived` since the
    /// start: the clock ticks in milliseconds, the arrivals do not), to its answer or its
    /// deadline.
    pub async fn drive(&self, index: u64, arrived: Duration) -> RequestOutcome {
        let mut attempts = Vec::new();
        let served = tokio::time::timeout(self.deadline, self.serve(index, &mut attempts)).await;
        let latency = self.upstream.elapsed().saturating_sub(arrived);
        RequestOutcome {
            arrived,
            latency: latency.min(self.deadline),
            answered_by: served.ok().flatten(),
            attempts,
        }
    }

    /// The runtime's events from now on, if this strategy has one.
    pub fn events(&self) -> Option<tokio::sync::broadcast::Receiver<breakwater_actors::Event>> {
        match &self.kind {
            Kind::Runtime(runtime) => Some(runtime.engine().subscribe()),
            _ => None,
        }
    }

    /// Stops the runtime, if this strategy has one.
    pub async fn shutdown(&self) {
        if let Kind::Runtime(runtime) = &self.kind {
            runtime.shutdown(Duration::from_secs(1)).await;
        }
    }

    /// Serves the request; the answering model, or `None`.
    async fn serve(&self, index: u64, log: &mut Vec<AttemptOutcome>) -> Option<String> {
        if let Kind::Runtime(runtime) = &self.kind {
            return self.run_runtime(runtime, log).await;
        }
        // Per-request jitter, so the draws do not depend on the order tasks run in.
        let mut rng =
            SmallRng::seed_from_u64(self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut trip = Trip {
            upstream: &self.upstream,
            request: &self.request,
            log,
        };
        let chain = self.chain.as_slice();
        let primary = &chain[..chain.len().min(1)];
        match (&self.kind, self.name) {
            (Kind::Router(router), _) => router.serve(&mut trip, &mut rng).await,
            (Kind::Loop, StrategyName::TutorialLoop) => {
                baseline::tutorial(&mut trip, primary, &mut rng).await
            }
            (Kind::Loop, StrategyName::SdkDefault) => {
                baseline::sdk(&mut trip, primary, &mut rng).await
            }
            (Kind::Loop, StrategyName::SdkFallback) => {
                baseline::sdk(&mut trip, chain, &mut rng).await
            }
            _ => baseline::once(&mut trip, primary).await,
        }
    }

    async fn run_runtime(
        &self,
        runtime: &Runtime,
        log: &mut Vec<AttemptOutcome>,
    ) -> Option<String> {
        let arrived = self.upstream.elapsed();
        let options = RequestOptions::default().with_timeout(self.deadline);
        let (answered_by, attempts) = match runtime.send_wire(self.request.clone(), options).await {
            Ok(answer) => (Some(answer.target.model().to_owned()), answer.attempts),
            Err(error) => (None, error.attempts().to_vec()),
        };
        log.extend(attempts.into_iter().map(|a| AttemptOutcome {
            at: arrived + a.ended_after,
            model: a.target.model().to_owned(),
            status: a.status.or(a.failure.is_none().then_some(200)),
            class: a.failure,
            probe: a.probe,
        }));
        answered_by
    }
}

/// The runtime over the simulated API. The scenario's chain and models are the targets;
/// `file` contributes its policies and the limits of the models it shares with the scenario.
/// The scenario's seed wins over the file's, so a sim's seed fixes every draw; replica `n`
/// of a fleet mixes `n` into it (0 leaves it as is), so replicas do not draw in lockstep.
async fn start_runtime(
    scenario: &SimScenario,
    upstream: &Arc<SimUpstream>,
    file: Option<&Config>,
    replica: u64,
    fleet: Option<Fleet>,
) -> Result<Runtime, RuntimeError> {
    let mut config = Config::for_chain(&scenario.chain);
    if let Some(file) = file {
        config = config.with_policies_of(file);
    }
    config.seed = Some(scenario.seed ^ replica.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let upstream: DynUpstream = upstream.clone();
    let mut builder = Runtime::builder().config(config).upstream(upstream);
    if let Some(fleet) = fleet {
        builder = builder.fleet(fleet);
    }
    builder.start().await
}
