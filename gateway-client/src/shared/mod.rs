//! State shared by several tollgate instances through Redis: budgets, the usage ledger and the
//! semantic cache.
//!
//! - [`RedisState`]: the connection and its health. Every operation has a short deadline; two
//!   failures in a row mark Redis unhealthy, and a background probe marks it healthy again, so
//!   while Redis is down no request waits on it at all. It counts the round trips calls make.
//! - [`connection`]: how Redis is reached: one server or a cluster, TLS with extra roots,
//!   credentials, the failure mode.
//! - [`credentials`]: credentials renewed while connections live (Entra ID tokens).
//! - [`RedisStore`]: budgets and usage, one atomic Lua script per operation, with local
//!   counting as the fallback while Redis is away (or refusal, in closed failure mode).
//! - [`SharedCache`]: the semantic cache's entries in Redis, so an exact repeat hits on any
//!   instance at once and similar prompts within a second.
//! - [`RedisStatsBoard`]: each instance's dashboard figures, under a short-lived key.
//!
//! Every multi-key operation keeps its keys in one cluster slot (`{hash tags}`), so the same
//! code serves one Redis and a Redis Cluster.

mod cache;
pub mod connection;
pub mod credentials;
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

pub use cache::SharedCache;
pub use connection::{CaRoots, FailureMode, RedisConnection, RedisOptions, RoundTrips};
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
    options: RedisOptions,
    /// What calls use; its round trips are what a call costs.
    connection: RedisConnection,
    /// The same connection, for the health probe (its round trips are background work).
    probe: RedisConnection,
    background: Arc<RoundTrips>,
    healthy: AtomicBool,
    consecutive_failures: AtomicU32,
    reason: Mutex<Option<String>>,
}

impl RedisState {
    /// One Redis at `url`, with the defaults (see [`Self::connect_with`]).
    pub fn connect(url: &str) -> Result<Arc<Self>, StoreError> {
        Self::connect_with(RedisOptions::single(url))
    }

    /// Connects lazily: a Redis that is down at start makes the instance start degraded, not
    /// fail.
    pub fn connect_with(options: RedisOptions) -> Result<Arc<Self>, StoreError> {
        let connection = connection::open(&options, RoundTrips::new("calls"))?;
        let background = RoundTrips::new("background");
        let probe = connection.counting_into(background.clone());
        let state = Arc::new(Self {
            options,
            connection,
            probe,
            background,
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
                let mut connection = state.probe.clone();
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

    pub fn failure_mode(&self) -> FailureMode {
        self.options.failure_mode
    }

    /// Requests calls have sent to Redis so far (each command, script or pipeline is one).
    pub fn round_trips(&self) -> u64 {
        self.connection.round_trips()
    }

    /// Requests sent by background work: the health probe and the cache's stream follower.
    pub fn background_round_trips(&self) -> u64 {
        self.background.get()
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
        F: FnOnce(RedisConnection) -> Fut,
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
    /// other command on the shared multiplexed connection); its round trips are background work.
    pub fn dedicated_connection(&self) -> Result<RedisConnection, StoreError> {
        connection::open(&self.options, self.background.clone())
    }
}
