//! Traces: a span for every request and a child span for every upstream attempt, named and
//! attributed after the OpenTelemetry GenAI semantic conventions ([`SEMCONV_VERSION`]), and
//! their export over OTLP/HTTP (protobuf).
//!
//! The spans are plain `tracing` spans, made by the runtime and the engine whether or not
//! anything exports them; with no layer that wants them they are disabled and cost next to
//! nothing. [`init`] builds the exporter and [`Telemetry::layer`], the `tracing-opentelemetry`
//! layer that exports them; the binary installs it only when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is set ([`from_env`]). Prompts, answers and keys are never recorded. See docs/TRACING.md.

mod http;
pub(crate) mod spans;

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;

use crate::client::non_empty_env;

/// The version of the OpenTelemetry semantic conventions the spans follow: the last release
/// with the GenAI conventions in the main repository (they are in development status).
pub const SEMCONV_VERSION: &str = "1.41.0";

/// The service name when `OTEL_SERVICE_NAME` does not give one.
pub const DEFAULT_SERVICE_NAME: &str = "breakwater";

/// Why traces cannot be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The endpoint is not an `http://` or `https://` URL.
    #[error("invalid OTLP endpoint {endpoint:?}: expected an http:// or https:// URL")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
    },
    /// [`init`] was called outside a Tokio runtime, which exports run on.
    #[error("traces need a Tokio runtime to export on; call init inside one")]
    NoRuntime,
    /// The exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    /// Spans could not be flushed.
    #[error("cannot flush traces: {0}")]
    Flush(String),
}

/// Exports breakwater's spans over OTLP while it lives; dropping it flushes what is left and
/// stops the exporter. Its export thread sends on the Tokio runtime [`init`] ran in, so drop
/// it, or call [`Telemetry::flush`], while that runtime still runs, and not from a task of a
/// current-thread runtime (it blocks until the export is done).
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// Exports traces to the OTLP/HTTP `endpoint`, the base URL as `OTEL_EXPORTER_OTLP_ENDPOINT`
/// gives it (`/v1/traces` is appended), as the service `OTEL_SERVICE_NAME` (default
/// `breakwater`). Spans are batched; `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*` and
/// `OTEL_TRACES_SAMPLER` apply. Call it inside a Tokio runtime.
///
/// # Errors
/// [`TelemetryError`] for an endpoint that is not an HTTP URL, no runtime, or an exporter
/// that cannot be built.
pub fn init(endpoint: &str) -> Result<Telemetry, TelemetryError> {
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    start(endpoint, traces)
}

/// [`init`] from the environment: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL), else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (the base URL); `None` when neither is set.
///
/// # Errors
/// As [`init`].
pub fn from_env() -> Option<Result<Telemetry, TelemetryError>> {
    if let Some(traces) = non_empty_env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Some(start(&traces, traces.clone()));
    }
    non_empty_env("OTEL_EXPORTER_OTLP_ENDPOINT").map(|endpoint| init(&endpoint))
}

fn start(endpoint: &str, traces: String) -> Result<Telemetry, TelemetryError> {
    let invalid = || TelemetryError::Endpoint {
        endpoint: endpoint.to_owned(),
    };
    let uri: ::http::Uri = traces.parse().map_err(|_| invalid())?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(invalid());
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
    let client = http::Client::new(runtime).map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let service = non_empty_env("OTEL_SERVICE_NAME").unwrap_or_else(|| DEFAULT_SERVICE_NAME.into());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// The layer that exports breakwater's request and attempt spans, and nothing else (no
    /// events, no other crate's spans), to add to a `tracing_subscriber` registry.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync + 'static,
    {
        let scope = InstrumentationScope::builder("breakwater")
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_schema_url(format!(
                "https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
            ))
            .build();
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer_with_scope(scope))
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_filter(filter_fn(|metadata| {
                metadata.is_span()
                    && (metadata.target() == spans::TARGET
                        || metadata.target() == breakwater_actors::trace::SPAN_TARGET)
            }))
    }

    /// Exports every span that has ended and not yet been sent, and waits until it is.
    ///
    /// # Errors
    /// [`TelemetryError::Flush`] when the export fails or the exporter has stopped.
    pub fn flush(&self) -> Result<(), TelemetryError> {
        self.provider
            .force_flush()
            .map_err(|e| TelemetryError::Flush(e.to_string()))
    }

    /// Flushes and stops the exporter (as dropping it does, with the error reported).
    ///
    /// # Errors
    /// As [`Telemetry::flush`].
    pub fn shutdown(self) -> Result<(), TelemetryError> {
        self.provider
            .shutdown()
            .map_err(|e| TelemetryError::Flush(e.to_string()))
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        // Already stopped by `shutdown`, or failing: nothing left to report to.
        let _ = self.provider.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_must_be_an_http_url() {
        for endpoint in ["", "localhost:4318", "ftp://collector:21", "http://"] {
            let error = init(endpoint).expect_err(endpoint);
            assert!(
                matches!(error, TelemetryError::Endpoint { .. }),
                "{endpoint}: {error}"
            );
        }
    }

    #[test]
    fn exporting_needs_a_tokio_runtime() {
        let error = init("http://127.0.0.1:4318").expect_err("no runtime here");
        assert!(matches!(error, TelemetryError::NoRuntime), "{error}");
    }
}
