//! The queue's reads: one item, the counts, and the final items page by page. All work on a
//! read-only store too, beside a running writer (WAL readers see the last commit).

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, Row, ToSql};

use super::Store;
use super::error::{AtPath, StoreError};
use super::item::{Counts, Finished, Item, Outcome, State};

/// The columns [`item_from_row`] reads, in its order.
pub(super) const ITEM_COLUMNS: &str = "queue, key, ordinal, payload, options, state, attempts, \
     not_before, last_error, result, created_at, updated_at";

/// An [`Item`] from a row of [`ITEM_COLUMNS`].
pub(super) fn item_from_row(row: &Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        queue: row.get(0)?,
        key: row.get(1)?,
        ordinal: row.get(2)?,
        payload: row.get(3)?,
        options: row.get(4)?,
        state: row.get(5)?,
        attempts: row.get(6)?,
        not_before: row.get(7)?,
        last_error: row.get(8)?,
        result: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

impl FromSql for State {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        State::parse(name)
            .ok_or_else(|| FromSqlError::Other(format!("unknown state {name:?}").into()))
    }
}

impl ToSql for State {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl Store {
    /// The item of `queue` with this key, if any.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] about the file.
    pub fn get(&self, queue: &str, key: &str) -> Result<Option<Item>, StoreError> {
        let sql = format!("SELECT {ITEM_COLUMNS} FROM items WHERE queue = ?1 AND key = ?2");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut select| select.query_row((queue, key), item_from_row).optional())
            .at(&self.path)
    }

    /// How many items of `queue` are in each state, and when pending ones are due, as of
    /// `now` (unix ms). One pass over the queue: cheap enough for a status line a second.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] about the file.
    pub fn counts(&self, queue: &str, now: u64) -> Result<Counts, StoreError> {
        // A version-1 file (read-only) cannot tell sent from claimed: all count as sent.
        let sent = if self.schema >= 2 {
            "sent_at IS NOT NULL"
        } else {
            "1"
        };
        self.conn
            .prepare_cached(&format!(
                "SELECT
                     count(*) FILTER (WHERE state = 'pending'),
                     count(*) FILTER (WHERE state = 'pending' AND not_before <= ?2),
                     count(*) FILTER (WHERE state = 'in_flight' AND NOT ({sent})),
                     count(*) FILTER (WHERE state = 'in_flight' AND ({sent})),
                     count(*) FILTER (WHERE state = 'succeeded'),
                     count(*) FILTER (WHERE state = 'errored'),
                     min(created_at) FILTER (WHERE state = 'pending'),
                     min(not_before) FILTER (WHERE state = 'pending')
                 FROM items WHERE queue = ?1"
            ))
            .and_then(|mut select| {
                select.query_row((queue, now), |row| {
                    Ok(Counts {
                        pending: row.get(0)?,
                        due: row.get(1)?,
                        claimed: row.get(2)?,
                        in_flight: row.get(3)?,
                        succeeded: row.get(4)?,
                        errored: row.get(5)?,
                        oldest_pending_since: row.get(6)?,
                        next_due_at: row.get(7)?,
                        now,
                    })
                })
            })
            .at(&self.path)
    }

    /// Up to `limit` final items of `queue` in ordinal order, starting after ordinal `after`
    /// (`None`: from the first). Page through with the last ordinal seen, in bounded memory:
    ///
    /// ```no_run
    /// # fn demo(store: &breakwater::store::Store) -> Result<(), breakwater::store::StoreError> {
    /// let mut after = None;
    /// loop {
    ///     let page = store.finished("batch", after, 1_000)?;
    ///     let Some(last) = page.last() else { break };
    ///     after = Some(last.ordinal);
    ///     for item in &page { /* write one output line */ }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// A [`StoreError`] about the file.
    pub fn finished(
        &self,
        queue: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Finished>, StoreError> {
        // The WHERE repeats the partial index's condition word for word, so SQLite uses it,
        // and bounds the ordinal by a plain range, so each page starts where the last ended.
        let from = after.map_or(0, |after| after.saturating_add(1));
        let mut select = self
            .conn
            .prepare_cached(
                "SELECT ordinal, key, state, result FROM items
                 WHERE queue = ?1 AND state IN ('succeeded', 'errored') AND ordinal >= ?2
                 ORDER BY ordinal LIMIT ?3",
            )
            .at(&self.path)?;
        let rows = select
            .query_map((queue, from, limit), |row| {
                let (ordinal, key) = (row.get(0)?, row.get(1)?);
                let (state, body) = (row.get(2)?, row.get(3)?);
                Ok(Outcome::from_state(state, body).map(|outcome| Finished {
                    ordinal,
                    key,
                    outcome,
                }))
            })
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .at(&self.path)?;
        Ok(rows.into_iter().flatten().collect())
    }
}
