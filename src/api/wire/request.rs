//! A Messages request as it travels: the caller's bytes, read once for what routing needs,
//! and each attempt's body built from those bytes with only what its target needs changed.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::api::json::{self, Chunks, ObjectEdit, Patch, PatchError};
use crate::api::request::{MessagesRequest, RequestError, RequestHeaders, Role};
use crate::catalog::AdaptMode;

/// A Messages request body as the caller sent it, with what routing reads from it.
///
/// Cheap to clone: the body is shared. Each attempt's body is these bytes with the model
/// (and the stream flag, when the call asks otherwise than the body) patched in; everything
/// else reaches the upstream byte for byte: key order, number formats, wide integers.
#[derive(Clone, PartialEq, Eq)]
pub struct WireRequest {
    body: Bytes,
    model: String,
    stream: bool,
    max_tokens: u32,
    input_tokens: u64,
    headers: RequestHeaders,
    adapt: Option<AdaptMode>,
}

impl fmt::Debug for WireRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the body: it holds the caller's prompts.
        f.debug_struct("WireRequest")
            .field("model", &self.model)
            .field("stream", &self.stream)
            .field("max_tokens", &self.max_tokens)
            .field("bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// What routing reads from a body, borrowing from it.
#[derive(Deserialize)]
struct View<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    max_tokens: u32,
    messages: Vec<MessageView>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    system: Option<Content>,
    #[serde(default, borrow)]
    tools: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MessageView {
    #[allow(dead_code)] // Read to check its shape.
    role: Role,
    content: Content,
}

/// A message's or system prompt's content, as the characters of its text.
struct Content(usize);

#[derive(Deserialize)]
struct BlockView<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Chars;
        impl<'de> Visitor<'de> for Chars {
            type Value = usize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content blocks")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<usize, E> {
                Ok(text.chars().count())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
                let mut chars = 0;
                while let Some(block) = seq.next_element::<BlockView<'de>>()? {
                    if block.kind == "text" {
                        chars += block.text.map_or(0, |t| t.chars().count());
                    }
                }
                Ok(chars)
            }
        }
        deserializer.deserialize_any(Chars).map(Content)
    }
}

impl WireRequest {
    /// Reads a request body, naming the missing field when a required one is absent.
    ///
    /// # Errors
    /// [`RequestError`] when the body is not a Messages request.
    pub fn from_json(body: Bytes) -> Result<Self, RequestError> {
        let view = match serde_json::from_slice::<View<'_>>(&body) {
            Ok(view) => view,
            Err(err) => return Err(MessagesRequest::explain(&body, &err)),
        };
        let system = view.system.map_or(0, |content| content.0);
        let messages: usize = view.messages.iter().map(|m| m.content.0).sum();
        let tools = view.tools.map_or(0, |raw| raw.get().chars().count());
        let input_tokens = estimate(system + messages + tools);
        let (model, stream, max_tokens) = (
            view.model.into_owned(),
            view.stream == Some(true),
            view.max_tokens,
        );
        Ok(Self {
            body,
            model,
            stream,
            max_tokens,
            input_tokens,
            headers: RequestHeaders::default(),
            adapt: None,
        })
    }

    /// The same request with per-request headers (see [`RequestHeaders`]).
    #[must_use]
    pub fn with_headers(mut self, headers: RequestHeaders) -> Self {
        self.headers = headers;
        self
    }

    /// The same request, adapted to each fallback target (or not) as `mode` says, rather
    /// than as the client's default.
    #[must_use]
    pub fn with_adapt(mut self, mode: AdaptMode) -> Self {
        self.adapt = Some(mode);
        self
    }

    /// How the request is adapted to a fallback target, when it says.
    pub fn adapt(&self) -> Option<AdaptMode> {
        self.adapt
    }

    /// The model the caller asked for.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Whether the body asks for a streamed answer.
    pub fn stream(&self) -> bool {
        self.stream
    }

    /// The most tokens the answer may hold.
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
    }

    /// About how many input tokens the request spends (see
    /// [`MessagesRequest::estimated_input_tokens`]).
    pub fn estimated_input_tokens(&self) -> u64 {
        self.input_tokens
    }

    /// The headers sent with this request only.
    pub fn headers(&self) -> &RequestHeaders {
        &self.headers
    }

    /// The body as the caller sent it.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The typed request, parsed from the body (for callers that want to look inside).
    ///
    /// # Errors
    /// [`RequestError`] as [`MessagesRequest::from_json`].
    pub fn to_request(&self) -> Result<MessagesRequest, RequestError> {
        let mut request = MessagesRequest::from_json(&self.body)?;
        request.headers = self.headers.clone();
        Ok(request)
    }

    /// The body of an attempt at `model`: the caller's bytes with `model` in place of theirs,
    /// `"stream": true` when `stream`, and no `stream` field otherwise. The body itself,
    /// shared, when nothing changes.
    ///
    /// # Errors
    /// [`PatchError`] only if the body could not be read as it was when parsed.
    pub fn body_for(&self, model: &str, stream: bool) -> Result<Chunks, PatchError> {
        self.body_with(model, stream, ObjectEdit::new())
    }

    /// [`WireRequest::body_for`] with `edit` applied too (an adaptation to the target).
    ///
    /// # Errors
    /// [`PatchError`] when the edits overlap.
    pub fn body_with(
        &self,
        model: &str,
        stream: bool,
        mut edit: ObjectEdit,
    ) -> Result<Chunks, PatchError> {
        if model != self.model {
            edit.set("model", &model);
        }
        if stream != self.stream {
            if stream {
                edit.set("stream", &true);
            } else {
                edit.remove("stream");
            }
        }
        edit.apply(&self.body)
    }

    /// The body of a `count_tokens` call for this request on `model`: the fields that
    /// endpoint takes (`messages`, `system`, `tools`, `tool_choice`, `thinking`), as sent.
    pub fn count_tokens_body(&self, model: &str) -> Bytes {
        const KEPT: [&str; 5] = ["messages", "system", "tools", "tool_choice", "thinking"];
        let counted = || -> Result<Bytes, PatchError> {
            let object = json::root(&self.body).map_err(|e| PatchError { at: e.at })?;
            let members =
                json::members(&self.body, object.clone()).map_err(|e| PatchError { at: e.at })?;
            let mut patch = Patch::new();
            let mut removed = Vec::new();
            for (i, member) in members.iter().enumerate() {
                if member.is("model") {
                    patch.replace_value(member.value.clone(), &model);
                } else if !KEPT.iter().any(|kept| member.is(kept)) {
                    removed.push(i);
                }
            }
            patch.remove_entries(&object, &members, &removed);
            Ok(patch.apply(&self.body)?.join())
        };
        counted().unwrap_or_else(|_| self.body.clone())
    }
}

impl From<&MessagesRequest> for WireRequest {
    /// Serializes the typed request once; its fields go out in declaration order.
    fn from(request: &MessagesRequest) -> Self {
        // Cannot fail: every map key is a string, and non-finite floats serialize as null.
        let body = serde_json::to_vec(request).unwrap_or_default();
        Self {
            body: body.into(),
            model: request.model.clone(),
            stream: request.stream == Some(true),
            max_tokens: request.max_tokens,
            input_tokens: request.estimated_input_tokens(),
            headers: request.headers.clone(),
            adapt: None,
        }
    }
}

impl From<MessagesRequest> for WireRequest {
    fn from(request: MessagesRequest) -> Self {
        Self::from(&request)
    }
}

/// Characters to tokens, at four a token and at least one (as
/// [`MessagesRequest::estimated_input_tokens`]).
fn estimate(chars: usize) -> u64 {
    u64::try_from(chars).unwrap_or(u64::MAX).div_ceil(4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn wire(body: &str) -> WireRequest {
        WireRequest::from_json(Bytes::copy_from_slice(body.as_bytes())).unwrap()
    }

    fn text(chunks: &Chunks) -> String {
        String::from_utf8(chunks.join().to_vec()).unwrap()
    }

    #[test]
    fn the_body_goes_out_byte_for_byte_but_for_the_model() {
        let body = r#"{"tools":[{"name":"t","input_schema":{"type":"object","properties":{"n":{"maximum":12345678901234567890123,"minimum":1e2}}}}],
 "model" : "claude-a", "max_tokens":16,"messages":[{"role":"user","content":"hi"}],"z":1.50}"#;
        let request = wire(body);
        assert_eq!(request.model(), "claude-a");
        let same = request.body_for("claude-a", false).unwrap();
        assert_eq!(same.join().as_ptr(), request.body().as_ptr(), "not copied");
        assert_eq!(
            text(&request.body_for("claude-b", false).unwrap()),
            body.replace(r#""claude-a""#, r#""claude-b""#)
        );
    }

    #[test]
    fn the_stream_flag_follows_the_call() {
        let request = wire(r#"{"model":"m","max_tokens":1,"messages":[],"stream":true}"#);
        assert!(request.stream());
        assert_eq!(
            text(&request.body_for("m", false).unwrap()),
            r#"{"model":"m","max_tokens":1,"messages":[]}"#
        );
        let request = wire(r#"{"model":"m","max_tokens":1,"messages":[]}"#);
        assert_eq!(
            text(&request.body_for("n", true).unwrap()),
            r#"{"model":"n","max_tokens":1,"messages":[],"stream":true}"#
        );
    }

    #[test]
    fn typed_requests_keep_field_order_and_estimates() {
        let typed = MessagesRequest::new("claude-a", 64).with_user("hello there");
        let request = WireRequest::from(&typed);
        let value: Value = serde_json::from_slice(request.body()).unwrap();
        assert_eq!(
            value,
            json!({"model": "claude-a", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hello there"}]})
        );
        assert!(
            std::str::from_utf8(request.body())
                .unwrap()
                .starts_with(r#"{"model":"#)
        );
        assert_eq!(
            request.estimated_input_tokens(),
            typed.estimated_input_tokens()
        );
        let parsed = wire(std::str::from_utf8(request.body()).unwrap());
        assert_eq!(
            parsed.estimated_input_tokens(),
            typed.estimated_input_tokens()
        );
    }

    #[test]
    fn bad_bodies_name_what_is_wrong() {
        let err = WireRequest::from_json(Bytes::from_static(br#"{"max_tokens":1,"messages":[]}"#));
        assert_eq!(err, Err(RequestError::MissingField("model")));
        let err = WireRequest::from_json(Bytes::from_static(b"{\"model\": 1,")).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid request body: "),
            "{err}"
        );
        let err = WireRequest::from_json(Bytes::from_static(
            br#"{"model":"m","max_tokens":1,"messages":[{"role":"robot","content":"x"}]}"#,
        ));
        assert!(err.is_err());
    }

    #[test]
    fn count_tokens_keeps_only_what_the_endpoint_takes() {
        let request = wire(
            r#"{"model":"a","max_tokens":9,"system":"s","messages":[],"metadata":{},"tools":[1e2]}"#,
        );
        assert_eq!(
            std::str::from_utf8(&request.count_tokens_body("b")).unwrap(),
            r#"{"model":"b","system":"s","messages":[],"tools":[1e2]}"#
        );
    }
}
