//! [`Verdict`]: what a runner makes of one try of a stored item, and [`decide_item`], the
//! rule both runners share (the batch runner and the runtime's deferred requests). A success
//! or a permanent error is final; anything else puts the item back ([`Requeue`]); a refused
//! key or a stopped runtime halts the runner, since no other item could succeed either.
//! The verdict carries the [`ItemUpdate`] to store.

use super::item::Item;
use super::requeue::Requeue;
use super::result::ItemResult;
use super::update::ItemUpdate;
use crate::api::{ErrorType, WireMessage};
use crate::engine::{Answer, Error};

/// What a try of an item came to.
pub(crate) enum Verdict {
    /// Store this.
    Store(ItemUpdate),
    /// Store this (the item put back), and stop: every other item would fail the same way.
    Halt {
        /// The item, put back.
        release: ItemUpdate,
        /// Why.
        why: String,
    },
}

/// What to store of `item` after a send ended with `sent`: a success or a permanent error is
/// final; anything else puts it back, due as `requeue` says. A refused key (401, 403) or a
/// stopped runtime halts: no item could succeed, and storing each as errored would end the
/// job wrongly.
pub(crate) fn decide_item(
    item: &Item,
    sent: Result<Answer<WireMessage>, Error>,
    requeue: &Requeue,
) -> Verdict {
    let key = item.key.clone();
    match sent {
        Ok(answer) => Verdict::Store(ItemUpdate::Succeed {
            key,
            result: ItemResult::succeeded_json(&answer.value),
        }),
        Err(error @ Error::Upstream { .. }) if refuses_the_key(&error) => Verdict::Halt {
            release: Requeue::NOW.release(item, &error),
            why: format!("the API refused the key: {error}"),
        },
        Err(Error::Upstream { failure, .. }) => {
            let kind = failure
                .error_type()
                .map_or(ErrorType::InvalidRequest, ErrorType::from);
            Verdict::Store(ItemUpdate::Fail {
                key,
                error: ItemResult::errored_json(kind.as_str(), failure.message()),
            })
        }
        Err(Error::Invalid(message)) => Verdict::Store(ItemUpdate::Fail {
            key,
            error: ItemResult::errored_json("invalid_request_error", &message),
        }),
        Err(error @ Error::Shutdown) => Verdict::Halt {
            release: Requeue::NOW.release(item, &error),
            why: "the runtime stopped".into(),
        },
        Err(error) => Verdict::Store(requeue.release(item, &error)),
    }
}

/// Whether `error` is the API refusing the credentials (401 or 403), which no retry of any
/// item can overcome.
fn refuses_the_key(error: &Error) -> bool {
    let Error::Upstream { failure, .. } = error else {
        return false;
    };
    matches!(failure.status(), Some(401 | 403))
        || matches!(
            failure.error_type().map(ErrorType::from),
            Some(ErrorType::Authentication | ErrorType::Permission)
        )
}
