//! The link's reading of shared records: from the store (a read is the truth), from the
//! subscription (only a newer version counts), and what each change tells the target's
//! breaker; records this version cannot read keep their target local.

use std::time::Duration;

use super::{FleetView, Link, key};
use crate::fleet::record::{SharedBreaker, SharedState};
use crate::fleet::store::{Published, StoreError, Versioned};
use crate::upstream::Target;

impl Link {
    pub(super) async fn refresh(&mut self, target: &Target) -> Result<(), StoreError> {
        let key = key(target);
        let store = self.store.clone();
        match self.call(store.get(&key)).await {
            // A read is the truth, even at a lower version (the key was deleted or evicted
            // and written again since).
            Ok(Some(found)) => self.take(target, &found, true),
            Ok(None) => {
                if self.garbage.remove(target) {
                    tracing::info!(target = %target, "fleet: the unreadable key is gone; this target's breaker is shared again");
                    self.status.set_garbage(target, false);
                }
            }
            Err(StoreError::Garbage { key, reason }) => self.mark_garbage(target, &key, &reason),
            Err(error) => return Err(error),
        }
        Ok(())
    }

    pub(super) fn published(&mut self, published: &Published) {
        let Some(target) = self.keys.get(&published.key).cloned() else {
            return;
        };
        if let Ok(record) = SharedBreaker::parse(&published.value.value) {
            if record.by != self.config.replica {
                let lag = self.clock.now_us().saturating_sub(record.at_us);
                self.status.record_lag(Duration::from_micros(lag));
            }
        }
        self.take(&target, &published.value, false);
    }

    /// Takes a record read (`authoritative`: any other version than the cached one wins) or
    /// published (only a newer version does).
    pub(super) fn take(&mut self, target: &Target, found: &Versioned, authoritative: bool) {
        let cached = self.cache.get(target).map(|(version, _)| *version);
        let stale = match cached {
            Some(version) if authoritative => version == found.version,
            Some(version) => version >= found.version,
            None => false,
        };
        if stale {
            return;
        }
        match SharedBreaker::parse(&found.value) {
            Ok(record) => self.accept(target, found.version, record),
            Err(reason) => self.mark_garbage(target, &key(target), &reason),
        }
    }

    pub(super) fn accept(&mut self, target: &Target, version: u64, record: SharedBreaker) {
        let changed = self
            .cache
            .get(target)
            .is_none_or(|(_, old)| old.state != record.state);
        if self.garbage.remove(target) {
            self.status.set_garbage(target, false);
        }
        if changed {
            self.deliver(target, &record);
        }
        self.cache.insert(target.clone(), (version, record));
    }

    pub(super) fn deliver(&self, target: &Target, record: &SharedBreaker) {
        // Times another replica wrote are trusted only so far: a clock far ahead must not
        // hold the model open (or the probe) past what this replica's settings allow.
        let now_ms = self.clock.now_ms();
        // (A retry-after may lengthen an open interval past max-open-for: allow 15 minutes.)
        let longest_open =
            (self.breaker.open_range(u32::MAX).end().as_millis() as u64).max(900_000);
        let longest_lease = self.config.probe_lease.as_millis() as u64;
        let view = match &record.state {
            SharedState::Closed => FleetView::Closed,
            SharedState::Open { until_ms } => FleetView::Open {
                until: self
                    .clock
                    .instant((*until_ms).min(now_ms.saturating_add(longest_open))),
            },
            SharedState::HalfOpen {
                owner,
                lease_until_ms,
            } => FleetView::HalfOpen {
                mine: *owner == self.config.replica,
                lease_until: self
                    .clock
                    .instant((*lease_until_ms).min(now_ms.saturating_add(longest_lease))),
            },
        };
        (self.deliver)(target, view);
    }

    pub(super) fn mark_garbage(&mut self, target: &Target, key: &str, reason: &str) {
        if self.garbage.insert(target.clone()) {
            tracing::warn!(target = %target, key, reason, "fleet: a shared key holds data this version cannot read; this target's breaker stays local (delete the key to share it again)");
            self.status.set_garbage(target, true);
            (self.deliver)(target, FleetView::Local);
        }
        self.cache.remove(target);
    }
}
