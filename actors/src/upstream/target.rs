//! Where an attempt goes: a [`Target`], one model through one upstream.

use std::fmt;
use std::sync::Arc;

/// A model served by an upstream: the unit that gets its own worker and breaker.
///
/// The same model through a second endpoint is another target, so adding an upstream is a
/// configuration change rather than a refactor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    model: Arc<str>,
    upstream: Option<Arc<str>>,
}

impl Target {
    /// A target for `model` on the default upstream.
    pub fn new(model: impl Into<Arc<str>>) -> Self {
        Self {
            model: model.into(),
            upstream: None,
        }
    }

    /// The same model, served through the named upstream instead of the default one.
    #[must_use]
    pub fn via(mut self, upstream: impl Into<Arc<str>>) -> Self {
        self.upstream = Some(upstream.into());
        self
    }

    /// The model name sent upstream.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The upstream's name, or `None` for the default upstream.
    pub fn upstream(&self) -> Option<&str> {
        self.upstream.as_deref()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.upstream {
            Some(upstream) => write!(f, "{}@{upstream}", self.model),
            None => f.write_str(&self.model),
        }
    }
}
