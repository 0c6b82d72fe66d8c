//! What `breakwater sim --replicas` takes: the fleet sizes, the store's latency and an outage
//! of the store, each parsed from the command line with an error that names it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// The most replicas one fleet may have: each is a whole runtime, and the store's updates
/// reach every one of them.
pub const MAX_REPLICAS: u32 = 1000;

/// How fleets are run: their sizes, and the shared store's behaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetOptions {
    /// Fleet sizes to run, each as `shared` and `local`, in this order.
    pub replicas: Vec<u32>,
    /// How long each store call, and each published write, takes (one way).
    pub store_latency: Duration,
    /// A window in which the store cannot be reached, if any.
    pub store_outage: Option<StoreOutage>,
}

impl Default for FleetOptions {
    /// Fleets of 1, 3, 10, 30 and 100 replicas on a store answering in 1 ms, never down.
    fn default() -> Self {
        Self {
            replicas: vec![1, 3, 10, 30, 100],
            store_latency: Duration::from_millis(1),
            store_outage: None,
        }
    }
}

/// Fleet sizes as `--replicas` takes them: a comma-separated list of whole numbers from 1 to
/// [`MAX_REPLICAS`], e.g. `1,3,10,30,100`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaCounts(pub Vec<u32>);

impl FromStr for ReplicaCounts {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let counts = text
            .split(',')
            .map(|item| {
                let item = item.trim();
                match item.parse::<u32>() {
                    Ok(n) if (1..=MAX_REPLICAS).contains(&n) => Ok(n),
                    _ => Err(format!(
                        "{item:?} in {text:?} is not a replica count: give whole numbers from \
                         1 to {MAX_REPLICAS}, comma-separated, e.g. 1,3,10,30,100"
                    )),
                }
            })
            .collect::<Result<Vec<u32>, String>>()?;
        Ok(Self(counts))
    }
}

/// A window in which the fleet's store cannot be reached, times since the start of the run:
/// `--store-outage 30s..60s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StoreOutage {
    /// When the store goes down.
    #[serde(with = "humantime_serde")]
    pub start: Duration,
    /// When it is back (after `start`).
    #[serde(with = "humantime_serde")]
    pub end: Duration,
}

impl FromStr for StoreOutage {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!("{text:?} is not a store outage: {why}; give START..END, e.g. 30s..60s")
        };
        let (start, end) = text.split_once("..").ok_or_else(|| bad("no `..`"))?;
        let parse = |part: &str| {
            humantime::parse_duration(part.trim()).map_err(|e| bad(&format!("{part:?}: {e}")))
        };
        let (start, end) = (parse(start)?, parse(end)?);
        if end <= start {
            return Err(bad("it must end after it starts"));
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for StoreOutage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}..{}",
            humantime::format_duration(self.start),
            humantime::format_duration(self.end)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_lists_parse_and_bad_ones_are_named() {
        assert_eq!(
            "1, 3,10".parse::<ReplicaCounts>(),
            Ok(ReplicaCounts(vec![1, 3, 10]))
        );
        for bad in ["", "1,,3", "0", "1,x", "-2", "1001", "2.5"] {
            let error = bad.parse::<ReplicaCounts>().unwrap_err();
            assert!(error.contains("is not a replica count"), "{bad}: {error}");
            assert!(error.contains(&format!("{bad:?}")), "{bad}: {error}");
        }
    }

    #[test]
    fn outages_parse_and_bad_ones_are_named() {
        let outage: StoreOutage = "30s..1m".parse().unwrap();
        assert_eq!(
            (outage.start, outage.end),
            (Duration::from_secs(30), Duration::from_secs(60))
        );
        assert_eq!(outage.to_string(), "30s..1m");
        for bad in ["30s", "1m..30s", "10s..10s", "x..1m", "0s..y"] {
            let error = bad.parse::<StoreOutage>().unwrap_err();
            assert!(error.contains("is not a store outage"), "{bad}: {error}");
        }
    }
}
