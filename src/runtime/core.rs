//! [`Core`]: what sends requests, shared by the [`Runtime`](super::Runtime) and its background
//! work (the deferred requests' pump): the engine, the configuration, the HTTP client, and
//! every model's chain resolved at start. Each request gets its span (see
//! [`crate::telemetry`]) and, with `upstream.count-tokens`, its counted input tokens as cost.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::chains;
use super::watch::FailureNote;
use crate::api::{WireEvent, WireMessage, WireRequest};
use crate::catalog::AdaptMode;
use crate::client::ClaudeClient;
use crate::config::Config;
use crate::engine::policy::Cost;
use crate::engine::{Answer, Committed, Engine, Error, RequestOptions, Target, Upstream};
use crate::telemetry::spans;

/// Any upstream that speaks the Messages API: the HTTP client, the simulator, a test fake.
pub type DynUpstream =
    Arc<dyn Upstream<Request = WireRequest, Response = WireMessage, Event = WireEvent>>;

/// The longest a `count_tokens` call may hold a request back.
const COUNT_TOKENS_TIMEOUT: Duration = Duration::from_secs(1);

/// What sends requests: shared by the runtime and its background work.
pub(crate) struct Core {
    pub(super) engine: Engine<DynUpstream>,
    pub(super) config: Arc<Config>,
    /// The client that counts input tokens, when `upstream.count-tokens` is on.
    counter: Option<ClaudeClient>,
    /// The HTTP client, unless the runtime was given another upstream.
    pub(super) http: Option<ClaudeClient>,
    /// Every model's chain ([`Core::chain_for_model`]), resolved at start.
    pub(super) chains_by_model: HashMap<String, (Arc<[Target]>, AdaptMode)>,
    /// The last attempt that failed.
    pub(super) failures: FailureNote,
    /// The model ids the upstream's `GET /v1/models` listed at start; `None` when it was
    /// not read (`[catalog] refresh` off, or it failed).
    listed: Option<HashSet<String>>,
}

impl Core {
    /// The core over a started `engine`, with every model's chain resolved.
    pub(super) fn new(
        engine: Engine<DynUpstream>,
        config: Config,
        counter: Option<ClaudeClient>,
        http: Option<ClaudeClient>,
        failures: FailureNote,
    ) -> Self {
        let chains_by_model = chains::resolve(&config);
        Core {
            engine,
            config: Arc::new(config),
            counter,
            http,
            chains_by_model,
            failures,
            listed: None,
        }
    }

    /// The same core, knowing the model ids the upstream listed at start.
    pub(super) fn listing(mut self, listed: Option<HashSet<String>>) -> Self {
        self.listed = listed;
        self
    }

    /// Whether the upstream is known to serve `model`: the catalogue knows it, or the
    /// upstream's `GET /v1/models` listed it at start. Without a listing (`[catalog] refresh`
    /// off, or the listing failed) only the catalogue confirms: a name nobody can confirm
    /// must not take one of the gateway's `max-unlisted` places, or made-up names would use
    /// them all up. An upstream other than the HTTP client (an embedding's own) confirms
    /// every model: there is no gateway in front of it to exhaust.
    pub(crate) fn confirms(&self, model: &str) -> bool {
        let Some(http) = &self.http else {
            return true;
        };
        http.catalog().get(model).is_some()
            || self
                .listed
                .as_ref()
                .is_some_and(|listed| listed.contains(model))
    }

    /// Sends `request` with a priority, a deadline, a chain, or fallback forbidden.
    ///
    /// # Errors
    /// As [`Runtime::send`](super::Runtime::send).
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
        let timeout = options
            .timeout
            .unwrap_or(self.config.admission.default_timeout);
        let started = tokio::time::Instant::now();
        let allowed = COUNT_TOKENS_TIMEOUT.min(timeout / 4);
        let counted = counter.count_tokens(model.model(), request, allowed).await;
        let options = options.with_timeout(timeout.saturating_sub(started.elapsed()));
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
    /// As [`Runtime::send`](super::Runtime::send).
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
    /// `model` on; `None` when no chain holds it (see [`Core::serve_alone`]).
    pub(crate) fn chain_for_model(&self, model: &str) -> Option<Vec<Target>> {
        chains::chain_for_model(&self.config, model)
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
