//! When the supervisor restarts a crashed actor, or gives up: at most `max-restarts` restarts
//! within a trailing window (OTP's restart intensity), each after a delay that doubles with
//! every restart still in the window.
//!
//! Why: an actor that crashes because of something outside it (a bug a certain request
//! triggers, a resource that is gone) would crash again at once; a growing delay keeps a crash
//! loop from spinning, and the intensity limit turns one that will not stop into a clean stop
//! of the engine, whose callers are then told, instead of a process that only restarts. The
//! delays are the [`Backoff`](super::Backoff) shape without jitter: restarts are local, so
//! there is no fleet to spread out.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::backoff::{BackoffConfig, Jitter};

/// The most times the first delay is doubled.
const MAX_DOUBLINGS: u32 = 16;

/// What follows a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Restart the actor after this delay.
    After(Duration),
    /// Too many restarts within the window: stop.
    GiveUp,
}

/// Restarts in a trailing window, and the delay before the next; see the module docs.
#[derive(Clone, Debug)]
pub struct RestartPolicy {
    max_restarts: u32,
    within: Duration,
    delays: BackoffConfig,
    restarts: VecDeque<Instant>,
}

impl RestartPolicy {
    /// At most `max_restarts` within `within`, the first after `delay`.
    pub fn new(max_restarts: u32, within: Duration, delay: Duration) -> Self {
        let delays = BackoffConfig {
            base: delay,
            cap: delay.saturating_mul(1 << MAX_DOUBLINGS),
            jitter: Jitter::None,
        };
        Self {
            max_restarts,
            within,
            delays,
            restarts: VecDeque::new(),
        }
    }

    /// Decides what follows a crash at `now`, and counts the restart it allows.
    pub fn crashed(&mut self, now: Instant) -> Restart {
        while self
            .restarts
            .front()
            .is_some_and(|at| now.duration_since(*at) > self.within)
        {
            self.restarts.pop_front();
        }
        let recent = u32::try_from(self.restarts.len()).unwrap_or(u32::MAX);
        if recent >= self.max_restarts {
            return Restart::GiveUp;
        }
        self.restarts.push_back(now);
        Restart::After(self.delays.ceiling(recent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn each_restart_in_the_window_doubles_the_delay_until_the_limit() {
        let now = Instant::now();
        let mut policy = RestartPolicy::new(5, Duration::from_secs(60), ms(50));
        let decisions: Vec<_> = (0..6).map(|i| policy.crashed(now + ms(i))).collect();
        assert_eq!(
            decisions,
            vec![
                Restart::After(ms(50)),
                Restart::After(ms(100)),
                Restart::After(ms(200)),
                Restart::After(ms(400)),
                Restart::After(ms(800)),
                Restart::GiveUp,
            ]
        );
    }

    #[test]
    fn the_window_forgets_old_restarts() {
        let now = Instant::now();
        let mut policy = RestartPolicy::new(2, Duration::from_secs(60), ms(50));
        assert_eq!(policy.crashed(now), Restart::After(ms(50)));
        assert_eq!(policy.crashed(now + ms(30_000)), Restart::After(ms(100)));
        assert_eq!(policy.crashed(now + ms(60_000)), Restart::GiveUp);
        assert_eq!(policy.crashed(now + ms(60_001)), Restart::After(ms(100)));
        assert_eq!(policy.crashed(now + ms(90_001)), Restart::After(ms(100)));
    }

    #[test]
    fn the_delay_stops_doubling_after_sixteen_restarts() {
        let now = Instant::now();
        let mut policy = RestartPolicy::new(100, Duration::from_secs(3600), ms(1));
        let delays: Vec<_> = (0..20).map(|_| policy.crashed(now)).collect();
        assert_eq!(delays[16], Restart::After(ms(65_536)));
        assert_eq!(delays[19], Restart::After(ms(65_536)));
    }

    #[test]
    fn no_restart_at_all_gives_up_at_once() {
        let mut policy = RestartPolicy::new(0, Duration::from_secs(60), ms(50));
        assert_eq!(policy.crashed(Instant::now()), Restart::GiveUp);
    }
}
