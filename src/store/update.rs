//! [`ItemUpdate`]: the store's record of what happened to one in-flight item (sent, answered,
//! refused for good, or put back for later), as a runner hands it to
//! [`Store::update_many`](super::Store::update_many) to be written in a group commit.
//! The runner's decision that produces it is a `Verdict` (see `verdict.rs`).

/// What becomes of an in-flight item, for [`Store::update_many`](super::Store::update_many).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemUpdate {
    /// As [`Store::succeed`](super::Store::succeed).
    Succeed {
        /// The item.
        key: String,
        /// Its result, JSON text.
        result: String,
    },
    /// As [`Store::fail`](super::Store::fail).
    Fail {
        /// The item.
        key: String,
        /// Its error, JSON text.
        error: String,
    },
    /// As [`Store::release`](super::Store::release).
    Release {
        /// The item.
        key: String,
        /// Not claimed again before this time (unix ms).
        not_before: u64,
        /// Why it failed this time.
        last_error: Option<String>,
    },
    /// As [`Store::mark_sent`](super::Store::mark_sent): the request of an item claimed
    /// ahead has gone out.
    Sent {
        /// The item.
        key: String,
    },
}
