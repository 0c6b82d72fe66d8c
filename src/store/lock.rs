//! [`RunnerLock`]: one runner per state file. SQLite's own locks only serialise single
//! transactions; two `batch run` processes on one file would each claim, send and settle
//! items, and `recover` in one would put the other's in-flight items back. So a runner
//! holds an exclusive OS lock on a sidecar `<state>.lock` file for as long as it works.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::error::StoreError;

/// An exclusive lock on `<state>.lock`, released when dropped (or when the process dies:
/// the OS drops it, so a crash never leaves a stale lock).
///
/// The lock file itself is left in place: deleting it on release would race with a runner
/// that has just opened it.
#[derive(Debug)]
pub struct RunnerLock {
    _file: File,
    lock_path: PathBuf,
}

impl RunnerLock {
    /// Takes the runner lock of the state file at `state_path`, creating `<state>.lock`.
    ///
    /// # Errors
    ///
    /// [`StoreError::InUse`] if another holder has it (another process, or another
    /// `RunnerLock` in this one); [`StoreError::LockFile`] if the lock file cannot be created
    /// or locked.
    pub fn acquire(state_path: impl AsRef<Path>) -> Result<RunnerLock, StoreError> {
        let path = state_path.as_ref();
        let lock_path = lock_path(path);
        let io_error = |source| StoreError::LockFile {
            lock_path: lock_path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => Ok(RunnerLock {
                _file: file,
                lock_path,
            }),
            Err(TryLockError::WouldBlock) => Err(StoreError::InUse {
                path: path.to_owned(),
                lock_path,
            }),
            Err(TryLockError::Error(source)) => Err(io_error(source)),
        }
    }

    /// The lock file.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }
}

/// `<state>.lock`, beside the state file.
fn lock_path(state_path: &Path) -> PathBuf {
    let mut name = state_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_beside_the_state_file() {
        assert_eq!(
            PathBuf::from("/tmp/run.state.lock"),
            lock_path(Path::new("/tmp/run.state"))
        );
    }
}
