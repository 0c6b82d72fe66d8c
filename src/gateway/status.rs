//! What the gateway tells about itself: `/v1/breakwater/state`, `/metrics`, `/healthz`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::time::Instant;

use super::error::error;
use super::state::Gateway;
use crate::api::ErrorType;

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

pub(super) async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    let Some(handle) = &gateway.metrics else {
        return error(
            404,
            ErrorType::NotFound,
            "metrics are not enabled on this gateway",
        );
    };
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// The state endpoint's answer.
#[derive(Debug, Serialize)]
struct GatewayState {
    /// Requests the runtime holds now (queued, parked or in flight).
    outstanding: u32,
    /// The configured chains, by name.
    chains: std::collections::BTreeMap<String, Vec<String>>,
    /// Every model served, configured or served alone.
    models: Vec<ModelState>,
    /// KiB of request bodies held now, and the most that may be (`gateway.body-memory`).
    body_memory_kib: BodyMemory,
    /// How this replica shares state with its fleet (`[cluster]`), or null alone.
    fleet: Option<FleetState>,
}

#[derive(Debug, Serialize)]
struct FleetState {
    /// This replica's name in the fleet.
    replica: String,
    /// `shared` (reading and writing the fleet's state), `local` (the store is unavailable:
    /// deciding alone until it is back) or `starting`.
    mode: &'static str,
    /// Replicas alive at the last heartbeat, this one included.
    live_replicas: u32,
    /// How late other replicas' breaker transitions arrived here, in milliseconds: median
    /// and 99th percentile over the last `lag_samples` (at most 1024).
    lag_p50_ms: Option<f64>,
    lag_p99_ms: Option<f64>,
    lag_samples: usize,
    /// Why it last went local, if it did (never holds a credential).
    last_error: Option<String>,
    /// Models whose shared key holds data this version cannot read: kept local.
    unreadable: Vec<String>,
}

#[derive(Debug, Serialize)]
struct BodyMemory {
    held: usize,
    cap: usize,
}

#[derive(Debug, Serialize)]
struct ModelState {
    model: String,
    /// Whether the configuration names it (false: served alone, on a caller's request).
    configured: bool,
    /// `closed`, `open`, `half-open` or `isolated`.
    breaker: &'static str,
    /// How long it has been in that state, in milliseconds.
    breaker_for_ms: u64,
    /// While open: milliseconds until it may go half-open.
    open_for_ms: Option<u64>,
    /// Attempts running now.
    in_flight: u32,
    /// Requests waiting for a slot, pacing or a rate-limit pause.
    queued: u32,
    /// Attempts that may run at once now (the adaptive limit, or the static cap).
    limit: Option<u32>,
    /// Whether it is holding starts back (a 429 pause, pacing, an empty rate window).
    held: bool,
    /// In a fleet: this replica's share of the model's cap, rate-limit remainder and retry
    /// reserve, by its part of the fleet's demand (1 alone).
    share: f64,
}

pub(super) async fn state(State(gateway): State<Arc<Gateway>>) -> Json<impl Serialize> {
    let runtime = &gateway.runtime;
    let engine = runtime.engine();
    let board = engine.board();
    let now = Instant::now();
    let models = engine
        .targets()
        .into_iter()
        .map(|target| {
            let status = board.status(&target);
            let load = board.load(&target).unwrap_or_default();
            ModelState {
                configured: runtime.config().limits_for(&target).is_some(),
                breaker: board.state(&target).as_label(),
                breaker_for_ms: status
                    .map_or(0, |s| millis(now.saturating_duration_since(s.since))),
                open_for_ms: status
                    .and_then(|s| s.open_until)
                    .map(|until| millis(until.saturating_duration_since(now))),
                in_flight: load.in_flight,
                queued: load.queued,
                limit: board.limit(&target),
                held: load.held,
                share: board.share(&target),
                model: target.model().to_owned(),
            }
        })
        .collect();
    Json(GatewayState {
        outstanding: engine.outstanding(),
        chains: runtime.config().chains.clone(),
        models,
        body_memory_kib: BodyMemory {
            held: gateway.bodies.cap_kib() - gateway.bodies.free_kib(),
            cap: gateway.bodies.cap_kib(),
        },
        fleet: runtime.fleet().map(|report| FleetState {
            replica: report.replica,
            mode: report.mode.as_label(),
            live_replicas: report.live_replicas,
            lag_p50_ms: report.lag_p50.map(|lag| lag.as_secs_f64() * 1e3),
            lag_p99_ms: report.lag_p99.map(|lag| lag.as_secs_f64() * 1e3),
            lag_samples: report.lag_samples,
            last_error: report.last_error,
            unreadable: report.unreadable,
        }),
    })
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
