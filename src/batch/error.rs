//! [`BatchError`]: why a run did not start or did not finish, each saying what to do next
//! (every result stored so far is kept in the state file).

use std::io;
use std::path::PathBuf;

use super::input::Invalid;
use crate::store::StoreError;

/// Why a run did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The input has bad lines; nothing was sent.
    #[error("{path}: {} invalid line(s); nothing was sent{}\n{}", .invalid.len(), skip_hint(*.skippable), list(.invalid))]
    Invalid {
        /// The input file.
        path: PathBuf,
        /// Every bad line.
        invalid: Vec<Invalid>,
        /// Whether `--skip-invalid` could write them as errored (false when some have no
        /// usable `custom_id` of their own).
        skippable: bool,
    },
    /// The input file could not be read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The input file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The state file is unusable, or another run holds it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run stopped because going on could only fail every item: the API refused the key
    /// (401, 403), or the runtime stopped. No result was stored for the item that showed it.
    #[error("{0}; every result so far is kept: fix it and run the same command to continue")]
    Halted(String),
    /// No item became final for `max_stall` while attempts kept failing: the upstream is
    /// down or refusing. Items in flight stay so in the store (the next run sends them
    /// again); none is marked errored.
    #[error("{0}; every result so far is kept: run the same command once the upstream answers")]
    Stalled(super::stall::Stall),
    /// The run was interrupted; every result settled so far is stored.
    #[error("interrupted: every result so far is kept; run the same command to continue")]
    Interrupted,
    /// The input changed while it was being loaded.
    #[error("{0} changed while it was being read; run the same command again on the final file")]
    InputChanged(PathBuf),
    /// The output file could not be written; the results are safe in the state file, and
    /// running the same command again writes it.
    #[error(
        "cannot write {path}: {source} (every result is kept in the state file; run the same command again to write it)"
    )]
    Output {
        /// The output file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn skip_hint(skippable: bool) -> &'static str {
    if skippable {
        " (fix them, or pass --skip-invalid to write them as errored results)"
    } else {
        " (fix them: some have no custom_id of their own to write an errored result under, \
         or repeat one, so --skip-invalid cannot skip them)"
    }
}

fn list(invalid: &[Invalid]) -> String {
    const SHOWN: usize = 20;
    let mut lines: Vec<String> = invalid
        .iter()
        .take(SHOWN)
        .map(|i| format!("  {i}"))
        .collect();
    if invalid.len() > SHOWN {
        lines.push(format!("  ... and {} more", invalid.len() - SHOWN));
    }
    lines.join("\n")
}
