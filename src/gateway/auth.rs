//! Client authentication: with `require-keys` on, a request to `/v1/` must present a
//! configured key as `x-api-key` or `Authorization: Bearer`. Presented keys are compared in
//! constant time and never logged or echoed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error::error;
use super::state::Gateway;
use crate::api::ErrorType;

pub(super) async fn authenticate(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    if !gateway.config.require_keys {
        return next.run(request).await;
    }
    match presented(request.headers()) {
        Some(key) if gateway.config.admits(key) => next.run(request).await,
        Some(_) => {
            metrics::counter!("breakwater_gateway_unauthorized_total").increment(1);
            error(401, ErrorType::Authentication, "invalid x-api-key")
        }
        None => {
            metrics::counter!("breakwater_gateway_unauthorized_total").increment(1);
            error(
                401,
                ErrorType::Authentication,
                "x-api-key header is required (or Authorization: Bearer)",
            )
        }
    }
}

/// The key a request presents: `x-api-key`, else a bearer token.
fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key);
    }
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` is `Bearer`.
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorization(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer k1", "bearer k1", "BEARER k1"] {
            assert_eq!(presented(&authorization(value)), Some("k1"), "{value}");
        }
        assert_eq!(presented(&authorization("Basic k1")), None);
        assert_eq!(presented(&authorization("Bearer ")), None);
    }
}
