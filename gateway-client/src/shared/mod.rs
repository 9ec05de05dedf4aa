//! State shared by several tollgate instances through Redis: budgets, the usage ledger and the
//! semantic cache.
//!
//! - [`RedisState`]: the connection and its health. Every operation has a short deadline; two
//!   failures in a row mark Redis unhealthy, and a background probe marks it healthy again, so
//!   while Redis is down no request waits on it at all.
//! - [`RedisStore`]: budgets and usage, one atomic Lua script per operation, with local
//!   counting as the fallback while Redis is away.
//! - [`SharedCache`]: the semantic cache's entries in Redis, so an exact repeat hits on any
//!   instance at once and similar prompts within a second.
//! - [`RedisStatsBoard`]: each instance's dashboard figures, under a short-lived key.

mod cache;
mod stats;
mod store;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use cache::SharedCache;
pub use stats::{FIGURES_TTL, PUBLISH_EVERY, RedisStatsBoard};
pub use store::RedisStore;

use crate::store::StoreError;

/// How long one Redis operation may take before the call goes on without it.
pub const OPERATION_TIMEOUT: Duration = Duration::from_millis(250);
/// How long the health probe waits for a PING: longer than an operation, so a busy moment
/// doesn't read as an outage.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Consecutive failures (operations or probes) that mark Redis unavailable. One slow answer
/// under load is not an outage; a dead Redis fails twice within milliseconds.
const FAILURES_TO_DEGRADE: u32 = 2;

/// A Redis connection with a health flag.
pub struct RedisState {
    client: redis::Client,
    connection: ConnectionManager,
    healthy: AtomicBool,
    consecutive_failures: AtomicU32,
    reason: Mutex<Option<String>>,
}

impl RedisState {
    /// Connects lazily: a Redis that is down at start makes the instance start degraded, not
    /// fail.
    pub fn connect(url: &str) -> Result<Arc<Self>, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid REDIS_URL: {e}")))?;
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager_config())
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let state = Arc::new(Self {
            client,
            connection,
            healthy: AtomicBool::new(true),
            consecutive_failures: AtomicU32::new(0),
            reason: Mutex::new(None),
        });
        Ok(state)
    }

    /// Starts the probe that notices Redis coming back (or going away while idle).
    pub fn spawn_health_probe(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let state = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(state) = state.upgrade() else { return };
                let mut connection = state.connection.clone();
                let ping = tokio::time::timeout(
                    PROBE_TIMEOUT,
                    redis::cmd("PING").query_async::<String>(&mut connection),
                )
                .await;
                match ping {
                    Ok(Ok(_)) => state.record_success(),
                    Ok(Err(error)) => state.record_failure(&error.to_string()),
                    Err(_) => state.record_failure("Redis did not answer a ping in time"),
                }
            }
        })
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Why Redis is not in use, when it isn't.
    pub fn degraded_reason(&self) -> Option<String> {
        if self.is_healthy() {
            None
        } else {
            self.reason.lock().clone()
        }
    }

    fn record_success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if !self.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!("Redis is back: shared state restored");
            *self.reason.lock() = None;
        }
    }

    fn record_failure(&self, reason: &str) {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < FAILURES_TO_DEGRADE {
            return;
        }
        *self.reason.lock() = Some(format!("redis unavailable: {reason}"));
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(%reason, "Redis unavailable: budgets fall back to local counting and the cache is bypassed");
        }
    }

    /// Runs one operation with the deadline, recording the outcome in the health flag.
    /// While unhealthy it fails at once, so nothing waits on a dead Redis.
    pub async fn run<T, F, Fut>(&self, operation: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_healthy() {
            return Err(StoreError::Unavailable(
                self.degraded_reason().unwrap_or_default(),
            ));
        }
        match tokio::time::timeout(OPERATION_TIMEOUT, operation(self.connection.clone())).await {
            Ok(Ok(value)) => {
                self.consecutive_failures.store(0, Ordering::Relaxed);
                Ok(value)
            }
            Ok(Err(error)) => {
                self.record_failure(&error.to_string());
                Err(StoreError::Unavailable(error.to_string()))
            }
            Err(_) => {
                self.record_failure("operation timed out");
                Err(StoreError::Unavailable(
                    "Redis operation timed out".to_owned(),
                ))
            }
        }
    }

    /// A second, dedicated connection for blocking reads (a blocking read would hold up every
    /// other command on the shared multiplexed connection).
    pub fn dedicated_connection(&self) -> Result<ConnectionManager, StoreError> {
        ConnectionManager::new_lazy_with_config(self.client.clone(), manager_config())
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(OPERATION_TIMEOUT))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
}
