//! One request on its way through a strategy ([`Trip`]): each attempt sent to the simulated
//! API and logged as an [`AttemptOutcome`], whatever the strategy does between them.

use std::time::Duration;

use crate::api::WireRequest;
use crate::engine::{Class, Failure, Target, Upstream};
use crate::sim::upstream::SimUpstream;

/// One attempt a strategy made, as the strategy saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// When the attempt ended, time since the simulation's start.
    pub at: Duration,
    /// The model it went to.
    pub model: String,
    /// The status it was answered with (200 on success), if any.
    pub status: Option<u16>,
    /// `None` on success, else the class of its failure.
    pub class: Option<Class>,
    /// Whether breakwater sent it as a half-open probe (never, for the other strategies).
    pub probe: bool,
}

/// One request on its way: makes attempts and logs them.
pub(super) struct Trip<'a> {
    pub(super) upstream: &'a SimUpstream,
    pub(super) request: &'a WireRequest,
    pub(super) log: &'a mut Vec<AttemptOutcome>,
}

impl Trip<'_> {
    /// One attempt at `target`, logged when it ends.
    pub(super) async fn attempt(&mut self, target: &Target) -> Result<(), Failure> {
        let outcome = self.upstream.send(target, self.request).await;
        let (status, class) = match &outcome {
            Ok(_) => (Some(200), None),
            Err(failure) => (failure.status(), Some(failure.class())),
        };
        self.log.push(AttemptOutcome {
            at: self.upstream.elapsed(),
            model: target.model().to_owned(),
            status,
            class,
            probe: false,
        });
        outcome.map(|_| ())
    }
}
