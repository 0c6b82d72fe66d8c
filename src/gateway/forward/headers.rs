//! Which headers cross the gateway: hop-by-hop headers (RFC 9110 §7.6.1) never do, in
//! either direction; a caller's gateway key never goes upstream.

use axum::http::{HeaderMap, HeaderName, header};

/// Headers that describe one connection, not the message, so a proxy never passes them on.
/// `host` and `expect` are the gateway's to answer: the client sets the upstream's host,
/// and the gateway's server has already answered a `100-continue`.
const HOP_BY_HOP: [&str; 11] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "host",
    "expect",
];

/// Removes the hop-by-hop headers, and those the `connection` header names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Removes the key a caller presented to the gateway, so that it never leaves it.
pub(super) fn strip_keys(headers: &mut HeaderMap) {
    headers.remove("x-api-key");
    headers.remove(header::AUTHORIZATION);
}

/// The body length the caller declared, if any.
pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

/// Whether `path` has a `.` or `..` segment (also percent-encoded, or behind a backslash),
/// which URL parsing would resolve into a path outside the one the caller was let into.
pub(super) fn has_dot_segment(path: &str) -> bool {
    path.split(['/', '\\']).any(|segment| {
        let segment = segment.to_ascii_lowercase().replace("%2e", ".");
        segment == "." || segment == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private-hop"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-private-hop", "1"),
            ("host", "gateway:8080"),
            ("te", "trailers"),
            ("anthropic-beta", "files-api-2025-04-14"),
            ("content-length", "12"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["anthropic-beta", "content-length"]);
    }

    #[test]
    fn dot_segments_are_found_however_spelled() {
        for path in [
            "/v1/../admin",
            "/v1/%2E%2e/admin",
            "/v1/models/.",
            "/v1\\..\\admin",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in ["/v1/models", "/v1/files/file_1.txt", "/v1/a..b"] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }
}
