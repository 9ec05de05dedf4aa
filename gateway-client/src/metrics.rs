//! The gateway's metrics, named after OpenTelemetry's GenAI conventions where one exists.
//!
//! Labels stay bounded: subscription names, model, api, operation, backend labels from
//! configuration. Never prompts or client addresses.

use std::time::Duration;

use crate::{context::CallContext, context::Operation};

/// Token counts per call, a histogram as in OTel (`gen_ai.client.token.usage`); its `_sum` is
/// the chargeback figure.
pub fn tokens(context: &CallContext, operation: Operation, model: &str, input: u64, output: u64) {
    for (kind, count) in [("input", input), ("output", output)] {
        if operation == Operation::Embeddings && kind == "output" {
            continue;
        }
        metrics::histogram!(
            "gen_ai_client_token_usage",
            "gen_ai_token_type" => kind,
            "gen_ai_request_model" => model.to_owned(),
            "gen_ai_operation_name" => operation.as_str(),
            "subscription" => context.subscription.to_string(),
            "api" => context.api.as_str(),
        )
        .record(count as f64);
    }
}

pub fn call_duration(
    context: &CallContext,
    operation: Operation,
    model: &str,
    outcome: &'static str,
    elapsed: Duration,
) {
    metrics::histogram!(
        "gen_ai_client_operation_duration_seconds",
        "gen_ai_request_model" => model.to_owned(),
        "gen_ai_operation_name" => operation.as_str(),
        "subscription" => context.subscription.to_string(),
        "api" => context.api.as_str(),
        "outcome" => outcome,
    )
    .record(elapsed.as_secs_f64());
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

pub fn cache_status(context: &CallContext, operation: Operation, status: &'static str) {
    metrics::counter!(
        "gateway_cache_requests_total",
        "status" => status,
        "subscription" => context.subscription.to_string(),
        "gen_ai_operation_name" => operation.as_str(),
    )
    .increment(1);
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
