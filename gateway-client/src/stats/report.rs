//! `GET /admin/stats`: the merged series with their totals, and the current state (breakers,
//! budgets this minute, the quota period's usage and cost), ready for the dashboard to draw.

use serde::{Deserialize, Serialize};

use super::{
    BackendSeries, CacheSeries, MINUTE_MS, RefusalSeries, StatsSnapshot, ToolSeries,
    ring::{LATENCY_BUCKETS, MINUTES, quantile_ms},
};
use crate::{period::rfc3339, usage::UsageReport};

/// One instance's figures as published: who, when, its series and its breakers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStats {
    pub instance_id: String,
    /// Unix milliseconds.
    pub seen_ms: u64,
    pub snapshot: StatsSnapshot,
    pub breakers: Vec<BreakerState>,
}

/// One backend's circuit breaker on one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerState {
    pub backend: String,
    /// `closed`, `half_open` or `open`.
    pub state: String,
}

/// An instance reporting, and when it last did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceSeen {
    pub instance_id: String,
    pub last_seen: String,
    pub seconds_ago: u64,
    pub breakers: Vec<BreakerState>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsReport {
    pub generated_at: String,
    /// This instance, the one that answered.
    pub instance_id: String,
    /// `memory` (this instance alone) or `redis` (every live instance, merged).
    pub source: &'static str,
    pub instances: Vec<InstanceSeen>,
    pub minutes: usize,
    /// When each minute of the series starts (RFC 3339), oldest first.
    pub minute_starts: Vec<String>,
    pub cache: CacheReport,
    pub tokens: Vec<TokenReport>,
    pub budget: BudgetReport,
    pub quota: UsageReport,
    pub refusals: RefusalReport,
    pub backends: Vec<BackendReport>,
    pub mcp: McpReport,
    pub agent_turns: Vec<u64>,
    pub agent_turns_total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheReport {
    #[serde(flatten)]
    pub series: CacheSeries,
    pub total_hits: u64,
    pub total_misses: u64,
    pub total_bypasses: u64,
    pub total_tokens_saved: u64,
    /// Hits over hits and misses (bypasses were never eligible); `null` before any lookup.
    pub hit_ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenReport {
    pub subscription: String,
    pub input: Vec<u64>,
    pub output: Vec<u64>,
    pub total_input: u64,
    pub total_output: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetReport {
    pub tokens_per_minute: u64,
    /// Per subscription, the tokens settled this minute (every instance) and what is left.
    pub subscriptions: Vec<BudgetUse>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetUse {
    pub subscription: String,
    pub used: u64,
    pub remaining: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefusalReport {
    #[serde(flatten)]
    pub series: RefusalSeries,
    pub totals: RefusalTotals,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefusalTotals {
    pub budget: u64,
    pub quota: u64,
    pub rate_limit: u64,
    pub content: u64,
    pub auth: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendReport {
    pub backend: String,
    pub calls: Vec<u64>,
    pub errors: Vec<u64>,
    /// Per minute, `null` without calls.
    pub p50_ms: Vec<Option<u64>>,
    pub p95_ms: Vec<Option<u64>>,
    pub total_calls: u64,
    pub total_errors: u64,
    /// Over the hour.
    pub p50_ms_hour: Option<u64>,
    pub p95_ms_hour: Option<u64>,
    /// The worst state among the instances: `open`, `half_open`, `closed`.
    pub breaker: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McpReport {
    pub tools: Vec<ToolReport>,
    pub rate_limited: Vec<u64>,
    pub total_rate_limited: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolReport {
    pub tool: String,
    pub calls: Vec<u64>,
    pub total: u64,
}

/// What the report is built from besides the instances' figures.
pub struct ReportInputs {
    pub now_ms: u64,
    pub instance_id: String,
    pub source: &'static str,
    pub tokens_per_minute: u64,
    pub quota: UsageReport,
}

impl StatsReport {
    /// Merges `instances` (the answering one among them) into one report.
    pub fn build(inputs: ReportInputs, instances: &[InstanceStats]) -> Self {
        let end_minute = inputs.now_ms / MINUTE_MS;
        let mut merged = StatsSnapshot::empty(end_minute);
        for instance in instances {
            merged.merge(&instance.snapshot);
        }
        // A backend with no calls this hour still shows, with its breaker.
        for breaker in instances.iter().flat_map(|i| &i.breakers) {
            if !merged.backends.iter().any(|b| b.backend == breaker.backend) {
                merged.backends.push(BackendSeries {
                    backend: breaker.backend.clone(),
                    calls: vec![0; MINUTES],
                    errors: vec![0; MINUTES],
                    latency_buckets: vec![vec![0; MINUTES]; LATENCY_BUCKETS],
                });
            }
        }
        let minute_starts = super::ring::minutes_ending(end_minute)
            .map(|m| rfc3339(m * MINUTE_MS))
            .collect();
        let backends = merged
            .backends
            .iter()
            .map(|series| backend_report(series, instances))
            .collect();
        let budget = budget_report(&merged, inputs.tokens_per_minute);
        let tokens = token_reports(&merged);
        Self {
            generated_at: rfc3339(inputs.now_ms),
            instance_id: inputs.instance_id,
            source: inputs.source,
            instances: seen(instances, inputs.now_ms),
            minutes: MINUTES,
            minute_starts,
            cache: cache_report(merged.cache),
            budget,
            tokens,
            quota: inputs.quota,
            refusals: refusal_report(merged.refusals),
            backends,
            mcp: McpReport {
                tools: merged.tools.iter().map(tool_report).collect(),
                total_rate_limited: merged.mcp_rate_limited.iter().sum(),
                rate_limited: merged.mcp_rate_limited,
            },
            agent_turns_total: merged.agent_turns.iter().sum(),
            agent_turns: merged.agent_turns,
        }
    }
}

fn seen(instances: &[InstanceStats], now_ms: u64) -> Vec<InstanceSeen> {
    let mut seen: Vec<InstanceSeen> = instances
        .iter()
        .map(|i| InstanceSeen {
            instance_id: i.instance_id.clone(),
            last_seen: rfc3339(i.seen_ms),
            seconds_ago: now_ms.saturating_sub(i.seen_ms) / 1_000,
            breakers: i.breakers.clone(),
        })
        .collect();
    seen.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    seen
}

fn cache_report(series: CacheSeries) -> CacheReport {
    let total_hits: u64 = series.hits.iter().sum();
    let total_misses: u64 = series.misses.iter().sum();
    let looked_up = total_hits + total_misses;
    CacheReport {
        total_hits,
        total_misses,
        total_bypasses: series.bypasses.iter().sum(),
        total_tokens_saved: series.tokens_saved.iter().sum(),
        hit_ratio: (looked_up > 0).then(|| total_hits as f64 / looked_up as f64),
        series,
    }
}

fn token_reports(merged: &StatsSnapshot) -> Vec<TokenReport> {
    let mut reports: Vec<TokenReport> = merged
        .tokens
        .iter()
        .map(|t| TokenReport {
            subscription: t.subscription.clone(),
            total_input: t.input.iter().sum(),
            total_output: t.output.iter().sum(),
            input: t.input.clone(),
            output: t.output.clone(),
        })
        .collect();
    reports.sort_by(|a, b| a.subscription.cmp(&b.subscription));
    reports
}

/// This minute's settled tokens per subscription against the per-minute budget. Reservations
/// still in flight are not counted: the budget itself counts them, these figures do not.
fn budget_report(merged: &StatsSnapshot, tokens_per_minute: u64) -> BudgetReport {
    let mut subscriptions: Vec<BudgetUse> = merged
        .tokens
        .iter()
        .map(|t| {
            let used = t.input.last().copied().unwrap_or(0) + t.output.last().copied().unwrap_or(0);
            BudgetUse {
                subscription: t.subscription.clone(),
                used,
                remaining: tokens_per_minute.saturating_sub(used),
            }
        })
        .collect();
    subscriptions.sort_by(|a, b| a.subscription.cmp(&b.subscription));
    BudgetReport {
        tokens_per_minute,
        subscriptions,
    }
}

fn refusal_report(series: RefusalSeries) -> RefusalReport {
    let sum = |s: &[u64]| s.iter().sum();
    RefusalReport {
        totals: RefusalTotals {
            budget: sum(&series.budget),
            quota: sum(&series.quota),
            rate_limit: sum(&series.rate_limit),
            content: sum(&series.content),
            auth: sum(&series.auth),
        },
        series,
    }
}

fn backend_report(series: &BackendSeries, instances: &[InstanceStats]) -> BackendReport {
    let minute_counts = |minute: usize| -> Vec<u64> {
        series
            .latency_buckets
            .iter()
            .map(|b| b.get(minute).copied().unwrap_or(0))
            .collect()
    };
    let hour: Vec<u64> = (0..LATENCY_BUCKETS)
        .map(|bucket| {
            series
                .latency_buckets
                .get(bucket)
                .map_or(0, |b| b.iter().sum())
        })
        .collect();
    BackendReport {
        backend: series.backend.clone(),
        calls: series.calls.clone(),
        errors: series.errors.clone(),
        p50_ms: (0..MINUTES)
            .map(|m| quantile_ms(&minute_counts(m), 0.5))
            .collect(),
        p95_ms: (0..MINUTES)
            .map(|m| quantile_ms(&minute_counts(m), 0.95))
            .collect(),
        total_calls: series.calls.iter().sum(),
        total_errors: series.errors.iter().sum(),
        p50_ms_hour: quantile_ms(&hour, 0.5),
        p95_ms_hour: quantile_ms(&hour, 0.95),
        breaker: worst_breaker(&series.backend, instances),
    }
}

fn worst_breaker(backend: &str, instances: &[InstanceStats]) -> String {
    let rank = |state: &str| match state {
        "open" => 2,
        "half_open" => 1,
        _ => 0,
    };
    instances
        .iter()
        .flat_map(|i| &i.breakers)
        .filter(|b| b.backend == backend)
        .map(|b| b.state.as_str())
        .max_by_key(|state| rank(state))
        .unwrap_or("closed")
        .to_owned()
}

fn tool_report(series: &ToolSeries) -> ToolReport {
    ToolReport {
        tool: series.tool.clone(),
        calls: series.calls.clone(),
        total: series.calls.iter().sum(),
    }
}
