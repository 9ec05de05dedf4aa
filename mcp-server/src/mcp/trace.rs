//! The MCP server span of one request, per OpenTelemetry's MCP conventions: named
//! `{mcp.method.name} {gen_ai.tool.name}` (`tools/call echo`), with the JSON-RPC id.
//!
//! Its parent is the trace context in the request's `params._meta` (`traceparent`,
//! `tracestate`: SEP-414, the 2026-07-28 revision) when there is one, since that is the MCP
//! client's own context end to end; the HTTP server span (which continued the `traceparent`
//! header) is then linked. Without `_meta` context the span is the HTTP span's child, so a
//! caller that only sends the header is continued too. The body is read for this only when
//! export is on.

use http::{HeaderMap, StatusCode};
use opentelemetry::trace::TraceContextExt;
use serde_json::Value;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use gateway_client::telemetry::{TRACEPARENT, TRACESTATE, remote_context};

/// Methods named as sent; any other is `_OTHER` (names stay few whatever clients send).
const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
];

/// The span of one POSTed message (disabled, and nothing parsed, when export is off).
pub(super) fn server_span(headers: &HeaderMap, body: &[u8]) -> Span {
    let span = tracing::info_span!(
        target: "otel",
        "mcp.server",
        otel.name = "mcp",
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        mcp.method.name = tracing::field::Empty,
        mcp.protocol.version = tracing::field::Empty,
        gen_ai.operation.name = tracing::field::Empty,
        gen_ai.tool.name = tracing::field::Empty,
        jsonrpc.request.id = tracing::field::Empty,
        network.transport = "tcp",
        network.protocol.name = "http",
        error.type = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let Ok(message) = serde_json::from_slice::<Value>(body) else {
        return span;
    };
    describe(&span, &message);
    let version = message
        .pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")
        .and_then(Value::as_str)
        .or_else(|| headers.get("mcp-protocol-version")?.to_str().ok());
    if let Some(version) = version {
        span.record("mcp.protocol.version", version);
    }
    continue_meta_trace(&span, &message);
    span
}

fn describe(span: &Span, message: &Value) {
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        return;
    };
    let method = METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("_OTHER");
    span.record("mcp.method.name", method);
    let tool = message
        .pointer("/params/name")
        .and_then(Value::as_str)
        .and_then(tools::spec)
        .filter(|_| method == "tools/call");
    match tool {
        Some(tool) => {
            span.record("otel.name", format!("{method} {}", tool.name).as_str());
            span.record("gen_ai.tool.name", tool.name);
            span.record("gen_ai.operation.name", "execute_tool");
        }
        None => {
            span.record("otel.name", method);
        }
    }
    match message.get("id") {
        Some(Value::String(id)) => {
            span.record("jsonrpc.request.id", id.as_str());
        }
        Some(Value::Number(id)) => {
            span.record("jsonrpc.request.id", id.to_string().as_str());
        }
        _ => {}
    }
}

/// Makes the `_meta` trace context the span's parent, linking the HTTP span it leaves.
fn continue_meta_trace(span: &Span, message: &Value) {
    let meta = |key: &str| {
        message
            .pointer(&format!("/params/_meta/{key}"))
            .and_then(Value::as_str)
    };
    let Some(parent) = meta(TRACEPARENT).and_then(|p| remote_context(p, meta(TRACESTATE))) else {
        return;
    };
    let transport = Span::current().context().span().span_context().clone();
    let _ = span.set_parent(parent);
    if transport.is_valid() {
        span.add_link(transport);
    }
}

/// An HTTP error status marks the span failed.
pub(super) fn record_status(span: &Span, status: StatusCode) {
    if !span.is_disabled() && (status.is_client_error() || status.is_server_error()) {
        span.record("error.type", status.as_str());
        span.record("otel.status_code", "error");
    }
}
