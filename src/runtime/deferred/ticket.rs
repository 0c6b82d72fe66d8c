//! A deferred request's [`Ticket`], where it is ([`TicketStatus`], read from its stored item)
//! and why deferring can fail ([`DeferError`]).

use serde::{Deserialize, Serialize};

use crate::api::Message;
use crate::store::{Item, ItemResult, State, StoreError};

/// A deferred request's handle: keep its [`Ticket::id`] to ask after it, even after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ticket(String);

impl Ticket {
    /// The ticket with this id, as [`Ticket::id`] gave it.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a deferred request is.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TicketStatus {
    /// Waiting for capacity, or for its backoff after a failed try.
    Pending {
        /// Tries so far.
        attempts: u32,
        /// Why the last try failed, if one did.
        last_error: Option<String>,
    },
    /// Being tried now.
    InFlight {
        /// Tries so far, this one included.
        attempts: u32,
    },
    /// Answered.
    Succeeded(Box<Message>),
    /// Refused for good (a permanent error).
    Errored {
        /// The API's `error.type`.
        kind: String,
        /// Its message.
        message: String,
    },
}

/// Why a request could not be deferred, or a ticket not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeferError {
    /// The runtime keeps no store.
    #[error(
        "this runtime has no store for deferred requests: build it with RuntimeBuilder::store(PATH)"
    )]
    NoStore,
    /// The store failed; the request was not deferred.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the deferred request stored as `item` is.
pub(super) fn status_of(item: &Item) -> TicketStatus {
    match item.state {
        State::Pending => TicketStatus::Pending {
            attempts: item.attempts,
            last_error: item.last_error.clone(),
        },
        State::InFlight => TicketStatus::InFlight {
            attempts: item.attempts,
        },
        State::Succeeded | State::Errored => {
            let stored = item
                .result
                .as_deref()
                .and_then(|text| serde_json::from_str::<ItemResult>(text).ok());
            match stored {
                Some(ItemResult::Succeeded { message }) => {
                    TicketStatus::Succeeded(Box::new(message))
                }
                Some(ItemResult::Errored { error }) => TicketStatus::Errored {
                    kind: error.kind,
                    message: error.message,
                },
                None => TicketStatus::Errored {
                    kind: "api_error".into(),
                    message: "the stored result could not be read".into(),
                },
            }
        }
    }
}
