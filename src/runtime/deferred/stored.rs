//! How a deferred request is to be sent ([`StoredOptions`]: its chain, deadline, fallback
//! setting and API headers), kept beside it in the store as JSON, so a restart sends it as
//! it was asked.

use serde::{Deserialize, Serialize};

use crate::api::MessagesRequest;
use crate::engine::{RequestOptions, Target};

/// How a deferred request is to be sent, stored beside it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct StoredOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) chain: Option<Vec<StoredTarget>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) deadline_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) allow_fallback: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) anthropic_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) anthropic_beta: Option<String>,
}

/// A target of a stored chain: its model, and the upstream it goes through when not the
/// default one.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredTarget {
    model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    via: Option<String>,
}

impl StoredTarget {
    pub(super) fn target(&self) -> Target {
        let target = Target::new(self.model.as_str());
        match &self.via {
            Some(via) => target.via(via.as_str()),
            None => target,
        }
    }
}

impl StoredOptions {
    /// How `request` is to be sent with `options`.
    pub(super) fn of(request: &MessagesRequest, options: &RequestOptions) -> Self {
        StoredOptions {
            chain: options.chain.as_ref().map(|chain| {
                chain
                    .iter()
                    .map(|t| StoredTarget {
                        model: t.model().to_owned(),
                        via: t.upstream().map(str::to_owned),
                    })
                    .collect()
            }),
            deadline_ms: options
                .timeout
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            allow_fallback: options.allow_fallback,
            anthropic_version: request.headers.version.clone(),
            anthropic_beta: request.headers.beta.clone(),
        }
    }
}
