//! The fleet's [`Store`] on Redis: one hash per key (`v`, the version; `d`, the data) under
//! `{prefix}:{key}`, written by compare-and-swap in one Lua script on one key (the scheme a Redis Cluster
//! needs: the link's keys carry their own hash tag; this store connects to one server,
//! though), every write published on
//! `{prefix}:events`, and the living replicas in the sorted set `{prefix}:members` (score: the
//! Unix millisecond each one's heartbeat runs out).
//!
//! Commands go through a [`ConnectionManager`], which reconnects by itself after the
//! connection is lost: the call that finds it lost fails ([`StoreError::Unreachable`]), a later
//! one goes out on the new connection. Connecting and each answer are bounded
//! ([`CONNECT_TIMEOUT`], [`RESPONSE_TIMEOUT`]), and every call as a whole by [`CALL_TIMEOUT`].
//! A subscription has its own connection, kept alive by a PING when it has been quiet for
//! [`KEEPALIVE`]; its stream ends when that connection is lost (or the PING goes unanswered),
//! and the link subscribes again.
//!
//! Keys that hold something else (another program's data, an older version's) are never
//! written over: reading or swapping them is [`StoreError::Garbage`]. No error, log line or
//! `Debug` output holds the URL's password.

mod address;
mod scripts;

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use ::redis::{Client, Script, Value};
use breakwater_actors::fleet::{Published, Store, StoreError, Swap, Versioned};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use address::Address;
use scripts::{Reply, Scripts};

/// How long opening a connection (TCP, AUTH, SELECT) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long Redis may take to answer one command.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one store call may take in all, reconnecting included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a quiet subscription waits before it checks its connection with a PING.
pub const KEEPALIVE: Duration = Duration::from_secs(5);

/// The fleet's store on a Redis server (or anything that speaks its protocol: Valkey, a
/// managed Redis). Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    client: Client,
    commands: ConnectionManager,
    address: Address,
    prefix: String,
    events: String,
    members: String,
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.address.shown())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[user[:password]@]host[:port][/db]`) and checks
    /// it answers (a PING), so that a wrong address or wrong credentials are reported now. Keys
    /// are stored as `{prefix}:{key}`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let (client, address) = Address::parse(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(250));
        let connecting = ConnectionManager::new_with_config(client.clone(), config);
        let mut commands = match tokio::time::timeout(CALL_TIMEOUT, connecting).await {
            Ok(Ok(commands)) => commands,
            Ok(Err(err)) => return Err(address.connect_error(&err)),
            Err(_) => return Err(address.timed_out("a connection", CALL_TIMEOUT)),
        };
        let ping = ::redis::cmd("PING");
        let ping = ping.query_async::<Value>(&mut commands);
        match tokio::time::timeout(CALL_TIMEOUT, ping).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(address.connect_error(&err)),
            Err(_) => return Err(address.timed_out("a PING", CALL_TIMEOUT)),
        }
        Ok(Self {
            client,
            commands,
            address,
            prefix: prefix.to_owned(),
            events: format!("{prefix}:events"),
            members: format!("{prefix}:members"),
            scripts: Arc::new(Scripts::new()),
        })
    }

    /// The URL connected to, without its password.
    pub fn url(&self) -> &str {
        self.address.shown()
    }

    /// The channel every write is published on: `{prefix}:events`.
    pub fn events_channel(&self) -> &str {
        &self.events
    }

    /// Where the value of the link's `key` is stored: `{prefix}:{key}`.
    pub fn stored_key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }

    /// Runs `script` on `key` with `args`, bounded by [`CALL_TIMEOUT`]; `doing` names the call
    /// in errors.
    async fn run(
        &self,
        script: &Script,
        key: &str,
        args: &[&[u8]],
        doing: &str,
    ) -> Result<Reply, StoreError> {
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(*arg);
        }
        let mut commands = self.commands.clone();
        let call = invocation.invoke_async::<Value>(&mut commands);
        let value = match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(value)) => value,
            Ok(Err(err)) => return Err(self.address.call_error(doing, &err)),
            Err(_) => return Err(self.address.timed_out(doing, CALL_TIMEOUT)),
        };
        scripts::read_reply(value).ok_or_else(|| self.address.odd_reply(doing))
    }

    async fn get_record(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let doing = format!("the read of {key}");
        match self
            .run(&self.scripts.get, &self.stored_key(key), &[], &doing)
            .await?
        {
            Reply::Absent => Ok(None),
            Reply::Found(found) => Ok(Some(found)),
            Reply::Garbage(reason) => Err(garbage(key, reason)),
            _ => Err(self.address.odd_reply(&doing)),
        }
    }

    async fn swap_record(&self, key: &str, expect: u64, value: &str) -> Result<Swap, StoreError> {
        scripts::check_key(key)?;
        let doing = format!("the swap of {key}");
        let Some(next) = expect.checked_add(1) else {
            // No record can be at this version: what the key holds is a conflict.
            return self.get_record(key).await.map(Swap::Conflict);
        };
        let (expect, next) = (expect.to_string(), next.to_string());
        let args: [&[u8]; 5] = [
            expect.as_bytes(),
            next.as_bytes(),
            value.as_bytes(),
            self.events.as_bytes(),
            key.as_bytes(),
        ];
        match self
            .run(&self.scripts.swap, &self.stored_key(key), &args, &doing)
            .await?
        {
            Reply::Written(version) => Ok(Swap::Written(version)),
            Reply::Conflict(current) => Ok(Swap::Conflict(current)),
            Reply::Garbage(reason) => Err(garbage(key, reason)),
            _ => Err(self.address.odd_reply(&doing)),
        }
    }

    async fn subscribe_events(&self) -> Result<BoxStream<'static, Published>, StoreError> {
        let doing = format!("the subscription to {}", self.events);
        let opening = async {
            let pubsub = self.client.get_async_pubsub().await?;
            let (mut sink, messages) = pubsub.split();
            sink.subscribe(&self.events).await?;
            Ok::<_, ::redis::RedisError>((sink, messages))
        };
        let (sink, messages) = match tokio::time::timeout(CALL_TIMEOUT, opening).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(err)) => return Err(self.address.call_error(&doing, &err)),
            Err(_) => return Err(self.address.timed_out(&doing, CALL_TIMEOUT)),
        };
        let state = Subscription { sink, messages };
        Ok(futures::stream::unfold(state, Subscription::next).boxed())
    }

    async fn heartbeat_members(
        &self,
        replica: &str,
        now_ms: u64,
        ttl: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let until = now_ms.saturating_add(ttl_ms).to_string();
        let now = now_ms.to_string();
        let args: [&[u8]; 3] = [replica.as_bytes(), until.as_bytes(), now.as_bytes()];
        let doing = format!("the heartbeat of {replica}");
        match self
            .run(&self.scripts.heartbeat, &self.members, &args, &doing)
            .await?
        {
            Reply::Members(mut alive) => {
                alive.sort();
                Ok(alive)
            }
            Reply::Garbage(reason) => Err(garbage("members", reason)),
            _ => Err(self.address.odd_reply(&doing)),
        }
    }

    async fn report_field(
        &self,
        key: &str,
        field: &str,
        value: &str,
        now_ms: u64,
        ttl: Duration,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let until = now_ms.saturating_add(ttl_ms).to_string();
        let (now, ttl) = (now_ms.to_string(), ttl_ms.to_string());
        let args: [&[u8]; 5] = [
            field.as_bytes(),
            value.as_bytes(),
            until.as_bytes(),
            now.as_bytes(),
            ttl.as_bytes(),
        ];
        let doing = format!("the report to {key}");
        match self
            .run(&self.scripts.report, &self.stored_key(key), &args, &doing)
            .await?
        {
            Reply::Table(fields) => Ok(fields),
            Reply::Garbage(reason) => Err(garbage(key, reason)),
            _ => Err(self.address.odd_reply(&doing)),
        }
    }

    async fn leave_members(&self, replica: &str) -> Result<(), StoreError> {
        let doing = format!("the leave of {replica}");
        let args: [&[u8]; 1] = [replica.as_bytes()];
        match self
            .run(&self.scripts.leave, &self.members, &args, &doing)
            .await?
        {
            Reply::Done => Ok(()),
            Reply::Garbage(reason) => Err(garbage("members", reason)),
            _ => Err(self.address.odd_reply(&doing)),
        }
    }
}

fn garbage(key: &str, reason: String) -> StoreError {
    StoreError::Garbage {
        key: key.to_owned(),
        reason,
    }
}

/// A subscription's connection: the sink is kept so the connection stays open (and to PING
/// it when quiet), the messages are what it receives.
struct Subscription {
    sink: PubSubSink,
    messages: PubSubStream,
}

impl Subscription {
    /// The next write published, or `None` once the connection is lost.
    async fn next(mut self) -> Option<(Published, Self)> {
        loop {
            tokio::select! {
                message = self.messages.next() => {
                    let message = message?;
                    if let Some(published) = scripts::parse_event(message.get_payload_bytes()) {
                        return Some((published, self));
                    }
                    tracing::warn!(
                        channel = message.get_channel_name(),
                        bytes = message.get_payload_bytes().len(),
                        "fleet store: skipped a message that is not a breakwater write",
                    );
                }
                () = tokio::time::sleep(KEEPALIVE) => {
                    let ping = self.sink.ping::<Value>();
                    match tokio::time::timeout(RESPONSE_TIMEOUT, ping).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(_)) | Err(_) => return None,
                    }
                }
            }
        }
    }
}

impl Store for RedisStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>, StoreError>> {
        Box::pin(self.get_record(key))
    }

    fn swap<'a>(
        &'a self,
        key: &'a str,
        expect: u64,
        value: String,
    ) -> BoxFuture<'a, Result<Swap, StoreError>> {
        Box::pin(async move { self.swap_record(key, expect, &value).await })
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Published>, StoreError>> {
        Box::pin(self.subscribe_events())
    }

    fn heartbeat<'a>(
        &'a self,
        replica: &'a str,
        now_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(self.heartbeat_members(replica, now_ms, ttl))
    }

    fn report<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: String,
        now_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StoreError>> {
        Box::pin(async move { self.report_field(key, field, &value, now_ms, ttl).await })
    }

    fn leave<'a>(&'a self, replica: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.leave_members(replica))
    }
}
