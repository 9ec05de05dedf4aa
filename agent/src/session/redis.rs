//! Sessions in Redis, so any instance continues any conversation.
//!
//! One hash per session, `tollgate:{sess:ID}`, holding its owner, times, counters and one field
//! per turn (`t:SEQ`), with the session's expiry as the key's own. Every change to a session is
//! one Lua script on that one key: appends are atomic (the sequence number, the trim to the
//! history caps and the new expiry together), and the hash tag keeps each script on one slot of
//! a Redis Cluster. The indexes come after, as hints: an owner's sessions in two sorted sets
//! under one hash tag (`tollgate:{sessowner:OWNER}:expiry`, scored by expiry, and `…:ids`, all
//! scored 0 so a listing pages through them by id with `ZRANGEBYLEX`), kept together by a
//! script; and every live session (`tollgate:sessions:live`, by expiry) for the count. Expired
//! ids are pruned from them as they are written and read.

use std::sync::Arc;

use async_trait::async_trait;
use gateway_client::shared::RedisState;
use redis::Script;

use super::store::{
    HistoryLimits, SessionListing, SessionPage, SessionStore, SessionStoreError, StoredSession,
    StoredSummary, StoredTurn,
};

const LIVE_INDEX: &str = "tollgate:sessions:live";

/// KEYS: session. ARGV: owner, now, expires. 1 when created, 0 when the id is taken.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'created', ARGV[2], 'updated', ARGV[2],
  'expires', ARGV[3], 'next', 1, 'first', 1, 'bytes', 0)
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
";

/// KEYS: session. ARGV: owner, payload, now, expires, max turns, max bytes.
/// The turn's sequence number, or -1 when the session is gone or not the owner's.
const APPEND: &str = r"
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner ~= ARGV[1] then return -1 end
local now = tonumber(ARGV[3])
if tonumber(redis.call('HGET', KEYS[1], 'expires')) <= now then return -1 end
local seq = redis.call('HINCRBY', KEYS[1], 'next', 1) - 1
redis.call('HSET', KEYS[1], 't:' .. seq, ARGV[2])
local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', string.len(ARGV[2]))
local first = tonumber(redis.call('HGET', KEYS[1], 'first'))
local max_turns = tonumber(ARGV[5])
local max_bytes = tonumber(ARGV[6])
while first < seq and (seq - first + 1 > max_turns or bytes > max_bytes) do
  local old = redis.call('HGET', KEYS[1], 't:' .. first)
  if old then bytes = bytes - string.len(old) end
  redis.call('HDEL', KEYS[1], 't:' .. first)
  first = first + 1
end
redis.call('HSET', KEYS[1], 'first', first, 'bytes', bytes, 'updated', ARGV[3],
  'expires', ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return seq
";

/// KEYS: session. ARGV: owner, now. 1 when a live session of the owner was deleted.
const DELETE: &str = r"
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner ~= ARGV[1] then return 0 end
local live = tonumber(redis.call('HGET', KEYS[1], 'expires')) > tonumber(ARGV[2])
redis.call('DEL', KEYS[1])
if live then return 1 end
return 0
";

/// KEYS: session. ARGV: owner, now, through seq, text. 1 when kept.
const SET_SUMMARY: &str = r"
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner ~= ARGV[1] then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'expires')) <= tonumber(ARGV[2]) then return 0 end
local current = tonumber(redis.call('HGET', KEYS[1], 'summary_through') or '0')
if tonumber(ARGV[3]) <= current then return 0 end
redis.call('HSET', KEYS[1], 'summary_through', ARGV[3], 'summary', ARGV[4])
return 1
";

/// Removes up to 256 expired ids from an owner's two indexes. KEYS: expiry, ids. ARGV[1]: now.
const PRUNE_OWNER: &str = r"
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 256)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
";

/// KEYS: owner expiry, owner ids. ARGV: now, id, expires. The indexes live as long as their
/// longest-lived session.
const INDEX_OWNER: &str = r"
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
for _, key in ipairs(KEYS) do
  local left = redis.call('PTTL', key)
  if left < 0 or tonumber(ARGV[1]) + left < tonumber(ARGV[3]) then
    redis.call('PEXPIREAT', key, ARGV[3])
  end
end
";

/// KEYS: owner expiry, owner ids. ARGV: now, lex start (`-` or `(ID`), count.
/// Flat pairs: id, expiry score.
const LIST_OWNER: &str = r"
local ids = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[2], '+', 'LIMIT', 0, ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  table.insert(out, id)
  table.insert(out, redis.call('ZSCORE', KEYS[1], id) or '0')
end
return out
";

pub struct RedisSessions {
    redis: Arc<RedisState>,
    create: Script,
    append: Script,
    delete: Script,
    set_summary: Script,
    index_owner: Script,
    list_owner: Script,
}

impl RedisSessions {
    pub fn new(redis: Arc<RedisState>) -> Self {
        Self {
            redis,
            create: Script::new(CREATE),
            append: Script::new(APPEND),
            delete: Script::new(DELETE),
            set_summary: Script::new(SET_SUMMARY),
            index_owner: Script::new(&format!("{PRUNE_OWNER}{INDEX_OWNER}")),
            list_owner: Script::new(&format!("{PRUNE_OWNER}{LIST_OWNER}")),
        }
    }

    /// Puts the session in its owner's indexes and the live index with its new expiry,
    /// pruning expired ids from them.
    async fn index(
        &self,
        id: &str,
        owner: &str,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<(), SessionStoreError> {
        let [by_expiry, by_id] = owner_keys(owner);
        let script = &self.index_owner;
        self.redis
            .run(|mut connection| async move {
                script
                    .key(&by_expiry)
                    .key(&by_id)
                    .arg(now_ms)
                    .arg(id)
                    .arg(expires_ms)
                    .invoke_async::<()>(&mut connection)
                    .await
            })
            .await
            .map_err(unavailable)?;
        self.redis
            .run(|mut connection| async move {
                redis::pipe()
                    .zadd(LIVE_INDEX, id, expires_ms)
                    .zrembyscore(LIVE_INDEX, "-inf", now_ms)
                    .pexpire_at(LIVE_INDEX, to_i64(expires_ms))
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await
            .map_err(unavailable)
    }
}

fn session_key(id: &str) -> String {
    format!("tollgate:{{sess:{id}}}")
}

/// An owner's indexes, by expiry and by id, under one hash tag.
fn owner_keys(owner: &str) -> [String; 2] {
    [
        format!("tollgate:{{sessowner:{owner}}}:expiry"),
        format!("tollgate:{{sessowner:{owner}}}:ids"),
    ]
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unavailable(error: gateway_client::store::StoreError) -> SessionStoreError {
    SessionStoreError::Unavailable(error.to_string())
}

/// A session hash read back: `None` when it is not a live session of `owner`.
fn parse_session(fields: Vec<(String, String)>, owner: &str, now_ms: u64) -> Option<StoredSession> {
    let mut session = StoredSession {
        created_ms: 0,
        updated_ms: 0,
        expires_ms: 0,
        dropped_turns: 0,
        turns: Vec::new(),
        summary: None,
    };
    let mut owned = false;
    let (mut summary_through, mut summary_text) = (0, None);
    for (field, value) in fields {
        let number = || value.parse::<u64>().unwrap_or(0);
        match field.as_str() {
            "owner" => owned = value == owner,
            "created" => session.created_ms = number(),
            "updated" => session.updated_ms = number(),
            "expires" => session.expires_ms = number(),
            "first" => session.dropped_turns = number().saturating_sub(1),
            "summary_through" => summary_through = number(),
            "summary" => summary_text = Some(value),
            _ => {
                if let Some(seq) = field.strip_prefix("t:").and_then(|s| s.parse().ok()) {
                    session.turns.push(StoredTurn {
                        seq,
                        payload: value,
                    });
                }
            }
        }
    }
    if !owned || session.expires_ms <= now_ms {
        return None;
    }
    session.turns.sort_by_key(|turn| turn.seq);
    session.summary = summary_text.map(|text| StoredSummary {
        through_seq: summary_through,
        text,
    });
    Some(session)
}

#[async_trait]
impl SessionStore for RedisSessions {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn create(
        &self,
        id: &str,
        owner: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<bool, SessionStoreError> {
        let key = session_key(id);
        let expires_ms = now_ms.saturating_add(ttl_ms);
        let script = &self.create;
        let created: i64 = self
            .redis
            .run(|mut connection| async move {
                script
                    .key(&key)
                    .arg(owner)
                    .arg(now_ms)
                    .arg(expires_ms)
                    .invoke_async(&mut connection)
                    .await
            })
            .await
            .map_err(unavailable)?;
        if created != 1 {
            return Ok(false);
        }
        self.index(id, owner, now_ms, expires_ms).await?;
        Ok(true)
    }

    async fn load(
        &self,
        id: &str,
        owner: &str,
        now_ms: u64,
    ) -> Result<Option<StoredSession>, SessionStoreError> {
        let key = session_key(id);
        let fields: Vec<(String, String)> = self
            .redis
            .run(|mut connection| async move {
                redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await
            })
            .await
            .map_err(unavailable)?;
        Ok(parse_session(fields, owner, now_ms))
    }

    async fn append(
        &self,
        id: &str,
        owner: &str,
        payload: &str,
        now_ms: u64,
        ttl_ms: u64,
        limits: HistoryLimits,
    ) -> Result<Option<u64>, SessionStoreError> {
        let key = session_key(id);
        let expires_ms = now_ms.saturating_add(ttl_ms);
        let script = &self.append;
        let seq: i64 = self
            .redis
            .run(|mut connection| async move {
                script
                    .key(&key)
                    .arg(owner)
                    .arg(payload)
                    .arg(now_ms)
                    .arg(expires_ms)
                    .arg(limits.max_turns)
                    .arg(limits.max_bytes)
                    .invoke_async(&mut connection)
                    .await
            })
            .await
            .map_err(unavailable)?;
        let Ok(seq) = u64::try_from(seq) else {
            return Ok(None);
        };
        self.index(id, owner, now_ms, expires_ms).await?;
        Ok(Some(seq))
    }

    async fn set_summary(
        &self,
        id: &str,
        owner: &str,
        summary: &StoredSummary,
        now_ms: u64,
    ) -> Result<bool, SessionStoreError> {
        let key = session_key(id);
        let script = &self.set_summary;
        let kept: i64 = self
            .redis
            .run(|mut connection| async move {
                script
                    .key(&key)
                    .arg(owner)
                    .arg(now_ms)
                    .arg(summary.through_seq)
                    .arg(&summary.text)
                    .invoke_async(&mut connection)
                    .await
            })
            .await
            .map_err(unavailable)?;
        Ok(kept == 1)
    }

    async fn delete(&self, id: &str, owner: &str, now_ms: u64) -> Result<bool, SessionStoreError> {
        let key = session_key(id);
        let script = &self.delete;
        let deleted: i64 = self
            .redis
            .run(|mut connection| async move {
                script
                    .key(&key)
                    .arg(owner)
                    .arg(now_ms)
                    .invoke_async(&mut connection)
                    .await
            })
            .await
            .map_err(unavailable)?;
        if deleted != 1 {
            return Ok(false);
        }
        let [by_expiry, by_id] = owner_keys(owner);
        self.redis
            .run(|mut connection| async move {
                redis::pipe()
                    .zrem(&by_expiry, id)
                    .zrem(&by_id, id)
                    .zrem(LIVE_INDEX, id)
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await
            .map_err(unavailable)?;
        Ok(true)
    }

    async fn list(
        &self,
        owner: &str,
        now_ms: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<SessionPage, SessionStoreError> {
        let [by_expiry, by_id] = owner_keys(owner);
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let script = &self.list_owner;
        let flat: Vec<String> = self
            .redis
            .run(|mut connection| async move {
                script
                    .key(&by_expiry)
                    .key(&by_id)
                    .arg(now_ms)
                    .arg(&start)
                    .arg(limit.saturating_add(1))
                    .invoke_async(&mut connection)
                    .await
            })
            .await
            .map_err(unavailable)?;
        let more = flat.len() / 2 > limit;
        let mut sessions = Vec::with_capacity(limit);
        let mut last = None;
        for pair in flat.chunks_exact(2).take(limit) {
            last = Some(pair[0].clone());
            // Scores are whole milliseconds, exact in a double.
            let expires_ms = pair[1].parse::<f64>().map_or(0, |score| score as u64);
            // The prune is bounded; anything it left that has expired is not shown.
            if expires_ms > now_ms {
                sessions.push(SessionListing {
                    id: pair[0].clone(),
                    expires_ms,
                });
            }
        }
        Ok(SessionPage {
            sessions,
            next_cursor: if more { last } else { None },
        })
    }

    async fn live_count(&self, now_ms: u64) -> Result<u64, SessionStoreError> {
        self.redis
            .run(|mut connection| async move {
                redis::cmd("ZCOUNT")
                    .arg(LIVE_INDEX)
                    .arg(format!("({now_ms}"))
                    .arg("+inf")
                    .query_async(&mut connection)
                    .await
            })
            .await
            .map_err(unavailable)
    }
}
