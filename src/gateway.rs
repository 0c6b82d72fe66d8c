//! An Anthropic-compatible gateway in front of a [`Runtime`]: services in any language point
//! their SDK's base URL here and get breakwater's retries, breakers and fallbacks.
//!
//! - `POST /v1/messages`, whole and streamed. The requested model picks the configured chain
//!   it heads (else the rest of a chain that holds it; a model in no chain is served alone,
//!   with its own breaker and retries). The body goes on unchanged but for `model` when
//!   falling back; `anthropic-version` and `anthropic-beta` are forwarded. Answers carry the
//!   model that answered in the body, as the API does, and `x-breakwater-model` /
//!   `x-breakwater-attempts` headers. Errors are Anthropic-shaped JSON: a chain exhausted is
//!   529 `overloaded_error` with `retry-after`; a permanent upstream error passes through
//!   with its status and type. Streams are retried or rerouted until their first content
//!   event; after that a failure ends the stream with an explicit `error` event.
//! - `POST /v1/messages/count_tokens`, forwarded as it is.
//! - `GET /v1/breakwater/state`: breakers, loads and limits as JSON; `GET /metrics`
//!   (Prometheus), `GET /healthz`.
//! - Every other `/v1/` route (models, Message Batches, Files, routes yet to come) is
//!   forwarded unchanged, bodies streamed both ways (see `forward`).
//!
//! Callers authenticate with a key from `[gateway] keys` when `require-keys` is on, on every
//! `/v1/` route; such a key never goes upstream. Upstream requests carry the gateway's own
//! key, which replaces any a caller sent. [`serve`] runs the router with client timeouts, a
//! cap on open connections (529 `overloaded_error` past `max-connections`), Anthropic-shaped
//! answers to heads hyper cannot parse (400, 414, 431), and a graceful drain.
//!
//! [`Runtime`]: crate::runtime::Runtime

mod admit;
mod auth;
mod body;
mod cut;
mod error;
mod forward;
mod messages;
mod serve;
mod shape;
mod state;
mod status;

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use axum::routing::{any, get, post};

use crate::api::ErrorType;
use error::error;

pub use crate::config::gateway::{
    BODY_LIMIT, ClientKey, DEFAULT_MAX_CONNECTIONS, FD_RESERVE, GatewayConfig,
};
pub use serve::{Drained, FAREWELL, raise_fd_limit, serve};
pub use shape::{HEAD_LIMIT, MAX_HEADERS, URI_LIMIT};
pub use state::Gateway;

impl Gateway {
    /// The router: every route, with client authentication on `/v1/` when keys are
    /// required (without, the layer is left out: it would pass every request, at the cost of
    /// a boxed future and a clone of the routes per request).
    pub fn router(self) -> Router {
        let gateway = Arc::new(self);
        let mut api = Router::new()
            .route("/v1/messages", post(messages::messages))
            .route("/v1/messages/count_tokens", post(messages::count_tokens))
            .route("/v1/breakwater/state", get(status::state))
            .route("/v1/{*path}", any(forward::forward));
        if gateway.config.require_keys {
            api = api.route_layer(axum::middleware::from_fn_with_state(
                gateway.clone(),
                auth::authenticate,
            ));
        }
        Router::new()
            .merge(api)
            .route("/metrics", get(status::metrics))
            .route("/healthz", get(status::healthz))
            .method_not_allowed_fallback(method_not_allowed)
            .fallback(not_found)
            .with_state(gateway)
    }
}

/// A route the gateway serves, asked with a method it does not take: an Anthropic-shaped
/// 405, as SDKs parse every error body.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let message = format!("{method} is not allowed on {}", uri.path());
    error(405, ErrorType::InvalidRequest, message)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    let message = format!(
        "{} is not served here (this gateway serves /v1/ and forwards what it does not model, \
         GET /metrics, GET /healthz)",
        uri.path()
    );
    error(404, ErrorType::NotFound, message)
}
