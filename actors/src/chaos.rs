//! Faults injected into the engine's own actors, for the chaos tests.
//!
//! Every actor calls [`strike`] as it takes a message. Built without the `chaos` feature
//! (the default) it does nothing and compiles away. With it, a test installs a plan with
//! [`inject`]: asked at each message, it may make that actor panic (ractor catches the
//! panic, the supervisor restarts the actor) or stall (a handler that hangs, as one stuck
//! on a lock would). The plan is per thread: paused-time tests run the engine on their own
//! thread, so tests running side by side never strike each other's engines.

/// Where a fault can strike: which actor is handling a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Site {
    /// The supervisor.
    Supervisor,
    /// The dispatcher.
    Dispatcher,
    /// A target's worker.
    Worker,
    /// A target's breaker.
    Breaker,
}

/// What a fault does to the actor it strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The handler panics: the message in hand is lost with the actor's state.
    Panic,
    /// The handler hangs for this long before it goes on.
    Stall(std::time::Duration),
}

#[cfg(feature = "chaos")]
mod plan {
    use std::cell::RefCell;

    use super::{Fault, Site};

    type Plan = Box<dyn FnMut(Site) -> Option<Fault>>;

    thread_local! {
        static PLAN: RefCell<Option<Plan>> = RefCell::new(None);
    }

    /// Installs `plan` on this thread: it is asked at every message an actor takes, and what
    /// it answers happens there. Replaces any plan installed before.
    pub fn inject(plan: impl FnMut(Site) -> Option<Fault> + 'static) {
        PLAN.with(|slot| *slot.borrow_mut() = Some(Box::new(plan)));
    }

    /// Removes this thread's plan: no more faults.
    pub fn clear() {
        PLAN.with(|slot| *slot.borrow_mut() = None);
    }

    pub(crate) async fn strike(site: Site) {
        let fault = PLAN.with(|slot| slot.borrow_mut().as_mut().and_then(|plan| plan(site)));
        match fault {
            Some(Fault::Panic) => panic!("chaos: a fault injected into the {site:?}"),
            Some(Fault::Stall(how_long)) => tokio::time::sleep(how_long).await,
            None => {}
        }
    }
}

#[cfg(feature = "chaos")]
pub use plan::{clear, inject};

#[cfg(feature = "chaos")]
pub(crate) use plan::strike;

/// Without the `chaos` feature: nothing strikes.
#[cfg(not(feature = "chaos"))]
#[allow(clippy::unused_async)]
pub(crate) async fn strike(_: Site) {}
