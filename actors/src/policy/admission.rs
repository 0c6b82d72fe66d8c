//! Who gets in when there is not room for everyone.
//!
//! Why thresholds by priority: a single bound sheds whatever arrives last, which under
//! overload is as likely to be a user's request as a background job. Giving each priority a
//! share of the bound means `Sheddable` work is refused first (at half the bound, by default),
//! then `Normal` (at 90%), and `Critical` only when the engine is full: the lowest is shed
//! first without any work being preempted.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::PolicyError;
use crate::request::Priority;

/// Admission bounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Requests in the engine at once (queued, running, waiting to retry or parked). Default: 1024.
    pub max_outstanding: NonZeroU32,
    /// Share of `max-outstanding` open to `sheddable` requests. Default: 0.5.
    pub sheddable_share: f64,
    /// Share of `max-outstanding` open to `normal` requests. Default: 0.9.
    pub normal_share: f64,
    /// Requests that may wait for a target to recover. Default: 256.
    pub max_parked: u32,
    /// How long a caller waits when its request names no timeout. Default: 60s.
    #[serde(with = "humantime_serde")]
    pub default_timeout: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_outstanding: NonZeroU32::new(1024).expect("1024 is not zero"),
            sheddable_share: 0.5,
            normal_share: 0.9,
            max_parked: 256,
            default_timeout: Duration::from_secs(60),
        }
    }
}

impl AdmissionConfig {
    /// Checks the shares are fractions, in order, and the timeout is not zero.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let share = |field, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(PolicyError::Invalid {
                    field,
                    reason: format!("must be within 0..=1, got {value}"),
                })
            }
        };
        share("sheddable-share", self.sheddable_share)?;
        share("normal-share", self.normal_share)?;
        if self.sheddable_share > self.normal_share {
            let reason =
                "must not exceed normal-share, or sheddable work would outlast normal work".into();
            return Err(PolicyError::Invalid {
                field: "sheddable-share",
                reason,
            });
        }
        if self.default_timeout.is_zero() {
            return Err(PolicyError::Invalid {
                field: "default-timeout",
                reason: "must be more than 0s".into(),
            });
        }
        Ok(())
    }

    /// How many requests may be outstanding when one of `priority` is admitted.
    pub fn limit(&self, priority: Priority) -> u32 {
        let max = self.max_outstanding.get();
        let share = match priority {
            Priority::Critical => return max,
            Priority::Normal => self.normal_share,
            Priority::Sheddable => self.sheddable_share,
        };
        (f64::from(max) * share).floor() as u32
    }

    /// Whether a request of `priority` is admitted while `outstanding` requests are in.
    pub fn admits(&self, priority: Priority, outstanding: u32) -> bool {
        outstanding < self.limit(priority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_priority_is_shed_first() {
        let config = AdmissionConfig {
            max_outstanding: NonZeroU32::new(10).unwrap(),
            ..AdmissionConfig::default()
        };
        assert_eq!(
            [Priority::Sheddable, Priority::Normal, Priority::Critical].map(|p| config.limit(p)),
            [5, 9, 10]
        );
        assert!(config.admits(Priority::Sheddable, 4));
        assert!(!config.admits(Priority::Sheddable, 5));
        assert!(config.admits(Priority::Normal, 8));
        assert!(!config.admits(Priority::Normal, 9));
        assert!(config.admits(Priority::Critical, 9));
        assert!(!config.admits(Priority::Critical, 10));
    }

    #[test]
    fn shares_out_of_order_are_rejected_by_name() {
        let config = AdmissionConfig {
            sheddable_share: 0.95,
            ..AdmissionConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.starts_with("invalid sheddable-share"), "{err}");
        let config = AdmissionConfig {
            normal_share: 1.5,
            ..AdmissionConfig::default()
        };
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "invalid normal-share: must be within 0..=1, got 1.5"
        );
    }
}
