//! What the API says in response headers: request id, retry hints and rate-limit windows.
//!
//! Pure functions of the headers and the wall clock, which is passed in: absolute times the
//! API sends (HTTP dates, RFC 3339 resets) become durations measured from `now_unix`.

use std::time::{Duration, UNIX_EPOCH};

use breakwater_actors::{RateLimits, Window};
use http::HeaderMap;

/// The rate-limit windows by their name in `anthropic-ratelimit-{name}-*` headers.
const WINDOWS: [&str; 4] = ["requests", "tokens", "input-tokens", "output-tokens"];

/// Amazon Bedrock's request id header, read when a response has no `request-id`.
pub const AMZN_REQUEST_ID: &str = "x-amzn-requestid";

/// The first second RFC 3339 formatting cannot show (year 10000).
const RFC3339_END: Duration = Duration::from_secs(253_402_300_800);

/// The longest delay a header may announce; longer ones are cut to it. A server sending
/// `retry-after: 1e19` must not produce a duration that overflows `Instant + Duration` in
/// the policies, and no retry hint or window reset worth honouring is longer than a day.
pub const MAX_ANNOUNCED_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The response headers breakwater acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseMeta {
    /// `request-id`, else `x-amzn-requestid` (Amazon Bedrock's, which sends no `request-id`).
    pub request_id: Option<String>,
    /// How long to wait before retrying: `retry-after-ms`, else `retry-after`.
    pub retry_after: Option<Duration>,
    /// `x-should-retry`: the API's own verdict, overriding the status-based one.
    pub should_retry: Option<bool>,
    /// The `anthropic-ratelimit-*` windows.
    pub limits: RateLimits,
}

impl ResponseMeta {
    /// Reads the headers of a response that arrived at `now_unix` (time since the Unix epoch).
    /// Values that do not parse, and negative delays, are ignored; delays and resets longer
    /// than [`MAX_ANNOUNCED_DELAY`] are cut to it.
    pub fn from_headers(headers: &HeaderMap, now_unix: Duration) -> Self {
        let read = Read::of(headers);
        let retry_after_ms = read
            .text(Field::RetryAfterMs)
            .and_then(|v| v.parse::<f64>().ok())
            .and_then(|ms| capped_secs(ms / 1000.0));
        let retry_after = retry_after_ms
            .or_else(|| {
                let value = read.text(Field::RetryAfter)?;
                if let Ok(secs) = value.parse::<f64>() {
                    return capped_secs(secs);
                }
                let at = httpdate::parse_http_date(value).ok()?;
                let at = at.duration_since(UNIX_EPOCH).ok()?;
                Some(at.saturating_sub(now_unix))
            })
            .map(|delay| delay.min(MAX_ANNOUNCED_DELAY));
        let should_retry = match read.text(Field::ShouldRetry) {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        };
        let [requests, tokens, input_tokens, output_tokens] =
            [0, 1, 2, 3].map(|window| read.window(window, now_unix));
        Self {
            request_id: [Field::RequestId, Field::AmznRequestId]
                .into_iter()
                .find_map(|field| read.text(field).filter(|id| !id.is_empty()))
                .map(str::to_owned),
            retry_after,
            should_retry,
            limits: RateLimits {
                requests,
                tokens,
                input_tokens,
                output_tokens,
            },
        }
    }
}

/// A header [`ResponseMeta`] reads; the rate-limit windows' come after these, at
/// `Field::Windows + 3 * window + (0 limit, 1 remaining, 2 reset)`, in [`WINDOWS`]' order.
#[derive(Clone, Copy)]
enum Field {
    RetryAfterMs,
    RetryAfter,
    ShouldRetry,
    RequestId,
    AmznRequestId,
    Windows,
}

/// How many headers [`ResponseMeta`] reads.
const FIELDS: usize = Field::Windows as usize + 3 * WINDOWS.len();

/// The first value of each header [`ResponseMeta`] reads, found in one pass over a response's
/// headers, by name, rather than by a hashed lookup per header it might carry (17 of them, on
/// every answer).
struct Read<'a> {
    values: [Option<&'a http::HeaderValue>; FIELDS],
}

impl<'a> Read<'a> {
    fn of(headers: &'a HeaderMap) -> Self {
        let mut values = [None; FIELDS];
        for (name, value) in headers {
            if let Some(slot) = field_of(name.as_str()).and_then(|field| values.get_mut(field)) {
                // The first value, as `HeaderMap::get` would answer.
                slot.get_or_insert(value);
            }
        }
        Self { values }
    }

    /// The header's value as trimmed text, when it is text.
    fn text(&self, field: Field) -> Option<&'a str> {
        self.at(field as usize)
    }

    fn at(&self, index: usize) -> Option<&'a str> {
        self.values
            .get(index)
            .copied()
            .flatten()
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    }

    /// The window announced by its `-limit`, `-remaining` and `-reset` headers.
    fn window(&self, window: usize, now_unix: Duration) -> Window {
        let first = Field::Windows as usize + 3 * window;
        Window {
            limit: self.at(first).and_then(|v| v.parse().ok()),
            remaining: self.at(first + 1).and_then(|v| v.parse().ok()),
            reset_in: self
                .at(first + 2)
                .and_then(|v| {
                    humantime::parse_rfc3339_weak(v)
                        .ok()?
                        .duration_since(UNIX_EPOCH)
                        .ok()
                })
                .map(|at| at.saturating_sub(now_unix).min(MAX_ANNOUNCED_DELAY)),
        }
    }
}

/// Where `name` (lower case, as `HeaderName` keeps every name) goes in [`Read`], if anywhere.
fn field_of(name: &str) -> Option<usize> {
    let field = match name {
        "retry-after-ms" => Field::RetryAfterMs,
        "retry-after" => Field::RetryAfter,
        "x-should-retry" => Field::ShouldRetry,
        "request-id" => Field::RequestId,
        AMZN_REQUEST_ID => Field::AmznRequestId,
        _ => {
            let rest = name.strip_prefix("anthropic-ratelimit-")?;
            let (window, part) = if let Some(window) = rest.strip_suffix("-limit") {
                (window, 0)
            } else if let Some(window) = rest.strip_suffix("-remaining") {
                (window, 1)
            } else {
                (rest.strip_suffix("-reset")?, 2)
            };
            let window = WINDOWS.iter().position(|w| *w == window)?;
            return Some(Field::Windows as usize + 3 * window + part);
        }
    };
    Some(field as usize)
}

/// `secs` as a delay of at most [`MAX_ANNOUNCED_DELAY`]; `None` if negative or NaN.
fn capped_secs(secs: f64) -> Option<Duration> {
    if secs.is_nan() {
        return None;
    }
    Duration::try_from_secs_f64(secs.min(MAX_ANNOUNCED_DELAY.as_secs_f64())).ok()
}

/// The `anthropic-ratelimit-*` headers announcing `limits` at `now_unix`, resets written as
/// RFC 3339 UTC to the second. The inverse of [`ResponseMeta::from_headers`], for the mock
/// server.
pub fn rate_limit_headers(limits: &RateLimits, now_unix: Duration) -> Vec<(String, String)> {
    let windows = [
        limits.requests,
        limits.tokens,
        limits.input_tokens,
        limits.output_tokens,
    ];
    let mut headers = Vec::new();
    for (name, window) in WINDOWS.into_iter().zip(windows) {
        let mut push = |field: &str, value: String| {
            headers.push((format!("anthropic-ratelimit-{name}-{field}"), value));
        };
        if let Some(limit) = window.limit {
            push("limit", limit.to_string());
        }
        if let Some(remaining) = window.remaining {
            push("remaining", remaining.to_string());
        }
        let at = window
            .reset_in
            .map(|reset_in| now_unix.saturating_add(reset_in));
        if let Some(at) = at.filter(|at| *at < RFC3339_END) {
            push(
                "reset",
                humantime::format_rfc3339_seconds(UNIX_EPOCH + at).to_string(),
            );
        }
    }
    headers
}

/// The `anthropic-beta` flags an attempt carries: the configured ones, then each flag of
/// `requested` (the caller's header values, each comma-separated) not already there. A
/// caller's betas add to the gateway's `--beta`, never replace them; empty flags are
/// dropped, and a flag given twice is sent once.
pub fn merge_betas<'a>(
    configured: &[String],
    requested: impl IntoIterator<Item = &'a str>,
) -> String {
    let mut flags: Vec<&str> = Vec::new();
    let given = requested.into_iter().flat_map(|value| value.split(','));
    for flag in configured.iter().map(String::as_str).chain(given) {
        let flag = flag.trim();
        if !flag.is_empty() && !flags.contains(&flag) {
            flags.push(flag);
        }
    }
    flags.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn every_header_read_has_a_slot_of_its_own() {
        let mut names = vec![
            "retry-after-ms".to_owned(),
            "retry-after".to_owned(),
            "x-should-retry".to_owned(),
            "request-id".to_owned(),
            AMZN_REQUEST_ID.to_owned(),
        ];
        for window in WINDOWS {
            for part in ["limit", "remaining", "reset"] {
                names.push(format!("anthropic-ratelimit-{window}-{part}"));
            }
        }
        let slots: Vec<_> = names.iter().map(|name| field_of(name)).collect();
        assert_eq!(slots, (0..FIELDS).map(Some).collect::<Vec<_>>());
        for other in [
            "anthropic-ratelimit-requests",
            "anthropic-ratelimit-images-limit",
            "anthropic-ratelimit--reset",
            "content-type",
        ] {
            assert_eq!(field_of(other), None, "{other}");
        }
    }

    #[test]
    fn a_header_given_twice_is_read_at_its_first_value() {
        let read = meta(&[
            ("retry-after", "3"),
            ("retry-after", "9"),
            ("anthropic-ratelimit-tokens-remaining", "10"),
            ("anthropic-ratelimit-tokens-remaining", "20"),
        ]);
        assert_eq!(read.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(read.limits.tokens.remaining, Some(10));
    }

    /// 2025-08-21T12:40:00Z.
    const NOW: Duration = Duration::from_secs(1_755_780_000);

    fn meta(pairs: &[(&'static str, &'static str)]) -> ResponseMeta {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        ResponseMeta::from_headers(&headers, NOW)
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(
            meta(&[("retry-after", "30")]).retry_after,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            meta(&[("retry-after", "1.5")]).retry_after,
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn retry_after_ms_wins_over_retry_after() {
        let meta = meta(&[("retry-after", "30"), ("retry-after-ms", "1500.5")]);
        assert_eq!(meta.retry_after, Some(Duration::from_micros(1_500_500)));
    }

    #[test]
    fn retry_after_http_date_is_relative_to_now() {
        let mut map = HeaderMap::new();
        map.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        // 30 s before that date: 2015-10-21T07:27:30Z.
        let before = ResponseMeta::from_headers(&map, Duration::from_secs(1_445_412_450));
        assert_eq!(before.retry_after, Some(Duration::from_secs(30)));
        let after = ResponseMeta::from_headers(&map, NOW);
        assert_eq!(
            after.retry_after,
            Some(Duration::ZERO),
            "a past date means now"
        );
    }

    #[test]
    fn garbage_and_negative_values_are_ignored() {
        let garbage = meta(&[
            ("retry-after-ms", "-5"),
            ("retry-after", "soon"),
            ("x-should-retry", "maybe"),
            ("anthropic-ratelimit-tokens-limit", "lots"),
            ("anthropic-ratelimit-tokens-remaining", "-1"),
            ("anthropic-ratelimit-tokens-reset", "tomorrow"),
        ]);
        assert_eq!(garbage, ResponseMeta::default());
        assert_eq!(meta(&[("retry-after", "-1")]).retry_after, None);
        assert_eq!(
            meta(&[("retry-after-ms", "NaN"), ("retry-after", "2")]).retry_after,
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn huge_delays_and_resets_are_capped_at_one_day() {
        let day = Some(MAX_ANNOUNCED_DELAY);
        assert_eq!(meta(&[("retry-after", "1e19")]).retry_after, day);
        assert_eq!(meta(&[("retry-after", "1e300")]).retry_after, day);
        assert_eq!(
            meta(&[("retry-after-ms", "18446744073709551615000")]).retry_after,
            day
        );
        assert_eq!(
            meta(&[("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")]).retry_after,
            day
        );
        let far = meta(&[("anthropic-ratelimit-tokens-reset", "9999-12-31T23:59:59Z")]);
        assert_eq!(far.limits.tokens.reset_in, day);
        let instant = tokio::time::Instant::now();
        let _ = instant + meta(&[("retry-after", "1e19")]).retry_after.unwrap();
    }

    #[test]
    fn request_id_and_should_retry() {
        let parsed = meta(&[
            ("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy"),
            ("x-should-retry", "false"),
        ]);
        assert_eq!(
            parsed.request_id.as_deref(),
            Some("req_011CSHoEeqs5C35K2UUqR7Fy")
        );
        assert_eq!(parsed.should_retry, Some(false));
        assert_eq!(meta(&[("x-should-retry", "true")]).should_retry, Some(true));
    }

    #[test]
    fn bedrocks_request_id_counts_when_there_is_no_request_id() {
        let bedrock = "6b0d4e64-2f8c-4c4e-9d0a-3f1c2b7a9e10";
        assert_eq!(
            meta(&[("x-amzn-requestid", bedrock)]).request_id.as_deref(),
            Some(bedrock)
        );
        let both = meta(&[("request-id", "req_1"), ("x-amzn-requestid", bedrock)]);
        assert_eq!(both.request_id.as_deref(), Some("req_1"));
        let blank = meta(&[("request-id", ""), ("x-amzn-requestid", bedrock)]);
        assert_eq!(blank.request_id.as_deref(), Some(bedrock));
        assert_eq!(meta(&[("x-amzn-requestid", "")]).request_id, None);
    }

    #[test]
    fn rate_limit_windows() {
        let meta = meta(&[
            ("anthropic-ratelimit-requests-limit", "4000"),
            ("anthropic-ratelimit-requests-remaining", "3999"),
            ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:00Z"),
            ("anthropic-ratelimit-tokens-limit", "2000000"),
            ("anthropic-ratelimit-tokens-remaining", "1998000"),
            ("anthropic-ratelimit-tokens-reset", "2025-08-21T12:40:59Z"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "2025-08-21T12:39:00Z",
            ),
        ]);
        let limits = meta.limits;
        let reset = |secs| Some(Duration::from_secs(secs));
        assert_eq!(
            limits.requests,
            Window {
                limit: Some(4000),
                remaining: Some(3999),
                reset_in: reset(0)
            }
        );
        assert_eq!(
            limits.tokens,
            Window {
                limit: Some(2_000_000),
                remaining: Some(1_998_000),
                reset_in: reset(59)
            }
        );
        assert!(limits.input_tokens.is_empty());
        assert_eq!(
            limits.output_tokens.reset_in,
            reset(0),
            "a past reset saturates at zero"
        );
    }

    #[test]
    fn rate_limit_headers_round_trip() {
        let window = Window {
            limit: Some(50),
            remaining: Some(49),
            reset_in: Some(Duration::from_secs(59)),
        };
        let limits = RateLimits {
            requests: window,
            ..RateLimits::default()
        };
        let headers = rate_limit_headers(&limits, NOW);
        let expected = [
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"),
        ];
        assert_eq!(headers, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
        let mut map = HeaderMap::new();
        for (name, value) in &headers {
            map.insert(
                http::HeaderName::try_from(name).unwrap(),
                value.parse().unwrap(),
            );
        }
        assert_eq!(ResponseMeta::from_headers(&map, NOW).limits, limits);
    }

    #[test]
    fn a_callers_betas_add_to_the_configured_ones_each_flag_once() {
        let configured = vec!["files-api-2025-04-14".to_owned()];
        assert_eq!(
            merge_betas(&configured, ["a-1, files-api-2025-04-14", "b-2", " ,a-1"]),
            "files-api-2025-04-14,a-1,b-2"
        );
        assert_eq!(merge_betas(&[], ["x"]), "x");
        assert_eq!(merge_betas(&configured, []), "files-api-2025-04-14");
    }
}
