//! The output file, written from the store once every item is final: in input order, to a
//! temporary file renamed into place, so it never holds a partial run. And [`status`], the
//! queue's counts read beside a running job.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::error::BatchError;
use crate::store::{BATCH, Counts, SharedStore, Store, StoreError, now_ms};

/// Writes every final item, in input order, to a temporary file beside `out`, then renames
/// it over `out`: a reader never sees a partial file under `out`'s name.
pub(super) async fn write_output(store: &SharedStore, out: &Path) -> Result<(), BatchError> {
    let out = out.to_owned();
    let store = store.clone();
    let result = store
        .call(move |store| Ok(write_output_blocking(store, &out).map_err(|e| (out, e))))
        .await?;
    result.map_err(|(path, source)| BatchError::Output { path, source })
}

fn write_output_blocking(store: &Store, out: &Path) -> io::Result<()> {
    const PAGE: usize = 1_000;
    let name = out
        .file_name()
        .ok_or_else(|| io::Error::other("the output path names no file"))?
        .to_string_lossy();
    let temporary = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let mut writer = BufWriter::new(File::create(&temporary)?);
    let mut after = None;
    loop {
        let page = store
            .finished(BATCH, after, PAGE)
            .map_err(io::Error::other)?;
        let Some(last) = page.last() else { break };
        after = Some(last.ordinal);
        for item in &page {
            let id = serde_json::to_string(&item.key).map_err(io::Error::other)?;
            writeln!(
                writer,
                "{{\"custom_id\":{id},\"result\":{}}}",
                item.outcome.body()
            )?;
        }
    }
    let file = writer
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, out)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the directory is.
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The queue's counts, from a state file opened read-only (beside a running job).
///
/// # Errors
/// [`StoreError`] naming the file: missing, not a state file, from a newer build.
pub fn status(state: &Path) -> Result<Counts, StoreError> {
    Store::open_read_only(state)?.counts(BATCH, now_ms())
}
