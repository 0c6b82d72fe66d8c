//! [`Engine`]: the actor tree behind one handle. Start it with an [`Upstream`] and an
//! [`EngineConfig`]; `send` and `stream` answer every request by its deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, RpcReplyPort};
use tokio::sync::broadcast;

use crate::board::{Board, BreakerStatus, Event};
use crate::breaker::BreakerMsg;
use crate::caller::Waiting;
use crate::config::EngineConfig;
use crate::directory::Directory;
use crate::dispatcher::{DispatcherMsg, Signal, Submission};
use crate::fleet::{Fleet, FleetReport, FleetStatus};
use crate::job::{Outstanding, ReplyPort};
use crate::policy::PolicyError;
use crate::request::{Answer, Error, RequestOptions};
use crate::supervisor::{SupervisorActor, SupervisorArgs, SupervisorMsg};
use crate::upstream::{Committed, Target, Upstream};

/// How long after a request's deadline the handle stops waiting for the engine's own answer.
///
/// The engine answers by the deadline itself; this is the last resort for an engine that
/// failed, so that no caller ever waits much past its deadline.
const LAST_RESORT: Duration = Duration::from_millis(50);

/// How long adding a target may take: spawning its two actors takes microseconds, so a
/// supervisor that has not answered by then is stuck, and the caller is told so rather
/// than left waiting.
const ADD_TIMEOUT: Duration = Duration::from_secs(5);

/// Numbers engines, so that their actors' registered names are unique in the process.
static NEXT_ENGINE: AtomicU64 = AtomicU64::new(1);

/// Why the engine did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] PolicyError),
    /// The actors could not be spawned.
    #[error("cannot spawn the engine's actors: {0}")]
    Spawn(String),
}

/// A running engine.
pub struct Engine<U: Upstream> {
    name: String,
    supervisor: ActorRef<SupervisorMsg>,
    directory: Arc<Directory<U>>,
    board: Arc<Board>,
    outstanding: Arc<Outstanding>,
    config: Arc<EngineConfig>,
    fleet: Option<Arc<FleetStatus>>,
    stopping: AtomicBool,
}

impl<U: Upstream> Engine<U> {
    /// Starts the actor tree.
    ///
    /// # Errors
    /// [`StartError::Config`] naming the bad field, or [`StartError::Spawn`].
    pub async fn start(upstream: Arc<U>, config: EngineConfig) -> Result<Self, StartError> {
        Self::start_in(upstream, config, None).await
    }

    /// Starts the actor tree as a replica of `fleet` (see [`crate::fleet`]): its breakers
    /// share what they learn through the fleet's store. `None` is [`start`](Self::start).
    ///
    /// # Errors
    /// As [`start`](Self::start); a bad fleet setting is a [`StartError::Config`].
    pub async fn start_in(
        upstream: Arc<U>,
        config: EngineConfig,
        fleet: Option<Fleet>,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let config = Arc::new(config);
        let board = Arc::new(Board::new(1024).with_throttle(config.throttle));
        let directory = Arc::new(Directory::new());
        let outstanding = Arc::new(Outstanding::new());
        let name = format!("breakwater-{}", NEXT_ENGINE.fetch_add(1, Ordering::Relaxed));
        let seed = config.seed.unwrap_or_else(rand::random);
        let fleet = match fleet {
            Some(fleet) => {
                let directory = Arc::downgrade(&directory);
                let deliver: crate::fleet::Deliver = Arc::new(move |target, view| {
                    if let Some(breaker) = directory.upgrade().and_then(|d| d.breaker(target)) {
                        let _ = breaker.cast(BreakerMsg::Fleet(view));
                    }
                });
                Some(crate::fleet::start(
                    fleet,
                    config.breaker,
                    deliver,
                    board.clone(),
                    seed,
                )?)
            }
            None => None,
        };
        let fleet_status = fleet.as_ref().map(|handle| handle.status.clone());
        let args = SupervisorArgs {
            name: name.clone(),
            upstream,
            config: config.clone(),
            board: board.clone(),
            directory: directory.clone(),
            outstanding: outstanding.clone(),
            seed,
            fleet,
        };
        let (supervisor, _) = Actor::spawn(Some(name.clone()), SupervisorActor::new(), args)
            .await
            .map_err(|error| StartError::Spawn(error.to_string()))?;
        Ok(Self {
            name,
            supervisor,
            directory,
            board,
            outstanding,
            config,
            fleet: fleet_status,
            stopping: AtomicBool::new(false),
        })
    }

    /// How this replica shares state with its fleet, or `None` if it is not in one.
    pub fn fleet(&self) -> Option<FleetReport> {
        self.fleet.as_ref().map(|status| status.report())
    }

    /// Sends `request` and waits for the whole answer. Each attempt's span is a child of the
    /// caller's current span (see [`crate::trace`]).
    ///
    /// Dropping the future cancels the request: its attempt in flight is aborted (the
    /// upstream call with it), its worker and admission slots are freed at once, and no
    /// further attempt is made (no retry, no fallback, nothing released from the parking lot).
    ///
    /// # Errors
    /// Every way a request can end without an answer; see [`Error`].
    pub async fn send(
        &self,
        request: U::Request,
        options: RequestOptions,
    ) -> Result<Answer<U::Response>, Error> {
        let timeout = self.timeout(&options);
        let span = tracing::Span::current();
        self.ask(timeout, |reply| {
            Signal::Submit(Box::new(Submission {
                request: Arc::new(request),
                options,
                reply: ReplyPort::Whole(reply),
                span,
            }))
            .into()
        })
        .await
    }

    /// Sends `request` for a streamed answer, and waits until the stream commits: failures
    /// before its first content event are retried or rerouted like any other.
    ///
    /// Dropping the future before it resolves cancels the request as for [`Engine::send`].
    /// Once it has resolved, the committed stream is the caller's: dropping it drops the
    /// upstream stream.
    ///
    /// # Errors
    /// As [`Engine::send`].
    pub async fn stream(
        &self,
        request: U::Request,
        options: RequestOptions,
    ) -> Result<Answer<Committed<U::Event>>, Error> {
        let timeout = self.timeout(&options);
        let span = tracing::Span::current();
        self.ask(timeout, |reply| {
            Signal::Submit(Box::new(Submission {
                request: Arc::new(request),
                options,
                reply: ReplyPort::Stream(reply),
                span,
            }))
            .into()
        })
        .await
    }

    fn timeout(&self, options: &RequestOptions) -> Duration {
        options
            .timeout
            .unwrap_or(self.config.admission.default_timeout)
    }

    async fn ask<T>(
        &self,
        timeout: Duration,
        message: impl FnOnce(RpcReplyPort<Result<T, Error>>) -> DispatcherMsg<U>,
    ) -> Result<T, Error> {
        let Some(dispatcher) = self.dispatcher() else {
            return Err(self.gone());
        };
        let (tx, rx) = ractor::concurrency::oneshot();
        if dispatcher.cast(message(tx.into())).is_err() {
            return Err(self.gone());
        }
        let mut waiting = Waiting::new(rx, dispatcher);
        match tokio::time::timeout(timeout.saturating_add(LAST_RESORT), waiting.answer()).await {
            Ok(Some(result)) => result,
            Ok(None) => Err(self.gone()),
            Err(_) => Err(Error::DeadlineExceeded {
                attempts: Vec::new(),
            }),
        }
    }

    fn gone(&self) -> Error {
        if self.stopping.load(Ordering::Relaxed) {
            Error::Shutdown
        } else {
            Error::Internal("the engine dropped the request (an actor crashed)".into())
        }
    }

    /// The dispatcher, for ractor applications that speak its message protocol; `None`
    /// while it restarts.
    pub fn dispatcher(&self) -> Option<ActorRef<DispatcherMsg<U>>> {
        self.directory.dispatcher()
    }

    /// The name under which an actor of this engine is registered with ractor (see
    /// `ractor::registry::where_is`): `role` is `dispatcher`, `worker/TARGET` or
    /// `breaker/TARGET`.
    pub fn actor_name(&self, role: &str) -> String {
        format!("{}/{role}", self.name)
    }

    /// Events from now on: breaker transitions, fallbacks, retries, sheds.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.board.subscribe()
    }

    /// Whether the engine serves `target`: configured, or added with [`Engine::add_target`].
    pub fn serves(&self, target: &Target) -> bool {
        self.config.limits(target).is_some() || self.directory.worker(target).is_some()
    }

    /// Every target served: the configured ones in their order, then those added with
    /// [`Engine::add_target`], by name.
    pub fn targets(&self) -> Vec<Target> {
        let mut added: Vec<Target> = self
            .directory
            .targets()
            .into_iter()
            .filter(|target| self.config.limits(target).is_none())
            .collect();
        added.sort();
        let configured = self.config.targets.iter().map(|(target, _)| target.clone());
        configured.chain(added).collect()
    }

    /// How many targets were added after start with [`Engine::add_target`].
    pub fn added_targets(&self) -> usize {
        self.targets().len() - self.config.targets.len()
    }

    /// Serves `target` from now on, with its own breaker and worker and default limits,
    /// though the configuration does not name it; does nothing if it is served already.
    /// Chains may then name it.
    ///
    /// # Errors
    /// [`Error::Shutdown`] when the engine is stopping, [`Error::Internal`] when the actors
    /// could not be spawned.
    pub async fn add_target(&self, target: Target) -> Result<(), Error> {
        self.add(target, None).await.map(|_| ())
    }

    /// As [`Engine::add_target`], unless `max_added` targets were added already: then it adds
    /// nothing and answers `false`. The check and the add are one step, so concurrent calls
    /// never add more.
    ///
    /// # Errors
    /// As [`Engine::add_target`].
    pub async fn add_target_within(&self, target: Target, max_added: usize) -> Result<bool, Error> {
        self.add(target, Some(max_added)).await
    }

    async fn add(&self, target: Target, limit: Option<usize>) -> Result<bool, Error> {
        if self.serves(&target) {
            return Ok(true);
        }
        if self.stopping.load(Ordering::Relaxed) {
            return Err(Error::Shutdown);
        }
        let asked = self.supervisor.call(
            |reply| SupervisorMsg::Add(target.clone(), limit, reply),
            Some(ADD_TIMEOUT),
        );
        match asked.await {
            Ok(CallResult::Success(Ok(added))) => Ok(added),
            Ok(CallResult::Success(Err(message))) => Err(Error::Internal(message)),
            Ok(CallResult::Timeout) => Err(Error::Internal(format!(
                "the engine did not add {target} within {}ms",
                ADD_TIMEOUT.as_millis()
            ))),
            Ok(CallResult::SenderError) | Err(_) => Err(self.gone()),
        }
    }

    /// Every breaker's current state.
    pub fn breakers(&self) -> Vec<(Target, BreakerStatus)> {
        self.board.snapshot()
    }

    /// The state `target`'s breaker actor holds, asked of the actor rather than read off the
    /// board: for the chaos tests, which check that the two agree. `None` while it restarts.
    #[cfg(feature = "chaos")]
    pub async fn breaker_truth(&self, target: &Target) -> Option<crate::policy::StateKind> {
        let breaker = self.directory.breaker(target)?;
        ractor::call_t!(breaker, crate::breaker::BreakerMsg::Inspect, 1_000).ok()
    }

    /// The shared breaker board.
    pub fn board(&self) -> &Arc<Board> {
        &self.board
    }

    /// Requests the engine holds now.
    pub fn outstanding(&self) -> u32 {
        self.outstanding.total()
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Forces `target`'s circuit open until [`Engine::reset`].
    pub fn isolate(&self, target: Target) {
        if let Some(dispatcher) = self.dispatcher() {
            let _ = dispatcher.cast(DispatcherMsg::Isolate(target));
        }
    }

    /// Forces `target`'s circuit closed.
    pub fn reset(&self, target: Target) {
        if let Some(dispatcher) = self.dispatcher() {
            let _ = dispatcher.cast(DispatcherMsg::Reset(target));
        }
    }

    /// Stops admitting, lets in-flight requests finish for up to `grace`, then stops every
    /// actor; requests still held end with [`Error::Shutdown`]. Returns how many that was.
    pub async fn shutdown(&self, grace: Duration) -> u32 {
        self.stopping.store(true, Ordering::Relaxed);
        if let Some(dispatcher) = self.dispatcher() {
            let _ = ractor::call!(dispatcher, DispatcherMsg::Drain);
        }
        let _ = tokio::time::timeout(grace, self.outstanding.emptied()).await;
        let left = self.outstanding.total();
        let _ = self
            .supervisor
            .stop_and_wait(Some("shutdown".into()), None)
            .await;
        left
    }
}

impl<U: Upstream> Drop for Engine<U> {
    fn drop(&mut self) {
        self.supervisor.stop(Some("engine dropped".into()));
    }
}
