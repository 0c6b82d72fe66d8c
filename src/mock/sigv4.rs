//! The mock's check of AWS Signature Version 4 (`AWS4-HMAC-SHA256` in the `Authorization`
//! header), for its Bedrock shape: [`SigV4Verifier`] recomputes a request's signature from the
//! secret of the access key it names and says why it refuses one ([`SigV4Rejection`]).
//!
//! Written by hand from AWS's specification ("Create a signed AWS API request") with `sha2` and
//! `hmac`, deliberately not with the `aws-sigv4` crate the client signs with, so that the two
//! check each other (and Python's botocore checks both, in tests/platforms_sigv4.rs):
//!
//! 1. canonical request: method, the path normalised (`.`/`..` and empty segments removed)
//!    and percent-encoded once more, the query's pairs re-encoded and sorted, each signed
//!    header as `name:value` (values of one name joined by `,`, spaces trimmed and runs of
//!    them collapsed), the signed header list, and the SHA-256 of the body, lines joined
//!    by `\n`;
//! 2. string to sign: `AWS4-HMAC-SHA256`, the `x-amz-date`, the credential scope
//!    `DATE/REGION/SERVICE/aws4_request` and the canonical request's SHA-256;
//! 3. signing key: HMAC-SHA256 chained over `AWS4`+secret, date, region, service,
//!    `aws4_request`; the signature is the hex HMAC of the string to sign, compared in
//!    constant time.
//!
//! A request must sign `host` and `x-amz-date` (and `x-amz-security-token` when its key has
//! one), be dated within five minutes of now, and be scoped to the verifier's region and
//! service.

use std::fmt::{self, Write as _};
use std::time::Duration;

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::client::Secret;

/// How far a request's date may be from the server's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

type HmacSha256 = Hmac<Sha256>;

/// Why a request's signature is refused. The messages name no credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigV4Rejection {
    /// A header the check needs is absent.
    #[error("missing the {0} header")]
    MissingHeader(&'static str),
    /// The `Authorization` header is not a SigV4 one, or cannot be parsed.
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    /// The access key id is not one the verifier knows.
    #[error("unknown access key id")]
    UnknownKeyId,
    /// The credential scope names another region or service.
    #[error(
        "credential scope is for service {service:?} in region {region:?}, expected {expected_service:?} in {expected_region:?}"
    )]
    WrongScope {
        /// The scope's region.
        region: String,
        /// The scope's service.
        service: String,
        /// The verifier's region.
        expected_region: String,
        /// The verifier's service.
        expected_service: String,
    },
    /// `x-amz-date` is not a `YYYYMMDD'T'HHMMSS'Z'` date, or not the scope's day.
    #[error("x-amz-date is not a valid date of the credential scope's day")]
    BadDate,
    /// The request's date is more than [`MAX_SKEW`] from now.
    #[error("request date is {skew_seconds} s from the server's time, more than 5 minutes")]
    Stale {
        /// How far, in seconds, either way.
        skew_seconds: u64,
    },
    /// A header that must be signed is not in `SignedHeaders`.
    #[error("the {0} header must be signed")]
    UnsignedHeader(&'static str),
    /// A header listed in `SignedHeaders` is not in the request.
    #[error("signed header {0:?} is not in the request")]
    MissingSignedHeader(String),
    /// The key has a session token and the request's is absent or another.
    #[error("the security token is missing or invalid")]
    SecurityToken,
    /// The signature is not the one the key makes for this request.
    #[error("signature does not match")]
    SignatureMismatch,
}

/// A key the verifier accepts.
#[derive(Clone)]
struct Key {
    access_key_id: String,
    secret: Secret,
    session_token: Option<Secret>,
}

/// Checks SigV4 signatures for one region and service against known keys.
#[derive(Clone)]
pub struct SigV4Verifier {
    region: String,
    service: String,
    keys: Vec<Key>,
}

impl fmt::Debug for SigV4Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Verifier")
            .field("region", &self.region)
            .field("service", &self.service)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

impl SigV4Verifier {
    /// A verifier for `service` in `region`, knowing no key yet.
    pub fn new(region: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            service: service.into(),
            keys: Vec::new(),
        }
    }

    /// The same verifier, also accepting `access_key_id` with `secret` (and, for temporary
    /// credentials, requiring `session_token`).
    #[must_use]
    pub fn with_key(
        mut self,
        access_key_id: impl Into<String>,
        secret: Secret,
        session_token: Option<Secret>,
    ) -> Self {
        self.keys.push(Key {
            access_key_id: access_key_id.into(),
            secret,
            session_token,
        });
        self
    }

    /// Checks the signature of a request: `method`, `path_and_query` as sent, its `headers`
    /// and `body`, at `now` (time since the Unix epoch).
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: Duration,
    ) -> Result<(), SigV4Rejection> {
        let header = text_header(headers, "authorization")?;
        let auth = parse_authorization(header)?;
        let key = self
            .keys
            .iter()
            .find(|key| key.access_key_id == auth.access_key_id)
            .ok_or(SigV4Rejection::UnknownKeyId)?;
        if auth.region != self.region || auth.service != self.service {
            return Err(SigV4Rejection::WrongScope {
                region: auth.region.to_owned(),
                service: auth.service.to_owned(),
                expected_region: self.region.clone(),
                expected_service: self.service.clone(),
            });
        }
        let amz_date = text_header(headers, "x-amz-date")?;
        let seconds = parse_amz_date(amz_date).ok_or(SigV4Rejection::BadDate)?;
        if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
            return Err(SigV4Rejection::BadDate);
        }
        let skew = now.as_secs().abs_diff(seconds);
        if skew > MAX_SKEW.as_secs() {
            return Err(SigV4Rejection::Stale { skew_seconds: skew });
        }
        let signed: Vec<&str> = auth.signed_headers.split(';').collect();
        for required in ["host", "x-amz-date"] {
            if !signed.contains(&required) {
                return Err(SigV4Rejection::UnsignedHeader(required));
            }
        }
        if let Some(token) = &key.session_token {
            let sent = headers
                .get("x-amz-security-token")
                .and_then(|value| value.to_str().ok());
            if sent != Some(token.expose()) {
                return Err(SigV4Rejection::SecurityToken);
            }
            if !signed.contains(&"x-amz-security-token") {
                return Err(SigV4Rejection::UnsignedHeader("x-amz-security-token"));
            }
        }
        let canonical = canonical_request(method, path_and_query, headers, &signed, body)?;
        let scope = format!(
            "{}/{}/{}/aws4_request",
            auth.date, auth.region, auth.service
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let signature = unhex(auth.signature).ok_or(SigV4Rejection::SignatureMismatch)?;
        let mut mac = signing_mac(key.secret.expose(), &auth);
        mac.update(string_to_sign.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| SigV4Rejection::SignatureMismatch)
    }
}

/// The HMAC keyed with the signing key of `secret` for `auth`'s scope.
fn signing_mac(secret: &str, auth: &Authorization<'_>) -> HmacSha256 {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [auth.date, auth.region, auth.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    HmacSha256::new_from_slice(&key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn text_header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, SigV4Rejection> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .ok_or(SigV4Rejection::MissingHeader(name))
}

fn parse_authorization(header: &str) -> Result<Authorization<'_>, SigV4Rejection> {
    let rest = header
        .strip_prefix(ALGORITHM)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or(SigV4Rejection::Malformed("not AWS4-HMAC-SHA256"))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim) {
        if let Some(value) = part.strip_prefix("Credential=") {
            credential = Some(value);
        } else if let Some(value) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(value);
        } else if let Some(value) = part.strip_prefix("Signature=") {
            signature = Some(value);
        } else {
            return Err(SigV4Rejection::Malformed("unknown component"));
        }
    }
    let credential = credential.ok_or(SigV4Rejection::Malformed("no Credential"))?;
    let signed_headers = signed_headers.ok_or(SigV4Rejection::Malformed("no SignedHeaders"))?;
    let signature = signature.ok_or(SigV4Rejection::Malformed("no Signature"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = parts[..] else {
        return Err(SigV4Rejection::Malformed(
            "Credential is not KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// The canonical request, step 1 of the specification.
fn canonical_request(
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    signed: &[&str],
    body: &[u8],
) -> Result<String, SigV4Rejection> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut out = format!(
        "{method}\n{}\n{}\n",
        canonical_path(path),
        canonical_query(query)
    );
    for name in signed {
        let mut values = headers.get_all(*name).iter().peekable();
        if values.peek().is_none() {
            return Err(SigV4Rejection::MissingSignedHeader((*name).to_owned()));
        }
        let joined: Vec<String> = values
            .map(|value| collapse_spaces(&String::from_utf8_lossy(value.as_bytes())))
            .collect();
        let _ = writeln!(out, "{name}:{}", joined.join(","));
    }
    let _ = write!(
        out,
        "\n{}\n{}",
        signed.join(";"),
        hex(&Sha256::digest(body))
    );
    Ok(out)
}

/// The path with `.`, `..` and empty segments removed, each byte outside the unreserved set
/// and `/` percent-encoded (so an already encoded path is encoded twice, as AWS asks of every
/// service but S3).
fn canonical_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normal = format!("/{}", segments.join("/"));
    if path.ends_with('/') && normal.len() > 1 {
        normal.push('/');
    }
    encode(normal.as_bytes(), true)
}

/// The query's `name=value` pairs, decoded, encoded again and sorted.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(name), false), encode(&decode(value), false))
        })
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    pairs.join("&")
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|digits| u8::from_str_radix(digits, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `YYYYMMDD'T'HHMMSS'Z'` as seconds since the Unix epoch.
fn parse_amz_date(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to a date of 1970 or later (the proleptic Gregorian calendar; Howard
/// Hinnant's `days_from_civil`).
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_to_unix_seconds() {
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20240229T235959Z"), Some(1_709_251_199));
        for bad in [
            "2015083T123600Z",
            "20151330T123600Z",
            "2015-08-30T12:36Z",
            "",
            "+0150830T123600Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths_and_queries_are_canonical() {
        assert_eq!(canonical_path(""), "/");
        assert_eq!(canonical_path("/a/./b/../c//d"), "/a/c/d");
        assert_eq!(canonical_path("/a%20b/"), "/a%2520b/");
        assert_eq!(canonical_query("b=2&a=%7e1&a=0"), "a=0&a=~1&b=2");
        assert_eq!(canonical_query("x y=1"), "x%20y=1");
    }

    /// AWS's SigV4 test suite, "get-vanilla", checked by this code alone.
    #[test]
    fn the_aws_test_suite_get_vanilla_verifies() {
        let verifier = SigV4Verifier::new("us-east-1", "service").with_key(
            "AKIDEXAMPLE",
            Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            None,
        );
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
                .parse()
                .unwrap(),
        );
        let now = Duration::from_secs(1_440_938_160);
        assert_eq!(verifier.verify("GET", "/", &headers, b"", now), Ok(()));
        assert_eq!(
            verifier.verify("GET", "/", &headers, b"x", now),
            Err(SigV4Rejection::SignatureMismatch)
        );
        assert_eq!(
            verifier.verify("GET", "/", &headers, b"", now + Duration::from_secs(301)),
            Err(SigV4Rejection::Stale { skew_seconds: 301 })
        );
    }

    #[test]
    fn debug_shows_no_key() {
        let verifier =
            SigV4Verifier::new("r", "s").with_key("AKID-marker", Secret::new("shh"), None);
        let text = format!("{verifier:?}");
        assert!(
            !text.contains("AKID-marker") && !text.contains("shh"),
            "{text}"
        );
    }
}
