//! [`LazyRedis`]: the runtime's fleet store, a [`RedisStore`] connected on first use and
//! again after a failed connect, so that a replica started while Redis is down (or with a
//! wrong address or password) starts in local mode, logs why, and joins the fleet once Redis
//! answers, rather than failing to start.

use std::time::Duration;

use breakwater_actors::fleet::{Published, Store, StoreError, Swap, Versioned};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::Mutex;

use super::RedisStore;
use crate::config::RedisUrl;

/// A Redis store that connects when first needed; see the module docs.
pub struct LazyRedis {
    url: RedisUrl,
    prefix: String,
    store: Mutex<Option<RedisStore>>,
}

impl std::fmt::Debug for LazyRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyRedis")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl LazyRedis {
    /// A store for the Redis at `url`, its keys starting with `prefix:`; nothing connects yet.
    pub fn new(url: RedisUrl, prefix: impl Into<String>) -> Self {
        Self {
            url,
            prefix: prefix.into(),
            store: Mutex::new(None),
        }
    }

    /// The connected store, connecting first if need be.
    async fn connected(&self) -> Result<RedisStore, StoreError> {
        let mut store = self.store.lock().await;
        if let Some(store) = store.as_ref() {
            return Ok(store.clone());
        }
        let connected = RedisStore::connect(self.url.expose(), &self.prefix).await?;
        tracing::info!(url = %self.url, prefix = %self.prefix, "fleet: connected to Redis");
        *store = Some(connected.clone());
        Ok(connected)
    }
}

impl Store for LazyRedis {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>, StoreError>> {
        Box::pin(async move { self.connected().await?.get(key).await })
    }

    fn swap<'a>(
        &'a self,
        key: &'a str,
        expect: u64,
        value: String,
    ) -> BoxFuture<'a, Result<Swap, StoreError>> {
        Box::pin(async move { self.connected().await?.swap(key, expect, value).await })
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Published>, StoreError>> {
        Box::pin(async move { self.connected().await?.subscribe().await })
    }

    fn heartbeat<'a>(
        &'a self,
        replica: &'a str,
        now_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            self.connected()
                .await?
                .heartbeat(replica, now_ms, ttl)
                .await
        })
    }

    fn report<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: String,
        now_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StoreError>> {
        Box::pin(async move {
            let store = self.connected().await?;
            store.report(key, field, value, now_ms, ttl).await
        })
    }

    fn leave<'a>(&'a self, replica: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.connected().await?.leave(replica).await })
    }
}
