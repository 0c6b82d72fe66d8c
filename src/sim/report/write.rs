//! `--out DIR`: the Markdown report and its charts written into a directory.

use std::path::{Path, PathBuf};

use super::data::SimReport;
use super::{markdown, plot};

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
