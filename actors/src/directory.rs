//! Who is where: the current actor of every role, kept by the supervisor. Actors look their
//! peers up here at send time, so a restarted peer is reached at its new address without
//! anyone holding a stale reference.

use std::sync::RwLock;

use ractor::ActorRef;

use crate::board::TargetMap;
use crate::breaker::BreakerMsg;
use crate::dispatcher::DispatcherMsg;
use crate::upstream::{Target, Upstream};
use crate::worker::WorkerMsg;

pub(crate) struct Directory<U: Upstream> {
    dispatcher: RwLock<Option<ActorRef<DispatcherMsg<U>>>>,
    workers: TargetMap<ActorRef<WorkerMsg<U>>>,
    breakers: TargetMap<ActorRef<BreakerMsg<U>>>,
}

impl<U: Upstream> Directory<U> {
    pub(crate) fn new() -> Self {
        Self {
            dispatcher: RwLock::new(None),
            workers: TargetMap::default(),
            breakers: TargetMap::default(),
        }
    }

    pub(crate) fn dispatcher(&self) -> Option<ActorRef<DispatcherMsg<U>>> {
        self.dispatcher.read().map_or(None, |guard| guard.clone())
    }

    pub(crate) fn set_dispatcher(&self, actor: Option<ActorRef<DispatcherMsg<U>>>) {
        if let Ok(mut guard) = self.dispatcher.write() {
            *guard = actor;
        }
    }

    pub(crate) fn worker(&self, target: &Target) -> Option<ActorRef<WorkerMsg<U>>> {
        self.workers.get(target).map(|actor| actor.clone())
    }

    pub(crate) fn set_worker(&self, target: Target, actor: ActorRef<WorkerMsg<U>>) {
        self.workers.insert(target, actor);
    }

    /// Every target that has (or had) a worker.
    pub(crate) fn targets(&self) -> Vec<Target> {
        self.workers
            .iter()
            .map(|entry| entry.key().clone())
            .collect()
    }

    pub(crate) fn breaker(&self, target: &Target) -> Option<ActorRef<BreakerMsg<U>>> {
        self.breakers.get(target).map(|actor| actor.clone())
    }

    pub(crate) fn set_breaker(&self, target: Target, actor: ActorRef<BreakerMsg<U>>) {
        self.breakers.insert(target, actor);
    }
}
