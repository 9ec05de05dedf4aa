//! The gateway's metrics, named after OpenTelemetry's GenAI conventions where one exists.
//!
//! Labels stay bounded: subscription names, model, api, operation, backend labels from
//! configuration. Never prompts or client addresses.

use std::{collections::HashMap, hash::Hash, sync::Arc, time::Duration};

use metrics::{Counter, Histogram};
use parking_lot::RwLock;
use text_analysis::FnvBuildHasher;

use crate::{
    context::{Api, CallContext, Operation},
    names::ModelLabels,
};

/// Metric handles per label set, registered on first use: counting then builds no metric key
/// (no label strings) and takes no registry lookup. Keys must be bounded label sets.
pub struct HandleMap<K, H> {
    handles: RwLock<HashMap<K, H, FnvBuildHasher>>,
}

impl<K, H> Default for HandleMap<K, H> {
    fn default() -> Self {
        Self {
            handles: RwLock::new(HashMap::default()),
        }
    }
}

impl<K: Hash + Eq, H> HandleMap<K, H> {
    /// Runs `record` on the handle for `key`, registered with `register` the first time.
    pub fn with<R>(
        &self,
        key: K,
        register: impl FnOnce(&K) -> H,
        record: impl FnOnce(&H) -> R,
    ) -> R {
        if let Some(handle) = self.handles.read().get(&key) {
            return record(handle);
        }
        let handle = register(&key);
        record(self.handles.write().entry(key).or_insert(handle))
    }
}

/// One series of the per-call metrics: the labels they share.
#[derive(PartialEq, Eq, Hash)]
struct CallSeries {
    subscription: Arc<str>,
    /// The bounded model label (see [`ModelLabels`]).
    model: Arc<str>,
    operation: Operation,
    provider: &'static str,
    api: Api,
    /// The outcome, the cache status or the token type, where the metric has one.
    outcome: &'static str,
}

/// The metrics every model call writes, with their handles kept per label set. One per gateway:
/// a handle belongs to the recorder of its time, and a test process runs gateways under
/// different ones.
pub struct CallMetrics {
    labels: ModelLabels,
    tokens: HandleMap<CallSeries, Histogram>,
    durations: HandleMap<CallSeries, Histogram>,
    cache: HandleMap<CallSeries, Counter>,
}

impl CallMetrics {
    pub fn new(labels: ModelLabels) -> Self {
        Self {
            labels,
            tokens: HandleMap::default(),
            durations: HandleMap::default(),
            cache: HandleMap::default(),
        }
    }

    /// `model`'s bounded label: itself if configured, else `other`.
    pub fn label<'a>(&'a self, model: &'a str) -> &'a str {
        self.labels.label(model)
    }

    fn series(
        &self,
        context: &CallContext,
        operation: Operation,
        provider: &'static str,
        model: &str,
        outcome: &'static str,
    ) -> CallSeries {
        CallSeries {
            subscription: context.subscription.clone(),
            model: self.labels.shared_label(model),
            operation,
            provider,
            api: context.api,
            outcome,
        }
    }

    /// Token counts per call, a histogram as in OTel (`gen_ai.client.token.usage`); its `_sum`
    /// is the chargeback figure. Embeddings have no output tokens.
    pub fn tokens(
        &self,
        context: &CallContext,
        operation: Operation,
        provider: &'static str,
        model: &str,
        input: u64,
        output: u64,
    ) {
        for (kind, count) in [("input", input), ("output", output)] {
            if operation == Operation::Embeddings && kind == "output" {
                continue;
            }
            let series = self.series(context, operation, provider, model, kind);
            self.tokens.with(
                series,
                |s| {
                    metrics::histogram!(
                        "gen_ai_client_token_usage",
                        "gen_ai_token_type" => s.outcome,
                        "gen_ai_request_model" => s.model.to_string(),
                        "gen_ai_operation_name" => s.operation.as_str(),
                        "gen_ai_provider_name" => s.provider,
                        "subscription" => s.subscription.to_string(),
                        "api" => s.api.as_str(),
                    )
                },
                |histogram| histogram.record(count as f64),
            );
        }
    }

    pub fn call_duration(
        &self,
        context: &CallContext,
        operation: Operation,
        provider: &'static str,
        model: &str,
        outcome: &'static str,
        elapsed: Duration,
    ) {
        let series = self.series(context, operation, provider, model, outcome);
        self.durations.with(
            series,
            |s| {
                metrics::histogram!(
                    "gen_ai_client_operation_duration_seconds",
                    "gen_ai_request_model" => s.model.to_string(),
                    "gen_ai_operation_name" => s.operation.as_str(),
                    "gen_ai_provider_name" => s.provider,
                    "subscription" => s.subscription.to_string(),
                    "api" => s.api.as_str(),
                    "outcome" => s.outcome,
                )
            },
            |histogram| histogram.record(elapsed.as_secs_f64()),
        );
    }

    pub fn cache_status(&self, context: &CallContext, operation: Operation, status: &'static str) {
        // The cache counter has no model label: every status shares the placeholder `other`.
        let series = CallSeries {
            subscription: context.subscription.clone(),
            model: self.labels.shared_label(""),
            operation,
            provider: "",
            api: context.api,
            outcome: status,
        };
        self.cache.with(
            series,
            |s| {
                metrics::counter!(
                    "gateway_cache_requests_total",
                    "status" => s.outcome,
                    "subscription" => s.subscription.to_string(),
                    "gen_ai_operation_name" => s.operation.as_str(),
                )
            },
            |counter| counter.increment(1),
        );
    }
}

pub fn budget_refused(context: &CallContext, limit: &'static str) {
    metrics::counter!(
        "gateway_budget_refusals_total",
        "subscription" => context.subscription.to_string(),
        "limit" => limit,
    )
    .increment(1);
}

pub fn upstream_error(backend: &str, status: &'static str) {
    metrics::counter!("gateway_upstream_errors_total", "backend" => backend.to_owned(), "status" => status)
        .increment(1);
}

pub fn retry(backend: &str) {
    metrics::counter!("gateway_upstream_retries_total", "backend" => backend.to_owned())
        .increment(1);
}

pub fn failover(from_backend: &str) {
    metrics::counter!("gateway_upstream_failovers_total", "backend" => from_backend.to_owned())
        .increment(1);
}

/// 0 closed, 1 half-open, 2 open.
pub fn circuit_state(backend: &str, state: u8) {
    metrics::gauge!("gateway_circuit_state", "backend" => backend.to_owned()).set(f64::from(state));
}

/// One model judgement of a cache candidate (`same`, `different`, `error`, `unaffordable`) and
/// the tokens it cost.
pub fn cache_judgement(verdict: &'static str, tokens: u64) {
    metrics::counter!("gateway_cache_judgements_total", "verdict" => verdict).increment(1);
    metrics::counter!("gateway_cache_judge_tokens_total").increment(tokens);
}

/// A prompt or answer refused by content safety; `category` is one of a bounded set.
pub fn content_blocked(context: &CallContext, direction: &'static str, category: &str) {
    metrics::counter!(
        "gateway_content_blocked_total",
        "direction" => direction,
        "category" => category.to_owned(),
        "subscription" => context.subscription.to_string(),
    )
    .increment(1);
}
