//! `POST /v1/messages/count_tokens`: the typed call the runtime makes to cost a request
//! ([`ClaudeClient::count_tokens`]), and the gateway's pass-through
//! ([`ClaudeClient::forward_count_tokens`], answering [`Forwarded`]).

use std::time::Duration;

use http::header;

use super::ClaudeClient;
use super::attempt::{read_body, with_headers};
use super::response::Response;
use super::transport::transport;
use crate::api::{self, ResponseMeta, WireRequest};
use crate::engine::{Class, Failure};
use crate::wallclock;

/// An answer passed through as it came (see [`ClaudeClient::forward_count_tokens`]).
#[derive(Clone, Debug)]
pub struct Forwarded {
    /// Its HTTP status.
    pub status: u16,
    /// Its `request-id` header.
    pub request_id: Option<String>,
    /// Its body.
    pub body: bytes::Bytes,
}

/// A `count_tokens` answer.
#[derive(serde::Deserialize)]
struct Counted {
    input_tokens: u64,
}

impl ClaudeClient {
    /// Counts the input tokens of `request` on `model` with `POST /v1/messages/count_tokens`
    /// (the fields the endpoint takes: `messages`, `system`, `tools`, `tool_choice`,
    /// `thinking`), within `timeout`.
    ///
    /// # Errors
    /// The [`Failure`] the call ended with, classified as an attempt's would be.
    pub async fn count_tokens(
        &self,
        model: &str,
        request: &WireRequest,
        timeout: Duration,
    ) -> Result<u64, Failure> {
        let body = request.count_tokens_body(model);
        let (status, meta, body) = self
            .post_count_tokens(body, request.headers(), timeout)
            .await?;
        if !(200..300).contains(&status) {
            return Err(api::failure(status, meta, &body));
        }
        serde_json::from_slice::<Counted>(&body)
            .map(|counted| counted.input_tokens)
            .map_err(|error| {
                let message = format!("unreadable count_tokens body: {error}");
                api::answered(
                    Class::ServerError,
                    message,
                    status,
                    meta.request_id.as_deref(),
                )
            })
    }

    /// Posts `body` to `POST /v1/messages/count_tokens` as it is, with this client's
    /// credentials and `headers`, and hands back the answer as it came: its status, its
    /// `request-id` and its body. The gateway's pass-through; [`ClaudeClient::count_tokens`]
    /// is the typed call.
    ///
    /// # Errors
    /// A [`Failure`] when no answer came (connection, timeout).
    pub async fn forward_count_tokens(
        &self,
        body: bytes::Bytes,
        headers: &api::RequestHeaders,
        timeout: Duration,
    ) -> Result<Forwarded, Failure> {
        let (status, meta, body) = self.post_count_tokens(body, headers, timeout).await?;
        Ok(Forwarded {
            status,
            request_id: meta.request_id,
            body,
        })
    }

    /// One `POST /v1/messages/count_tokens`: the status, headers read and body.
    async fn post_count_tokens(
        &self,
        body: bytes::Bytes,
        headers: &api::RequestHeaders,
        timeout: Duration,
    ) -> Result<(u16, ResponseMeta, bytes::Bytes), Failure> {
        let url = format!("{}/count_tokens", self.messages_url);
        let builder = self
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(timeout);
        let response = match with_headers(builder, headers, self.authenticated, &self.betas)
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => {
                let (class, message) = transport(error);
                return Err(Failure::new(class, message));
            }
        };
        let response = Response::Reqwest {
            response,
            deadline: None,
        };
        let status = response.status();
        let meta = ResponseMeta::from_headers(response.headers(), wallclock::unix_now());
        let body = read_body(response, &meta).await?;
        Ok((status, meta, body))
    }
}
