//! OpenTelemetry over OTLP and the access log: one agent chat with `TOOL_ROUTING=mcp` and a
//! caller's `traceparent` is one trace (caller → agent → model → /mcp → tool → model) at an
//! in-test OTLP/HTTP receiver, the model upstream sees the trace, metrics arrive over OTLP too,
//! and the access log has one JSON line per request with no secrets.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{Router, body::Bytes, extract::State, routing::post};
use mock_upstream::{MockUpstream, Reply};
use opentelemetry_proto::tonic::{
    collector::{metrics::v1::ExportMetricsServiceRequest, trace::v1::ExportTraceServiceRequest},
    common::v1::{AnyValue, KeyValue, any_value},
    metrics::v1::{Metric, metric},
    trace::v1::{Span, span::SpanKind},
};
use prost::Message;
use serde_json::Value;
use tests::{
    UPSTREAM_KEY, bind_loopback,
    observed::{LOG_WAIT, Observed, start_observed},
    start_mock,
};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";
const KEY: &str = "key-otel-alice";
const PROMPT: &str = "Echo the secret-prompt-words please";

/// What the receiver got: resource attributes and spans, and metrics.
#[derive(Default)]
struct Received {
    spans: Vec<(HashMap<String, String>, Span)>,
    metrics: Vec<Metric>,
}

/// An OTLP/HTTP receiver on a loopback port, decoding what it gets with `opentelemetry-proto`.
async fn start_receiver() -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .with_state(received.clone());
    let (listener, addr) = bind_loopback().await;
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

async fn traces(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).unwrap();
    let mut received = received.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = attributes(&resource_spans.resource.unwrap().attributes);
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.spans.push((resource.clone(), span));
            }
        }
    }
    Vec::new()
}

async fn metrics(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> Vec<u8> {
    let request = ExportMetricsServiceRequest::decode(body).unwrap();
    let mut received = received.lock().unwrap();
    for resource_metrics in request.resource_metrics {
        for scope in resource_metrics.scope_metrics {
            received.metrics.extend(scope.metrics);
        }
    }
    Vec::new()
}

/// Attributes as text (`"12"` for an int).
fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A server exporting to `collector` with `TOOL_ROUTING=mcp`, JSON logs and a key.
async fn observed_server(mock: &MockUpstream, collector: &str) -> Observed {
    let keys = format!("alice={KEY}");
    start_observed(&[
        ("OPENAI_BASE_URL", &mock.base_url()),
        ("OPENAI_API_KEY", UPSTREAM_KEY),
        ("TOOL_ROUTING", "mcp"),
        ("SUBSCRIPTION_KEYS", &keys),
        ("INSTANCE_ID", "otel-instance-7"),
        ("WEBSITE_SITE_NAME", "tollgate-site"),
        ("WEBSITE_SLOT_NAME", "staging"),
        ("LOG_FORMAT", "json"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=test%20run",
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
    ])
    .await
}

/// One chat: the agent calls `echo` over MCP, then answers. Its `x-request-id`.
async fn traced_chat(observed: &Observed, mock: &MockUpstream) -> String {
    mock.push_many([
        Reply::tool_call("echo", r#"{"message":"traced"}"#),
        Reply::text("Echoed."),
    ]);
    let response = tests::agent::client()
        .post(observed.server.url("/agent/chat"))
        .header("api-key", KEY)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .header("tracestate", "rojo=00f067aa0ba902b7")
        .json(&serde_json::json!({"message": PROMPT}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tool_calls"][0]["routed_via"], "mcp", "{body}");
    assert_eq!(body["tool_calls"][0]["is_error"], false, "{body}");
    request_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_chat_is_one_trace_with_genai_and_mcp_spans() {
    let (collector, received) = start_receiver().await;
    let mock = start_mock().await;
    let observed = observed_server(&mock, &collector).await;
    traced_chat(&observed, &mock).await;
    observed.telemetry.flush().await;

    let received = received.lock().unwrap();
    let trace: Vec<&(HashMap<String, String>, Span)> = received
        .spans
        .iter()
        .filter(|(_, span)| hex(&span.trace_id) == TRACE_ID)
        .collect();
    let by_name = |name: &str| -> Vec<&Span> {
        trace
            .iter()
            .map(|(_, span)| span)
            .filter(|span| span.name == name)
            .collect()
    };
    let one = |name: &str| -> &Span {
        let found = by_name(name);
        assert_eq!(found.len(), 1, "spans named {name}: {:#?}", names(&trace));
        found[0]
    };

    // The caller's span is the root's parent; every other span's parent is in the trace.
    let root = one("POST /agent/chat");
    assert_eq!(hex(&root.parent_span_id), CALLER_SPAN);
    assert_eq!(root.kind, SpanKind::Server as i32);
    let ids: Vec<String> = trace.iter().map(|(_, s)| hex(&s.span_id)).collect();
    for (_, span) in &trace {
        let parent = hex(&span.parent_span_id);
        assert!(
            parent == CALLER_SPAN || ids.contains(&parent),
            "{} is an orphan (parent {parent})",
            span.name
        );
    }

    let agent = one("invoke_agent tollgate");
    assert_eq!(agent.parent_span_id, root.span_id);
    // The session is an attribute of the agent's span and of the request's.
    let session = attributes(&agent.attributes)["session.id"].clone();
    assert_eq!(session.len(), 32, "{session}");
    assert_eq!(attributes(&root.attributes)["session.id"], session);
    let chats = by_name("chat gpt-4o-mini");
    assert_eq!(chats.len(), 2, "{:#?}", names(&trace));
    for chat in &chats {
        assert_eq!(chat.parent_span_id, agent.span_id);
        assert_eq!(chat.kind, SpanKind::Client as i32);
        let attrs = attributes(&chat.attributes);
        assert_eq!(attrs["gen_ai.operation.name"], "chat");
        assert_eq!(attrs["gen_ai.provider.name"], "openai");
        assert_eq!(attrs["gen_ai.request.model"], "gpt-4o-mini");
        assert!(!attrs["gen_ai.response.model"].is_empty());
        assert!(attrs["gen_ai.usage.input_tokens"].parse::<u64>().unwrap() > 0);
        assert!(attrs["gen_ai.usage.output_tokens"].parse::<u64>().unwrap() > 0);
        assert_eq!(attrs["tollgate.cache.status"], "miss");
        assert!(attrs.contains_key("tollgate.budget.remaining_tokens"));
        // One upstream attempt each, with its backend and status.
        let attempts: Vec<&Span> = by_name("POST")
            .into_iter()
            .filter(|a| a.parent_span_id == chat.span_id)
            .collect();
        assert_eq!(attempts.len(), 1);
        let attempt = attributes(&attempts[0].attributes);
        assert_eq!(attempt["http.response.status_code"], "200");
        assert_eq!(attempt["http.request.resend_count"], "0");
        assert!(attempt["tollgate.backend"].starts_with("127.0.0.1:"));
    }
    let reasons: Vec<String> = chats
        .iter()
        .map(|c| attributes(&c.attributes)["gen_ai.response.finish_reasons"].clone())
        .collect();
    assert!(reasons.contains(&"tool_calls".to_owned()), "{reasons:?}");
    assert!(reasons.contains(&"stop".to_owned()), "{reasons:?}");

    // The tool: executed by the agent over MCP; /mcp continues the trace from the header (its
    // HTTP span) and from `_meta` (its MCP span, linked to the HTTP span).
    let tool = one("execute_tool echo");
    assert_eq!(tool.parent_span_id, agent.span_id);
    let tool_attrs = attributes(&tool.attributes);
    assert_eq!(tool_attrs["gen_ai.tool.name"], "echo");
    assert_eq!(tool_attrs["mcp.method.name"], "tools/call");
    let mcp_http = one("POST /mcp");
    assert_eq!(mcp_http.parent_span_id, tool.span_id);
    let mcp = one("tools/call echo");
    assert_eq!(mcp.parent_span_id, tool.span_id);
    assert_eq!(mcp.kind, SpanKind::Server as i32);
    assert!(mcp.links.iter().any(|l| l.span_id == mcp_http.span_id));
    let mcp_attrs = attributes(&mcp.attributes);
    assert_eq!(mcp_attrs["mcp.method.name"], "tools/call");
    assert_eq!(mcp_attrs["gen_ai.tool.name"], "echo");
    assert!(!mcp_attrs["jsonrpc.request.id"].is_empty());

    // The resource names the service and this instance (App Insights' cloud_RoleInstance).
    let resource = &trace[0].0;
    assert_eq!(resource["service.name"], "tollgate");
    assert_eq!(resource["service.instance.id"], "otel-instance-7");
    assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(resource["azure.app_service.site.name"], "tollgate-site");
    assert_eq!(resource["azure.app_service.slot.name"], "staging");
    assert_eq!(resource["deployment.environment.name"], "test run");

    // No prompt, answer or key in any attribute.
    for (_, span) in &trace {
        for value in attributes(&span.attributes).values() {
            for secret in [PROMPT, "secret-prompt", KEY, UPSTREAM_KEY, "Echoed."] {
                assert!(!value.contains(secret), "{} carries {secret}", span.name);
            }
        }
    }

    // The model upstream saw the trace: each call carries its attempt span as the parent.
    let chat_requests = mock.chat_requests();
    assert_eq!(chat_requests.len(), 2);
    for request in &chat_requests {
        let parent = request.header("traceparent").unwrap();
        let fields: Vec<&str> = parent.split('-').collect();
        assert_eq!(fields[1], TRACE_ID, "{parent}");
        let attempt = by_name("POST")
            .into_iter()
            .find(|a| hex(&a.span_id) == fields[2]);
        assert!(attempt.is_some(), "{parent} names no attempt span");
    }
}

fn names(trace: &[&(HashMap<String, String>, Span)]) -> Vec<String> {
    trace.iter().map(|(_, s)| s.name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_go_out_over_otlp_too() {
    let (collector, received) = start_receiver().await;
    let mock = start_mock().await;
    let observed = observed_server(&mock, &collector).await;
    traced_chat(&observed, &mock).await;
    observed.telemetry.flush().await;

    let received = received.lock().unwrap();
    let named = |name: &'static str| received.metrics.iter().filter(move |m| m.name == name);
    let token_types: Vec<String> = named("gen_ai.client.token.usage")
        .filter_map(|m| match &m.data {
            Some(metric::Data::Histogram(h)) => Some(&h.data_points),
            _ => None,
        })
        .flatten()
        .map(|point| attributes(&point.attributes)["gen_ai.token.type"].clone())
        .collect();
    assert!(token_types.contains(&"input".to_owned()), "{token_types:?}");
    assert!(
        token_types.contains(&"output".to_owned()),
        "{token_types:?}"
    );
    let duration = named("gen_ai.client.operation.duration").next();
    assert_eq!(duration.map(|m| m.unit.as_str()), Some("s"));
    assert!(named("mcp_requests").next().is_some());
    assert!(named("gateway_cache_requests").next().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_one_json_line_per_request_and_no_secrets() {
    let (collector, _received) = start_receiver().await;
    let mock = start_mock().await;
    let observed = observed_server(&mock, &collector).await;
    let request_id = traced_chat(&observed, &mock).await;

    let line = observed
        .logs
        .line_with(&["\"target\":\"access\"", &request_id], LOG_WAIT)
        .await;
    let entry: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["request_id"], request_id.as_str());
    assert_eq!(entry["trace_id"], TRACE_ID);
    assert_eq!(entry["method"], "POST");
    assert_eq!(entry["route"], "/agent/chat");
    assert_eq!(entry["status"], 200);
    assert!(entry["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(entry["timestamp"].is_string());
    assert_eq!(entry["subscription"], "alice");
    assert_eq!(entry["model"], "gpt-4o-mini");
    assert_eq!(entry["cache"], "miss");
    assert!(entry["tokens_in"].as_u64().unwrap() > 0);
    assert!(entry["tokens_out"].as_u64().unwrap() > 0);
    assert!(entry["backend"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(entry["attempts"], 2);
    // The agent session the chat started: its id, 32 hex characters.
    let session = entry["session_id"].as_str().unwrap();
    assert!(
        session.len() == 32 && session.chars().all(|c| c.is_ascii_hexdigit()),
        "{session}"
    );

    // The agent's tool call is a request of its own, in the same trace.
    let mcp_line = observed
        .logs
        .line_with(&["\"target\":\"access\"", "\"route\":\"/mcp\""], LOG_WAIT)
        .await;
    let mcp_entry: Value = serde_json::from_str(&mcp_line).unwrap();
    assert_eq!(mcp_entry["subscription"], "alice");
    assert_eq!(mcp_entry["status"], 200);

    let logs = observed.logs.text();
    for secret in [KEY, UPSTREAM_KEY, "secret-prompt", "Echoed."] {
        assert!(!logs.contains(secret), "the logs carry {secret}");
    }
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_traced_or_propagated() {
    let mock = start_mock().await;
    let observed = start_observed(&[
        ("OPENAI_BASE_URL", &mock.base_url()),
        ("OPENAI_API_KEY", UPSTREAM_KEY),
        ("LOG_FORMAT", "json"),
    ])
    .await;
    mock.push(Reply::text("Plain."));
    let response = tests::agent::client()
        .post(observed.server.url("/agent/chat"))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&serde_json::json!({"message": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The model call carries no trace: there is no span to carry.
    assert_eq!(mock.chat_requests()[0].header("traceparent"), None);
    // The access log still names the caller's trace, so the lines can be joined up.
    let line = observed
        .logs
        .line_with(&["\"target\":\"access\"", "/agent/chat"], LOG_WAIT)
        .await;
    let entry: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["trace_id"], TRACE_ID);
    assert_eq!(entry["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_call_is_logged_and_traced_when_its_stream_ends() {
    let (collector, received) = start_receiver().await;
    let mock = start_mock().await;
    let observed = observed_server(&mock, &collector).await;
    let client = tests::http_client();
    let body = tests::gateway::streamed_chat_body("Stream a short answer please");
    let response = tests::gateway::post_chat(&client, &observed.server, Some(KEY), &body).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");

    // The line is written when the stream is done, with the stream's tokens.
    let line = observed
        .logs
        .line_with(&["\"target\":\"access\"", &request_id], LOG_WAIT)
        .await;
    let entry: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["route"], "/v1/chat/completions");
    assert!(entry["tokens_out"].as_u64().unwrap() > 0, "{line}");
    assert_eq!(entry["attempts"], 1);

    // The call's span lasts until the stream is settled, and has its usage.
    observed.telemetry.flush().await;
    let received = received.lock().unwrap();
    let chat = received
        .spans
        .iter()
        .map(|(_, span)| span)
        .find(|span| {
            span.name == "chat gpt-4o-mini"
                && attributes(&span.attributes)["gen_ai.request.stream"] == "true"
        })
        .expect("the streamed call's span");
    let attrs = attributes(&chat.attributes);
    assert!(attrs["gen_ai.usage.output_tokens"].parse::<u64>().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_costs_no_request_anything() {
    // A port nothing listens on any more.
    let (listener, addr) = bind_loopback().await;
    drop(listener);
    let mock = start_mock().await;
    let observed = observed_server(&mock, &format!("http://{addr}")).await;
    for _ in 0..3 {
        traced_chat(&observed, &mock).await;
    }
    // Exporting fails (a warning in the log), and returns: nothing waits on the collector.
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        observed.telemetry.flush(),
    )
    .await
    .expect("a flush to a dead collector returns");
}
