//! What every MCP request passes before rmcp sees it: the rate limits and the metrics.
//!
//! The JSON-RPC body is read once here, peeked at for its method and tool name (borrowing, no
//! full parse), then handed on unchanged. Junk bodies are counted too; rmcp answers them with a
//! JSON-RPC error.

use std::{
    borrow::Cow,
    sync::Arc,
    time::{Instant, SystemTime},
};

use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;

use super::limits::{Allowance, McpLimits, Refusal};
use crate::{
    auth::Caller,
    config::RetryAfterFormat,
    error::{ApiError, read_body},
};

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_SCOPE: HeaderName = HeaderName::from_static("x-ratelimit-scope");

/// Methods that get their own metrics label; anything else is `other`, so labels stay bounded.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "server/discover",
    "notifications/initialized",
    "notifications/cancelled",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
    "logging/setLevel",
];

pub struct McpTraffic {
    pub limits: McpLimits,
    pub retry_after_format: RetryAfterFormat,
    pub max_body_bytes: usize,
}

/// The parts of one JSON-RPC message that limits and metrics need.
#[derive(Deserialize)]
struct MessagePeek<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<serde::de::IgnoredAny>,
    #[serde(borrow, default)]
    params: Option<ParamsPeek<'a>>,
}

#[derive(Deserialize)]
struct ParamsPeek<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

/// The method and tool labels of a request, each from a bounded set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Labels {
    method: &'static str,
    tool: Option<&'static str>,
    /// Whether the message expects an answer (notifications don't count against limits).
    is_request: bool,
}

impl Labels {
    fn of(body: &[u8]) -> Self {
        match serde_json::from_slice::<MessagePeek<'_>>(body) {
            Ok(peek) => {
                let method = peek.method.as_deref().map_or("none", |m| {
                    KNOWN_METHODS
                        .iter()
                        .find(|known| **known == m)
                        .copied()
                        .unwrap_or("other")
                });
                let tool = (method == "tools/call").then(|| {
                    peek.params
                        .and_then(|p| p.name)
                        .and_then(|name| tools::spec(&name).map(|spec| spec.name))
                        .unwrap_or("unknown")
                });
                Self {
                    method,
                    tool,
                    is_request: peek.id.is_some() || peek.method.is_none(),
                }
            }
            // Batches and junk: counted as one call, labelled by shape.
            Err(_) if body.trim_ascii_start().starts_with(b"[") => Self {
                method: "batch",
                tool: None,
                is_request: true,
            },
            Err(_) => Self {
                method: "invalid",
                tool: None,
                is_request: true,
            },
        }
    }
}

/// Middleware on `/mcp`: rate limits per key (and per tool), then metrics around rmcp.
pub async fn govern_mcp_traffic(
    State(traffic): State<Arc<McpTraffic>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    if request.method() != Method::POST {
        // rmcp answers GET/DELETE with 405; nothing to count against a limit.
        return next.run(request).await;
    }
    let caller = request.extensions().get::<Caller>().cloned();
    let (parts, body) = request.into_parts();
    let body = match read_body(body, traffic.max_body_bytes).await {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    let labels = Labels::of(&body);
    let subscription = caller
        .as_ref()
        .map_or(crate::auth::ANONYMOUS, Caller::label)
        .to_owned();

    let allowance = match (labels.is_request, &caller) {
        (true, Some(caller)) => match traffic.limits.check(&caller.limit_key(), labels.tool) {
            Ok(allowance) => Some(allowance),
            Err(refusal) => {
                metrics::counter!("mcp_rate_limited_total", "scope" => refusal.scope.label(), "subscription" => subscription.clone())
                    .increment(1);
                tracing::info!(
                    subscription,
                    scope = refusal.scope.label(),
                    "MCP rate limit refused a call"
                );
                let response = refusal_response(&traffic, refusal);
                record(labels, &response, started, &subscription);
                return response;
            }
        },
        _ => None,
    };

    let mut response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if let Some(allowance) = allowance {
        insert_allowance_headers(&mut response, allowance);
    }
    record(labels, &response, started, &subscription);
    response
}

fn refusal_response(traffic: &McpTraffic, refusal: Refusal) -> Response {
    let scope = match refusal.scope {
        super::limits::Scope::Key => "key".to_owned(),
        super::limits::Scope::Tool(tool) => format!("tool:{tool}"),
    };
    let message = match refusal.scope {
        super::limits::Scope::Key => format!(
            "MCP rate limit of {} calls per {} s exceeded for this key",
            refusal.limit.calls,
            refusal.limit.period.as_secs()
        ),
        super::limits::Scope::Tool(tool) => format!(
            "rate limit for tool `{tool}` of {} calls per {} s exceeded for this key",
            refusal.limit.calls,
            refusal.limit.period.as_secs()
        ),
    };
    let mut headers = vec![
        (
            X_RATELIMIT_LIMIT,
            HeaderValue::from(refusal.limit.calls.get()),
        ),
        (X_RATELIMIT_REMAINING, HeaderValue::from(0u32)),
    ];
    if let Ok(scope) = HeaderValue::from_str(&scope) {
        headers.push((X_RATELIMIT_SCOPE, scope));
    }
    ApiError::RateLimited {
        message,
        retry_after: traffic
            .retry_after_format
            .header_value(refusal.wait, SystemTime::now()),
        headers,
    }
    .into_response()
}

fn insert_allowance_headers(response: &mut Response, allowance: Allowance) {
    let headers = response.headers_mut();
    headers.insert(
        X_RATELIMIT_LIMIT,
        HeaderValue::from(allowance.limit.calls.get()),
    );
    headers.insert(
        X_RATELIMIT_REMAINING,
        HeaderValue::from(allowance.remaining),
    );
}

fn record(labels: Labels, response: &Response, started: Instant, subscription: &str) {
    let status = response.status().as_u16().to_string();
    let tool = labels.tool.unwrap_or("");
    metrics::counter!("mcp_requests_total", "method" => labels.method, "tool" => tool, "status" => status, "subscription" => subscription.to_owned())
        .increment(1);
    metrics::histogram!("mcp_request_duration_seconds", "method" => labels.method, "tool" => tool)
        .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
        assert_eq!(
            Labels::of(call),
            Labels {
                method: "tools/call",
                tool: Some("echo"),
                is_request: true
            }
        );
        let unknown =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm -rf"}}"#;
        assert_eq!(Labels::of(unknown).tool, Some("unknown"));
        let odd = br#"{"jsonrpc":"2.0","id":1,"method":"made/up"}"#;
        assert_eq!(Labels::of(odd).method, "other");
        let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert!(!Labels::of(note).is_request);
        assert_eq!(Labels::of(b"\x00junk").method, "invalid");
        assert_eq!(Labels::of(b" [1,2]").method, "batch");
    }
}
