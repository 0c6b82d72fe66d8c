//! `POST /anthropic/v1/messages` as Amazon Bedrock authenticates it, when the scenario has a
//! `[bedrock]` table ([`BedrockScenario`]): a Bedrock API key in `x-api-key`, or a SigV4
//! signature checked by [`SigV4Verifier`] against the table's key. A request that passes is
//! served as `/v1/messages` serves it (same models, same capacity per model name); one that
//! does not gets 403 with Bedrock's `{"message": ...}` body.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use bytes::Bytes;

use super::app::App;
use super::scenario::BedrockScenario;
use super::sigv4::{SigV4Rejection, SigV4Verifier};
use crate::api::json::ObjectEdit;
use crate::client::{BEDROCK_SERVICE, Secret};

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
    if let Some(sent) = headers.get("x-api-key") {
        return match &spec.api_key {
            Some(key) if sent.as_bytes() == key.as_bytes() => Ok(()),
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
    let verifier = SigV4Verifier::new(&spec.region, BEDROCK_SERVICE).with_key(
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
