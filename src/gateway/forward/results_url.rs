//! Message Batches answers name where their results are, `results_url`, as an absolute URL
//! of the upstream. An SDK follows it as it is, past the gateway, with the caller's gateway
//! key or none, so the gateway makes it a path (`/v1/messages/batches/ID/results`) that the
//! SDK resolves against its base URL, the gateway's.
//!
//! Batch objects are small JSON (a list page of 1000 batches is under 1 MB): read whole up
//! to [`MAX_REWRITTEN`]; anything larger, encoded or not JSON passes as it came.

use axum::http::{HeaderMap, Method, header, request, response};
use futures::StreamExt;

use crate::client::AnswerStream;

/// The largest answer rewritten.
const MAX_REWRITTEN: usize = 8 << 20;

/// How one answer's `results_url`s are rewritten: `"<upstream>/v1/` becomes `"/v1/`.
#[derive(Clone, Debug)]
pub(super) struct Rewrite {
    from: String,
}

impl Rewrite {
    /// The rewrite for `head`'s answer, when it is a Message Batches call whose answer may
    /// name results (any but `results` itself). Asks for the answer unencoded, to read it.
    pub(super) fn for_request(head: &mut request::Parts, upstream: &str) -> Option<Self> {
        let path = head.uri.path();
        let batches = path == "/v1/messages/batches" || path.starts_with("/v1/messages/batches/");
        if !batches || path.ends_with("/results") || head.method == Method::HEAD {
            return None;
        }
        head.headers.remove(header::ACCEPT_ENCODING);
        Some(Self {
            from: format!("\"{upstream}/v1/"),
        })
    }

    /// `body` rewritten, when `head` says it is a successful, unencoded JSON answer; the
    /// length it had is dropped, as the rewrite changes it.
    pub(super) fn apply(&self, head: &mut response::Parts, body: AnswerStream) -> AnswerStream {
        if !head.status.is_success() || !is_plain_json(&head.headers) {
            return body;
        }
        head.headers.remove(header::CONTENT_LENGTH);
        let from = self.from.clone();
        futures::stream::once(async move { rewritten(body, &from).await })
            .flatten()
            .boxed()
    }
}

fn is_plain_json(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let json = text(header::CONTENT_TYPE).is_some_and(|kind| kind.contains("json"));
    let encoded = text(header::CONTENT_ENCODING).is_some_and(|coding| coding != "identity");
    json && !encoded
}

/// Reads `body` up to [`MAX_REWRITTEN`] and rewrites it; past that, or on an error, what
/// was read goes on unchanged, then the rest.
async fn rewritten(mut body: AnswerStream, from: &str) -> AnswerStream {
    let mut read = Vec::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => read.extend_from_slice(&chunk),
            Err(failure) => {
                let head = futures::stream::iter([Ok(read.into()), Err(failure)]);
                return head.boxed();
            }
        }
        if read.len() > MAX_REWRITTEN {
            return futures::stream::iter([Ok(read.into())]).chain(body).boxed();
        }
    }
    let text = match String::from_utf8(read) {
        Ok(text) => text.replace(from, "\"/v1/").into_bytes(),
        Err(error) => error.into_bytes(),
    };
    futures::stream::iter([Ok(text.into())]).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Request, Response, StatusCode};
    use bytes::Bytes;

    fn head(method: Method, path: &str) -> request::Parts {
        let request = Request::builder().method(method).uri(path);
        let request = request.header("accept-encoding", "gzip").body(()).unwrap();
        request.into_parts().0
    }

    fn chunks(parts: &[&'static str]) -> AnswerStream {
        let parts: Vec<_> = parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect();
        futures::stream::iter(parts).boxed()
    }

    async fn text(body: AnswerStream) -> String {
        let chunks: Vec<_> = body.map(|chunk| chunk.unwrap()).collect().await;
        String::from_utf8(chunks.concat()).unwrap()
    }

    #[tokio::test]
    async fn upstream_results_urls_become_gateway_paths() {
        let mut request = head(Method::GET, "/v1/messages/batches/msgbatch_1");
        let rewrite = Rewrite::for_request(&mut request, "http://up:1").unwrap();
        assert!(request.headers.get("accept-encoding").is_none());
        let response = Response::builder()
            .header("content-type", "application/json")
            .header("content-length", "99")
            .body(())
            .unwrap();
        let mut response = response.into_parts().0;
        let body = chunks(&[
            r#"{"id":"msgbatch_1","results_url":"http://up"#,
            r#":1/v1/messages/batches/msgbatch_1/results","x":"http://other/v1/"}"#,
        ]);
        let body = text(rewrite.apply(&mut response, body)).await;
        assert_eq!(
            body,
            r#"{"id":"msgbatch_1","results_url":"/v1/messages/batches/msgbatch_1/results","x":"http://other/v1/"}"#
        );
        assert!(response.headers.get("content-length").is_none());
    }

    #[tokio::test]
    async fn results_errors_and_other_routes_pass_as_they_came() {
        for path in [
            "/v1/messages/batches/b/results",
            "/v1/models",
            "/v1/messages",
        ] {
            assert!(Rewrite::for_request(&mut head(Method::GET, path), "http://up").is_none());
        }
        let rewrite =
            Rewrite::for_request(&mut head(Method::POST, "/v1/messages/batches"), "http://up");
        let response = Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let body = r#"{"results_url":"http://up/v1/x"}"#;
        let out = rewrite
            .unwrap()
            .apply(&mut response.into_parts().0, chunks(&[body]));
        assert_eq!(text(out).await, body);
    }
}
