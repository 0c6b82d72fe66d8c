//! The rate-limit state an upstream reports with a response, window by window.

use std::time::Duration;

/// One rate-limit window as the upstream announced it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// The most the window allows.
    pub limit: Option<u64>,
    /// What is left of it.
    pub remaining: Option<u64>,
    /// How long until it is fully replenished, measured from when the response arrived.
    pub reset_in: Option<Duration>,
}

impl Window {
    /// Whether the upstream said anything about this window.
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset_in.is_none()
    }
}

/// The rate-limit state an upstream reports with a response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per window.
    pub requests: Window,
    /// Tokens per window (the most restrictive token limit in effect).
    pub tokens: Window,
    /// Input tokens per window.
    pub input_tokens: Window,
    /// Output tokens per window.
    pub output_tokens: Window,
}

impl RateLimits {
    /// Whether no window was reported at all.
    pub fn is_empty(&self) -> bool {
        [
            self.requests,
            self.tokens,
            self.input_tokens,
            self.output_tokens,
        ]
        .iter()
        .all(Window::is_empty)
    }
}
