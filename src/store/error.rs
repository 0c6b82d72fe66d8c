//! [`StoreError`]: what is wrong with a state file or a request to it. Errors about the file
//! name it and say what to do, since the person reading them is at a shell, holding a
//! `--state` path.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

use super::item::State;

/// A state file that cannot be used, or a queue operation that does not apply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file is not a SQLite database at all (`SQLITE_NOTADB`).
    #[error(
        "{} is not a breakwater state file (not a SQLite database): pass another --state file, or delete this one to start over",
        path.display()
    )]
    NotADatabase {
        /// The state file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file is a SQLite database, but some other program's.
    #[error(
        "{} is a SQLite database but not a breakwater state file: pass another --state file",
        path.display()
    )]
    ForeignDatabase {
        /// The state file.
        path: PathBuf,
    },
    /// The file is damaged (`SQLITE_CORRUPT`).
    #[error(
        "{} is corrupted: restore it from a backup, or delete it to start over (its stored results are then lost)",
        path.display()
    )]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Another process holds a lock on the file for longer than the busy timeout
    /// (`SQLITE_BUSY`, `SQLITE_LOCKED`).
    #[error(
        "{} is locked by another process: wait for it to finish, or stop it, and try again",
        path.display()
    )]
    Locked {
        /// The state file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The disk (or a size limit) is full (`SQLITE_FULL`). What was committed before is kept.
    #[error(
        "no space left to write {}: free some disk space and run again (finished items are kept)",
        path.display()
    )]
    DiskFull {
        /// The state file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file, or its directory, cannot be written (`SQLITE_READONLY`, `SQLITE_PERM`), or
    /// the store was opened read-only.
    #[error(
        "{} cannot be written: check the permissions of the file and of its directory (SQLite writes -wal and -shm files beside it)",
        path.display()
    )]
    ReadOnly {
        /// The state file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file cannot be opened or created (`SQLITE_CANTOPEN`): a missing directory, a
    /// directory in its place, no permission.
    #[error(
        "cannot open {}: check that its directory exists and is writable",
        path.display()
    )]
    CannotOpen {
        /// The state file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A read-only open of a file that does not exist.
    #[error("{} does not exist: check the --state path", path.display())]
    Missing {
        /// The state file.
        path: PathBuf,
    },
    /// The file was written by a newer breakwater, whose schema this build does not know.
    #[error(
        "{} has schema version {found}, newer than this build knows ({supported}): use a newer breakwater, or another --state file",
        path.display()
    )]
    NewerSchema {
        /// The state file.
        path: PathBuf,
        /// The file's schema version.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A read-only open of a file whose schema is older than this build's: it is upgraded
    /// only by a read-write open.
    #[error(
        "{} has schema version {found}, older than this build's ({supported}): open it once read-write (run it) to upgrade it",
        path.display()
    )]
    OlderSchema {
        /// The state file.
        path: PathBuf,
        /// The file's schema version.
        found: u32,
        /// This build's version.
        supported: u32,
    },
    /// The file holds the state of a run over another input.
    #[error(
        "{} holds the state of a run over {bound_input}, whose contents differ from {input}: pass another --state file, or delete this one to start over",
        path.display()
    )]
    DifferentInput {
        /// The state file.
        path: PathBuf,
        /// The input given now, as shown to the user.
        input: String,
        /// The input the file was made from, as shown when it was.
        bound_input: String,
        /// The fingerprint given now.
        fingerprint: String,
        /// The fingerprint stored in the file.
        bound_fingerprint: String,
    },
    /// Another runner holds the file's runner lock.
    #[error(
        "{} is in use by another breakwater process (it holds {}): wait for it to finish, or pass another --state file",
        path.display(),
        lock_path.display()
    )]
    InUse {
        /// The state file.
        path: PathBuf,
        /// The lock file beside it.
        lock_path: PathBuf,
    },
    /// The lock file cannot be created or locked.
    #[error("cannot lock {}: {source}", lock_path.display())]
    LockFile {
        /// The lock file.
        lock_path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Any other SQLite error.
    #[error("{}: {source}", path.display())]
    Sqlite {
        /// The state file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// No item has this key in this queue.
    #[error("no item {key:?} in queue {queue:?}")]
    NoSuchItem {
        /// The queue.
        queue: String,
        /// The key.
        key: String,
    },
    /// The item is not in flight, so it cannot be settled or released; a final item keeps
    /// its stored outcome.
    #[error(
        "item {key:?} in queue {queue:?} is {state}, not in flight: it cannot be settled or released now"
    )]
    NotInFlight {
        /// The queue.
        queue: String,
        /// The key.
        key: String,
        /// Its state.
        state: State,
    },
    /// [`Store::enqueue`](super::Store::enqueue) of a key the queue already holds.
    #[error("queue {queue:?} already holds an item {key:?}")]
    DuplicateKey {
        /// The queue.
        queue: String,
        /// The key.
        key: String,
    },
    /// [`Store::insert_many`](super::Store::insert_many) of an item whose key is stored at
    /// another ordinal, or whose ordinal is another key's: not the same item inserted again.
    #[error(
        "queue {queue:?} already holds {existing}, which conflicts with {key:?} at ordinal {ordinal}"
    )]
    Conflict {
        /// The queue.
        queue: String,
        /// The key being inserted.
        key: String,
        /// The ordinal being inserted.
        ordinal: u64,
        /// The item in the way, described.
        existing: String,
    },
    /// The blocking task running a [`SharedStore`](super::SharedStore) call was cancelled,
    /// as when the tokio runtime shuts down.
    #[error("the store task was cancelled")]
    Cancelled,
}

impl StoreError {
    /// The state file this error is about, when it is about the file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            StoreError::NotADatabase { path, .. }
            | StoreError::ForeignDatabase { path }
            | StoreError::Corrupt { path, .. }
            | StoreError::Locked { path, .. }
            | StoreError::DiskFull { path, .. }
            | StoreError::ReadOnly { path, .. }
            | StoreError::CannotOpen { path, .. }
            | StoreError::Missing { path }
            | StoreError::NewerSchema { path, .. }
            | StoreError::OlderSchema { path, .. }
            | StoreError::DifferentInput { path, .. }
            | StoreError::InUse { path, .. }
            | StoreError::Sqlite { path, .. } => Some(path),
            StoreError::LockFile { lock_path, .. } => Some(lock_path),
            StoreError::NoSuchItem { .. }
            | StoreError::NotInFlight { .. }
            | StoreError::DuplicateKey { .. }
            | StoreError::Conflict { .. }
            | StoreError::Cancelled => None,
        }
    }

    /// Whether the same call may succeed later without anyone fixing anything: the file
    /// was locked by another process.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Locked { .. })
    }

    /// A short stable name for metric labels and logs.
    pub fn as_label(&self) -> &'static str {
        match self {
            StoreError::NotADatabase { .. } => "not_a_database",
            StoreError::ForeignDatabase { .. } => "foreign_database",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Locked { .. } => "locked",
            StoreError::DiskFull { .. } => "disk_full",
            StoreError::ReadOnly { .. } => "read_only",
            StoreError::CannotOpen { .. } => "cannot_open",
            StoreError::Missing { .. } => "missing",
            StoreError::NewerSchema { .. } => "newer_schema",
            StoreError::OlderSchema { .. } => "older_schema",
            StoreError::DifferentInput { .. } => "different_input",
            StoreError::InUse { .. } => "in_use",
            StoreError::LockFile { .. } => "lock_file",
            StoreError::Sqlite { .. } => "sqlite",
            StoreError::NoSuchItem { .. } => "no_such_item",
            StoreError::NotInFlight { .. } => "not_in_flight",
            StoreError::DuplicateKey { .. } => "duplicate_key",
            StoreError::Conflict { .. } => "conflict",
            StoreError::Cancelled => "cancelled",
        }
    }

    /// [`StoreError::ReadOnly`] for a file SQLite opened read-only though asked to write.
    pub(super) fn not_writable(path: &Path) -> StoreError {
        let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY);
        let message = "opened read-only: the file is not writable".to_owned();
        StoreError::ReadOnly {
            path: path.to_owned(),
            source: rusqlite::Error::SqliteFailure(code, Some(message)),
        }
    }

    /// Sorts a SQLite error into the variant that says what to do about it.
    pub(super) fn sqlite(path: &Path, source: rusqlite::Error) -> StoreError {
        let path = path.to_owned();
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => StoreError::NotADatabase { path, source },
            Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt { path, source },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Locked { path, source }
            }
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { path, source },
            Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
                StoreError::ReadOnly { path, source }
            }
            Some(ErrorCode::CannotOpen) => StoreError::CannotOpen { path, source },
            _ => StoreError::Sqlite { path, source },
        }
    }
}

/// Attaches the state file's path to SQLite results: `conn.execute(..).at(path)?`.
pub(super) trait AtPath<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> AtPath<T> for rusqlite::Result<T> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::sqlite(path, source))
    }
}
