//! What the dispatcher holds, shared by its handlers (admission, routing, parking).

use std::collections::HashMap;
use std::sync::Arc;

use metrics::Counter;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::DispatcherArgs;
use crate::board::Board;
use crate::breaker::BreakerMsg;
use crate::config::EngineConfig;
use crate::directory::Directory;
use crate::job::{Job, Outstanding};
use crate::policy::{ParkingLot, RetryBudget, StateKind};
use crate::request::Priority;
use crate::upstream::{Target, Upstream};

pub(crate) struct DispatcherState<U: Upstream> {
    pub(super) config: Arc<EngineConfig>,
    pub(super) board: Arc<Board>,
    pub(super) directory: Arc<Directory<U>>,
    pub(super) outstanding: Arc<Outstanding>,
    budgets: HashMap<Target, RetryBudget>,
    pub(super) parked: ParkingLot<Job<U>>,
    /// Jobs waiting out a retry delay, by id.
    pub(super) delayed: HashMap<u64, Job<U>>,
    pub(super) seed: u64,
    /// Draws for the client-side throttle.
    pub(super) rng: SmallRng,
    pub(super) draining: bool,
    /// `breakwater_requests_total` by priority, in [`Priority::ALL`]'s order, each fetched
    /// from the recorder on its first use and kept (as the worker keeps its own).
    requests: [Option<Counter>; Priority::ALL.len()],
}

impl<U: Upstream> DispatcherState<U> {
    pub(crate) fn new(args: DispatcherArgs<U>) -> Self {
        let budgets = args
            .config
            .targets
            .iter()
            .map(|(t, _)| (t.clone(), RetryBudget::new(args.config.budget)))
            .collect();
        Self {
            parked: ParkingLot::new(args.config.admission.max_parked as usize),
            config: args.config,
            board: args.board,
            directory: args.directory,
            outstanding: args.outstanding,
            budgets,
            delayed: HashMap::new(),
            seed: args.seed,
            rng: SmallRng::seed_from_u64(args.seed ^ 0x7468_726f_7474_6c65),
            draining: false,
            requests: Default::default(),
        }
    }

    /// Counts a request admitted at `priority`.
    pub(super) fn count_request(&mut self, priority: Priority) {
        let fetch =
            || metrics::counter!("breakwater_requests_total", "priority" => priority.as_label());
        match Priority::ALL.iter().position(|p| *p == priority) {
            Some(slot) => self.requests[slot].get_or_insert_with(fetch).increment(1),
            None => fetch().increment(1),
        }
    }

    /// The target's retry budget, with this replica's share of it in a fleet; a target added
    /// after start gets its own on first use.
    pub(super) fn budget(&mut self, target: &Target) -> &mut RetryBudget {
        let config = self.config.budget;
        let share = self.board.share(target);
        let budget = self
            .budgets
            .entry(target.clone())
            .or_insert_with(|| RetryBudget::new(config));
        budget.set_share(share);
        budget
    }

    pub(crate) fn tell_breaker(&self, target: &Target, message: BreakerMsg<U>) {
        if let Some(breaker) = self.directory.breaker(target) {
            let _ = breaker.cast(message);
        }
    }

    /// A target's breaker state as last published, and when it half-opens while open (a
    /// target never published is closed).
    pub(super) fn breaker_of(&self, target: &Target) -> (StateKind, Option<tokio::time::Instant>) {
        self.board
            .status(target)
            .map_or((StateKind::Closed, None), |s| (s.state, s.open_until))
    }
}

/// The targets a job may still use: its whole chain if it may fall back, else its current one.
pub(super) fn reachable<U: Upstream>(job: &Job<U>) -> &[Target] {
    if job.allow_fallback {
        &job.chain
    } else {
        std::slice::from_ref(job.target())
    }
}
