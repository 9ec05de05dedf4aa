//! The MCP fast path answers exactly as rmcp does. The same requests (good calls, malformed
//! calls, other methods, junk, and unusual headers) go to a server with the fast path and to one
//! with MCP_FAST_PATH=off; status, content type and body must match for every one.

use serde_json::Value;
use tests::{
    TestServer,
    gateway::{metric, scrape},
};

const FLAGS: &[&str] = &[
    "--instance-id",
    "fast-path",
    "--mcp-rate-limit",
    "1000000/1",
];

/// Bodies sent as raw text, so malformed JSON reaches the server as written.
const BODIES: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}"#,
    r#"{"jsonrpc":"2.0","id":"req-é","method":"tools/call","params":{"name":"echo","arguments":{"message":"ünïcødé ✓ \u0000 \"quoted\""}}}"#,
    r#"{"jsonrpc":"2.0","id":-5,"method":"tools/call","params":{"name":"echo","arguments":{"message":""}}}"#,
    r#"{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/call","params":{"name":"echo","arguments":{"message":"big id"}}}"#,
    r#"  {"params":{"arguments":{"message":"keys in another order"},"name":"echo"},"method":"tools/call","id":2,"jsonrpc":"2.0"}  "#,
    r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
    r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x","extra":1}}}"#,
    r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":7}}}"#,
    r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":null}}"#,
    r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}"#,
    r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":[1,2]}}"#,
    r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#,
    r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"lookup_fact","arguments":{"topic":"Deployment-Slots"}}}"#,
    r#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"lookup_fact","arguments":{"topic":"the weather on mars"}}}"#,
    r#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"summarize","arguments":{"topic":"scaling","max_sentences":2}}}"#,
    r#"{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":"summarize","arguments":{"text":"One. Two is longer than one. Three is the longest sentence of the three here."}}}"#,
    r#"{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"summarize","arguments":{}}}"#,
    r#"{"jsonrpc":"2.0","id":15,"method":"tools/call","params":{"name":"no_such_tool","arguments":{}}}"#,
    r#"{"jsonrpc":"2.0","id":16,"method":"tools/call","params":{"name":42}}"#,
    r#"{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m"},"_meta":{"progressToken":"p1"}}}"#,
    r#"{"jsonrpc":"2.0","id":18,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m"}},"extra":true}"#,
    r#"{"jsonrpc":"2.0","id":19,"id":20,"method":"tools/call","params":{"name":"echo","arguments":{"message":"dup"}}}"#,
    r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m"}}}"#,
    r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m"}}}"#,
    r#"{"jsonrpc":"1.0","id":21,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m"}}}"#,
    r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"message":"a notification"}}}"#,
    r#"{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m"}}} trailing"#,
    r#"[{"jsonrpc":"2.0","id":23,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m"}}}]"#,
    r#"{"jsonrpc":"2.0","id":24,"method":"tools/list"}"#,
    r#"{"jsonrpc":"2.0","id":25,"method":"ping"}"#,
    r#"{"jsonrpc":"2.0","id":26,"method":"tools/cal","params":{"name":"echo"}}"#,
    "not json at all",
    "",
];

/// Header sets: the plain ones the fast path serves, and each way a request stops being plain.
fn header_sets() -> Vec<Vec<(&'static str, &'static str)>> {
    let plain = |version: &'static str| {
        vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", version),
        ]
    };
    let with = |extra: (&'static str, &'static str)| {
        let mut headers = plain("2025-11-25");
        headers.retain(|(name, _)| *name != extra.0);
        headers.push(extra);
        headers
    };
    vec![
        plain("2025-11-25"),
        plain("2025-06-18"),
        plain("2025-03-26"),
        plain("2024-11-05"),
        plain("2026-07-28"),
        plain("1999-01-01"),
        vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        with(("accept", "application/json")),
        with(("accept", "application/json;q=1, text/event-stream;q=0")),
        with(("content-type", "text/plain")),
        with(("content-type", "application/json; charset=utf-8")),
        with(("origin", "http://localhost:5173")),
        with(("origin", "https://evil.example.com")),
        with(("host", "evil.example.com")),
        with(("mcp-session-id", "some-session")),
        with(("mcp-method", "tools/list")),
    ]
}

struct Answer {
    status: u16,
    content_type: String,
    body: Value,
}

async fn send(
    client: &reqwest::Client,
    server: &TestServer,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut request = client.post(server.mcp_url()).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        content_type,
        body: without_clock_fields(body),
    }
}

/// `whoami`'s `served_at` and `uptime_seconds` differ between any two calls; everything else
/// must not. Tool results also carry their JSON as text, which is normalized the same way.
fn without_clock_fields(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(key, _)| key != "served_at" && key != "uptime_seconds")
                .map(|(key, value)| (key, without_clock_fields(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_clock_fields).collect()),
        Value::String(text) if text.starts_with('{') => match serde_json::from_str(&text) {
            Ok(parsed @ Value::Object(_)) => without_clock_fields(parsed),
            _ => Value::String(text),
        },
        other => other,
    }
}

#[tokio::test]
async fn fast_path_answers_are_rmcps_answers() {
    let fast = TestServer::start(FLAGS).await;
    let mut rmcp_flags = FLAGS.to_vec();
    rmcp_flags.extend(["--mcp-fast-path", "off"]);
    let rmcp = TestServer::start(&rmcp_flags).await;
    let client = tests::http_client();

    let mut compared = 0;
    let mut plain_successes = 0;
    for headers in header_sets() {
        for body in BODIES {
            let from_fast = send(&client, &fast, &headers, body).await;
            let from_rmcp = send(&client, &rmcp, &headers, body).await;
            let case = format!("headers {headers:?}, body {body}");
            assert_eq!(from_fast.status, from_rmcp.status, "status: {case}");
            assert_eq!(
                from_fast.content_type, from_rmcp.content_type,
                "content type: {case}"
            );
            assert_eq!(from_fast.body, from_rmcp.body, "body: {case}");
            compared += 1;
            if from_fast.status == 200 && from_fast.body.get("result").is_some() {
                plain_successes += 1;
            }
        }
    }
    assert_eq!(compared, header_sets().len() * BODIES.len());
    // The corpus really exercises answers, not just refusals.
    assert!(plain_successes > 50, "{plain_successes} successful answers");
}

#[tokio::test]
async fn fast_path_calls_are_still_limited_and_counted() {
    let server = TestServer::start(&[
        "--subscription-keys",
        "fast-sub=fast-key",
        "--mcp-rate-limit",
        "2/60",
    ])
    .await;
    let client = tests::http_client();
    let call = |id: u32| {
        client
            .post(server.mcp_url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("api-key", "fast-key")
            .body(format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"m"}}}}}}"#
            ))
            .send()
    };
    assert_eq!(call(1).await.unwrap().status(), 200);
    assert_eq!(call(2).await.unwrap().status(), 200);
    let refused = call(3).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));

    let metrics = scrape(&client, &server).await;
    let served = [("subscription", "fast-sub"), ("status", "200")];
    assert_eq!(
        metric(&metrics, "mcp_requests_total", &served),
        Some(2.0),
        "mcp_requests_total for fast-sub in:\n{metrics}"
    );
}
