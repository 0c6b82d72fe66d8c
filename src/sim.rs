//! `breakwater sim`: the real runtime and the strategies people use today, side by side,
//! against a simulated Claude API in virtual time.
//!
//! [`scenario`] is the script (load, chain, capacity, incident), [`upstream`] the simulated
//! API sharing the mock server's capacity model, [`strategy`] the baselines and breakwater,
//! [`run`] plays a scenario on a paused tokio clock, and [`report`] sums it up; [`fleet`]
//! plays it against fleets of breakwater replicas, sharing their breakers or not.

pub mod fleet;
pub mod report;
pub mod run;
pub mod scenario;
pub mod strategy;
pub mod upstream;

pub use scenario::{Incident, SimModel, SimScenario, SimScenarioError, Surge};
pub use upstream::{AttemptRecord, SimUpstream};
