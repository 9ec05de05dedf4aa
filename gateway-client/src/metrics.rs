//! The gateway's metrics, named after OpenTelemetry's GenAI conventions where one exists.
//!
//! Labels stay bounded: subscription names, model, api, operation, backend labels from
//! configuration. Never prompts or client addresses.

use std::{hash::Hash, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use hashbrown::{Equivalent, HashMap};
use metrics::{Counter, Histogram};
use parking_lot::Mutex;
use text_analysis::FnvBuildHasher;

use crate::{
    context::{Api, CallContext, Operation},
    names::ModelLabels,
};

/// Metric handles per label set, registered on first use: counting then builds no metric key
/// (no label strings) and takes no registry lookup. Keys must be bounded label sets.
///
/// Every call on every connection thread reads this, and a new label set is rare: a reader
/// takes no lock and writes no memory another thread reads (a lock word or a reference count
/// would move its cache line between cores on every call), and looks its series up by borrowed
/// labels. A new series copies the map.
pub struct HandleMap<K, H> {
    handles: ArcSwap<HashMap<K, H, FnvBuildHasher>>,
    registering: Mutex<()>,
}

impl<K, H> Default for HandleMap<K, H> {
    fn default() -> Self {
        Self {
            handles: ArcSwap::from_pointee(HashMap::default()),
            registering: Mutex::new(()),
        }
    }
}

impl<K: Hash + Eq + Clone, H: Clone> HandleMap<K, H> {
    /// Runs `record` on the handle for `key`, registered with `register` (which gives the
    /// owned key and the handle) the first time.
    pub fn with<Q, R>(
        &self,
        key: &Q,
        register: impl FnOnce(&Q) -> (K, H),
        record: impl FnOnce(&H) -> R,
    ) -> R
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        if let Some(handle) = self.handles.load().get(key) {
            return record(handle);
        }
        let _registering = self.registering.lock();
        let current = self.handles.load_full();
        if let Some(handle) = current.get(key) {
            return record(handle);
        }
        let (owned, handle) = register(key);
        let mut next = HashMap::clone(&current);
        next.insert(owned, handle.clone());
        self.handles.store(Arc::new(next));
        record(&handle)
    }
}

/// One series of the per-call metrics: the labels they share.
#[derive(Clone, PartialEq, Eq, Hash)]
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

/// A [`CallSeries`] by borrowed labels, to look one up without cloning them. Hashes as the
/// series it names: the same fields in the same order (`Arc<str>` hashes as its `str`).
#[derive(Hash)]
struct SeriesLabels<'a> {
    subscription: &'a str,
    model: &'a str,
    operation: Operation,
    provider: &'static str,
    api: Api,
    outcome: &'static str,
}

impl Equivalent<CallSeries> for SeriesLabels<'_> {
    fn equivalent(&self, series: &CallSeries) -> bool {
        self.subscription == &*series.subscription
            && self.model == &*series.model
            && self.operation == series.operation
            && self.provider == series.provider
            && self.api == series.api
            && self.outcome == series.outcome
    }
}

impl SeriesLabels<'_> {
    fn to_series(&self, labels: &ModelLabels) -> CallSeries {
        CallSeries {
            subscription: Arc::from(self.subscription),
            model: labels.shared_label(self.model),
            operation: self.operation,
            provider: self.provider,
            api: self.api,
            outcome: self.outcome,
        }
    }
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

    fn series<'a>(
        &'a self,
        context: &'a CallContext,
        operation: Operation,
        provider: &'static str,
        model: &'a str,
        outcome: &'static str,
    ) -> SeriesLabels<'a> {
        SeriesLabels {
            subscription: &context.subscription,
            model: self.labels.label(model),
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
                &series,
                |s| {
                    let histogram = metrics::histogram!(
                        "gen_ai_client_token_usage",
                        "gen_ai_token_type" => s.outcome,
                        "gen_ai_request_model" => s.model.to_string(),
                        "gen_ai_operation_name" => s.operation.as_str(),
                        "gen_ai_provider_name" => s.provider,
                        "subscription" => s.subscription.to_string(),
                        "api" => s.api.as_str(),
                    );
                    (s.to_series(&self.labels), histogram)
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
            &series,
            |s| {
                let histogram = metrics::histogram!(
                    "gen_ai_client_operation_duration_seconds",
                    "gen_ai_request_model" => s.model.to_string(),
                    "gen_ai_operation_name" => s.operation.as_str(),
                    "gen_ai_provider_name" => s.provider,
                    "subscription" => s.subscription.to_string(),
                    "api" => s.api.as_str(),
                    "outcome" => s.outcome,
                );
                (s.to_series(&self.labels), histogram)
            },
            |histogram| histogram.record(elapsed.as_secs_f64()),
        );
    }

    pub fn cache_status(&self, context: &CallContext, operation: Operation, status: &'static str) {
        // The cache counter has no model label: every status shares the placeholder `other`.
        let series = self.series(context, operation, "", "", status);
        self.cache.with(
            &series,
            |s| {
                let counter = metrics::counter!(
                    "gateway_cache_requests_total",
                    "status" => s.outcome,
                    "subscription" => s.subscription.to_string(),
                    "gen_ai_operation_name" => s.operation.as_str(),
                );
                (s.to_series(&self.labels), counter)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn series_handle(
        metrics: &CallMetrics,
        map: &HandleMap<CallSeries, u32>,
        registered: &AtomicU32,
        (subscription, model, outcome): (&str, &str, &'static str),
    ) -> u32 {
        let context = CallContext::for_subscription(subscription, Api::OpenAi);
        let labels = metrics.series(&context, Operation::Chat, "openai", model, outcome);
        let register = |labels: &SeriesLabels<'_>| {
            let handle = registered.fetch_add(1, Ordering::Relaxed);
            (labels.to_series(&metrics.labels), handle)
        };
        map.with(&labels, register, |handle| *handle)
    }

    #[test]
    fn a_series_is_found_by_its_borrowed_labels_and_registered_once() {
        let metrics = CallMetrics::new(ModelLabels::new(["gpt-4o-mini"]));
        let map = HandleMap::default();
        let registered = AtomicU32::new(0);
        let handle = |labels| series_handle(&metrics, &map, &registered, labels);
        let first = handle(("team-a", "gpt-4o-mini", "ok"));
        assert_eq!(handle(("team-a", "gpt-4o-mini", "ok")), first);
        // Each label tells series apart; models not configured share `other`.
        let others = [
            handle(("team-b", "gpt-4o-mini", "ok")),
            handle(("team-a", "unlisted-1", "ok")),
            handle(("team-a", "gpt-4o-mini", "error")),
        ];
        assert_eq!(handle(("team-a", "unlisted-2", "ok")), others[1]);
        assert_eq!(registered.load(Ordering::Relaxed), 4);
        assert!(!others.contains(&first));
    }

    #[test]
    fn threads_registering_one_series_at_once_share_one_handle() {
        let metrics = CallMetrics::new(ModelLabels::new(["m"]));
        let map = HandleMap::default();
        let registered = AtomicU32::new(0);
        let handles: Vec<u32> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..200)
                            .map(|_| series_handle(&metrics, &map, &registered, ("t", "m", "ok")))
                            .max()
                            .unwrap()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(registered.load(Ordering::Relaxed), 1);
        assert!(handles.iter().all(|h| *h == 0), "{handles:?}");
    }
}
