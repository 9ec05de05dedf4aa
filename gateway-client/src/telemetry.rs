//! What model calls tell telemetry: the facts an access log reports ([`CallRecord`]), and the
//! W3C trace context they carry on (to the model API, to MCP servers).
//!
//! Spans follow OpenTelemetry's GenAI conventions and are `tracing` spans with the target
//! `otel`: the server's subscriber turns them into OpenTelemetry spans when export is on, and
//! filters the target out when it is off, so then a span costs one disabled-callsite check.
//! Nothing here reads prompt or answer text.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use parking_lot::Mutex;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use serde_json::{Map, Value};
use tracing::Span;

use crate::{
    cache::CacheStatus,
    context::{CallContext, Operation},
    usage::Usage,
};

/// The W3C trace-context keys, as HTTP headers and as MCP `_meta` keys (SEP-414).
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// What one HTTP request's model calls came to, for its access-log line. Shared by the
/// request's handler and the gateway (a stream settles in a task of its own).
#[derive(Debug, Default)]
pub struct CallRecord {
    facts: Mutex<CallFacts>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallFacts {
    pub subscription: Option<Arc<str>>,
    /// The model of the last call (the upstream's own name when it gave one).
    pub model: Option<String>,
    pub cache_hits: u32,
    pub cache_misses: u32,
    pub cache_bypasses: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The backend that answered last.
    pub backend: Option<Arc<str>>,
    /// Requests sent to model APIs, retries and failovers included.
    pub attempts: u32,
    /// The agent session the request continued or started (an id, never its content).
    pub session_id: Option<String>,
}

impl CallFacts {
    /// One word for the request's cache outcome: `hit`, `miss`, `bypass`, `mixed` (several
    /// calls that differed), or none when no model call was made.
    pub fn cache_status(&self) -> Option<&'static str> {
        match (self.cache_hits, self.cache_misses, self.cache_bypasses) {
            (0, 0, 0) => None,
            (_, 0, 0) => Some("hit"),
            (0, _, 0) => Some("miss"),
            (0, 0, _) => Some("bypass"),
            _ => Some("mixed"),
        }
    }
}

impl CallRecord {
    pub fn snapshot(&self) -> CallFacts {
        self.facts.lock().clone()
    }

    pub fn set_subscription(&self, name: Arc<str>) {
        self.facts.lock().subscription = Some(name);
    }

    pub fn set_session(&self, id: &str) {
        self.facts.lock().session_id = Some(id.to_owned());
    }

    pub(crate) fn cache(&self, status: CacheStatus) {
        let mut facts = self.facts.lock();
        match status {
            CacheStatus::Hit => facts.cache_hits += 1,
            CacheStatus::Miss => facts.cache_misses += 1,
            CacheStatus::Bypass => facts.cache_bypasses += 1,
        }
    }

    pub(crate) fn usage(&self, model: &str, input: u64, output: u64) {
        let mut facts = self.facts.lock();
        facts.input_tokens += input;
        facts.output_tokens += output;
        if facts.model.as_deref() != Some(model) {
            facts.model = Some(model.to_owned());
        }
    }

    pub(crate) fn attempt(&self, backend: &Arc<str>) {
        let mut facts = self.facts.lock();
        facts.attempts += 1;
        facts.backend = Some(backend.clone());
    }
}

tokio::task_local! {
    /// The record of the call whose model API requests run in this task: the upstream notes its
    /// attempts here without the `ModelApi` seam knowing about requests.
    static ATTEMPTS: Arc<CallRecord>;
}

/// Runs `call` (a model API request) with `record` receiving its attempts.
pub(crate) async fn recording_attempts<F: Future>(
    record: Option<&Arc<CallRecord>>,
    call: F,
) -> F::Output {
    match record {
        Some(record) => ATTEMPTS.scope(record.clone(), call).await,
        None => call.await,
    }
}

/// Notes one request sent to `backend` in the current call's record, if it keeps one.
pub(crate) fn note_attempt(backend: &Arc<str>) {
    let _ = ATTEMPTS.try_with(|record| record.attempt(backend));
}

/// The current span's trace context as `traceparent` (and `tracestate`) values, or `None`
/// when no sampled-or-not OpenTelemetry span is current (export off).
pub fn current_trace_context() -> Option<(String, Option<String>)> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = Carrier::default();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier
        .traceparent
        .map(|parent| (parent, carrier.tracestate))
}

/// Adds the current span's `traceparent`/`tracestate` to outgoing request headers.
pub fn inject_headers(headers: &mut HeaderMap) {
    if let Some((parent, state)) = current_trace_context() {
        insert(headers, TRACEPARENT, &parent);
        if let Some(state) = state {
            insert(headers, TRACESTATE, &state);
        }
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// The remote trace context in `traceparent`/`tracestate` values (headers or `_meta`), if the
/// parent is valid.
pub fn remote_context(traceparent: &str, tracestate: Option<&str>) -> Option<Context> {
    let carrier = Carrier {
        traceparent: Some(traceparent.to_owned()),
        tracestate: tracestate.map(str::to_owned),
    };
    let context = TraceContextPropagator::new().extract(&carrier);
    context.span().span_context().is_remote().then_some(context)
}

/// The remote trace context in request headers, if they carry a valid `traceparent`.
pub fn context_from_headers(headers: &HeaderMap) -> Option<Context> {
    let parent = headers.get(TRACEPARENT)?.to_str().ok()?;
    let state = headers.get(TRACESTATE).and_then(|v| v.to_str().ok());
    remote_context(parent, state)
}

/// The GenAI client span of one model call, named `{operation} {model}`. Request parameters
/// are recorded as sent (after governance); the answer's facts are recorded by
/// [`record_answer`] and the policies (cache, budget, content safety) on the current span.
/// The span's name uses the model's metrics label (configured models, else `other`), so names
/// stay few whatever callers ask for; the attribute has the model as asked.
pub(crate) fn model_call_span(
    operation: Operation,
    provider: &'static str,
    label: &str,
    model: &str,
) -> Span {
    tracing::info_span!(
        target: "otel",
        "gen_ai.client",
        otel.name = %format_args!("{} {label}", operation.as_str()),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        gen_ai.operation.name = operation.as_str(),
        gen_ai.provider.name = provider,
        gen_ai.request.model = model,
        gen_ai.request.max_tokens = tracing::field::Empty,
        gen_ai.request.temperature = tracing::field::Empty,
        gen_ai.request.top_p = tracing::field::Empty,
        gen_ai.request.stream = tracing::field::Empty,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.response.id = tracing::field::Empty,
        gen_ai.response.finish_reasons = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        error.type = tracing::field::Empty,
        tollgate.cache.status = tracing::field::Empty,
        tollgate.budget.remaining_tokens = tracing::field::Empty,
        tollgate.budget.refused = tracing::field::Empty,
        tollgate.content_safety.verdict = tracing::field::Empty,
    )
}

/// The request's parameters as sent (after governance) on the current model-call span.
pub(crate) fn record_request(request: &Map<String, Value>) {
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    let limit = request
        .get("max_completion_tokens")
        .or_else(|| request.get("max_tokens"));
    if let Some(limit) = limit.and_then(Value::as_u64) {
        span.record("gen_ai.request.max_tokens", limit);
    }
    for (key, field) in [
        ("temperature", "gen_ai.request.temperature"),
        ("top_p", "gen_ai.request.top_p"),
    ] {
        if let Some(value) = request.get(key).and_then(Value::as_f64) {
            span.record(field, value);
        }
    }
    if let Some(stream) = request.get("stream").and_then(Value::as_bool) {
        span.record("gen_ai.request.stream", stream);
    }
}

/// The answer's model, id and finish reasons on the current model-call span.
pub(crate) fn record_answer<'a>(body: impl FnOnce() -> &'a Value) {
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    // Read only now: an answer's tree may be built on first use.
    let body = body();
    if let Some(model) = body.get("model").and_then(Value::as_str) {
        span.record("gen_ai.response.model", model);
    }
    if let Some(id) = body.get("id").and_then(Value::as_str) {
        span.record("gen_ai.response.id", id);
    }
    let reasons: Vec<&str> = body
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|choice| choice.get("finish_reason").and_then(Value::as_str))
        .collect();
    if !reasons.is_empty() {
        span.record("gen_ai.response.finish_reasons", reasons.join(",").as_str());
    }
}

/// A call's usage on the current model-call span and in the request's record.
pub(crate) fn record_usage(context: &CallContext, model: &str, usage: Usage) {
    let span = Span::current();
    if !span.is_disabled() {
        span.record("gen_ai.usage.input_tokens", usage.prompt_tokens);
        span.record("gen_ai.usage.output_tokens", usage.completion_tokens);
    }
    if let Some(record) = &context.record {
        record.usage(model, usage.prompt_tokens, usage.completion_tokens);
    }
}

/// A failed call: its error code on the span, which ends in error.
pub(crate) fn record_error(span: &Span, code: &str) {
    span.record("error.type", code);
    span.record("otel.status_code", "error");
}

/// `traceparent` and `tracestate` only: the propagator's carrier, without a map.
#[derive(Default)]
struct Carrier {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE => self.tracestate = Some(value),
            _ => {}
        }
    }
}

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent.as_deref(),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_valid_traceparent_is_a_remote_parent_and_junk_is_not() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = remote_context(parent, Some("rojo=00f067aa0ba902b7")).unwrap();
        let span = context.span();
        let span_context = span.span_context();
        assert_eq!(
            span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(span_context.is_sampled());
        for junk in [
            "",
            "00-xyz",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            assert!(remote_context(junk, None).is_none(), "{junk}");
        }
    }

    #[test]
    fn the_cache_status_of_several_calls_is_one_word() {
        let record = CallRecord::default();
        assert_eq!(record.snapshot().cache_status(), None);
        record.cache(CacheStatus::Miss);
        record.cache(CacheStatus::Miss);
        assert_eq!(record.snapshot().cache_status(), Some("miss"));
        record.cache(CacheStatus::Hit);
        assert_eq!(record.snapshot().cache_status(), Some("mixed"));
        record.usage("gpt-4o-mini", 10, 2);
        record.usage("gpt-4o-mini", 5, 1);
        let facts = record.snapshot();
        assert_eq!((facts.input_tokens, facts.output_tokens), (15, 3));
    }
}
