//! The embedded API: a [`Runtime`] runs the engine's actors over the Claude client (or any
//! other upstream speaking the Messages API, such as the simulator), and answers every
//! request by its deadline with an [`Answer`] or a typed [`Error`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use breakwater::api::MessagesRequest;
//! use breakwater::runtime::Runtime;
//!
//! let runtime = Runtime::builder()
//!     .chain(["claude-sonnet-5-5", "claude-haiku-5-5"])
//!     .start()
//!     .await?;
//! let request = MessagesRequest::new("claude-sonnet-5-5", 256).with_user("Hello");
//! let answer = runtime.send(request).await?;
//! println!("{} answered: {}", answer.target, answer.value.text());
//! runtime.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

mod deferred;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::ActorRef;
use tokio::sync::broadcast;

use crate::api::{
    Message, MessageStreamEvent, MessagesRequest, WireEvent, WireMessage, WireRequest,
};
use crate::catalog::AdaptMode;
use crate::client::{ClaudeClient, ClientError, Credentials, DEFAULT_BASE_URL, non_empty_env};
use crate::config::{Config, ConfigError};
use crate::engine::policy::Cost;
use crate::engine::{
    Answer, BreakerStatus, Committed, DispatcherMsg, Engine, Error, Event, RequestOptions,
    StartError, Target, Upstream,
};
use crate::telemetry::spans;

pub use deferred::{DeferError, Ticket, TicketStatus};

/// Any upstream that speaks the Messages API: the HTTP client, the simulator, a test fake.
pub type DynUpstream =
    Arc<dyn Upstream<Request = WireRequest, Response = WireMessage, Event = WireEvent>>;

/// The dispatcher of a [`Runtime`], for ractor applications (see [`DispatcherMsg`]).
pub type Dispatcher = ActorRef<DispatcherMsg<DynUpstream>>;

/// Why a runtime did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The configuration is invalid or unreadable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client could not be built from the configuration.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The engine did not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The store for deferred requests could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Builds a [`Runtime`]: `Runtime::builder().chain([...]).start().await`.
#[derive(Default)]
pub struct RuntimeBuilder {
    config: Config,
    base_url: Option<String>,
    credentials: Option<Credentials>,
    upstream: Option<DynUpstream>,
    store: Option<PathBuf>,
}

impl RuntimeBuilder {
    /// Keeps deferred requests ([`Runtime::defer`]) in the SQLite file at `path`, created if
    /// missing: they survive restarts, and one started with the same file picks them up.
    /// One process at a time may use a file.
    #[must_use]
    pub fn store(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Some(path.into());
        self
    }

    /// Uses `config` (models, chains, policies); replaces anything set before.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Serves exactly these models, in this order, as the default chain, with default limits.
    #[must_use]
    pub fn chain<S: AsRef<str>>(mut self, models: impl IntoIterator<Item = S>) -> Self {
        let models: Vec<String> = models.into_iter().map(|m| m.as_ref().to_owned()).collect();
        let upstream = self.config.upstream.clone();
        self.config = Config::for_chain(&models);
        self.config.upstream = upstream;
        self
    }

    /// Sends requests to this base URL (wins over the config file and `ANTHROPIC_BASE_URL`).
    #[must_use]
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// Authenticates with these credentials instead of `ANTHROPIC_API_KEY` /
    /// `ANTHROPIC_AUTH_TOKEN`.
    #[must_use]
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Sends requests to `upstream` instead of the HTTP client.
    #[must_use]
    pub fn upstream(mut self, upstream: DynUpstream) -> Self {
        self.upstream = Some(upstream);
        self
    }

    /// Validates the configuration and starts the actors.
    ///
    /// # Errors
    /// [`RuntimeError`] naming what is wrong.
    pub async fn start(self) -> Result<Runtime, RuntimeError> {
        self.config.validate()?;
        let mut http = None;
        let upstream = if let Some(upstream) = self.upstream {
            upstream
        } else {
            let mut client = client_config(&self.config, self.base_url);
            client.credentials = self.credentials.or(client.credentials);
            let client = ClaudeClient::new(&client)?;
            let catalog = catalog_for(&self.config, &client).await?;
            let client = client.with_catalog(catalog, self.config.adapt);
            http = Some(client.clone());
            Arc::new(client)
        };
        let counter = http.clone().filter(|_| self.config.upstream.count_tokens);
        let engine = Engine::start(Arc::new(upstream), self.config.engine_config()).await?;
        let mut core = Core {
            engine,
            config: Arc::new(self.config),
            counter,
            http,
            chains_by_model: std::collections::HashMap::new(),
        };
        core.chains_by_model = core.resolve_chains();
        let core = Arc::new(core);
        let deferred = match &self.store {
            Some(path) => Some(deferred::Deferred::start(path, core.clone()).await?),
            None => None,
        };
        Ok(Runtime { core, deferred })
    }
}

/// What [`Runtime::send_or_defer`] did with a request.
#[derive(Debug)]
pub enum Sent {
    /// It was answered.
    Answered(Box<Answer<Message>>),
    /// Every model of its chain was open, so it was deferred: durable, and answered when
    /// capacity returns.
    Deferred(Ticket),
}

/// The longest a `count_tokens` call may hold a request back.
const COUNT_TOKENS_TIMEOUT: Duration = Duration::from_secs(1);

/// The client settings: the base URL from the builder, else the config file when it names
/// one, else `ANTHROPIC_BASE_URL`, else the public API; credentials from the environment.
fn client_config(config: &Config, base_url: Option<String>) -> crate::client::ClientConfig {
    let mut client = config.upstream.clone();
    client.credentials = Credentials::from_env();
    if let Some(base_url) = base_url {
        client.base_url = base_url;
    } else if client.base_url == DEFAULT_BASE_URL
        && let Some(from_env) = non_empty_env("ANTHROPIC_BASE_URL")
    {
        client.base_url = from_env;
    }
    client
}

/// How long the catalogue's refresh may wait for `GET /v1/models`.
const MODELS_TIMEOUT: Duration = Duration::from_secs(3);

/// The model catalogue: the built-in one with `[catalog.models]` over it, and, with
/// `[catalog] refresh`, over what the upstream's `GET /v1/models` says; a refresh that fails
/// keeps the rest, with a warning.
async fn catalog_for(
    config: &Config,
    client: &ClaudeClient,
) -> Result<Arc<crate::catalog::Catalog>, ConfigError> {
    let configured = config.catalog()?;
    if !config.catalog.refresh {
        return Ok(configured);
    }
    let models = match client.list_models(MODELS_TIMEOUT).await {
        Ok(models) => models,
        Err(failure) => {
            tracing::warn!(%failure, "GET /v1/models failed: the model catalogue is not refreshed");
            return Ok(configured);
        }
    };
    match crate::catalog::Catalog::with_learned(&config.catalog.models, &models) {
        Ok(catalog) => Ok(Arc::new(catalog)),
        Err(error) => {
            tracing::warn!(%error, "GET /v1/models contradicts the catalogue: not refreshed");
            Ok(configured)
        }
    }
}

/// A running breakwater runtime.
pub struct Runtime {
    core: Arc<Core>,
    /// Deferred requests, with a store.
    deferred: Option<deferred::Deferred>,
}

/// What sends requests: shared by the runtime and its background work.
pub(crate) struct Core {
    engine: Engine<DynUpstream>,
    config: Arc<Config>,
    /// The client that counts input tokens, when `upstream.count-tokens` is on.
    counter: Option<ClaudeClient>,
    /// The HTTP client, unless the runtime was given another upstream.
    http: Option<ClaudeClient>,
    /// Every model's chain ([`Core::chain_for_model`]), resolved at start.
    chains_by_model: std::collections::HashMap<String, (Arc<[Target]>, AdaptMode)>,
}

impl Runtime {
    /// A builder with the default configuration.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Starts a runtime from a `breakwater.toml` file.
    ///
    /// # Errors
    /// [`RuntimeError`] naming what is wrong, with the file's path.
    pub async fn from_config(path: impl AsRef<Path>) -> Result<Self, RuntimeError> {
        Self::builder()
            .config(Config::load(path.as_ref())?)
            .start()
            .await
    }

    /// Sends `request` on the default chain, with default options.
    ///
    /// # Errors
    /// Every way a request can end without an answer; see [`Error`].
    pub async fn send(&self, request: MessagesRequest) -> Result<Answer<Message>, Error> {
        self.send_with(request, RequestOptions::default()).await
    }

    /// Sends `request` with a priority, a deadline, a chain, or fallback forbidden.
    ///
    /// # Errors
    /// As [`Runtime::send`].
    pub fn send_with(
        &self,
        request: MessagesRequest,
        options: RequestOptions,
    ) -> BoxFuture<'_, Result<Answer<Message>, Error>> {
        let sent = self.core.send_with(WireRequest::from(request), options);
        Box::pin(async move { typed_answer(sent.await?) })
    }

    /// Sends a request body as it came (a gateway's or a batch file's) and answers with the
    /// upstream's bytes: nothing in either is re-serialized, and each attempt's body differs
    /// from `request`'s only in what its target needs (see [`WireRequest::body_for`]).
    ///
    /// # Errors
    /// As [`Runtime::send`].
    pub fn send_wire(
        &self,
        request: WireRequest,
        options: RequestOptions,
    ) -> BoxFuture<'_, Result<Answer<WireMessage>, Error>> {
        self.core.send_with(request, options)
    }

    /// [`Runtime::send_wire`] for a streamed answer: the events are the upstream's frames as
    /// they came. Resolves once the stream commits, as [`Runtime::stream`].
    ///
    /// # Errors
    /// As [`Runtime::send`].
    pub fn stream_wire(
        &self,
        request: WireRequest,
        options: RequestOptions,
    ) -> BoxFuture<'_, Result<Answer<Committed<WireEvent>>, Error>> {
        self.core.stream_with(request, options)
    }

    /// Sends `request` on the default chain for a streamed answer, with default options;
    /// resolves once the stream commits: until its first content event, an overload (a 529
    /// or an in-stream `overloaded_error`), a dropped connection or a stalled stream is
    /// retried or falls back invisibly. The answer's `value.head` holds the events so far,
    /// `value.tail` the rest; a failure after content ends the tail with an error, never
    /// silently.
    ///
    /// # Errors
    /// As [`Runtime::send`].
    pub fn stream(
        &self,
        request: MessagesRequest,
    ) -> BoxFuture<'_, Result<Answer<Committed<MessageStreamEvent>>, Error>> {
        self.stream_with(request, RequestOptions::default())
    }

    /// Sends `request` for a streamed answer; resolves once the stream commits (see
    /// [`Engine::stream`]).
    ///
    /// # Errors
    /// As [`Runtime::send`].
    pub fn stream_with(
        &self,
        request: MessagesRequest,
        options: RequestOptions,
    ) -> BoxFuture<'_, Result<Answer<Committed<MessageStreamEvent>>, Error>> {
        let opened = self.core.stream_with(WireRequest::from(request), options);
        Box::pin(async move { Ok(typed_stream(opened.await?)) })
    }
    /// The named chain from the configuration, for [`RequestOptions::chain`].
    pub fn chain(&self, name: &str) -> Option<Arc<[Target]>> {
        self.core.config.chain(name).map(Into::into)
    }

    /// The chain a request for `model` runs on: the configured chain it heads (the default
    /// chain first, then the others by name), else the first chain that holds it, from
    /// `model` on; `None` when no chain holds it (see [`Runtime::serve_alone`]).
    pub fn chain_for_model(&self, model: &str) -> Option<Vec<Target>> {
        self.core.chain_for_model(model)
    }

    /// [`Runtime::chain_for_model`], resolved once at start and shared, with how the
    /// chain adapts requests to its fallbacks (`adapt` / `[chain-adapt]`).
    pub(crate) fn shared_chain_for_model(&self, model: &str) -> Option<(Arc<[Target]>, AdaptMode)> {
        self.core.chains_by_model.get(model).cloned()
    }

    /// The configuration the runtime runs with.
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    /// The dispatcher, for ractor applications; `None` while it restarts.
    pub fn dispatcher(&self) -> Option<Dispatcher> {
        self.core.engine.dispatcher()
    }

    /// Events from now on: breaker transitions, fallbacks, retries, sheds.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.core.engine.subscribe()
    }

    /// Every breaker's current state.
    pub fn breakers(&self) -> Vec<(Target, BreakerStatus)> {
        self.core.engine.breakers()
    }

    /// Forces `model`'s circuit open (no traffic) until [`Runtime::reset`].
    pub fn isolate(&self, model: &str) {
        self.core.engine.isolate(Target::new(model));
    }

    /// Forces `model`'s circuit closed, forgetting its history.
    pub fn reset(&self, model: &str) {
        self.core.engine.reset(Target::new(model));
    }

    /// The HTTP client requests go out on; `None` when the runtime was built with another
    /// [`RuntimeBuilder::upstream`].
    pub fn client(&self) -> Option<&ClaudeClient> {
        self.core.http.as_ref()
    }

    /// Serves `model` from now on, alone, with its own breaker and worker and default
    /// limits, though the configuration does not name it (see [`Engine::add_target`]).
    ///
    /// # Errors
    /// As [`Engine::add_target`].
    pub async fn serve_alone(&self, model: &str) -> Result<(), Error> {
        self.core.serve_alone(model).await
    }

    /// As [`Runtime::serve_alone`], unless `max_added` models are served alone already: then
    /// it adds nothing and answers `false` (one step, so concurrent calls never add more).
    ///
    /// # Errors
    /// As [`Engine::add_target`].
    pub async fn serve_alone_within(&self, model: &str, max_added: usize) -> Result<bool, Error> {
        self.core
            .engine
            .add_target_within(Target::new(model), max_added)
            .await
    }

    /// The engine underneath.
    pub fn engine(&self) -> &Engine<DynUpstream> {
        &self.core.engine
    }

    /// Keeps `request` durably and returns its [`Ticket`] once it is stored; it is sent when
    /// capacity allows (as sheddable work, after live traffic), with `options`' chain,
    /// deadline per try and fallback setting, and tried again later while it fails
    /// retryably. Needs [`RuntimeBuilder::store`].
    ///
    /// # Errors
    /// [`DeferError::NoStore`] without a store, [`DeferError::Store`] if it could not be
    /// stored (then it was not deferred).
    pub async fn defer(
        &self,
        request: MessagesRequest,
        options: RequestOptions,
    ) -> Result<Ticket, DeferError> {
        let deferred = self.deferred.as_ref().ok_or(DeferError::NoStore)?;
        deferred.defer(&request, &options).await
    }

    /// Where the deferred request of `ticket` is; `None` if this store holds no such ticket.
    ///
    /// # Errors
    /// As [`Runtime::defer`].
    pub async fn ticket(&self, ticket: &Ticket) -> Result<Option<TicketStatus>, DeferError> {
        let deferred = self.deferred.as_ref().ok_or(DeferError::NoStore)?;
        deferred.status(ticket).await
    }

    /// Sends `request` as [`Runtime::send_with`] does, but when it ends [`Error::Exhausted`]
    /// while every model of its chain is open, defers it ([`Runtime::defer`]) instead of
    /// failing. (An opt-in of its own rather than a flag on `send_with`, whose answer cannot
    /// carry a ticket.)
    ///
    /// # Errors
    /// As [`Runtime::send_with`]; also the `Exhausted` error itself when the request could
    /// not be deferred (no store, or the store failed: logged).
    pub async fn send_or_defer(
        &self,
        request: MessagesRequest,
        options: RequestOptions,
    ) -> Result<Sent, Error> {
        let kept = request.clone();
        let chain: Vec<Target> = options
            .chain
            .as_ref()
            .map_or_else(|| self.core.config.default_chain(), |chain| chain.to_vec());
        let deferrable = options.clone();
        match self.send_with(request, options).await {
            Ok(answer) => Ok(Sent::Answered(Box::new(answer))),
            Err(error @ Error::Exhausted { .. }) if self.all_open(&chain) => {
                match self.defer(kept, deferrable).await {
                    Ok(ticket) => Ok(Sent::Deferred(ticket)),
                    Err(why) => {
                        tracing::warn!(%why, "could not defer an exhausted request");
                        Err(error)
                    }
                }
            }
            Err(error) => Err(error),
        }
    }

    fn all_open(&self, chain: &[Target]) -> bool {
        let board = self.core.engine.board();
        chain.iter().all(|target| {
            matches!(
                board.state(target),
                crate::engine::policy::StateKind::Open | crate::engine::policy::StateKind::Isolated
            )
        })
    }

    /// Stops admitting, drains in-flight work for up to `grace`, then fails the rest with
    /// [`Error::Shutdown`]; returns how many requests that was. Deferred requests stay
    /// stored (one being tried is put back at the next start).
    pub async fn shutdown(&self, grace: Duration) -> u32 {
        if let Some(deferred) = &self.deferred {
            deferred.close();
        }
        let left = self.core.engine.shutdown(grace).await;
        if let Some(deferred) = &self.deferred {
            deferred.stop(Duration::from_secs(1)).await;
        }
        left
    }
}

impl Core {
    /// Sends `request` with a priority, a deadline, a chain, or fallback forbidden.
    ///
    /// # Errors
    /// As [`Runtime::send`].
    pub(crate) fn send_with(
        &self,
        request: WireRequest,
        options: RequestOptions,
    ) -> BoxFuture<'_, Result<Answer<WireMessage>, Error>> {
        // Boxed as `Send` here so callers can spawn it: without the explicit bound, rustc
        // fails to prove the engine's future `Send` for every lifetime (a known limitation of
        // its higher-ranked lifetime inference).
        Box::pin(async move {
            let span = self.span(&request, &options, false);
            spans::within(span, async {
                let options = self.counted(&request, options).await;
                let send: BoxFuture<'_, _> = Box::pin(self.engine.send(request, options));
                send.await
            })
            .await
        })
    }

    /// `options` with the request's counted input tokens as its cost, when
    /// `upstream.count-tokens` is on and the caller gave no cost. The count may take at most
    /// a second (and a quarter of the deadline), which the deadline then has less of; a
    /// count that fails or is late leaves the estimate in place.
    fn counted<'a>(
        &'a self,
        request: &'a WireRequest,
        options: RequestOptions,
    ) -> BoxFuture<'a, RequestOptions> {
        Box::pin(self.count(request, options))
    }

    async fn count(&self, request: &WireRequest, options: RequestOptions) -> RequestOptions {
        let Some(counter) = &self.counter else {
            return options;
        };
        if options.cost.is_some() {
            return options;
        }
        let model = match &options.chain {
            Some(chain) => chain.first().cloned(),
            None => self.config.default_chain().first().cloned(),
        };
        let Some(model) = model else { return options };
        let deadline = options
            .deadline
            .unwrap_or(self.config.admission.default_timeout);
        let started = tokio::time::Instant::now();
        let allowed = COUNT_TOKENS_TIMEOUT.min(deadline / 4);
        let counted = counter.count_tokens(model.model(), request, allowed).await;
        let options = options.with_deadline(deadline.saturating_sub(started.elapsed()));
        match counted {
            Ok(input_tokens) => {
                options.with_cost(Cost::new(input_tokens, u64::from(request.max_tokens())))
            }
            Err(failure) => {
                tracing::debug!(%failure, "count_tokens failed; estimating input tokens");
                options
            }
        }
    }

    /// Sends `request` for a streamed answer; resolves once the stream commits (see
    /// [`Engine::stream`]).
    ///
    /// # Errors
    /// As [`Runtime::send`].
    pub(crate) fn stream_with(
        &self,
        request: WireRequest,
        options: RequestOptions,
    ) -> BoxFuture<'_, Result<Answer<Committed<WireEvent>>, Error>> {
        Box::pin(async move {
            let span = self.span(&request, &options, true);
            spans::within(span, async {
                let options = self.counted(&request, options).await;
                let stream: BoxFuture<'_, _> = Box::pin(self.engine.stream(request, options));
                stream.await
            })
            .await
        })
    }

    /// The span of `request` (see [`crate::telemetry`]), whose attempts' spans are its
    /// children.
    fn span(&self, request: &WireRequest, options: &RequestOptions, stream: bool) -> tracing::Span {
        let url = self.http.as_ref().map(ClaudeClient::messages_url);
        spans::request_span(request, stream, url, || {
            options
                .chain
                .as_deref()
                .map_or_else(|| self.config.default_chain(), <[Target]>::to_vec)
        })
    }

    /// The chain a request for `model` runs on: the configured chain it heads (the default
    /// chain first, then the others by name), else the first chain that holds it, from
    /// `model` on; `None` when no chain holds it (see [`Runtime::serve_alone`]).
    pub(crate) fn chain_for_model(&self, model: &str) -> Option<Vec<Target>> {
        self.named_chain_for_model(model).map(|(_, chain)| chain)
    }

    /// [`Core::chain_for_model`], with the name of the chain it comes from.
    fn named_chain_for_model(&self, model: &str) -> Option<(&str, Vec<Target>)> {
        let config = &self.config;
        let others = config
            .chains
            .keys()
            .filter(|name| name.as_str() != crate::config::DEFAULT_CHAIN)
            .filter_map(|name| Some((name.as_str(), config.chain(name)?)));
        let chains: Vec<(&str, Vec<Target>)> =
            std::iter::once((crate::config::DEFAULT_CHAIN, config.default_chain()))
                .chain(others)
                .collect();
        let headed = chains
            .iter()
            .find(|(_, chain)| chain.first().is_some_and(|t| t.model() == model));
        if let Some((name, chain)) = headed {
            return Some((name, chain.clone()));
        }
        chains.into_iter().find_map(|(name, chain)| {
            let from = chain.iter().position(|t| t.model() == model)?;
            Some((name, chain[from..].to_vec()))
        })
    }

    /// The chain of every model that some chain holds.
    fn resolve_chains(&self) -> std::collections::HashMap<String, (Arc<[Target]>, AdaptMode)> {
        let config = &self.config;
        config
            .chains
            .values()
            .flatten()
            .chain(config.models.keys())
            .filter_map(|model| {
                let (name, chain) = self.named_chain_for_model(model)?;
                Some((model.clone(), (Arc::from(chain), config.adapt_for(name))))
            })
            .collect()
    }

    /// Serves `model` from now on, alone, with its own breaker and worker and default
    /// limits, though the configuration does not name it (see [`Engine::add_target`]).
    ///
    /// # Errors
    /// As [`Engine::add_target`].
    pub(crate) async fn serve_alone(&self, model: &str) -> Result<(), Error> {
        self.engine.add_target(Target::new(model)).await
    }
}

/// A wire answer as a typed one. An answer the engine accepted is a message by its shape;
/// one whose fields do not fit [`Message`] fails as the upstream's error.
fn typed_answer(answer: Answer<WireMessage>) -> Result<Answer<Message>, Error> {
    match answer.value.message() {
        Ok(message) => Ok(Answer {
            value: message,
            target: answer.target,
            attempts: answer.attempts,
            request_id: answer.request_id,
            changes: answer.changes,
        }),
        Err(error) => {
            let mut failure = crate::engine::Failure::new(
                crate::engine::Class::ServerError,
                format!("unreadable response body: {error}"),
            )
            .with_status(200);
            if let Some(id) = &answer.request_id {
                failure = failure.with_request_id(id.clone());
            }
            Err(Error::Upstream {
                failure,
                attempts: answer.attempts,
            })
        }
    }
}

/// A wire stream as typed events; an event whose data does not fit its type ends the
/// stream with a failure, as an unreadable event always has.
fn typed_stream(answer: Answer<Committed<WireEvent>>) -> Answer<Committed<MessageStreamEvent>> {
    use futures::StreamExt;
    let request_id = answer.request_id.clone();
    let typed = move |event: WireEvent| {
        event.to_event().map_err(|error| {
            crate::api::answered(
                crate::engine::Class::ServerError,
                format!("unreadable {:?} event: {error}", event.name()),
                200,
                request_id.as_deref(),
            )
        })
    };
    let committed = answer.value;
    let mut head = Vec::with_capacity(committed.head.len());
    let mut failed = None;
    for event in committed.head {
        match typed.clone()(event) {
            Ok(event) => head.push(event),
            Err(failure) => {
                failed = Some(failure);
                break;
            }
        }
    }
    let tail: crate::engine::EventStream<MessageStreamEvent> = match failed {
        Some(failure) => Box::pin(futures::stream::iter([Err(failure)])),
        None => Box::pin(committed.tail.map(move |item| item.and_then(typed.clone()))),
    };
    Answer {
        value: Committed { head, tail },
        target: answer.target,
        attempts: answer.attempts,
        request_id: answer.request_id,
        changes: answer.changes,
    }
}
