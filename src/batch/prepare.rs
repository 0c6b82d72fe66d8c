//! [`Batch::prepare`]: validates the input whole, binds the state file to it (refusing one
//! made from another input) and loads every line not yet stored, before anything is sent.

use std::io;
use std::path::Path;

use super::error::BatchError;
use super::input::{Problem, validate};
use super::load::{LOADED, load};
use super::options::BatchOptions;
use crate::store::{BATCH, Binding, SharedStore, Store, StoreError, now_ms};

/// A prepared run: the input validated and loaded into the store.
pub struct Batch {
    pub(super) store: SharedStore,
    pub(super) resumed: bool,
    pub(super) total: u64,
}

impl Batch {
    /// Validates `input` whole, binds `state` to it (refusing a state file made from another
    /// input) and loads every item not yet stored. Nothing is sent.
    ///
    /// # Errors
    /// [`BatchError::Invalid`] listing every bad line (unless `skip_invalid`),
    /// [`BatchError::Input`], or [`BatchError::Store`] naming the state file and what to do.
    pub async fn prepare(
        input: &Path,
        state: &Path,
        options: &BatchOptions,
    ) -> Result<Batch, BatchError> {
        let input = input.to_owned();
        let read_error = |source: io::Error| BatchError::Input {
            path: input.clone(),
            source,
        };
        let validated = {
            let input = input.clone();
            tokio::task::spawn_blocking(move || validate(&input))
                .await
                .map_err(|e| read_error(io::Error::other(e.to_string())))?
                .map_err(read_error)?
        };
        if !validated.invalid.is_empty() {
            // A line without a usable custom_id of its own cannot be written as a result.
            let skippable = validated.invalid.iter().all(|bad| {
                bad.custom_id.is_some() && !matches!(bad.problem, Problem::Duplicate { .. })
            });
            if !options.skip_invalid || !skippable {
                return Err(BatchError::Invalid {
                    path: input,
                    invalid: validated.invalid,
                    skippable,
                });
            }
        }
        let state = state.to_owned();
        let fingerprint = validated.fingerprint.clone();
        let shown = input.display().to_string();
        let (store, binding) = tokio::task::spawn_blocking(move || {
            let mut store = Store::open_exclusive(&state)?;
            let binding = store.bind_input(&fingerprint, &shown)?;
            Ok::<_, StoreError>((store, binding))
        })
        .await
        .map_err(|_| StoreError::Cancelled)??;
        let store = SharedStore::new(store);
        let loaded = store
            .call(|store| store.meta(LOADED).map(|v| v.is_some()))
            .await?;
        if !loaded {
            let path = input.clone();
            let validated_as = validated.fingerprint.clone();
            let loaded_as = store
                .call(move |store| load(store, &path))
                .await?
                .map_err(read_error)?;
            if loaded_as != validated_as {
                return Err(BatchError::InputChanged(input));
            }
        }
        let counts = store.counts(BATCH, now_ms()).await?;
        Ok(Batch {
            store,
            resumed: binding == Binding::Resumed,
            total: counts.total(),
        })
    }

    /// Items in the job.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether this run resumes an earlier one.
    pub fn resumed(&self) -> bool {
        self.resumed
    }
}
