//! The dispatcher actor itself: each message is matched to the state's handler that applies
//! its rule.

use std::marker::PhantomData;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::state::DispatcherState;
use super::{DispatcherArgs, DispatcherMsg, DispatcherRef, Internal, Signal};
use crate::breaker::BreakerMsg;
use crate::chaos::{self, Site};
use crate::job::ReplyPort;
use crate::upstream::Upstream;

pub(crate) struct DispatcherActor<U>(PhantomData<fn() -> U>);

impl<U> DispatcherActor<U> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

impl<U: Upstream> Actor for DispatcherActor<U> {
    type Msg = DispatcherMsg<U>;
    type State = DispatcherState<U>;
    type Arguments = DispatcherArgs<U>;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        args: DispatcherArgs<U>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(DispatcherState::new(args))
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        chaos::strike(Site::Dispatcher).await;
        match message {
            DispatcherMsg::Submit {
                request,
                options,
                reply,
            } => {
                let reply = ReplyPort::Whole(reply);
                state.submit(&myself, request, &options, reply, tracing::Span::none());
            }
            DispatcherMsg::SubmitStream {
                request,
                options,
                reply,
            } => {
                let reply = ReplyPort::Stream(reply);
                state.submit(&myself, request, &options, reply, tracing::Span::none());
            }
            DispatcherMsg::Isolate(target) => state.tell_breaker(&target, BreakerMsg::Isolate),
            DispatcherMsg::Reset(target) => state.tell_breaker(&target, BreakerMsg::Reset),
            DispatcherMsg::Drain(reply) => state.drain(reply),
            DispatcherMsg::Internal(Internal(signal)) => signal_to(state, &myself, signal),
        }
        Ok(())
    }
}

/// Hands an engine-internal signal to its handler.
fn signal_to<U: Upstream>(
    state: &mut DispatcherState<U>,
    me: &DispatcherRef<U>,
    signal: Signal<U>,
) {
    match signal {
        Signal::Submit(s) => state.submit(me, s.request, &s.options, s.reply, s.span),
        Signal::Failed { job, failure } => state.failed(me, job, failure),
        Signal::Retry(id) => state.retry_due(me, id),
        Signal::Admitted(job) => state.dispatch(me, job),
        Signal::Refused(job) => state.refused(me, job),
        Signal::Spill(job) => state.spill(me, job),
        Signal::Transition { target, to } => state.release(me, &target, to),
        Signal::Expire(id) => state.expire(id),
        Signal::Left => state.left(),
    }
}
