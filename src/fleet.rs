//! The fleet's shared memory in the runtime: [`RedisStore`], the Redis implementation of the
//! engine's [`Store`](breakwater_actors::fleet::Store) seam (whose reference semantics are the
//! engine's in-memory `MemoryStore`); [`LazyRedis`], which connects it when first needed; and
//! [`join`], the fleet a `[cluster]` table (or `--redis`) names.

mod lazy;
mod redis;

use std::sync::Arc;

use breakwater_actors::fleet::Fleet;
use tokio::time::Instant;

pub use self::lazy::LazyRedis;
pub use self::redis::{CALL_TIMEOUT, CONNECT_TIMEOUT, KEEPALIVE, RESPONSE_TIMEOUT, RedisStore};
use crate::config::{ClusterConfig, RedisUrl};

/// The fleet to join: the Redis `url` (else `cluster.redis`) with `cluster`'s settings, or
/// `None` when neither names one.
pub fn join(cluster: &ClusterConfig, url: Option<&RedisUrl>) -> Option<Fleet> {
    let url = url.or(cluster.redis.as_ref())?.clone();
    let since_epoch = crate::wallclock::unix_now();
    Some(Fleet {
        store: Arc::new(LazyRedis::new(url, cluster.key_prefix.clone())),
        config: cluster.fleet.clone(),
        clock: (Instant::now(), since_epoch.as_millis() as u64),
    })
}
