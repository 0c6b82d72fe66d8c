//! The durable queue store: one SQLite file (the `--state` file) holding named queues of
//! items, for `breakwater batch run` (queue [`BATCH`], one item per input line) and for
//! deferred requests (queue [`DEFERRED`], one item per ticket), plus the job's metadata.
//!
//! An item is claimed (`pending -> in_flight`; one claimed ahead of its request counts as
//! claimed, not sent, until the request goes out), then finished for good (`succeeded`,
//! `errored`) or released for a later retry (`pending` again, with a `not_before`).
//! Names: a runner's `Verdict` on one try (`decide_item`, the rule both runners share)
//! carries an [`ItemUpdate`], the record of what happened that the store writes; a final
//! item's stored result is an [`Outcome`] holding an `ItemResult` as JSON text. Every
//! write is committed with `synchronous=FULL` before the call returns, so what a call
//! acknowledges survives a crash or a power cut. After a crash, [`Store::recover`] puts the
//! items that were in flight back to pending.
//!
//! Why this gives exactly-once *results* but at-least-once *sending*: the Messages API has no
//! idempotency key, so an item whose request was sent but whose result was not yet stored
//! when the process died is sent again after recovery. What the store guarantees is that each
//! key gets exactly one final result, and that a stored result is never overwritten.
//!
//! [`Store`] is synchronous (one connection, one writer); [`SharedStore`] runs it from tokio.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::wallclock;

mod error;
mod item;
mod lock;
mod queue;
mod read;
mod requeue;
mod result;
mod schema;
mod shared;
mod update;
mod verdict;

pub use error::StoreError;
pub use item::{Counts, Finished, InsertReport, Item, NewItem, Outcome, State};
pub use lock::RunnerLock;
pub use schema::SCHEMA_VERSION;
pub use shared::SharedStore;
pub use update::ItemUpdate;

pub(crate) use requeue::Requeue;
pub(crate) use result::ItemResult;
pub(crate) use verdict::{Verdict, decide_item};

use error::AtPath;

/// The queue of `batch run`'s input lines, keyed by `custom_id`.
pub const BATCH: &str = "batch";

/// The queue of deferred requests, keyed by ticket id.
pub const DEFERRED: &str = "deferred";

/// How long a call waits for another process's lock on the file before giving
/// [`StoreError::Locked`]. Short: the only other users are status readers, which never block
/// a WAL writer, so a long wait means a second writer, which is a mistake to report.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// The `meta` keys [`Store::bind_input`] uses.
const INPUT_FINGERPRINT: &str = "input.fingerprint";
const INPUT_DISPLAY: &str = "input.display";

/// The wall clock in unix milliseconds: the time base of `not_before`, `created_at` and
/// `updated_at`, and what to pass as `now` to [`Store::claim`] and [`Store::counts`].
pub fn now_ms() -> u64 {
    u64::try_from(wallclock::unix_now().as_millis()).unwrap_or(u64::MAX)
}

/// A state file, open. Dropping it closes the file; nothing needs to be flushed first.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The file's schema version: [`SCHEMA_VERSION`] once opened read-write, maybe older
    /// read-only (then reads do without what later versions added).
    schema: u32,
    /// Held for the store's life by [`Store::open_exclusive`]; never read.
    lock: Option<RunnerLock>,
}

/// What [`Store::bind_input`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// The file was bound to no input yet; it now is bound to this one.
    New,
    /// The file was made from this same input: the run resumes.
    Resumed,
}

impl Store {
    /// Opens the state file at `path` for reading and writing, creating it if missing and
    /// bringing its schema up to date.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotADatabase`], [`ForeignDatabase`](StoreError::ForeignDatabase) or
    /// [`Corrupt`](StoreError::Corrupt) for a file that is not a usable state file,
    /// [`NewerSchema`](StoreError::NewerSchema) for one written by a newer build,
    /// [`CannotOpen`](StoreError::CannotOpen), [`ReadOnly`](StoreError::ReadOnly),
    /// [`Locked`](StoreError::Locked) or [`DiskFull`](StoreError::DiskFull). All name `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).at(path)?;
        // SQLite falls back to reading a file it may not write; a runner must find out now,
        // not at its first result.
        if conn.is_readonly("main").at(path)? {
            return Err(StoreError::not_writable(path));
        }
        configure_writer(&conn, path)?;
        schema::migrate(&mut conn, path)?;
        Ok(Store {
            conn,
            path: path.to_owned(),
            schema: SCHEMA_VERSION,
            lock: None,
        })
    }

    /// Opens the state file at `path` for reading only, for a status command: never creates
    /// it and never changes it, and can run beside the runner.
    ///
    /// # Errors
    ///
    /// [`StoreError::Missing`] if there is no such file, [`OlderSchema`](StoreError::OlderSchema)
    /// if it is too old to read without an upgrade, otherwise as [`Store::open`]. Writes through this store give
    /// [`StoreError::ReadOnly`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(StoreError::Missing {
                path: path.to_owned(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).at(path)?;
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT).at(path)?;
        let schema = schema::require_readable(&conn, path)?;
        Ok(Store {
            conn,
            path: path.to_owned(),
            schema,
            lock: None,
        })
    }

    /// Takes the file's [`RunnerLock`], then opens it as [`Store::open`] does; the store holds
    /// the lock until it is dropped. What a runner (`batch run`, the deferred queue) uses.
    ///
    /// # Errors
    ///
    /// [`StoreError::InUse`] if another runner holds the lock, otherwise as [`Store::open`].
    pub fn open_exclusive(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let lock = RunnerLock::acquire(&path)?;
        let mut store = Store::open(path)?;
        store.lock = Some(lock);
        Ok(store)
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long a call waits for another process's lock before giving
    /// [`StoreError::Locked`]. Default: [`DEFAULT_BUSY_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Sqlite`] if SQLite refuses it.
    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<(), StoreError> {
        self.conn.busy_timeout(timeout).at(&self.path)
    }

    /// Sets the job metadata `key` to `value`, durably.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] about the file.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
            .at(&self.path)?;
        Ok(())
    }

    /// The job metadata `key`, if set.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] about the file.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .at(&self.path)
    }

    /// Binds the file to one input: the first call stores `fingerprint` (a hash of the input's
    /// contents, computed by the caller) and `input_display` (how to name the input in
    /// messages); later calls check that the fingerprint is the same. A state file made
    /// from one input must not be resumed over another: its keys and ordinals would be
    /// matched to the wrong lines.
    ///
    /// # Errors
    ///
    /// [`StoreError::DifferentInput`] if the file is bound to another fingerprint, otherwise a
    /// [`StoreError`] about the file.
    pub fn bind_input(
        &mut self,
        fingerprint: &str,
        input_display: &str,
    ) -> Result<Binding, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .at(&path)?;
        let get = |key: &str| -> Result<Option<String>, StoreError> {
            tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .at(&path)
        };
        if let Some(bound) = get(INPUT_FINGERPRINT)? {
            if bound == fingerprint {
                return Ok(Binding::Resumed);
            }
            return Err(StoreError::DifferentInput {
                path: path.clone(),
                input: input_display.to_owned(),
                bound_input: get(INPUT_DISPLAY)?.unwrap_or_else(|| "another input".to_owned()),
                fingerprint: fingerprint.to_owned(),
                bound_fingerprint: bound,
            });
        }
        for (key, value) in [
            (INPUT_FINGERPRINT, fingerprint),
            (INPUT_DISPLAY, input_display),
        ] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                (key, value),
            )
            .at(&path)?;
        }
        tx.commit().at(&path)?;
        Ok(Binding::New)
    }
}

/// The settings of a read-write connection.
fn configure_writer(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.busy_timeout(DEFAULT_BUSY_TIMEOUT).at(path)?;
    // WAL: status readers never block the runner, nor it them. FULL: a commit is on disk
    // (the WAL fsynced) before the call that made it returns.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .at(path)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), %mode, "state file not in WAL mode");
    }
    conn.pragma_update(None, "synchronous", "FULL").at(path)?;
    conn.pragma_update(None, "foreign_keys", true).at(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_reported_as_disk_full_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).unwrap();
        // A page cap stands in for a full disk: SQLite reports both as SQLITE_FULL.
        let pages: u64 = store
            .conn
            .pragma_query_value(None, "page_count", |row| row.get(0))
            .unwrap();
        store
            .conn
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        let payload = "x".repeat(64 * 1024);
        let error = store
            .enqueue(BATCH, "big", &payload, None)
            .expect_err("no room for a 64 KiB item");
        assert!(matches!(error, StoreError::DiskFull { .. }), "{error:?}");
        assert!(error.to_string().contains(&path.display().to_string()));
    }
}
