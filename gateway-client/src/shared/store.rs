//! Budgets and the usage ledger in Redis.
//!
//! Each operation is one Lua script, so a reservation reads and updates the counters
//! atomically: concurrent calls on any number of instances cannot pass a check together and
//! overshoot. Keys carry a `{hash tag}` per budget key, so each script touches one cluster slot.
//!
//! While Redis is away, budgets fall back to this instance's local counters (each instance then
//! enforces the full limit on its own: a deliberate trade of exactness for availability), and
//! the ledger records locally; in closed failure mode reservations are refused instead. Both
//! recover by themselves when Redis returns.

use std::sync::Arc;

use async_trait::async_trait;
use redis::Script;

use super::{FailureMode, RedisState};
use crate::store::{
    Admission, MemoryStore, ReserveRequest, StateStore, StoreError, Ticket, UsageRecord,
    bucket::UNIT,
};

/// A bucket's key lives this long past the time it would take to drain, so a late reconcile
/// still finds its exposure.
const BUCKET_GRACE_MS: u64 = 5 * 60 * 1000;
/// Ledgers are kept this long after their period starts: a yearly period and a month more.
const LEDGER_RETENTION_MS: u64 = 400 * 24 * 3600 * 1000;

/// The opening both scripts share: the bucket (KEYS[1]) read and drained up to `now` (ARGV[1])
/// at its refill rate (`tpm`, ARGV[5]; `unit`, ARGV[6]), leaving `level`, `at` and `exposed`.
macro_rules! bucket_drained {
    () => {
        r"
local now = tonumber(ARGV[1])
local tpm = tonumber(ARGV[5])
local unit = tonumber(ARGV[6])
local state = redis.call('HMGET', KEYS[1], 'level', 'at', 'exposed')
local level = tonumber(state[1]) or 0
local at = tonumber(state[2]) or now
local exposed = tonumber(state[3]) or 0
if now > at then
  level = math.max(0, level - (now - at) * tpm)
  at = now
end
"
    };
}

/// The bucket of `store::bucket` in Lua (same steps, same integer units). Lua's doubles are
/// exact below 2^53 units (TOKENS_PER_MINUTE up to about 10^10); above, they round by a tiny
/// fraction of a token.
///
/// KEYS: bucket hash, quota counter. ARGV: now, tokens, exposure, exposure limit, tokens per
/// minute, unit, grace ms, quota limit (-1: none), quota end.
/// Returns {0, remaining, reserved, exposure} | {1, retry after ms} | {2}.
const RESERVE: &str = concat!(
    bucket_drained!(),
    r"
local tokens = tonumber(ARGV[2])
local exposure = tonumber(ARGV[3])
local exposure_limit = tonumber(ARGV[4])
local quota_limit = tonumber(ARGV[8])
local taken = math.min(exposure, math.max(0, exposure_limit - exposed))
local held = tokens + exposure - taken
if quota_limit >= 0 then
  local quota_used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if quota_used + held > quota_limit then return {2} end
end
local capacity = tpm * unit
local after = level + held * unit
if after > capacity then
  return {1, math.ceil((after - capacity) / tpm)}
end
redis.call('HSET', KEYS[1], 'level', after, 'at', at, 'exposed', exposed + taken)
redis.call('PEXPIRE', KEYS[1], math.ceil(after / tpm) + tonumber(ARGV[7]))
if quota_limit >= 0 then
  redis.call('INCRBY', KEYS[2], held)
  redis.call('PEXPIREAT', KEYS[2], ARGV[9])
end
return {0, math.floor((capacity - after) / unit), held, taken}
"
);

/// KEYS: bucket hash, quota counter. ARGV: now, reserved, exposure, actual, tokens per minute,
/// unit, grace ms, has quota (1/0).
const RECONCILE: &str = concat!(
    bucket_drained!(),
    r"
local reserved = tonumber(ARGV[2])
local exposure = tonumber(ARGV[3])
local actual = tonumber(ARGV[4])
level = math.max(0, level + (actual - reserved) * unit)
exposed = math.max(0, exposed - exposure)
redis.call('HSET', KEYS[1], 'level', level, 'at', at, 'exposed', exposed)
redis.call('PEXPIRE', KEYS[1], math.ceil(level / tpm) + tonumber(ARGV[7]))
if ARGV[8] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  local used = tonumber(redis.call('GET', KEYS[2])) + actual - reserved
  if used < 0 then used = 0 end
  redis.call('SET', KEYS[2], used, 'KEEPTTL')
end
return 1
"
);

pub struct RedisStore {
    redis: Arc<RedisState>,
    local: MemoryStore,
    reserve: Script,
    reconcile: Script,
}

impl RedisStore {
    pub fn new(redis: Arc<RedisState>) -> Self {
        Self {
            redis,
            local: MemoryStore::new(),
            reserve: Script::new(RESERVE),
            reconcile: Script::new(RECONCILE),
        }
    }

    async fn reserve_shared(&self, request: &ReserveRequest<'_>) -> Result<Admission, StoreError> {
        let keys = [
            bucket_key(request.key),
            quota_key(request.key, request.quota.map(|q| q.start_ms)),
        ];
        let (quota_limit, quota_end) = request.quota.map_or((-1i64, 0u64), |q| {
            (i64::try_from(q.limit).unwrap_or(i64::MAX), q.end_ms)
        });
        let script = &self.reserve;
        let answer: Vec<i64> = self
            .redis
            .run(|mut connection| async move {
                script
                    .key(&keys[0])
                    .key(&keys[1])
                    .arg(request.now_ms)
                    .arg(request.tokens)
                    .arg(request.exposure)
                    .arg(request.exposure_limit)
                    .arg(request.tokens_per_minute)
                    .arg(UNIT)
                    .arg(BUCKET_GRACE_MS)
                    .arg(quota_limit)
                    .arg(quota_end)
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        let count = |index: usize| {
            answer
                .get(index)
                .and_then(|value| u64::try_from(*value).ok())
                .unwrap_or(0)
        };
        Ok(match answer.first() {
            Some(0) => Admission::Admitted(Ticket {
                key: request.key.to_owned(),
                quota_start_ms: request.quota.map(|q| q.start_ms),
                reserved: count(2),
                exposure: count(3),
                remaining: count(1),
                tokens_per_minute: request.tokens_per_minute,
            }),
            Some(1) => Admission::Throttled {
                retry_after_ms: count(1),
            },
            Some(2) => Admission::QuotaExhausted {
                resets_in_ms: request
                    .quota
                    .map_or(0, |q| q.end_ms.saturating_sub(request.now_ms)),
            },
            other => {
                return Err(StoreError::Unavailable(format!(
                    "the budget script answered an unknown code {other:?}"
                )));
            }
        })
    }
}

/// One key's bucket. The `{hash tag}` puts every key of one budget in one cluster slot.
fn bucket_key(key: &str) -> String {
    format!("tollgate:{{{key}}}:tpm")
}

/// The quota counter of the period starting at `period_start_ms` (a name in the same slot, never
/// written, when there is no quota: a script's keys must share a slot on a cluster).
fn quota_key(key: &str, period_start_ms: Option<u64>) -> String {
    match period_start_ms {
        Some(start) => format!("tollgate:{{{key}}}:quota:{start}"),
        None => format!("tollgate:{{{key}}}:quota:none"),
    }
}

fn ledger_key(period_start_ms: u64) -> String {
    format!("tollgate:usage:{period_start_ms}")
}

/// Ledger fields are `subscription \u{1f} model \u{1f} p|c`: the unit separator never appears in
/// subscription names (letters, digits, `-_.`) or model names.
const SEPARATOR: char = '\u{1f}';

#[async_trait]
impl StateStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn degraded_reason(&self) -> Option<String> {
        self.redis.degraded_reason()
    }

    async fn reserve(&self, request: &ReserveRequest<'_>) -> Result<Admission, StoreError> {
        match self.reserve_shared(request).await {
            Ok(admission) => Ok(admission),
            Err(error) => match self.redis.failure_mode() {
                FailureMode::Open => self.local.reserve(request).await,
                FailureMode::Closed => {
                    tracing::debug!(%error, "reservation refused: Redis unreachable");
                    Err(StoreError::Unavailable(
                        "shared budgets cannot be enforced while Redis is unreachable \
                         (REDIS_FAILURE_MODE=closed)"
                            .to_owned(),
                    ))
                }
            },
        }
    }

    async fn reconcile(&self, ticket: &Ticket, actual: u64, now_ms: u64) -> Result<(), StoreError> {
        let keys = [
            bucket_key(&ticket.key),
            quota_key(&ticket.key, ticket.quota_start_ms),
        ];
        let has_quota = u8::from(ticket.quota_start_ms.is_some());
        let script = &self.reconcile;
        let shared = self
            .redis
            .run(|mut connection| async move {
                script
                    .key(&keys[0])
                    .key(&keys[1])
                    .arg(now_ms)
                    .arg(ticket.reserved)
                    .arg(ticket.exposure)
                    .arg(actual)
                    .arg(ticket.tokens_per_minute)
                    .arg(UNIT)
                    .arg(BUCKET_GRACE_MS)
                    .arg(has_quota)
                    .invoke_async::<i64>(&mut connection)
                    .await
            })
            .await;
        match shared {
            Ok(_) => Ok(()),
            // A ticket from the local fallback, or Redis gone since: settle locally.
            Err(_) => self.local.reconcile(ticket, actual, now_ms).await,
        }
    }

    async fn record_usage(
        &self,
        period_start_ms: u64,
        record: &UsageRecord,
    ) -> Result<(), StoreError> {
        let key = ledger_key(period_start_ms);
        let prefix = format!(
            "{}{SEPARATOR}{}{SEPARATOR}",
            record.subscription, record.model
        );
        let shared = self
            .redis
            .run(|mut connection| async move {
                redis::pipe()
                    .atomic()
                    .hincr(&key, format!("{prefix}p"), record.prompt_tokens)
                    .hincr(&key, format!("{prefix}c"), record.completion_tokens)
                    .pexpire_at(
                        &key,
                        i64::try_from(period_start_ms + LEDGER_RETENTION_MS).unwrap_or(i64::MAX),
                    )
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await;
        match shared {
            Ok(()) => Ok(()),
            Err(_) => self.local.record_usage(period_start_ms, record).await,
        }
    }

    async fn usage(&self, period_start_ms: u64) -> Result<Vec<UsageRecord>, StoreError> {
        let key = ledger_key(period_start_ms);
        let fields: Vec<(String, u64)> = match self
            .redis
            .run(|mut connection| async move {
                redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async::<Vec<(String, u64)>>(&mut connection)
                    .await
            })
            .await
        {
            Ok(fields) => fields,
            Err(_) => return self.local.usage(period_start_ms).await,
        };
        let mut records: Vec<UsageRecord> = Vec::new();
        for (field, value) in fields {
            let mut parts = field.rsplitn(3, SEPARATOR);
            let (Some(kind), Some(model), Some(subscription)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let prompt = match kind {
                "p" => true,
                "c" => false,
                // Strings are open-ended; a field of another kind is not ours to count.
                _ => {
                    tracing::warn!("skipping a usage field of an unknown kind");
                    continue;
                }
            };
            let index = match records
                .iter()
                .position(|r| r.subscription == subscription && r.model == model)
            {
                Some(index) => index,
                None => {
                    records.push(UsageRecord {
                        subscription: subscription.to_owned(),
                        model: model.to_owned(),
                        prompt_tokens: 0,
                        completion_tokens: 0,
                    });
                    records.len() - 1
                }
            };
            if prompt {
                records[index].prompt_tokens += value;
            } else {
                records[index].completion_tokens += value;
            }
        }
        // Usage recorded locally while Redis was away is reported too.
        if let Ok(local) = self.local.usage(period_start_ms).await {
            for row in local {
                match records
                    .iter_mut()
                    .find(|r| r.subscription == row.subscription && r.model == row.model)
                {
                    Some(existing) => {
                        existing.prompt_tokens += row.prompt_tokens;
                        existing.completion_tokens += row.completion_tokens;
                    }
                    None => records.push(row),
                }
            }
        }
        Ok(records)
    }
}
