//! What this instance did, minute by minute, for the last hour: the figures behind
//! `GET /admin/stats` and the dashboard.
//!
//! - [`ring`]: the fixed-size per-minute counters (one atomic word a minute, no locks).
//! - [`Stats`]: this instance's counters. The gateway records its events (cache, tokens,
//!   budget, quota and content refusals, upstream calls); the HTTP layer records its own (auth
//!   and MCP rate-limit refusals, MCP calls by tool, agent turns). Labels are bounded: at most
//!   [`SUBSCRIPTIONS`], [`BACKENDS`] and [`TOOLS`] of each, the rest under `other`.
//! - [`StatsSnapshot`]: the counters read out (and published to Redis), merged across
//!   instances by [`StatsSnapshot::merge`].
//! - [`report`]: the merged snapshot as `/admin/stats` answers it.

pub mod report;
pub mod ring;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{cache::CacheStatus, clock::Clock, error::GatewayError, store::StoreError};
use ring::{Labelled, LatencyRing, MINUTES, MinuteRing, minutes_ending};

pub use report::{BreakerState, InstanceSeen, InstanceStats, ReportInputs, StatsReport};

/// Subscriptions counted by name (more fold into `other`).
pub const SUBSCRIPTIONS: usize = 64;
/// Backends counted by label.
pub const BACKENDS: usize = 16;
/// MCP tools counted by name.
pub const TOOLS: usize = 16;

const MINUTE_MS: u64 = 60_000;

/// Where instances publish their figures and read each other's: Redis
/// ([`crate::shared::RedisStatsBoard`]) when they share state.
#[async_trait]
pub trait StatsBoard: Send + Sync {
    /// Publishes this instance's figures; they expire unless published again.
    async fn publish(&self, figures: &InstanceStats) -> Result<(), StoreError>;
    /// The figures of every instance that published lately, this one included.
    async fn read(&self, now_ms: u64) -> Result<Vec<InstanceStats>, StoreError>;
}

/// Why a call was refused, as the dashboard groups refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The per-minute token budget (or a call larger than it).
    Budget,
    /// The longer token quota.
    Quota,
    /// An MCP rate limit.
    RateLimit,
    /// Content safety.
    Content,
    /// A missing or unknown key.
    Auth,
}

impl Refusal {
    /// The refusal a gateway error stands for, if it is one.
    pub fn of(error: &GatewayError) -> Option<Self> {
        match error {
            GatewayError::ExceedsBudget { .. } | GatewayError::BudgetExceeded { .. } => {
                Some(Self::Budget)
            }
            GatewayError::QuotaExhausted { .. } => Some(Self::Quota),
            GatewayError::ContentBlocked { .. } => Some(Self::Content),
            GatewayError::NotConfigured
            | GatewayError::InvalidRequest(_)
            | GatewayError::InvalidModel(_)
            | GatewayError::UnsupportedParameter { .. }
            | GatewayError::UpstreamRejected { .. }
            | GatewayError::UpstreamAuth { .. }
            | GatewayError::CredentialUnavailable { .. }
            | GatewayError::UpstreamRateLimited { .. }
            | GatewayError::UpstreamFailed { .. }
            | GatewayError::CompletionLimitExceeded { .. }
            | GatewayError::Timeout { .. }
            | GatewayError::Store(_)
            | GatewayError::Embed(_)
            | GatewayError::Startup(_) => None,
        }
    }
}

#[derive(Default)]
struct TokenRings {
    input: MinuteRing,
    output: MinuteRing,
}

#[derive(Default)]
struct BackendRings {
    calls: MinuteRing,
    errors: MinuteRing,
    latency: LatencyRing,
}

#[derive(Default)]
struct Refusals {
    budget: MinuteRing,
    quota: MinuteRing,
    rate_limit: MinuteRing,
    content: MinuteRing,
    auth: MinuteRing,
}

/// This instance's per-minute counters. Cheap to record into from any thread.
pub struct Stats {
    clock: Clock,
    hits: MinuteRing,
    misses: MinuteRing,
    bypasses: MinuteRing,
    tokens_saved: MinuteRing,
    tokens: Labelled<TokenRings>,
    refusals: Refusals,
    backends: Labelled<BackendRings>,
    tools: Labelled<MinuteRing>,
    mcp_rate_limited: MinuteRing,
    agent_turns: MinuteRing,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats").finish_non_exhaustive()
    }
}

impl Stats {
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            hits: MinuteRing::default(),
            misses: MinuteRing::default(),
            bypasses: MinuteRing::default(),
            tokens_saved: MinuteRing::default(),
            tokens: Labelled::new(SUBSCRIPTIONS),
            refusals: Refusals::default(),
            backends: Labelled::new(BACKENDS),
            tools: Labelled::new(TOOLS),
            mcp_rate_limited: MinuteRing::default(),
            agent_turns: MinuteRing::default(),
        }
    }

    /// The current minute, in minutes since the Unix epoch.
    pub fn minute(&self) -> u64 {
        self.clock.now_ms() / MINUTE_MS
    }

    /// One cache lookup; a hit saved the tokens its answer had cost.
    pub fn cache(&self, status: CacheStatus, tokens_saved: u64) {
        let minute = self.minute();
        match status {
            CacheStatus::Hit => {
                self.hits.add(minute, 1);
                self.tokens_saved.add(minute, tokens_saved);
            }
            CacheStatus::Miss => self.misses.add(minute, 1),
            CacheStatus::Bypass => self.bypasses.add(minute, 1),
        }
    }

    /// Tokens one settled call used, by subscription.
    pub fn tokens(&self, subscription: &str, input: u64, output: u64) {
        let minute = self.minute();
        let rings = self.tokens.get(subscription);
        rings.input.add(minute, input);
        rings.output.add(minute, output);
    }

    pub fn refused(&self, reason: Refusal) {
        let ring = match reason {
            Refusal::Budget => &self.refusals.budget,
            Refusal::Quota => &self.refusals.quota,
            Refusal::RateLimit => &self.refusals.rate_limit,
            Refusal::Content => &self.refusals.content,
            Refusal::Auth => &self.refusals.auth,
        };
        ring.add(self.minute(), 1);
    }

    /// Counts `error` if it is a refusal.
    pub fn refused_by(&self, error: &GatewayError) {
        if let Some(reason) = Refusal::of(error) {
            self.refused(reason);
        }
    }

    /// One attempt on one backend, how long it took, and whether it failed.
    pub fn upstream(&self, backend: &str, elapsed: Duration, failed: bool) {
        let minute = self.minute();
        let rings = self.backends.get(backend);
        rings.calls.add(minute, 1);
        if failed {
            rings.errors.add(minute, 1);
        }
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        rings.latency.record(minute, ms);
    }

    /// One MCP tool call answered (whatever its outcome).
    pub fn mcp_call(&self, tool: &str) {
        self.tools.get(tool).add(self.minute(), 1);
    }

    /// One MCP call refused by a rate limit (also counted as a refusal).
    pub fn mcp_rate_limited(&self) {
        self.mcp_rate_limited.add(self.minute(), 1);
        self.refused(Refusal::RateLimit);
    }

    pub fn agent_turn(&self) {
        self.agent_turns.add(self.minute(), 1);
    }

    /// Every series as it stands, ending with the current minute.
    pub fn snapshot(&self) -> StatsSnapshot {
        let now = self.minute();
        let any = |ring: &MinuteRing| ring.series(now).iter().any(|n| *n > 0);
        StatsSnapshot {
            end_minute: now,
            cache: CacheSeries {
                hits: self.hits.series(now),
                misses: self.misses.series(now),
                bypasses: self.bypasses.series(now),
                tokens_saved: self.tokens_saved.series(now),
            },
            tokens: self
                .tokens
                .entries(|t| any(&t.input) || any(&t.output))
                .into_iter()
                .map(|(name, rings)| TokenSeries {
                    subscription: name.to_owned(),
                    input: rings.input.series(now),
                    output: rings.output.series(now),
                })
                .collect(),
            refusals: RefusalSeries {
                budget: self.refusals.budget.series(now),
                quota: self.refusals.quota.series(now),
                rate_limit: self.refusals.rate_limit.series(now),
                content: self.refusals.content.series(now),
                auth: self.refusals.auth.series(now),
            },
            backends: self
                .backends
                .entries(|b| any(&b.calls))
                .into_iter()
                .map(|(name, rings)| BackendSeries {
                    backend: name.to_owned(),
                    calls: rings.calls.series(now),
                    errors: rings.errors.series(now),
                    latency_buckets: rings.latency.series(now),
                })
                .collect(),
            tools: self
                .tools
                .entries(any)
                .into_iter()
                .map(|(name, ring)| ToolSeries {
                    tool: name.to_owned(),
                    calls: ring.series(now),
                })
                .collect(),
            mcp_rate_limited: self.mcp_rate_limited.series(now),
            agent_turns: self.agent_turns.series(now),
        }
    }
}

/// Every series of one instance (or several, merged), each [`MINUTES`] long, oldest first,
/// ending with `end_minute` (minutes since the Unix epoch).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub end_minute: u64,
    pub cache: CacheSeries,
    pub tokens: Vec<TokenSeries>,
    pub refusals: RefusalSeries,
    pub backends: Vec<BackendSeries>,
    pub tools: Vec<ToolSeries>,
    pub mcp_rate_limited: Vec<u64>,
    pub agent_turns: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheSeries {
    pub hits: Vec<u64>,
    pub misses: Vec<u64>,
    pub bypasses: Vec<u64>,
    pub tokens_saved: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenSeries {
    pub subscription: String,
    pub input: Vec<u64>,
    pub output: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefusalSeries {
    pub budget: Vec<u64>,
    pub quota: Vec<u64>,
    pub rate_limit: Vec<u64>,
    pub content: Vec<u64>,
    pub auth: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendSeries {
    pub backend: String,
    pub calls: Vec<u64>,
    pub errors: Vec<u64>,
    /// Per latency bucket ([`ring::LATENCY_BOUNDS_MS`]), the calls per minute.
    pub latency_buckets: Vec<Vec<u64>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolSeries {
    pub tool: String,
    pub calls: Vec<u64>,
}

impl StatsSnapshot {
    /// An empty snapshot ending at `end_minute`, to merge others into.
    pub fn empty(end_minute: u64) -> Self {
        let zeros = || vec![0; MINUTES];
        Self {
            end_minute,
            cache: CacheSeries {
                hits: zeros(),
                misses: zeros(),
                bypasses: zeros(),
                tokens_saved: zeros(),
            },
            tokens: Vec::new(),
            refusals: RefusalSeries {
                budget: zeros(),
                quota: zeros(),
                rate_limit: zeros(),
                content: zeros(),
                auth: zeros(),
            },
            backends: Vec::new(),
            tools: Vec::new(),
            mcp_rate_limited: zeros(),
            agent_turns: zeros(),
        }
    }

    /// Adds `other` (another instance's, perhaps read a minute earlier or later) into this
    /// one, minute by minute; minutes outside this snapshot's hour are dropped.
    pub fn merge(&mut self, other: &Self) {
        let shift = Shift {
            to: self.end_minute,
            from: other.end_minute,
        };
        shift.add(&mut self.cache.hits, &other.cache.hits);
        shift.add(&mut self.cache.misses, &other.cache.misses);
        shift.add(&mut self.cache.bypasses, &other.cache.bypasses);
        shift.add(&mut self.cache.tokens_saved, &other.cache.tokens_saved);
        for series in &other.tokens {
            let into = find_or_add(
                &mut self.tokens,
                |t| t.subscription == series.subscription,
                || TokenSeries {
                    subscription: series.subscription.clone(),
                    input: vec![0; MINUTES],
                    output: vec![0; MINUTES],
                },
            );
            shift.add(&mut into.input, &series.input);
            shift.add(&mut into.output, &series.output);
        }
        let (to, from) = (&mut self.refusals, &other.refusals);
        shift.add(&mut to.budget, &from.budget);
        shift.add(&mut to.quota, &from.quota);
        shift.add(&mut to.rate_limit, &from.rate_limit);
        shift.add(&mut to.content, &from.content);
        shift.add(&mut to.auth, &from.auth);
        for series in &other.backends {
            let into = find_or_add(
                &mut self.backends,
                |b| b.backend == series.backend,
                || BackendSeries {
                    backend: series.backend.clone(),
                    calls: vec![0; MINUTES],
                    errors: vec![0; MINUTES],
                    latency_buckets: vec![vec![0; MINUTES]; ring::LATENCY_BUCKETS],
                },
            );
            shift.add(&mut into.calls, &series.calls);
            shift.add(&mut into.errors, &series.errors);
            for (to, from) in into.latency_buckets.iter_mut().zip(&series.latency_buckets) {
                shift.add(to, from);
            }
        }
        for series in &other.tools {
            let into = find_or_add(
                &mut self.tools,
                |t| t.tool == series.tool,
                || ToolSeries {
                    tool: series.tool.clone(),
                    calls: vec![0; MINUTES],
                },
            );
            shift.add(&mut into.calls, &series.calls);
        }
        shift.add(&mut self.mcp_rate_limited, &other.mcp_rate_limited);
        shift.add(&mut self.agent_turns, &other.agent_turns);
    }
}

fn find_or_add<T>(items: &mut Vec<T>, is: impl Fn(&T) -> bool, new: impl FnOnce() -> T) -> &mut T {
    let index = match items.iter().position(is) {
        Some(index) => index,
        None => {
            items.push(new());
            items.len() - 1
        }
    };
    &mut items[index]
}

/// Adds a series ending at minute `from` into one ending at minute `to`.
struct Shift {
    to: u64,
    from: u64,
}

impl Shift {
    fn add(&self, to: &mut [u64], from: &[u64]) {
        let to_first = self.to.saturating_sub(MINUTES as u64 - 1);
        for (minute, value) in minutes_ending(self.from).zip(from) {
            let index = minute
                .checked_sub(to_first)
                .filter(|_| minute <= self.to)
                .and_then(|offset| usize::try_from(offset).ok());
            if let Some(slot) = index.and_then(|i| to.get_mut(i)) {
                *slot += value;
            }
        }
    }
}

#[cfg(test)]
mod tests;
