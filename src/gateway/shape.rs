//! Anthropic-shaped bodies for the answers hyper gives by itself.
//!
//! hyper's HTTP/1 server answers a request head it cannot parse before any service sees it:
//! 400 for a malformed request line or header (a request line that is not HTTP at all
//! included), 414 for a URI over [`URI_LIMIT`] bytes, 431 for a head over [`HEAD_LIMIT`]
//! bytes or [`MAX_HEADERS`] fields. It writes each with an empty body (`content-length: 0`)
//! and closes the connection, and has no hook to change it. SDKs parse every error body, so
//! the connection's IO is wrapped: a write that is exactly such an answer (the status line,
//! `content-length: 0`, `date`, perhaps `connection: close`, and nothing else) is replaced
//! by the same status with an Anthropic-shaped `invalid_request_error` body naming what was
//! wrong and the limit. Nothing the router answers looks so: its own errors all have JSON
//! bodies, and a forwarded answer keeps the upstream's headers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::api::{ErrorBody, ErrorType};

/// The longest request URI hyper takes (its own fixed limit): 414 past it.
pub const URI_LIMIT: usize = u16::MAX as usize - 1;

/// The largest request head (request line and headers) the gateway reads: 431 past it. Above
/// [`URI_LIMIT`], so that a long URI gets 414, not 431.
pub const HEAD_LIMIT: usize = 128 << 10;

/// The most header fields a request may have (hyper's default): 431 past it.
pub const MAX_HEADERS: usize = 100;

/// A client connection whose writes of hyper's empty-bodied answers get a body.
#[derive(Debug)]
pub(super) struct Shaped<T> {
    inner: T,
    /// A replacement answer still to write, and how much of it is written.
    pending: Vec<u8>,
    written: usize,
}

impl<T> Shaped<T> {
    pub(super) fn new(inner: T) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> Shaped<T> {
    /// Writes what is left of a replacement answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Takes `buf`, hyper's own answer, in place of the shaped one: reported written whole,
    /// whatever of the replacement the socket takes now (the rest goes on flush).
    fn replace(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        shaped: Vec<u8>,
    ) -> Poll<io::Result<usize>> {
        self.pending = shaped;
        self.written = 0;
        if let Poll::Ready(Err(error)) = self.drain(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(buf.len()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Shaped<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Shaped<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(shaped) = shaped(buf) {
            return self.replace(cx, buf, shaped);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        // hyper's own answer is a head with no body: a single buffer.
        let mut filled = bufs.iter().filter(|buf| !buf.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next())
            && let Some(shaped) = shaped(only)
        {
            return self.replace(cx, only, shaped);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The shaped answer for `written`, if it is one of hyper's own empty-bodied answers.
fn shaped(written: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(written)
        .ok()?
        .strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let rest = status_line.strip_prefix("HTTP/1.1 ")?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let message = match code {
        "400" => "the request could not be parsed as HTTP/1.1: its request line or a header is \
                  malformed"
            .to_owned(),
        "414" => format!("the request URI is longer than {URI_LIMIT} bytes"),
        "431" => format!(
            "the request's head is too large: over {HEAD_LIMIT} bytes, or over {MAX_HEADERS} \
             header fields"
        ),
        _ => return None,
    };
    let mut date = None;
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" if value == "0" => empty = true,
            "date" => date = Some(value),
            "connection" if value.eq_ignore_ascii_case("close") => {}
            _ => return None,
        }
    }
    if !empty {
        return None;
    }
    metrics::counter!("breakwater_gateway_unparsed_total", "status" => code.to_owned())
        .increment(1);
    let body = serde_json::to_vec(&ErrorBody::new(ErrorType::InvalidRequest, message)).ok()?;
    let mut answer = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n",
        body.len()
    );
    if let Some(date) = date {
        answer.push_str("date: ");
        answer.push_str(date);
        answer.push_str("\r\n");
    }
    answer.push_str("\r\n");
    let mut answer = answer.into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(answer: &[u8]) -> serde_json::Value {
        let text = std::str::from_utf8(answer).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn hypers_empty_answers_get_anthropic_shaped_bodies() {
        let date = "date: Tue, 01 Dec 2026 10:00:00 GMT";
        for (status, needle) in [
            ("400 Bad Request", "malformed"),
            ("414 URI Too Long", "65534 bytes"),
            ("431 Request Header Fields Too Large", "100 header fields"),
        ] {
            let hypers = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n{date}\r\n\r\n");
            let answer = shaped(hypers.as_bytes()).expect(status);
            let text = String::from_utf8_lossy(&answer);
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{text}"
            );
            assert!(text.contains(date), "{text}");
            assert!(text.contains("content-type: application/json"), "{text}");
            let body = body(&answer);
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["type"], "invalid_request_error");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{message}");
        }
    }

    #[test]
    fn answers_with_a_body_or_other_headers_are_left_alone() {
        for written in [
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\ndate: x\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nrequest-id: r\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            "0\r\n\r\n",
            "",
        ] {
            assert!(shaped(written.as_bytes()).is_none(), "{written:?}");
        }
    }
}
