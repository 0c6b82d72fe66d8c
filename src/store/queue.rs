//! The queue's writes: inserting, claiming, finishing, releasing and recovering items. Each
//! call is one transaction, committed (fsynced) before it returns.

use std::path::Path;

use rusqlite::{Transaction, TransactionBehavior, ffi};

use super::error::{AtPath, StoreError};
use super::item::{InsertReport, Item, NewItem, State};
use super::read::{ITEM_COLUMNS, item_from_row};
use super::update::ItemUpdate;
use super::{Store, now_ms};

/// Items per transaction in [`Store::insert_many`]: large enough that the fsync per commit
/// does not dominate, small enough that a chunk is little work to redo after a crash.
const INSERT_CHUNK: usize = 5_000;

const INSERT: &str = "INSERT INTO items
    (queue, key, ordinal, payload, options, not_before, created_at, updated_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
    ON CONFLICT DO NOTHING";

impl Store {
    /// Inserts `items` into `queue`, in transactions of a few thousand. Idempotent: an item
    /// already stored under the same key and ordinal is left as it is (whatever its state
    /// and payload), so a resumed run can insert its whole input again.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] if an item's key is stored at another ordinal, or its
    /// ordinal under another key (as with a duplicated `custom_id`); the chunks before it
    /// are kept, the rest is not inserted. Otherwise a [`StoreError`] about the file.
    pub fn insert_many(
        &mut self,
        queue: &str,
        items: impl IntoIterator<Item = NewItem>,
    ) -> Result<InsertReport, StoreError> {
        let mut report = InsertReport::default();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .at(&self.path)?;
            insert_chunk(
                &tx,
                &self.path,
                queue,
                items.by_ref().take(INSERT_CHUNK),
                &mut report,
            )?;
            tx.commit().at(&self.path)?;
        }
        Ok(report)
    }

    /// Inserts one item at the end of `queue` (its ordinal one past the largest), due at
    /// once, and returns its ordinal. For deferred requests: the ticket is durable once this
    /// returns.
    ///
    /// # Errors
    ///
    /// [`StoreError::DuplicateKey`] if `queue` already holds `key`, otherwise a
    /// [`StoreError`] about the file.
    pub fn enqueue(
        &self,
        queue: &str,
        key: &str,
        payload: &str,
        options: Option<&str>,
    ) -> Result<u64, StoreError> {
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO items (queue, key, ordinal, payload, options, created_at, updated_at)
                 SELECT ?1, ?2, coalesce(max(ordinal) + 1, 0), ?3, ?4, ?5, ?5
                 FROM items WHERE queue = ?1
                 RETURNING ordinal",
            )
            .and_then(|mut insert| {
                insert.query_row((queue, key, payload, options, now_ms()), |row| row.get(0))
            });
        match inserted {
            Err(error) if is_primary_key_violation(&error) => Err(StoreError::DuplicateKey {
                queue: queue.to_owned(),
                key: key.to_owned(),
            }),
            other => other.at(&self.path),
        }
    }

    /// Claims up to `limit` pending items of `queue` that are due at `now` (unix ms), lowest
    /// ordinal first, for a runner that sends each at once: each is marked in flight and
    /// sent, its attempts counted, in one transaction. The caller must then
    /// [`succeed`](Store::succeed), [`fail`](Store::fail) or [`release`](Store::release) each.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] about the file.
    pub fn claim(&self, queue: &str, now: u64, limit: usize) -> Result<Vec<Item>, StoreError> {
        self.claim_marked(queue, now, limit, Some(now_ms()))
    }

    /// As [`Store::claim`], for a runner that claims items ahead of sending them: they count
    /// as claimed, not in flight ([`Counts::claimed`](super::Counts::claimed)), until
    /// [`mark_sent`](Store::mark_sent) (or [`ItemUpdate::Sent`]) says their request went out.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] about the file.
    pub fn claim_ahead(
        &self,
        queue: &str,
        now: u64,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        self.claim_marked(queue, now, limit, None)
    }

    /// Records that the request of an item claimed ahead has gone out.
    ///
    /// # Errors
    ///
    /// As [`Store::succeed`].
    pub fn mark_sent(&self, queue: &str, key: &str) -> Result<(), StoreError> {
        self.update_in_flight(
            queue,
            key,
            "UPDATE items SET sent_at = ?3 WHERE queue = ?1 AND key = ?2 AND state = 'in_flight'",
            (queue, key, now_ms()),
        )
    }

    fn claim_marked(
        &self,
        queue: &str,
        now: u64,
        limit: usize,
        sent_at: Option<u64>,
    ) -> Result<Vec<Item>, StoreError> {
        let sql = format!(
            "UPDATE items SET state = 'in_flight', attempts = attempts + 1, updated_at = ?4,
                 sent_at = ?5
             WHERE rowid IN (
                 SELECT rowid FROM items
                 WHERE queue = ?1 AND state = 'pending' AND not_before <= ?2
                 ORDER BY ordinal LIMIT ?3)
             RETURNING {ITEM_COLUMNS}"
        );
        let mut claim = self.conn.prepare_cached(&sql).at(&self.path)?;
        // All rows are read before the statement is dropped: the last step is the commit.
        let mut items = claim
            .query_map((queue, now, limit, now_ms(), sent_at), item_from_row)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .at(&self.path)?;
        items.sort_unstable_by_key(|item| item.ordinal);
        Ok(items)
    }

    /// Stores `result` (JSON text) as the in-flight item's final result.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotInFlight`] if the item is not in flight (a final one keeps its stored
    /// outcome), [`StoreError::NoSuchItem`], or a [`StoreError`] about the file.
    pub fn succeed(&self, queue: &str, key: &str, result: &str) -> Result<(), StoreError> {
        self.update_in_flight(
            queue,
            key,
            "UPDATE items SET state = 'succeeded', result = ?3, updated_at = ?4
             WHERE queue = ?1 AND key = ?2 AND state = 'in_flight'",
            (queue, key, result, now_ms()),
        )
    }

    /// Stores `error` (JSON text) as the in-flight item's final error: it is not retried.
    ///
    /// # Errors
    ///
    /// As [`Store::succeed`].
    pub fn fail(&self, queue: &str, key: &str, error: &str) -> Result<(), StoreError> {
        self.update_in_flight(
            queue,
            key,
            "UPDATE items SET state = 'errored', result = ?3, last_error = ?3, updated_at = ?4
             WHERE queue = ?1 AND key = ?2 AND state = 'in_flight'",
            (queue, key, error, now_ms()),
        )
    }

    /// Gives a claimed item back untouched: pending again, its claim not counted as an
    /// attempt. For a claim that turned out not to be usable (its runner found no capacity
    /// once the claim returned).
    ///
    /// # Errors
    ///
    /// As [`Store::succeed`].
    pub fn unclaim(&self, queue: &str, key: &str) -> Result<(), StoreError> {
        self.update_in_flight(
            queue,
            key,
            "UPDATE items SET state = 'pending', attempts = max(attempts - 1, 0), sent_at = NULL,
                 updated_at = ?3
             WHERE queue = ?1 AND key = ?2 AND state = 'in_flight'",
            (queue, key, now_ms()),
        )
    }

    /// Puts the in-flight item back to pending, not to be claimed before `not_before` (unix
    /// ms), recording `last_error` (kept as it was when `None`). For a retry later in the job.
    ///
    /// # Errors
    ///
    /// As [`Store::succeed`].
    pub fn release(
        &self,
        queue: &str,
        key: &str,
        not_before: u64,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.update_in_flight(
            queue,
            key,
            "UPDATE items SET state = 'pending', not_before = ?3,
                 last_error = coalesce(?4, last_error), updated_at = ?5
             WHERE queue = ?1 AND key = ?2 AND state = 'in_flight'",
            (queue, key, not_before, last_error, now_ms()),
        )
    }

    /// Applies an [`ItemUpdate`] to each of several in-flight items in one transaction, so one
    /// disk sync covers them all (a group commit). All or none: if any of them cannot be
    /// updated, none is.
    ///
    /// # Errors
    ///
    /// As [`Store::succeed`], for the first that could not be updated.
    pub fn update_many(&self, queue: &str, updates: &[ItemUpdate]) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE").at(&self.path)?;
        let applied = updates.iter().try_for_each(|update| match update {
            ItemUpdate::Succeed { key, result } => self.succeed(queue, key, result),
            ItemUpdate::Fail { key, error } => self.fail(queue, key, error),
            ItemUpdate::Release {
                key,
                not_before,
                last_error,
            } => self.release(queue, key, *not_before, last_error.as_deref()),
            ItemUpdate::Sent { key } => self.mark_sent(queue, key),
        });
        match applied {
            Ok(()) => self.conn.execute_batch("COMMIT").at(&self.path),
            Err(error) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(error)
            }
        }
    }

    /// Puts every in-flight item of `queue` back to pending, keeping its attempts and
    /// `not_before`, and returns how many. Call it once at start, under the
    /// [`RunnerLock`](super::RunnerLock): items left in flight were claimed by a process
    /// that died before settling them.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] about the file.
    pub fn recover(&self, queue: &str) -> Result<u64, StoreError> {
        let recovered = self
            .conn
            .execute(
                "UPDATE items SET state = 'pending', updated_at = ?2
                 WHERE queue = ?1 AND state = 'in_flight'",
                (queue, now_ms()),
            )
            .at(&self.path)?;
        Ok(recovered as u64)
    }

    /// Runs an update of one in-flight item; when it matches none, says why.
    fn update_in_flight(
        &self,
        queue: &str,
        key: &str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<(), StoreError> {
        let changed = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut update| update.execute(params))
            .at(&self.path)?;
        if changed == 1 {
            return Ok(());
        }
        let (queue, key) = (queue.to_owned(), key.to_owned());
        Err(match self.state_of(&queue, &key)? {
            Some(state) => StoreError::NotInFlight { queue, key, state },
            None => StoreError::NoSuchItem { queue, key },
        })
    }

    fn state_of(&self, queue: &str, key: &str) -> Result<Option<State>, StoreError> {
        Ok(self.get(queue, key)?.map(|item| item.state))
    }
}

/// Inserts one chunk, counting what was new and what was there.
fn insert_chunk(
    tx: &Transaction<'_>,
    path: &Path,
    queue: &str,
    items: impl Iterator<Item = NewItem>,
    report: &mut InsertReport,
) -> Result<(), StoreError> {
    let now = now_ms();
    let mut insert = tx.prepare_cached(INSERT).at(path)?;
    for item in items {
        let NewItem {
            key,
            ordinal,
            payload,
            options,
            not_before,
        } = item;
        let params = (queue, &key, ordinal, payload, options, not_before, now);
        if insert.execute(params).at(path)? == 1 {
            report.inserted += 1;
        } else if stored_ordinal(tx, queue, &key).at(path)? == Some(ordinal) {
            report.existing += 1;
        } else {
            return Err(conflict(tx, path, queue, key, ordinal));
        }
    }
    Ok(())
}

fn stored_ordinal(tx: &Transaction<'_>, queue: &str, key: &str) -> rusqlite::Result<Option<u64>> {
    use rusqlite::OptionalExtension;
    tx.prepare_cached("SELECT ordinal FROM items WHERE queue = ?1 AND key = ?2")?
        .query_row((queue, key), |row| row.get(0))
        .optional()
}

/// The [`StoreError::Conflict`] for an item that collided with another.
fn conflict(
    tx: &Transaction<'_>,
    path: &Path,
    queue: &str,
    key: String,
    ordinal: u64,
) -> StoreError {
    use rusqlite::OptionalExtension;
    let by_key = stored_ordinal(tx, queue, &key);
    let by_ordinal = tx
        .query_row(
            "SELECT key FROM items WHERE queue = ?1 AND ordinal = ?2",
            (queue, ordinal),
            |row| row.get::<_, String>(0),
        )
        .optional();
    let existing = match (by_key, by_ordinal) {
        (Ok(Some(at)), _) => format!("{key:?} at ordinal {at}"),
        (_, Ok(Some(other))) => format!("{other:?} at ordinal {ordinal}"),
        (Err(error), _) | (_, Err(error)) => return StoreError::sqlite(path, error),
        (Ok(None), Ok(None)) => "a conflicting item".to_owned(),
    };
    StoreError::Conflict {
        queue: queue.to_owned(),
        key,
        ordinal,
        existing,
    }
}

fn is_primary_key_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_extended_error_code() == Some(ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}
