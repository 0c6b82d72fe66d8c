//! The state file's schema, as a list of migrations. `PRAGMA user_version` counts the steps
//! applied; opening read-write applies the missing ones in one transaction. A step, once
//! released, is never edited: a change is a new step at the end.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::error::{AtPath, StoreError};

/// Marks a SQLite file as a breakwater state file (`PRAGMA application_id`): "brkw".
const APPLICATION_ID: i32 = 0x6272_6b77;

/// The migrations, in order; step `i` takes the file from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: items of named queues, and the job's key/value metadata.
    //
    // A final item always has its body in `result` (its response, or its final error), and
    // only a final item has one: the CHECK makes "a stored result is final" a property of the
    // file, not only of the code. The partial indexes serve `claim` (pending, by ordinal) and
    // `finished` (final, by ordinal) without sorting.
    r"
    CREATE TABLE items (
        queue      TEXT    NOT NULL,
        key        TEXT    NOT NULL,
        ordinal    INTEGER NOT NULL CHECK (ordinal >= 0),
        payload    TEXT    NOT NULL,
        options    TEXT,
        state      TEXT    NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'in_flight', 'succeeded', 'errored')),
        attempts   INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        not_before INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        result     TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (queue, key),
        UNIQUE (queue, ordinal),
        CHECK ((state IN ('succeeded', 'errored')) = (result IS NOT NULL))
    );
    CREATE INDEX items_pending ON items (queue, ordinal) WHERE state = 'pending';
    CREATE INDEX items_final ON items (queue, ordinal) WHERE state IN ('succeeded', 'errored');
    CREATE INDEX items_state ON items (queue, state);
    CREATE TABLE meta (
        key   TEXT NOT NULL PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    ",
    // 2: whether an in-flight item's request has gone out. A runner may claim items ahead of
    // sending them; `sent_at` (unix ms) is set when the request is sent, and is NULL while
    // the item only waits in the runner's hands. Items in flight in a version-1 file are
    // taken as sent, as version 1 counted them.
    r"
    ALTER TABLE items ADD COLUMN sent_at INTEGER;
    UPDATE items SET sent_at = updated_at WHERE state = 'in_flight';
    ",
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The oldest version a read-only open still reads (without `sent_at`, every in-flight item
/// counts as sent).
pub(super) const OLDEST_READABLE: u32 = 1;

/// Brings the file up to [`SCHEMA_VERSION`].
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    if check(conn, path)? == SCHEMA_VERSION {
        return Ok(());
    }
    // IMMEDIATE takes the write lock first, so two processes opening a fresh file at once
    // do not both apply step 1; the version is read again under the lock.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .at(path)?;
    let found = check(&tx, path)?;
    if found == 0 {
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .at(path)?;
    }
    for (version, step) in (found..).zip(&MIGRATIONS[found as usize..]) {
        tx.execute_batch(step).at(path)?;
        tx.pragma_update(None, "user_version", version + 1)
            .at(path)?;
    }
    tx.commit().at(path)
}

/// Checks that a read-only file is at a version this build reads, from [`OLDEST_READABLE`]
/// to [`SCHEMA_VERSION`], without changing it; the version found.
pub(super) fn require_readable(conn: &Connection, path: &Path) -> Result<u32, StoreError> {
    match check(conn, path)? {
        found @ OLDEST_READABLE..=SCHEMA_VERSION => Ok(found),
        found => Err(StoreError::OlderSchema {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        }),
    }
}

/// The file's schema version, once it is known to be a breakwater file this build can read.
fn check(conn: &Connection, path: &Path) -> Result<u32, StoreError> {
    let found: u32 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .at(path)?;
    let application_id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .at(path)?;
    let foreign = if found == 0 {
        // A fresh file has no tables yet; one with tables but no version is someone else's.
        let tables: u32 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
            .at(path)?;
        tables > 0 || application_id != 0
    } else {
        application_id != APPLICATION_ID
    };
    if foreign {
        return Err(StoreError::ForeignDatabase {
            path: path.to_owned(),
        });
    }
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(found)
}
