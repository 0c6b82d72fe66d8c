//! `POST /anthropic/v1/messages` as Amazon Bedrock authenticates it, when the scenario has a
//! `[bedrock]` table ([`BedrockScenario`]): a Bedrock API key as `Authorization: Bearer KEY`
//! (what the official SDK's `AnthropicBedrockMantle` sends) or in `x-api-key`, or a SigV4
//! signature for the table's service (`bedrock-mantle`) checked by [`SigV4Verifier`] against
//! the table's key. A request that passes is served as `/v1/messages` serves it (same models,
//! same capacity per model name); one that does not gets 403 with Bedrock's
//! `{"message": ...}` body. Every answer carries Bedrock's `x-amzn-requestid`, never
//! `request-id` ([`answered`]).

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use bytes::Bytes;

use super::app::App;
use super::respond::RequestNumber;
use super::scenario::BedrockScenario;
use super::sigv4::{SigV4Rejection, SigV4Verifier};
use crate::api::AMZN_REQUEST_ID;
use crate::api::json::ObjectEdit;
use crate::client::Secret;

/// Bedrock's message for a signature that does not match.
const MISMATCH: &str = "The request signature we calculated does not match the signature you \
    provided. Check your AWS Secret Access Key and signing method. Consult the service \
    documentation for details.";

/// Why a request is refused, as Bedrock words it: the error type (`x-amzn-errortype`) and
/// the message.
pub(super) fn check(
    spec: &BedrockScenario,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: Duration,
) -> Result<(), (&'static str, String)> {
    if let Some(sent) = api_key(headers) {
        return match &spec.api_key {
            Some(key) if sent == key.as_bytes() => Ok(()),
            _ => Err((
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".to_owned(),
            )),
        };
    }
    let (Some(id), Some(secret)) = (&spec.access_key_id, &spec.secret_access_key) else {
        return Err((
            "MissingAuthenticationTokenException",
            "Missing Authentication Token".into(),
        ));
    };
    let verifier = SigV4Verifier::new(&spec.region, &spec.service).with_key(
        id,
        Secret::new(secret),
        spec.session_token.as_deref().map(Secret::new),
    );
    match verifier.verify("POST", path_and_query, headers, body, now) {
        Ok(()) => Ok(()),
        Err(SigV4Rejection::SignatureMismatch) => {
            Err(("InvalidSignatureException", MISMATCH.to_owned()))
        }
        Err(SigV4Rejection::UnknownKeyId) => Err((
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".to_owned(),
        )),
        Err(other) => Err(("InvalidSignatureException", other.to_string())),
    }
}

/// The API key a request presents: `Authorization: Bearer KEY` (the scheme in any case), else
/// `x-api-key`; `None` for neither (an `Authorization` of another scheme is SigV4's).
fn api_key(headers: &HeaderMap) -> Option<&[u8]> {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|value| {
        let value = value.as_bytes();
        let scheme = value.get(..7)?;
        scheme
            .eq_ignore_ascii_case(b"bearer ")
            .then(|| value[7..].trim_ascii())
    });
    bearer.or_else(|| headers.get("x-api-key").map(HeaderValue::as_bytes))
}

/// `response` as Bedrock sends it: with `x-amzn-requestid` (a UUID made of the request's
/// number, `00000000-0000-4000-8000-NNNNNNNNNNNN` in hex), which keeps the router from
/// adding `request-id`.
pub(super) fn answered(number: RequestNumber, mut response: Response) -> Response {
    response.headers_mut().remove("request-id");
    if let Ok(id) = HeaderValue::from_str(&request_id(number)) {
        response.headers_mut().insert(AMZN_REQUEST_ID, id);
    }
    response
}

/// The `x-amzn-requestid` of the mock's request `number`.
pub(super) fn request_id(number: RequestNumber) -> String {
    format!("00000000-0000-4000-8000-{:012x}", number.0)
}

/// The 403 for a refused request.
pub(super) fn refused(error_type: &'static str, message: &str) -> Response {
    let mut response = (
        StatusCode::FORBIDDEN,
        Json(serde_json::json!({ "message": message })),
    )
        .into_response();
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    response
}

/// The body with its `model`, when that is a Bedrock id the catalogue knows
/// (`anthropic.claude-opus-5-5`), replaced by the model's API id; else as it came.
pub(super) fn with_api_model(app: &App, body: Bytes) -> Bytes {
    let model = serde_json::from_slice::<ModelOnly>(&body)
        .ok()
        .and_then(|only| app.platform_model("bedrock", &only.model));
    let Some(model) = model else {
        return body;
    };
    let mut edit = ObjectEdit::new();
    edit.set("model", &model);
    edit.apply(&body).map_or(body, |patched| patched.join())
}

/// The one field [`with_api_model`] reads.
#[derive(serde::Deserialize)]
struct ModelOnly {
    model: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BedrockScenario {
        BedrockScenario {
            api_key: Some("the-key".into()),
            ..BedrockScenario::default()
        }
    }

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_key_passes_as_bearer_or_x_api_key_and_nothing_else_does() {
        let check = |headers: &HeaderMap| {
            check(
                &spec(),
                "/anthropic/v1/messages",
                headers,
                b"{}",
                Duration::ZERO,
            )
        };
        assert_eq!(check(&with("authorization", "Bearer the-key")), Ok(()));
        assert_eq!(check(&with("authorization", "bearer the-key")), Ok(()));
        assert_eq!(check(&with("x-api-key", "the-key")), Ok(()));
        for wrong in [
            with("authorization", "Bearer not-the-key"),
            with("x-api-key", "not-the-key"),
        ] {
            assert_eq!(check(&wrong).unwrap_err().0, "UnrecognizedClientException");
        }
        // No key pair in the table: a signature cannot pass, a missing one is named.
        assert_eq!(
            check(&HeaderMap::new()).unwrap_err().0,
            "MissingAuthenticationTokenException"
        );
    }

    #[test]
    fn answers_carry_amazons_request_id_and_not_the_apis() {
        let mut response = StatusCode::OK.into_response();
        response
            .headers_mut()
            .insert("request-id", HeaderValue::from_static("req_mock_7"));
        let response = answered(RequestNumber(42), response);
        assert_eq!(response.headers().get("request-id"), None);
        assert_eq!(
            response.headers()[AMZN_REQUEST_ID],
            "00000000-0000-4000-8000-00000000002a"
        );
    }
}
