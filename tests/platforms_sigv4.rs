//! SigV4 for Bedrock, three implementations checking each other: the client's signer (the
//! `aws-sigv4` crate), the mock's verifier (written by hand from the specification), and
//! Python's botocore (`SigV4Auth`, through tests/python/sigv4_sign.py).
//!
//! The botocore checks need a Python with `botocore`, named by `BREAKWATER_PYTHON`;
//! `scripts/test` makes one and sets `BREAKWATER_REQUIRE_PYTHON`, under which a missing
//! Python fails instead of skipping.

use std::process::{Command, Stdio};
use std::time::Duration;

use breakwater::client::{
    AwsCredentials, BEDROCK_SERVICE, Payload, RequestToSign, Secret, SigV4Signer,
};
use breakwater::mock::{SigV4Rejection, SigV4Verifier};
use http::{HeaderMap, HeaderValue};

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "FQoGZXIvYXdzEXAMPLE-session-token";
const REGION: &str = "us-east-1";
/// 2025-01-15T10:00:00Z.
const AT: Duration = Duration::from_secs(1_736_935_200);
const URL: &str = "http://127.0.0.1:8443/anthropic/v1/messages";
const PATH: &str = "/anthropic/v1/messages";
const BODY: &str = r#"{"model":"claude-opus-5-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}],"stream":true}"#;

fn credentials(token: Option<&str>) -> AwsCredentials {
    AwsCredentials::new(KEY_ID, Secret::new(SECRET), token.map(Secret::new))
}

fn verifier(token: Option<&str>) -> SigV4Verifier {
    SigV4Verifier::new(REGION, BEDROCK_SERVICE).with_key(
        KEY_ID,
        Secret::new(SECRET),
        token.map(Secret::new),
    )
}

/// The headers the client signs: those of a Messages call on Bedrock.
fn request_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    headers
}

/// What the server receives: the signed headers, the signature's, the `host` the transport
/// adds and headers nobody signed.
fn received(signature: &HeaderMap) -> HeaderMap {
    let mut headers = request_headers();
    headers.extend(signature.clone());
    headers.insert("host", HeaderValue::from_static("127.0.0.1:8443"));
    headers.insert("user-agent", HeaderValue::from_static("breakwater/test"));
    headers.insert("content-length", HeaderValue::from(BODY.len()));
    headers
}

fn sign_with(signer: &SigV4Signer, body: &str, at: Duration) -> HeaderMap {
    let headers = request_headers();
    signer
        .sign(
            &RequestToSign {
                method: "POST",
                url: URL,
                headers: &headers,
                payload: Payload::Bytes(body.as_bytes()),
            },
            at,
        )
        .unwrap()
}

fn sign(token: Option<&str>) -> HeaderMap {
    sign_with(&SigV4Signer::bedrock(credentials(token), REGION), BODY, AT)
}

#[test]
fn the_clients_signature_verifies_with_the_mocks_verifier() {
    for token in [None, Some(TOKEN)] {
        let headers = received(&sign(token));
        let authorization = headers["authorization"].to_str().unwrap();
        assert!(
            authorization.contains("/20250115/us-east-1/bedrock-mantle/aws4_request,"),
            "{authorization}"
        );
        let now = AT + Duration::from_secs(30);
        assert_eq!(
            verifier(token).verify("POST", PATH, &headers, BODY.as_bytes(), now),
            Ok(()),
            "token {token:?}"
        );
    }
}

#[test]
fn the_mock_refuses_what_does_not_match_and_says_why() {
    let headers = received(&sign(None));
    let other_secret =
        SigV4Verifier::new(REGION, BEDROCK_SERVICE).with_key(KEY_ID, Secret::new("wrong"), None);
    let refusal = other_secret
        .verify("POST", PATH, &headers, BODY.as_bytes(), AT)
        .unwrap_err();
    assert_eq!(refusal, SigV4Rejection::SignatureMismatch);
    assert_eq!(refusal.to_string(), "signature does not match");

    let check = |verifier: &SigV4Verifier, headers: &HeaderMap, body: &str, now: Duration| {
        verifier.verify("POST", PATH, headers, body.as_bytes(), now)
    };
    let ok = verifier(None);
    assert_eq!(
        check(&ok, &headers, &BODY.replace("hi", "ho"), AT),
        Err(SigV4Rejection::SignatureMismatch)
    );
    let unknown = SigV4Verifier::new(REGION, BEDROCK_SERVICE).with_key(
        "AKIDOTHER",
        Secret::new(SECRET),
        None,
    );
    assert_eq!(
        check(&unknown, &headers, BODY, AT),
        Err(SigV4Rejection::UnknownKeyId)
    );
    // Signed for the service `bedrock` (not Bedrock Mantle's `bedrock-mantle`): refused.
    let old_service = SigV4Signer::new(credentials(None), REGION, "bedrock");
    let wrong_service = received(&sign_with(&old_service, BODY, AT));
    assert!(
        matches!(
            check(&ok, &wrong_service, BODY, AT),
            Err(SigV4Rejection::WrongScope { ref service, .. }) if service == "bedrock"
        ),
        "{:?}",
        check(&ok, &wrong_service, BODY, AT)
    );
    let elsewhere = SigV4Verifier::new("eu-west-1", BEDROCK_SERVICE).with_key(
        KEY_ID,
        Secret::new(SECRET),
        None,
    );
    let wrong_scope = check(&elsewhere, &headers, BODY, AT).unwrap_err();
    assert!(
        wrong_scope
            .to_string()
            .contains(r#"in region "us-east-1", expected "bedrock-mantle" in "eu-west-1""#),
        "{wrong_scope}"
    );
    assert_eq!(
        check(&ok, &headers, BODY, AT + Duration::from_secs(6 * 60)),
        Err(SigV4Rejection::Stale { skew_seconds: 360 })
    );
    assert_eq!(
        check(
            &ok,
            &headers,
            BODY,
            Duration::from_secs(AT.as_secs() - 6 * 60)
        ),
        Err(SigV4Rejection::Stale { skew_seconds: 360 })
    );
    assert_eq!(
        check(&ok, &headers, BODY, AT + Duration::from_secs(299)),
        Ok(())
    );

    let mut tampered = headers.clone();
    tampered.insert("anthropic-version", HeaderValue::from_static("2099-01-01"));
    assert_eq!(
        check(&ok, &tampered, BODY, AT),
        Err(SigV4Rejection::SignatureMismatch)
    );
    let mut no_auth = headers.clone();
    no_auth.remove("authorization");
    assert_eq!(
        check(&ok, &no_auth, BODY, AT).unwrap_err().to_string(),
        "missing the authorization header"
    );
    let mut no_date = headers.clone();
    no_date.remove("x-amz-date");
    assert_eq!(
        check(&ok, &no_date, BODY, AT),
        Err(SigV4Rejection::MissingHeader("x-amz-date"))
    );
    let mut no_type = headers.clone();
    no_type.remove("content-type");
    assert_eq!(
        check(&ok, &no_type, BODY, AT),
        Err(SigV4Rejection::MissingSignedHeader("content-type".into()))
    );
    // Temporary credentials: the session token must come, and be the key's.
    assert_eq!(
        check(&verifier(Some(TOKEN)), &headers, BODY, AT),
        Err(SigV4Rejection::SecurityToken)
    );
}

#[test]
fn refusals_and_debug_carry_no_credential() {
    let headers = received(&sign(Some(TOKEN)));
    let wrong = SigV4Verifier::new("eu-west-1", BEDROCK_SERVICE).with_key(
        KEY_ID,
        Secret::new(SECRET),
        Some(Secret::new(TOKEN)),
    );
    let unknown = SigV4Verifier::new(REGION, BEDROCK_SERVICE);
    let texts = [
        wrong
            .verify("POST", PATH, &headers, BODY.as_bytes(), AT)
            .unwrap_err()
            .to_string(),
        unknown
            .verify("POST", PATH, &headers, BODY.as_bytes(), AT)
            .unwrap_err()
            .to_string(),
        format!("{wrong:?}"),
        format!("{:?}", credentials(Some(TOKEN))),
        format!(
            "{:?}",
            SigV4Signer::bedrock(credentials(Some(TOKEN)), REGION)
        ),
    ];
    for text in texts {
        for secret in [SECRET, TOKEN, KEY_ID] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}

/// botocore's headers for the Bedrock call at [`AT`], or `None` when no Python is configured.
fn botocore_sign(token: Option<&str>) -> Option<HeaderMap> {
    let Some(python) = std::env::var_os("BREAKWATER_PYTHON") else {
        assert!(
            std::env::var_os("BREAKWATER_REQUIRE_PYTHON").is_none(),
            "BREAKWATER_REQUIRE_PYTHON is set but BREAKWATER_PYTHON is not"
        );
        eprintln!("skipped: set BREAKWATER_PYTHON to a Python with `botocore` (scripts/test does)");
        return None;
    };
    let script = format!("{}/tests/python/sigv4_sign.py", env!("CARGO_MANIFEST_DIR"));
    let spec = serde_json::json!({
        "method": "POST",
        "url": URL,
        "headers": {"content-type": "application/json", "anthropic-version": "2023-06-01"},
        "body": BODY,
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
        "session_token": token,
        "region": REGION,
        // The official SDK's AnthropicBedrockMantle signs for this service with botocore.
        "service": "bedrock-mantle",
        "unix": AT.as_secs(),
    });
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", python.to_string_lossy()));
    serde_json::to_writer(child.stdin.take().unwrap(), &spec).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{script} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let signed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&output.stdout).unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in signed {
        let name: http::HeaderName = name.parse().unwrap();
        headers.insert(name, value.as_str().unwrap().parse().unwrap());
    }
    Some(headers)
}

#[test]
fn botocore_and_the_client_sign_alike_and_the_mock_accepts_botocore() {
    for token in [None, Some(TOKEN)] {
        let Some(mut botocore) = botocore_sign(token) else {
            return;
        };
        let ours = sign(token);
        for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
            assert_eq!(
                ours.get(name),
                botocore.get(name),
                "{name}, token {token:?}"
            );
        }
        botocore.insert("host", HeaderValue::from_static("127.0.0.1:8443"));
        assert_eq!(
            verifier(token).verify("POST", PATH, &botocore, BODY.as_bytes(), AT),
            Ok(()),
            "token {token:?}"
        );
        let wrong = SigV4Verifier::new(REGION, BEDROCK_SERVICE).with_key(
            KEY_ID,
            Secret::new("wrong"),
            token.map(Secret::new),
        );
        assert_eq!(
            wrong.verify("POST", PATH, &botocore, BODY.as_bytes(), AT),
            Err(SigV4Rejection::SignatureMismatch)
        );
    }
}
