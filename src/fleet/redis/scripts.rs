//! The Lua scripts the store runs, one key each (as a Redis Cluster would need), and their
//! replies read back. A record is a hash: `v`, its version (a positive integer, canonical
//! decimal), and `d`, its data. The scripts never write over a key that is not such a record:
//! they answer with a garbage marker instead, which the store turns into
//! [`StoreError::Garbage`].
//!
//! Every reply is an array whose first element is a tag:
//! - `a`: the key is absent;
//! - `f v d`: found, at version `v`, holding `d`;
//! - `c [v d]`: conflict (the key's version is not the one expected), with what it holds;
//! - `w v`: written as version `v` (and published);
//! - `m name...`: the members alive;
//! - `t field value...`: a table's live fields;
//! - `ok`: done;
//! - `g what [detail]`: garbage, see [`garbage_reason`].

use ::redis::Value;

use breakwater_actors::fleet::{StoreError, Versioned};

/// Reads the record at `key`: `'a'`, `'f', v, d` or `'g', what, detail`.
const READ: &str = r"
local function read(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then return 'a' end
  if kind ~= 'hash' then return 'g', 'type', kind end
  local v = redis.call('HGET', key, 'v')
  if not v then return 'g', 'no-v' end
  if not string.match(v, '^[1-9][0-9]*$') then return 'g', 'bad-v' end
  local d = redis.call('HGET', key, 'd')
  if not d then return 'g', 'no-d' end
  return 'f', v, d
end
";

/// KEYS: the record. ARGV: none.
const GET: &str = r"
local state, a, b = read(KEYS[1])
return {state, a, b}
";

/// KEYS: the record. ARGV: expected version (`0`: absent), the next version, the value, the
/// events channel, the key as published.
const SWAP: &str = r"
local state, a, b = read(KEYS[1])
if state == 'g' then return {state, a, b} end
local current = '0'
if state == 'f' then current = a end
if current ~= ARGV[1] then return {'c', a, b} end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. '\n' .. ARGV[2] .. '\n' .. ARGV[3])
return {'w', ARGV[2]}
";

/// Fails unless `KEYS[1]` is absent or a sorted set.
const MEMBERS: &str = r"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'zset' then return {'g', 'type', kind} end
";

/// KEYS: the members. ARGV: the replica, its expiry (ms), now (ms).
const HEARTBEAT: &str = r"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local alive = redis.call('ZRANGE', KEYS[1], 0, -1)
table.insert(alive, 1, 'm')
return alive
";

/// KEYS: the members. ARGV: the replica.
const LEAVE: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
return {'ok'}
";

/// KEYS: the table (a hash of `field -> expiry|value`). ARGV: the field, its value, its
/// expiry (ms), now (ms), how long the whole table lives unless reported to again (ms).
const REPORT: &str = r"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'hash' then return {'g', 'type', kind} end
local all = redis.call('HGETALL', KEYS[1])
for i = 2, #all, 2 do
  if not string.match(all[i], '^[0-9]+|') then return {'g', 'bad-field'} end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. '|' .. ARGV[2])
all = redis.call('HGETALL', KEYS[1])
local out = {'t'}
local now = tonumber(ARGV[4])
for i = 1, #all, 2 do
  local field, stored = all[i], all[i + 1]
  local sep = string.find(stored, '|', 1, true)
  local expiry = sep and tonumber(string.sub(stored, 1, sep - 1))
  if expiry and expiry > now then
    table.insert(out, field)
    table.insert(out, string.sub(stored, sep + 1))
  else
    redis.call('HDEL', KEYS[1], field)
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return out
";

/// The store's scripts, loaded into Redis on first use (EVALSHA, then EVAL if Redis has
/// forgotten them, as after a restart).
pub(super) struct Scripts {
    pub(super) get: ::redis::Script,
    pub(super) swap: ::redis::Script,
    pub(super) heartbeat: ::redis::Script,
    pub(super) leave: ::redis::Script,
    pub(super) report: ::redis::Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            get: ::redis::Script::new(&format!("{READ}{GET}")),
            swap: ::redis::Script::new(&format!("{READ}{SWAP}")),
            heartbeat: ::redis::Script::new(&format!("{MEMBERS}{HEARTBEAT}")),
            leave: ::redis::Script::new(&format!("{MEMBERS}{LEAVE}")),
            report: ::redis::Script::new(REPORT),
        }
    }
}

/// A script's reply, read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reply {
    /// `a`, or `c` with nothing: the key is absent.
    Absent,
    /// `f`: the record.
    Found(Versioned),
    /// `c`: the key holds another version (or none).
    Conflict(Option<Versioned>),
    /// `w`: written as this version.
    Written(u64),
    /// `m`: the members alive.
    Members(Vec<String>),
    /// `t`: a table's live fields and their values.
    Table(Vec<(String, String)>),
    /// `ok`.
    Done,
    /// `g`, or a record that cannot be read: why the key is garbage.
    Garbage(String),
}

/// Reads a script's reply; `None` if it is none of ours.
pub(super) fn read_reply(value: Value) -> Option<Reply> {
    let Value::Array(items) = value else {
        return None;
    };
    let mut items = items.into_iter().map(bytes);
    let tag = items.next()??;
    let mut rest = Vec::new();
    for item in items {
        rest.push(item?);
    }
    let reply = match (tag.as_slice(), rest.as_slice()) {
        (b"a", []) => Reply::Absent,
        (b"c", []) => Reply::Conflict(None),
        (b"f" | b"c", [version, data]) => match record(version, data) {
            Ok(found) if tag == b"f" => Reply::Found(found),
            Ok(found) => Reply::Conflict(Some(found)),
            Err(reason) => Reply::Garbage(reason),
        },
        (b"w", [version]) => Reply::Written(std::str::from_utf8(version).ok()?.parse().ok()?),
        (b"m", names) => Reply::Members(
            names
                .iter()
                .map(|name| String::from_utf8_lossy(name).into_owned())
                .collect(),
        ),
        (b"t", pairs) if pairs.len() % 2 == 0 => Reply::Table(
            pairs
                .chunks(2)
                .map(|pair| {
                    let text = |b: &Vec<u8>| String::from_utf8_lossy(b).into_owned();
                    (text(&pair[0]), text(&pair[1]))
                })
                .collect(),
        ),
        (b"ok", []) => Reply::Done,
        (b"g", [what, detail @ ..]) => Reply::Garbage(garbage_reason(what, detail.first())),
        _ => return None,
    };
    Some(reply)
}

/// A record's version and data, or why they are not one.
fn record(version: &[u8], data: &[u8]) -> Result<Versioned, String> {
    let version = std::str::from_utf8(version)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| "a hash whose version (field v) is too large".to_owned())?;
    let value = String::from_utf8(data.to_vec())
        .map_err(|_| "a hash whose data (field d) is not UTF-8 text".to_owned())?;
    Ok(Versioned { version, value })
}

/// The operator's words for a `g` marker.
fn garbage_reason(what: &[u8], detail: Option<&Vec<u8>>) -> String {
    match what {
        b"type" => {
            let kind = detail.map_or_else(|| "?".into(), |k| String::from_utf8_lossy(k));
            format!("a {kind}, not a breakwater record")
        }
        b"no-v" => "a hash without a version (field v), not a breakwater record".to_owned(),
        b"bad-v" => "a hash whose version (field v) is not a positive integer".to_owned(),
        b"no-d" => "a hash without data (field d), not a breakwater record".to_owned(),
        b"bad-field" => {
            "a hash with a field that is not `expiry|value`, not a breakwater table".to_owned()
        }
        _ => "something breakwater cannot read".to_owned(),
    }
}

fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// A published message read back; `None` if it is not one of ours. The swap script publishes
/// `key \n version \n value` (the value may hold line breaks; the key may not).
pub(super) fn parse_event(payload: &[u8]) -> Option<breakwater_actors::fleet::Published> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(3, '\n');
    let key = parts.next()?;
    let version = parts.next()?;
    let value = parts.next()?;
    if !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let version = version.parse::<u64>().ok().filter(|v| *v > 0)?;
    Some(breakwater_actors::fleet::Published {
        key: key.to_owned(),
        value: Versioned {
            version,
            value: value.to_owned(),
        },
    })
}

/// A key the store cannot publish (the event format splits on line breaks).
pub(super) fn check_key(key: &str) -> Result<(), StoreError> {
    if key.contains('\n') {
        return Err(StoreError::Garbage {
            key: key.to_owned(),
            reason: "a name with a line break, which cannot be published".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(items: &[&str]) -> Value {
        Value::Array(
            items
                .iter()
                .map(|s| Value::BulkString(s.as_bytes().to_vec()))
                .collect(),
        )
    }

    fn versioned(version: u64, value: &str) -> Versioned {
        Versioned {
            version,
            value: value.to_owned(),
        }
    }

    #[test]
    fn replies_are_read() {
        assert_eq!(read_reply(array(&["a"])), Some(Reply::Absent));
        assert_eq!(
            read_reply(array(&["f", "3", "x\ny"])),
            Some(Reply::Found(versioned(3, "x\ny")))
        );
        assert_eq!(read_reply(array(&["c"])), Some(Reply::Conflict(None)));
        assert_eq!(
            read_reply(array(&["c", "2", "v"])),
            Some(Reply::Conflict(Some(versioned(2, "v"))))
        );
        assert_eq!(read_reply(array(&["w", "4"])), Some(Reply::Written(4)));
        assert_eq!(
            read_reply(array(&["m", "a", "b"])),
            Some(Reply::Members(vec!["a".into(), "b".into()]))
        );
        assert_eq!(read_reply(array(&["m"])), Some(Reply::Members(vec![])));
        assert_eq!(read_reply(array(&["ok"])), Some(Reply::Done));
        assert_eq!(
            read_reply(array(&["g", "type", "string"])),
            Some(Reply::Garbage("a string, not a breakwater record".into()))
        );
        assert!(matches!(
            read_reply(array(&["g", "no-v"])),
            Some(Reply::Garbage(_))
        ));
        assert!(matches!(
            read_reply(array(&["f", "99999999999999999999999", "x"])),
            Some(Reply::Garbage(_))
        ));
        assert_eq!(read_reply(array(&["w", "x"])), None);
        assert_eq!(read_reply(array(&["zz"])), None);
        assert_eq!(read_reply(array(&[])), None);
        assert_eq!(read_reply(Value::Nil), None);
        assert_eq!(read_reply(Value::Int(3)), None);
    }

    #[test]
    fn events_round_trip_with_line_breaks_in_the_value() {
        let event = parse_event(b"{m}:breaker\n7\na\nb\n\nc").unwrap();
        assert_eq!(event.key, "{m}:breaker");
        assert_eq!(event.value, versioned(7, "a\nb\n\nc"));
        assert_eq!(parse_event(b"k\n1\n").unwrap().value, versioned(1, ""));
        assert_eq!(parse_event(b"k\n+1\nv"), None);
        assert_eq!(parse_event(b"k\n0\nv"), None);
        assert_eq!(parse_event(b"k\n1"), None);
        assert_eq!(parse_event(b"hello"), None);
        assert_eq!(parse_event(&[0xff, b'\n', b'1', b'\n']), None);
    }

    #[test]
    fn keys_with_line_breaks_are_refused() {
        assert!(check_key("{m}:breaker").is_ok());
        assert!(matches!(check_key("a\nb"), Err(StoreError::Garbage { .. })));
    }
}
