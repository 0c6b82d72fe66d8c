//! One try of a deferred request: sent as sheddable work with its stored options, and what
//! to store of it by the store's shared rule (`decide_item`), except that what would halt a
//! batch puts the ticket back instead.

use std::time::Duration;

use super::stored::{StoredOptions, StoredTarget};
use crate::api::{RequestHeaders, WireMessage, WireRequest};
use crate::engine::{Answer, Error, Priority, RequestOptions, Target};
use crate::runtime::core::Core;
use crate::store::{Item, ItemResult, ItemUpdate, Requeue, Verdict, decide_item, now_ms};

/// How long one try may take, retries and fallbacks included, when the request named no
/// deadline.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);
/// How a request put back is delayed: from 1s, doubling per try, up to a minute.
const REQUEUE: Requeue = Requeue {
    first: Duration::from_secs(1),
    max: MAX_BACKOFF,
    seed: None,
};
/// The longest backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One try of a deferred request; what to store of it.
pub(super) async fn attempt(core: &Core, item: &Item) -> ItemUpdate {
    let stored: StoredOptions = item
        .options
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let payload = bytes::Bytes::copy_from_slice(item.payload.as_bytes());
    let request = match WireRequest::from_json(payload) {
        Ok(request) => request,
        Err(error) => {
            return ItemUpdate::Fail {
                key: item.key.clone(),
                error: ItemResult::errored_json("invalid_request_error", &error.to_string()),
            };
        }
    };
    let request = request.with_headers(RequestHeaders {
        version: stored.anthropic_version,
        beta: stored.anthropic_beta,
        credentials: None,
    });
    let mut options = RequestOptions::default()
        .with_priority(Priority::Sheddable)
        .with_timeout(
            stored
                .deadline_ms
                .map_or(DEFAULT_DEADLINE, Duration::from_millis),
        );
    if let Some(chain) = stored.chain {
        let chain: Vec<Target> = chain.iter().map(StoredTarget::target).collect();
        // A model served alone when it was deferred is not served after a restart until
        // asked for again.
        for target in &chain {
            if !core.engine.serves(target)
                && let Err(error) = core.engine.add_target(target.clone()).await
            {
                return update_for(item, Err(error));
            }
        }
        options = options.with_chain(chain);
    }
    if let Some(allow) = stored.allow_fallback {
        options = options.with_fallback(allow);
    }
    let sent = core.send_with(request, options).await;
    update_for(item, sent)
}

/// What to store of a try: as a batch item, except that what would halt a batch (a refused
/// key, a stopped runtime) puts the ticket back for the longest backoff instead.
fn update_for(item: &Item, sent: Result<Answer<WireMessage>, Error>) -> ItemUpdate {
    if let Err(Error::Shutdown) = &sent {
        // Cut short by a shutdown: due again at once, in the next runtime.
        return ItemUpdate::Release {
            key: item.key.clone(),
            not_before: 0,
            last_error: None,
        };
    }
    match decide_item(item, sent, &REQUEUE) {
        Verdict::Store(update) => update,
        Verdict::Halt { why, .. } => {
            tracing::warn!(ticket = item.key, why, "deferred request put back");
            ItemUpdate::Release {
                key: item.key.clone(),
                not_before: now_ms().saturating_add(MAX_BACKOFF.as_millis() as u64),
                last_error: Some(why),
            }
        }
    }
}
