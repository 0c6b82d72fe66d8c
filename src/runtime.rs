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
//!
//! Layout: the [`RuntimeBuilder`] starts it (`builder`); the shared `Core` sends (`core`),
//! on chains resolved at start (`chains`); `typed` reads wire answers as typed ones; `watch` notes the last failed attempt;
//! `deferred` keeps requests that can wait in a store.

mod builder;
mod chains;
mod core;
mod deferred;
mod error;
mod typed;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::ActorRef;
use tokio::sync::broadcast;

use self::core::Core;
use crate::api::{
    Message, MessageStreamEvent, MessagesRequest, WireEvent, WireMessage, WireRequest,
};
use crate::catalog::AdaptMode;
use crate::client::ClaudeClient;
use crate::config::Config;
use crate::engine::policy::StateKind;
use crate::engine::{
    Answer, BreakerStatus, Committed, DispatcherMsg, Engine, Error, Event, RequestOptions, Target,
};
use deferred::Deferred;
use typed::{typed_answer, typed_stream};

pub use self::core::DynUpstream;
pub use builder::RuntimeBuilder;
pub use deferred::{DeferError, Ticket, TicketStatus};
pub use error::RuntimeError;
pub use watch::LastFailure;

/// The dispatcher of a [`Runtime`], for ractor applications (see [`DispatcherMsg`]).
pub type Dispatcher = ActorRef<DispatcherMsg<DynUpstream>>;

/// What [`Runtime::send_or_defer`] did with a request.
#[derive(Debug)]
pub enum Sent {
    /// It was answered.
    Answered(Box<Answer<Message>>),
    /// Every model of its chain was open, so it was deferred: durable, and answered when
    /// capacity returns.
    Deferred(Ticket),
}

/// A running breakwater runtime.
pub struct Runtime {
    core: Arc<Core>,
    /// Deferred requests, with a store.
    deferred: Option<Deferred>,
}

impl Runtime {
    /// Sends `request` on the default chain, with default options.
    ///
    /// Dropping the future cancels the request, as every `send` and `stream` method's does
    /// (see [`Engine::send`]): the attempt in flight and its upstream call are dropped, its
    /// slots freed, and no further attempt is made.
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
    /// Dropping the future before it resolves cancels the request (see [`Runtime::send`]);
    /// once it has resolved, the stream is the caller's, and dropping it drops the upstream
    /// stream.
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

    /// The last attempt that failed, on any model, and when: what a caller that sees no
    /// progress can name as the cause. `None` until one fails.
    pub fn last_failure(&self) -> Option<LastFailure> {
        self.core.failures.last()
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

    /// Whether the upstream is known to serve `model`, so that serving it alone is worth a
    /// target: the model catalogue knows it, or the upstream's `GET /v1/models` listed it at
    /// start (`[catalog] refresh`). Always true without such a list (an upstream other than
    /// the HTTP client, a refresh off or failed).
    pub fn confirms_model(&self, model: &str) -> bool {
        self.core.confirms(model)
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

    /// How this replica shares state with its fleet, or `None` if it is not in one.
    pub fn fleet(&self) -> Option<crate::engine::fleet::FleetReport> {
        self.core.engine.fleet()
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
        chain
            .iter()
            .all(|target| matches!(board.state(target), StateKind::Open | StateKind::Isolated))
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
