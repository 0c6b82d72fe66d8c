//! What a simulation shows: per strategy, how many requests were answered and how fast, how
//! many upstream attempts that took, how hard each model was hit during the incident against
//! what it could serve, who answered during the incident, how long recovery took, and a
//! per-second timeline. An [`Aggregate`] sums a run up while it plays, in memory bounded by
//! its length in seconds; the result is rendered as JSON (serde), a terminal [`table`], a
//! Markdown [`markdown`] report and [`plot`] charts.

mod aggregate;
pub mod markdown;
mod metrics;
pub mod plot;
pub mod table;

mod figures;

pub use aggregate::Aggregate;
pub use figures::{
    ModelLoad, RECOVERED_RATE, RECOVERY_WINDOW, SimReport, StrategyReport, Timeline, Window,
};
pub use metrics::capacity;

use std::path::{Path, PathBuf};

/// Why `--out` could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A file or the directory could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A chart could not be drawn.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
}

/// Writes `report.md` and the charts (PNG and SVG) into `dir`, creating it; returns the
/// path of `report.md`.
///
/// # Errors
/// [`WriteError`] naming the file that could not be written.
pub fn write_dir(report: &SimReport, dir: &Path) -> Result<PathBuf, WriteError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| WriteError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let charts = plot::write_charts(report, dir)?;
    let path = dir.join("report.md");
    std::fs::write(&path, markdown::render(report, &charts)).map_err(io(&path))?;
    Ok(path)
}
