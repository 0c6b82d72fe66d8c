//! AWS credentials from the standard chain's local links, through `aws-config`: the
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the
//! shared profile files (`~/.aws/credentials` and `~/.aws/config`, or the files named by
//! `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE`; the profile named by `AWS_PROFILE`, else
//! `default`), with static keys or a `credential_process`. [`AwsChain`] keeps what it was given
//! and asks again five minutes before it expires, so temporary credentials roll over without a
//! restart.
//!
//! Links that need an HTTP client of their own (SSO, the instance metadata service, STS role
//! assumption) are not in the chain: a profile that needs one fails with an error saying so.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::Region;
use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use tokio::sync::Mutex;

use super::credentials::Secret;
use super::sigv4::AwsCredentials;
use crate::wallclock;

/// How long before their expiry credentials are asked for again.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// The longest a provider (a `credential_process`, a profile file) may take to answer.
const PROVIDE_WITHIN: Duration = Duration::from_secs(10);

/// How long after a failed renewal the provider is left alone: requests meanwhile sign with
/// what is held while it is valid, or fail at once with the last error.
const AFTER_FAILURE: Duration = Duration::from_secs(15);

/// Credentials from the environment or the profile files, kept until shortly before they
/// expire. `Debug` names no key.
#[derive(Clone)]
pub struct AwsChain {
    provider: SharedCredentialsProvider,
    cached: Arc<Mutex<Cache>>,
}

#[derive(Default)]
struct Cache {
    held: Option<Held>,
    /// The last renewal's error and when it may be tried again (tokio time).
    failed: Option<(String, tokio::time::Instant)>,
}

#[derive(Clone)]
struct Held {
    credentials: AwsCredentials,
    /// When they expire, since the Unix epoch; `None` for keys that do not.
    expires: Option<Duration>,
}

impl fmt::Debug for AwsChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AwsChain")
    }
}

impl AwsChain {
    /// The chain, if it gives credentials now (`region`: Bedrock's, for a profile that would
    /// reach an AWS service).
    ///
    /// # Errors
    /// Why no credentials were found, as `aws-config` words it.
    pub async fn discover(region: &str) -> Result<Self, String> {
        // The profile provider builds clients for the links that need HTTP (SSO, instance
        // metadata, STS) up front, and aws-config panics when it has no HTTP client for them:
        // give it one that refuses every call, naming why.
        let config = ProviderConfig::default()
            .with_region(Some(Region::new(region.to_owned())))
            .with_http_client(http_client_fn(|_, _| SharedHttpConnector::new(NoHttp)));
        let profile = ProfileFileCredentialsProvider::builder()
            .configure(&config)
            .build();
        let chain = CredentialsProviderChain::first_try(
            "Environment",
            EnvironmentVariableCredentialsProvider::new(),
        )
        .or_else("Profile", profile);
        let chain = Self::new(SharedCredentialsProvider::new(chain));
        chain.current().await?;
        Ok(chain)
    }

    /// A chain over `provider` (tests, or an embedding application's own provider).
    pub fn new(provider: SharedCredentialsProvider) -> Self {
        Self {
            provider,
            cached: Arc::new(Mutex::new(Cache::default())),
        }
    }

    /// The credentials to sign with now: the ones held, unless they expire within five
    /// minutes. A renewal that fails (or takes over 10 s) leaves what is held in use while it
    /// is valid, and is not tried again for 15 s.
    ///
    /// # Errors
    /// Why the provider gave none, when nothing valid is held.
    pub async fn current(&self) -> Result<AwsCredentials, String> {
        let mut cache = self.cached.lock().await;
        let now = wallclock::unix_now();
        let valid = |held: &Held, margin: Duration| {
            held.expires.is_none_or(|expires| expires > now + margin)
        };
        if let Some(held) = cache
            .held
            .as_ref()
            .filter(|held| valid(held, REFRESH_BEFORE))
        {
            return Ok(held.credentials.clone());
        }
        let still_valid = cache
            .held
            .clone()
            .filter(|held| valid(held, Duration::ZERO));
        if let Some((error, until)) = &cache.failed
            && tokio::time::Instant::now() < *until
        {
            return still_valid
                .map(|held| held.credentials)
                .ok_or_else(|| error.clone());
        }
        let renewed =
            match tokio::time::timeout(PROVIDE_WITHIN, self.provider.provide_credentials()).await {
                Ok(Ok(fresh)) => Ok(held(&fresh)),
                Ok(Err(error)) => Err(error_text(&error)),
                Err(_) => Err(format!(
                    "the credential provider gave no answer within {}s",
                    PROVIDE_WITHIN.as_secs()
                )),
            };
        match renewed {
            Ok(fresh) => {
                let credentials = fresh.credentials.clone();
                *cache = Cache {
                    held: Some(fresh),
                    failed: None,
                };
                Ok(credentials)
            }
            Err(error) => {
                tracing::warn!(%error, "AWS credentials could not be renewed");
                cache.failed = Some((error.clone(), tokio::time::Instant::now() + AFTER_FAILURE));
                still_valid.map(|held| held.credentials).ok_or(error)
            }
        }
    }
}

/// The HTTP client given to `aws-config`: every call fails, naming what is not supported.
#[derive(Debug)]
struct NoHttp;

impl HttpConnector for NoHttp {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let why = "this profile needs AWS SSO, instance metadata or STS role assumption, which \
                   breakwater does not reach: give the profile keys or a credential_process, or \
                   set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
        HttpConnectorFuture::ready(Err(ConnectorError::other(why.into(), None)))
    }
}

fn held(credentials: &Credentials) -> Held {
    Held {
        credentials: AwsCredentials::new(
            credentials.access_key_id(),
            Secret::new(credentials.secret_access_key()),
            credentials.session_token().map(Secret::new),
        ),
        expires: credentials.expiry().map(wallclock::since_epoch),
    }
}

/// The error and its causes, one line.
fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use aws_credential_types::provider::future;

    use super::*;

    /// Hands out `key-N` credentials expiring `lifetime` from now, counting the calls; past
    /// `fail_after` calls, an error.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicU32>,
        lifetime: Option<Duration>,
        fail_after: u32,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n > self.fail_after {
                return future::ProvideCredentials::ready(Err(
                    aws_credential_types::provider::error::CredentialsError::not_loaded(
                        "the process failed",
                    ),
                ));
            }
            let expiry = self
                .lifetime
                .map(|lifetime| wallclock::system_time(wallclock::unix_now() + lifetime));
            future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("key-{n}"),
                "secret",
                None,
                expiry,
                "test",
            )))
        }
    }

    fn chain(lifetime: Option<Duration>) -> (AwsChain, Arc<AtomicU32>) {
        failing_chain(lifetime, u32::MAX)
    }

    fn failing_chain(lifetime: Option<Duration>, fail_after: u32) -> (AwsChain, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let provider = Counting {
            calls: Arc::clone(&calls),
            lifetime,
            fail_after,
        };
        (
            AwsChain::new(SharedCredentialsProvider::new(provider)),
            calls,
        )
    }

    #[tokio::test]
    async fn credentials_are_kept_until_five_minutes_before_they_expire() {
        let (lasting, calls) = chain(Some(Duration::from_secs(3600)));
        for _ in 0..3 {
            assert_eq!(lasting.current().await.unwrap().access_key_id(), "key-1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let (expiring, calls) = chain(Some(Duration::from_secs(200)));
        assert_eq!(expiring.current().await.unwrap().access_key_id(), "key-1");
        assert_eq!(expiring.current().await.unwrap().access_key_id(), "key-2");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "asked again within 5 min");

        let (forever, calls) = chain(None);
        forever.current().await.unwrap();
        forever.current().await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "keys without expiry are kept"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_renewal_keeps_valid_credentials_and_is_not_retried_at_once() {
        // Valid for 200 s: due for renewal (within 5 min), still good to sign with.
        let (expiring, calls) = failing_chain(Some(Duration::from_secs(200)), 1);
        assert_eq!(expiring.current().await.unwrap().access_key_id(), "key-1");
        for _ in 0..3 {
            let kept = expiring.current().await.expect("the held credentials");
            assert_eq!(kept.access_key_id(), "key-1");
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one failed renewal, then a pause"
        );
        tokio::time::advance(AFTER_FAILURE).await;
        expiring.current().await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "tried again after the pause"
        );

        let (never, calls) = failing_chain(None, 0);
        let error = never.current().await.unwrap_err();
        assert!(error.contains("the process failed"), "{error}");
        assert!(never.current().await.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the error is kept for the pause"
        );
    }
}
