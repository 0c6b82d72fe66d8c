//! What a simulation shows: per strategy, how many requests were answered and how fast, how
//! many upstream attempts that took, how hard each model was hit during the incident against
//! what it could serve, who answered during the incident, how long recovery took, and a
//! per-second timeline. An [`Aggregate`] sums a run up while it plays, in memory bounded by
//! its length in seconds; the result is rendered as JSON (serde), a terminal [`table`], a
//! Markdown [`markdown`] report and [`plot`] charts.

mod aggregate;
mod data;
pub mod markdown;
mod metrics;
pub mod plot;
pub mod table;
mod write;

pub use aggregate::Aggregate;
pub use data::{
    ModelLoad, RECOVERED_RATE, RECOVERY_WINDOW, SimReport, StrategyReport, Timeline, Window,
};
pub use metrics::capacity;
pub use write::{WriteError, write_dir};
