//! The dispatcher actor: the engine's front door and its traffic controller.
//!
//! It admits requests (bounded by priority, refusing at once what cannot meet its deadline),
//! routes each to the first target of its chain whose breaker admits it, decides after every
//! failed attempt whether to retry in place, fall back or give up (the pure
//! [`RetryPolicy`](crate::policy::RetryPolicy), gated by a per-target retry budget), and parks
//! requests that no target can take now until a breaker event releases them or their deadline
//! ends them.
//!
//! # The message protocol
//!
//! A ractor application talks to the engine through [`DispatcherMsg`]: send
//! [`DispatcherMsg::Submit`] with an [`RpcReplyPort`] and await the reply, exactly one of an
//! [`Answer`](crate::Answer) or an [`Error`](crate::Error), by the request's deadline.
//! Dropping the reply's receiver abandons the request, but the engine notices that only at
//! its next step (a retry, a release, a slot at the worker); the [`Engine`](crate::Engine)
//! handle's `send` and `stream` also cancel at once, attempt in flight included.
//!
//! ```ignore
//! let answer = ractor::call!(dispatcher, |reply| DispatcherMsg::Submit {
//!     request: Arc::new(request),
//!     options: RequestOptions::default(),
//!     reply,
//! })?;
//! ```

mod actor;
mod admit;
mod left;
mod park;
mod route;
mod state;

use std::sync::Arc;

use ractor::{ActorRef, RpcReplyPort};

use crate::board::Board;
use crate::config::EngineConfig;
use crate::directory::Directory;
use crate::job::{AnswerPort, Job, Outstanding, ReplyPort, StreamPort};
use crate::policy::StateKind;
use crate::request::RequestOptions;
use crate::upstream::{Failure, Target, Upstream};

pub(crate) use actor::DispatcherActor;

/// What the dispatcher is told. `Submit`, `SubmitStream`, `Isolate` and `Reset` are the
/// public protocol; `Internal` carries the engine's own signals and cannot be built outside it.
pub enum DispatcherMsg<U: Upstream> {
    /// Answer `request` on `reply` with a whole response.
    Submit {
        /// The request; its model is replaced by each target's.
        request: Arc<U::Request>,
        /// Priority, timeout, chain, fallback.
        options: RequestOptions,
        /// Where the answer goes.
        reply: AnswerPort<U>,
    },
    /// Answer `request` on `reply` with a stream that has committed: everything before its
    /// first content event was retried or rerouted invisibly.
    SubmitStream {
        /// The request.
        request: Arc<U::Request>,
        /// Priority, timeout, chain, fallback.
        options: RequestOptions,
        /// Where the committed stream goes.
        reply: StreamPort<U>,
    },
    /// Force `target`'s circuit open until it is reset.
    Isolate(Target),
    /// Force `target`'s circuit closed, forgetting its history.
    Reset(Target),
    /// Stop admitting: new requests get [`Error::Shutdown`](crate::Error::Shutdown). Replies
    /// once the engine holds no request, or at once with the number still held.
    Drain(RpcReplyPort<usize>),
    /// The engine's own signals.
    Internal(Internal<U>),
}

/// An engine-internal signal; opaque outside the crate.
pub struct Internal<U: Upstream>(pub(crate) Signal<U>);

pub(crate) enum Signal<U: Upstream> {
    /// A request from the [`Engine`](crate::Engine) handle, with the caller's span, which its
    /// attempts' spans are children of.
    Submit(Box<Submission<U>>),
    /// An attempt failed; the worker recorded it on the job.
    Failed { job: Job<U>, failure: Failure },
    /// The retry delay of the job with this id is over.
    Retry(u64),
    /// The target's breaker admits the job (as a probe if it set `job.probe`).
    Admitted(Job<U>),
    /// The target's breaker refuses the job now.
    Refused(Job<U>),
    /// The target's worker is full and the next target has room: move on without an attempt.
    Spill(Job<U>),
    /// A breaker changed state.
    Transition { target: Target, to: StateKind },
    /// A parked job's deadline is due.
    Expire(u64),
    /// A caller went away: drop every job nobody waits for, wherever the engine holds it.
    Left,
}

/// A request as the [`Engine`](crate::Engine) handle submits it.
pub(crate) struct Submission<U: Upstream> {
    pub(crate) request: Arc<U::Request>,
    pub(crate) options: RequestOptions,
    pub(crate) reply: ReplyPort<U>,
    pub(crate) span: tracing::Span,
}

impl<U: Upstream> From<Signal<U>> for DispatcherMsg<U> {
    fn from(signal: Signal<U>) -> Self {
        DispatcherMsg::Internal(Internal(signal))
    }
}

pub(crate) struct DispatcherArgs<U: Upstream> {
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) board: Arc<Board>,
    pub(crate) directory: Arc<Directory<U>>,
    pub(crate) outstanding: Arc<Outstanding>,
    pub(crate) seed: u64,
}

/// The dispatcher's own address, which its handlers schedule signals to.
pub(crate) type DispatcherRef<U> = ActorRef<DispatcherMsg<U>>;
