//! The fleet's shared memory in the runtime: [`RedisStore`], the Redis implementation of the
//! engine's [`Store`](breakwater_actors::fleet::Store) seam (whose reference semantics are the
//! engine's in-memory `MemoryStore`).

mod redis;

pub use self::redis::{CALL_TIMEOUT, CONNECT_TIMEOUT, KEEPALIVE, RESPONSE_TIMEOUT, RedisStore};
