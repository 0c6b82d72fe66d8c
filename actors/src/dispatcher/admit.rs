//! The dispatcher's front door: a new request is refused at once (draining, a bad chain, no
//! time left, or shed by admission), or becomes a job and is routed; and draining.

use std::sync::Arc;
use std::time::Duration;

use ractor::RpcReplyPort;
use tokio::time::Instant;

use super::DispatcherRef;
use super::state::DispatcherState;
use crate::board::Event;
use crate::job::{Job, ReplyPort};
use crate::request::{Error, Priority, RequestOptions};
use crate::trace::Spans;
use crate::upstream::{Target, Upstream};

/// Where deadlines too far to represent are put.
const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 3600);

impl<U: Upstream> DispatcherState<U> {
    pub(crate) fn submit(
        &mut self,
        me: &DispatcherRef<U>,
        request: Arc<U::Request>,
        options: &RequestOptions,
        reply: ReplyPort<U>,
        span: tracing::Span,
    ) {
        let priority = options.priority;
        let chain = options
            .chain
            .clone()
            .unwrap_or_else(|| self.config.chain.iter().cloned().collect());
        let timeout = options
            .timeout
            .unwrap_or(self.config.admission.default_timeout);
        if let Some(error) = self.refusal(&chain, timeout, priority) {
            return reply.fail(error);
        }
        let now = Instant::now();
        let id = self.outstanding.next_id();
        let spillover = options
            .spillover
            .unwrap_or_else(|| self.config.spillover_for(&chain));
        let job = Job {
            id,
            request,
            chain,
            allow_fallback: options.allow_fallback.unwrap_or(true),
            spillover,
            priority,
            submitted: now,
            // A deadline too far to represent is as good as none: a year away.
            deadline: now.checked_add(timeout).unwrap_or(now + FAR_FUTURE),
            reply,
            position: 0,
            on_target: 0,
            attempts: Vec::new(),
            backoff: self.config.retry.backoff.build(self.seed.wrapping_add(id)),
            probe: false,
            last: None,
            cost: options.cost,
            spans: Spans::new(span),
            _ticket: self.outstanding.ticket(),
        };
        self.count_request(priority);
        self.route(me, job);
    }

    /// Why a new request is refused at the door, if it is.
    fn refusal(&self, chain: &[Target], timeout: Duration, priority: Priority) -> Option<Error> {
        if self.draining {
            return Some(Error::Shutdown);
        }
        if let Some(problem) = self.check_chain(chain) {
            return Some(Error::Invalid(problem));
        }
        if timeout.is_zero() {
            return Some(Error::DeadlineExceeded {
                attempts: Vec::new(),
            });
        }
        if !self
            .config
            .admission
            .admits(priority, self.outstanding.total())
        {
            self.board.publish(Event::Shed { priority });
            metrics::counter!("breakwater_shed_total", "priority" => priority.as_label())
                .increment(1);
            return Some(Error::Shed { priority });
        }
        None
    }

    fn check_chain(&self, chain: &[Target]) -> Option<String> {
        if chain.is_empty() {
            return Some("the chain is empty".into());
        }
        let unknown = chain.iter().find(|target| {
            self.config.limits(target).is_none() && self.directory.worker(target).is_none()
        })?;
        Some(format!(
            "the chain names {unknown}, which is not a configured target"
        ))
    }

    /// Stops admitting, fails what is parked, and replies with how many requests are held.
    pub(crate) fn drain(&mut self, reply: RpcReplyPort<usize>) {
        self.draining = true;
        for job in self.parked.take(usize::MAX, |_| true) {
            job.fail(Error::Shutdown);
        }
        let _ = reply.send(self.outstanding.total() as usize);
    }
}
