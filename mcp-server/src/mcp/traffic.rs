//! What every POST to /mcp passes before it is answered: the rate limits, and the metrics after.
//!
//! The JSON-RPC body is peeked at for its method and tool name (borrowing, no full parse). Junk
//! bodies are counted too; rmcp answers them with a JSON-RPC error.

use std::{borrow::Cow, sync::Arc, time::Instant};

use axum::response::Response;
use http::{HeaderName, HeaderValue, StatusCode};
use metrics::{Counter, Histogram, SharedString};
use serde::Deserialize;

use gateway_client::{Stats, metrics::HandleMap};

use super::limits::{Allowance, McpLimits, Refusal};
use crate::{auth::Caller, error::ApiError};

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
    "resources/read",
    "prompts/list",
    "prompts/get",
    "logging/setLevel",
];

pub struct McpTraffic {
    limits: McpLimits,
    recorders: Recorders,
    anonymous: Arc<str>,
    /// The dashboard's figures: tool calls and rate-limit refusals.
    stats: Arc<Stats>,
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
pub struct Labels {
    method: &'static str,
    tool: Option<&'static str>,
    /// Whether the message expects an answer (notifications don't count against limits).
    is_request: bool,
}

impl Labels {
    /// The labels of a `tools/call` of `name`, for a body already parsed.
    pub fn tool_call(name: &str) -> Self {
        Self {
            method: "tools/call",
            tool: Some(tool_label(name)),
            is_request: true,
        }
    }

    /// The catalog tool a `tools/call` names (`unknown` for any other name).
    pub fn tool(&self) -> Option<&'static str> {
        self.tool
    }

    pub fn of(body: &[u8]) -> Self {
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
                        .map_or("unknown", |name| tool_label(&name))
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

/// A tool's name as a label: one of the catalog's, or `unknown`.
fn tool_label(name: &str) -> &'static str {
    tools::spec(name).map_or("unknown", |spec| spec.name)
}

/// A request the limits let through: what its metrics and headers need once it is answered.
pub struct Admission<'a> {
    recorders: &'a Recorders,
    stats: &'a Stats,
    labels: Labels,
    started: Instant,
    subscription: Arc<str>,
    allowance: Option<Allowance>,
}

impl McpTraffic {
    pub fn new(limits: McpLimits, stats: Arc<Stats>) -> Self {
        Self {
            limits,
            recorders: Recorders::default(),
            anonymous: Arc::from(crate::auth::ANONYMOUS),
            stats,
        }
    }

    /// Drops limiter state of keys that have been idle, so memory tracks active keys.
    pub fn forget_idle_keys(&self) {
        self.limits.forget_idle_keys();
    }

    /// Checks a POSTed JSON-RPC message against the caller's limits, per key and per tool. A
    /// refusal is already counted.
    pub fn admit(
        &self,
        caller: Option<&Caller>,
        labels: Labels,
        started: Instant,
    ) -> Result<Admission<'_>, ApiError> {
        let subscription = caller
            .and_then(|caller| caller.subscription.clone())
            .unwrap_or_else(|| self.anonymous.clone());
        let allowance = match (labels.is_request, caller) {
            (true, Some(caller)) => match self.limits.check(&caller.limit_key(), labels.tool) {
                Ok(allowance) => Some(allowance),
                Err(refusal) => {
                    self.stats.mcp_rate_limited();
                    metrics::counter!("mcp_rate_limited_total", "scope" => refusal.scope.label(), "subscription" => subscription.to_string())
                        .increment(1);
                    tracing::info!(
                        subscription = &*subscription,
                        scope = refusal.scope.label(),
                        "MCP rate limit refused a call"
                    );
                    self.recorders.record(
                        labels,
                        StatusCode::TOO_MANY_REQUESTS,
                        started,
                        subscription,
                    );
                    return Err(refusal_error(refusal));
                }
            },
            _ => None,
        };
        Ok(Admission {
            recorders: &self.recorders,
            stats: &self.stats,
            labels,
            started,
            subscription,
            allowance,
        })
    }
}

impl Admission<'_> {
    /// Adds the limit's headers to the answer and counts it.
    pub fn complete(self, response: &mut Response) {
        if let Some(allowance) = self.allowance {
            insert_allowance_headers(response, allowance);
        }
        if let Some(tool) = self.labels.tool {
            self.stats.mcp_call(tool);
        }
        self.recorders.record(
            self.labels,
            response.status(),
            self.started,
            self.subscription,
        );
    }
}

fn refusal_error(refusal: Refusal) -> ApiError {
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
        retry_after: refusal.wait,
        headers,
    }
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

/// Handles of the per-request metrics, per label set, so counting a call builds no metric key
/// and takes no registry lookup. The label sets are bounded: methods and tools come from fixed
/// lists, subscriptions from the configured keys (unknown keys never get this far).
#[derive(Default)]
struct Recorders {
    handles: HandleMap<SeriesKey, Series>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    method: &'static str,
    tool: &'static str,
    status: StatusCode,
    subscription: Arc<str>,
}

#[derive(Clone)]
struct Series {
    requests: Counter,
    duration: Histogram,
}

impl Recorders {
    fn record(&self, labels: Labels, status: StatusCode, started: Instant, subscription: Arc<str>) {
        let key = SeriesKey {
            method: labels.method,
            tool: labels.tool.unwrap_or(""),
            status,
            subscription,
        };
        let elapsed = started.elapsed().as_secs_f64();
        let register = |key: &SeriesKey| {
            let series = Series {
                requests: metrics::counter!("mcp_requests_total", "method" => key.method, "tool" => key.tool, "status" => status_label(key.status), "subscription" => key.subscription.to_string()),
                duration: metrics::histogram!("mcp_request_duration_seconds", "method" => key.method, "tool" => key.tool),
            };
            (key.clone(), series)
        };
        self.handles.with(&key, register, |series| {
            series.requests.increment(1);
            series.duration.record(elapsed);
        });
    }
}

/// The status as a label, without an allocation for the statuses /mcp answers with.
fn status_label(status: StatusCode) -> SharedString {
    match status {
        StatusCode::OK => SharedString::const_str("200"),
        StatusCode::ACCEPTED => SharedString::const_str("202"),
        StatusCode::BAD_REQUEST => SharedString::const_str("400"),
        StatusCode::UNAUTHORIZED => SharedString::const_str("401"),
        StatusCode::FORBIDDEN => SharedString::const_str("403"),
        StatusCode::NOT_FOUND => SharedString::const_str("404"),
        StatusCode::METHOD_NOT_ALLOWED => SharedString::const_str("405"),
        StatusCode::NOT_ACCEPTABLE => SharedString::const_str("406"),
        StatusCode::PAYLOAD_TOO_LARGE => SharedString::const_str("413"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => SharedString::const_str("415"),
        StatusCode::TOO_MANY_REQUESTS => SharedString::const_str("429"),
        StatusCode::INTERNAL_SERVER_ERROR => SharedString::const_str("500"),
        other => SharedString::from(other.as_u16().to_string()),
    }
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
