//! The access tokens the mock's Vertex AI token endpoint (`POST /token`) issued, and when
//! each expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Tokens `POST /token` issued, with when each expires (since the Unix epoch).
#[derive(Debug, Default)]
pub(crate) struct IssuedTokens {
    issued: AtomicU64,
    expiry: Mutex<HashMap<String, Duration>>,
}

impl IssuedTokens {
    /// A new token, valid for `lifetime` from `now`.
    pub(super) fn issue(&self, now: Duration, lifetime: Duration) -> String {
        let n = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        let token = format!("ya29.mock-token-{n}");
        let mut expiry = self.expiry.lock().unwrap_or_else(PoisonError::into_inner);
        expiry.retain(|_, at| *at > now);
        expiry.insert(token.clone(), now + lifetime);
        token
    }

    /// When `token` expires, if it was issued here.
    pub(super) fn expires(&self, token: &str) -> Option<Duration> {
        let expiry = self.expiry.lock().unwrap_or_else(PoisonError::into_inner);
        expiry.get(token).copied()
    }

    /// How many tokens were issued.
    pub(super) fn count(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }
}
