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
use crate::{
    period::{MINUTE_MS, minute_window},
    store::{Admission, MemoryStore, ReserveRequest, StateStore, StoreError, Ticket, UsageRecord},
};

/// Minute windows live a little past their minute, so a late reconcile still finds them.
const WINDOW_TTL_MS: u64 = MINUTE_MS + 5_000;
/// Ledgers are kept this long after their period starts: a yearly period and a month more.
const LEDGER_RETENTION_MS: u64 = 400 * 24 * 3600 * 1000;

const RESERVE: &str = r"
local tokens = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local quota_limit = tonumber(ARGV[4])
if quota_limit >= 0 then
  local quota_used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if quota_used + tokens > quota_limit then return {2, 0} end
end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + tokens > limit then return {1, 0} end
used = redis.call('INCRBY', KEYS[1], tokens)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if quota_limit >= 0 then
  redis.call('INCRBY', KEYS[2], tokens)
  redis.call('PEXPIREAT', KEYS[2], ARGV[5])
end
return {0, limit - used}
";

/// KEYS: ticket window, current window, quota. ARGV: reserved, actual, same window (1/0),
/// window ttl, has quota (1/0).
const RECONCILE: &str = r"
local reserved = tonumber(ARGV[1])
local actual = tonumber(ARGV[2])
local function adjust(key, delta)
  if redis.call('EXISTS', key) == 0 then return end
  local value = tonumber(redis.call('GET', key)) + delta
  if value < 0 then value = 0 end
  redis.call('SET', key, value, 'KEEPTTL')
end
if ARGV[3] == '1' then
  adjust(KEYS[1], actual - reserved)
elseif actual > reserved then
  redis.call('INCRBY', KEYS[2], actual - reserved)
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
if ARGV[5] == '1' then adjust(KEYS[3], actual - reserved) end
return 1
";

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
        let window = minute_window(request.now_ms);
        let window_key = window_key(request.key, window);
        let quota_key = quota_key(request.key, request.quota.map(|q| q.start_ms));
        let (quota_limit, quota_end) = request.quota.map_or((-1i64, 0u64), |q| {
            (i64::try_from(q.limit).unwrap_or(i64::MAX), q.end_ms)
        });
        let script = &self.reserve;
        let (outcome, remaining): (i64, i64) = self
            .redis
            .run(|mut connection| async move {
                script
                    .key(&window_key)
                    .key(&quota_key)
                    .arg(request.tokens)
                    .arg(request.tokens_per_minute)
                    .arg(WINDOW_TTL_MS)
                    .arg(quota_limit)
                    .arg(quota_end)
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        Ok(match outcome {
            0 => Admission::Admitted(Ticket {
                key: request.key.to_owned(),
                window_ms: window,
                quota_start_ms: request.quota.map(|q| q.start_ms),
                reserved: request.tokens,
                remaining: u64::try_from(remaining).unwrap_or(0),
            }),
            1 => Admission::Throttled {
                retry_after_ms: window + MINUTE_MS - request.now_ms,
            },
            2 => Admission::QuotaExhausted {
                resets_in_ms: request
                    .quota
                    .map_or(0, |q| q.end_ms.saturating_sub(request.now_ms)),
            },
            other => {
                return Err(StoreError::Unavailable(format!(
                    "the budget script answered an unknown code {other}"
                )));
            }
        })
    }
}

fn window_key(key: &str, window_ms: u64) -> String {
    format!("tollgate:{{{key}}}:tpm:{window_ms}")
}

/// Without a quota, a key the scripts never touch but in the same slot as the window's: a
/// cluster refuses a script whose keys span slots.
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
        let current = minute_window(now_ms);
        let keys = [
            window_key(&ticket.key, ticket.window_ms),
            window_key(&ticket.key, current),
            quota_key(&ticket.key, ticket.quota_start_ms),
        ];
        let same_window = u8::from(current == ticket.window_ms);
        let has_quota = u8::from(ticket.quota_start_ms.is_some());
        let script = &self.reconcile;
        let shared = self
            .redis
            .run(|mut connection| async move {
                script
                    .key(&keys[0])
                    .key(&keys[1])
                    .key(&keys[2])
                    .arg(ticket.reserved)
                    .arg(actual)
                    .arg(same_window)
                    .arg(WINDOW_TTL_MS)
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
