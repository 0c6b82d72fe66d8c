//! The link's heartbeats (who is alive) and demand reports: each replica's attempts per
//! second at each target, shared so that each takes its part of a target's fleet-wide cap,
//! rate-limit remainder and retry reserve (see `Board::share`).

use tokio::time::Instant;

use super::{Link, StoreError};
use crate::upstream::Target;

impl Link {
    pub(super) async fn heartbeat(&mut self) -> Result<(), StoreError> {
        let store = self.store.clone();
        let replica = self.config.replica.clone();
        let now_ms = self.clock.now_ms();
        let ttl = self.config.member_ttl;
        let alive = self.call(store.heartbeat(&replica, now_ms, ttl)).await?;
        self.live = u32::try_from(alive.len()).unwrap_or(u32::MAX).max(1);
        self.status.set_live(self.live);
        Ok(())
    }

    /// Reports this replica's demand for every followed target (attempts started per second
    /// since the last report), reads the others', and sets its share of each on the board:
    /// `(own + 1) / (fleet + replicas)`, so that a replica with no demand yet still has a
    /// little, and a fleet with none splits evenly.
    pub(super) async fn share(&mut self) -> Result<(), StoreError> {
        let now = Instant::now();
        let targets: Vec<Target> = self.targets.iter().cloned().collect();
        for target in targets {
            let starts = self.board.starts(&target);
            let (before, since) = self.demand.get(&target).copied().unwrap_or((starts, now));
            self.demand.insert(target.clone(), (starts, now));
            let elapsed = now.saturating_duration_since(since).as_secs_f64();
            let own = if elapsed > 0.0 {
                starts.saturating_sub(before) as f64 / elapsed
            } else {
                0.0
            };
            let store = self.store.clone();
            let key = demand_key(&target);
            let replica = self.config.replica.clone();
            let (now_ms, ttl) = (self.clock.now_ms(), self.config.member_ttl);
            let fields = match self
                .call(store.report(&key, &replica, format!("{own:.3}"), now_ms, ttl))
                .await
            {
                Ok(mut fields) => {
                    // In one order, so that the sum is the same whatever order the store
                    // returned the fields in (a simulated fleet replays exactly).
                    fields.sort_unstable();
                    fields
                }
                Err(StoreError::Garbage { key, reason }) => {
                    tracing::debug!(key, reason, "fleet: unreadable demand table");
                    continue;
                }
                Err(error) => return Err(error),
            };
            let replicas = fields.len().max(self.live as usize).max(1);
            let fleet: f64 = fields
                .iter()
                .filter_map(|(_, value)| value.parse::<f64>().ok())
                .filter(|rate| rate.is_finite() && *rate >= 0.0)
                .sum();
            let share = if replicas <= 1 {
                1.0
            } else {
                ((own + 1.0) / (fleet.max(own) + replicas as f64)).clamp(0.0, 1.0)
            };
            self.board.set_share(&target, share);
        }
        Ok(())
    }
}

/// The key of the table of each replica's demand for a target.
fn demand_key(target: &Target) -> String {
    format!("{{{target}}}:demand")
}
