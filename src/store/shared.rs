//! [`SharedStore`]: the [`Store`] from async code. Each call runs on tokio's blocking pool,
//! holding the store's mutex.
//!
//! Why `spawn_blocking` on an `Arc<Mutex<Store>>` rather than a dedicated thread fed by a
//! channel: every write ends in an fsync (milliseconds, more on a slow disk), which must not
//! stall an async worker thread, and the connection is `Send` but not `Sync`, so calls must
//! take turns. The mutex gives both with no message types to keep in step with the API, any
//! `Store` method (or several, under one lock) can be called through [`SharedStore::call`],
//! and a panicking call poisons nothing that matters: SQLite rolls back what it left open.
//! Calls are not served in FIFO order under contention, which no caller relies on.

use std::panic;
use std::sync::{Arc, Mutex, PoisonError};

use super::Store;
use super::error::StoreError;
use super::item::{Counts, Item};

/// A [`Store`] shared by tasks; cloning shares the same store.
#[derive(Clone, Debug)]
pub struct SharedStore {
    store: Arc<Mutex<Store>>,
}

impl SharedStore {
    /// Shares `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store: Arc::new(Mutex::new(store)),
        }
    }

    /// Runs `f` on the store, on the blocking pool. Several calls inside one `f` run with no
    /// other caller in between.
    ///
    /// # Errors
    ///
    /// What `f` returns, or [`StoreError::Cancelled`] if the runtime is shutting down. A
    /// panic in `f` is resumed in the caller.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = Arc::clone(&self.store);
        let task = tokio::task::spawn_blocking(move || {
            let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut store)
        });
        match task.await {
            Ok(result) => result,
            Err(error) => match error.try_into_panic() {
                Ok(payload) => panic::resume_unwind(payload),
                Err(_) => Err(StoreError::Cancelled),
            },
        }
    }

    /// [`Store::enqueue`], from async code.
    ///
    /// # Errors
    ///
    /// As [`Store::enqueue`].
    pub async fn enqueue(
        &self,
        queue: impl Into<String>,
        key: impl Into<String>,
        payload: impl Into<String>,
        options: Option<String>,
    ) -> Result<u64, StoreError> {
        let (queue, key, payload) = (queue.into(), key.into(), payload.into());
        self.call(move |store| store.enqueue(&queue, &key, &payload, options.as_deref()))
            .await
    }

    /// [`Store::claim`], from async code.
    ///
    /// # Errors
    ///
    /// As [`Store::claim`].
    pub async fn claim(
        &self,
        queue: impl Into<String>,
        now: u64,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let queue = queue.into();
        self.call(move |store| store.claim(&queue, now, limit))
            .await
    }

    /// [`Store::claim_ahead`], from async code.
    ///
    /// # Errors
    ///
    /// As [`Store::claim_ahead`].
    pub async fn claim_ahead(
        &self,
        queue: impl Into<String>,
        now: u64,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let queue = queue.into();
        self.call(move |store| store.claim_ahead(&queue, now, limit))
            .await
    }

    /// [`Store::succeed`], from async code.
    ///
    /// # Errors
    ///
    /// As [`Store::succeed`].
    pub async fn succeed(
        &self,
        queue: impl Into<String>,
        key: impl Into<String>,
        result: impl Into<String>,
    ) -> Result<(), StoreError> {
        let (queue, key, result) = (queue.into(), key.into(), result.into());
        self.call(move |store| store.succeed(&queue, &key, &result))
            .await
    }

    /// [`Store::fail`], from async code.
    ///
    /// # Errors
    ///
    /// As [`Store::fail`].
    pub async fn fail(
        &self,
        queue: impl Into<String>,
        key: impl Into<String>,
        error: impl Into<String>,
    ) -> Result<(), StoreError> {
        let (queue, key, error) = (queue.into(), key.into(), error.into());
        self.call(move |store| store.fail(&queue, &key, &error))
            .await
    }

    /// [`Store::release`], from async code.
    ///
    /// # Errors
    ///
    /// As [`Store::release`].
    pub async fn release(
        &self,
        queue: impl Into<String>,
        key: impl Into<String>,
        not_before: u64,
        last_error: Option<String>,
    ) -> Result<(), StoreError> {
        let (queue, key) = (queue.into(), key.into());
        self.call(move |store| store.release(&queue, &key, not_before, last_error.as_deref()))
            .await
    }

    /// [`Store::get`], from async code.
    ///
    /// # Errors
    ///
    /// As [`Store::get`].
    pub async fn get(
        &self,
        queue: impl Into<String>,
        key: impl Into<String>,
    ) -> Result<Option<Item>, StoreError> {
        let (queue, key) = (queue.into(), key.into());
        self.call(move |store| store.get(&queue, &key)).await
    }

    /// [`Store::counts`], from async code.
    ///
    /// # Errors
    ///
    /// As [`Store::counts`].
    pub async fn counts(&self, queue: impl Into<String>, now: u64) -> Result<Counts, StoreError> {
        let queue = queue.into();
        self.call(move |store| store.counts(&queue, now)).await
    }
}
