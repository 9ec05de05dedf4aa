//! Tool routing: in `mcp` routing the agent's tool calls are ordinary /mcp traffic (the caller's
//! key or the agent's own, the MCP rate limit, metrics per subscription); in `in-process`
//! routing they are not.
//!
//! Metrics are process-wide, so every test uses subscription names no other test uses.

use mock_upstream::{MockUpstream, Reply};
use serde_json::Value;
use tests::{
    TestServer,
    agent::{chat, client, message, tool_calls, tools_succeeded_via},
    gateway::{metric, scrape},
    start_mock, start_with_mock, start_with_model,
};

/// A turn of four rounds of one tool call each, then the answer, by `routing`, on a server
/// with an MCP rate limit of 2 calls a minute, as `subscription` (with `key`). The mock, the
/// server and the turn's summary (a 200).
async fn four_tool_turn(
    routing: &str,
    subscription: &str,
    key: &str,
) -> (MockUpstream, TestServer, Value) {
    let keys = format!("{subscription}={key}");
    let (mock, server) = start_with_mock(&[
        "--tool-routing",
        routing,
        "--mcp-rate-limit",
        "2/60",
        "--subscription-keys",
        &keys,
    ])
    .await;
    mock.push_many([
        Reply::tool_call("whoami", "{}"),
        Reply::tool_call("lookup_fact", r#"{"topic":"mcp"}"#),
        Reply::tool_call("echo", r#"{"message":"three"}"#),
        Reply::tool_call("summarize", r#"{"topic":"mcp"}"#),
        Reply::text("Done with the tools."),
    ]);
    let (status, body) = chat(&client(), &server, Some(key), &message("Use four tools.")).await;
    assert_eq!(status, 200, "{body}");
    (mock, server, body)
}

/// Samples of `name` on `server`'s /metrics with these labels, summed (0 when there are none).
async fn count(server: &TestServer, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = scrape(&tests::http_client(), server).await;
    metric(&text, name, labels).unwrap_or(0.0)
}

/// `tools/call` requests to /mcp counted for `subscription`.
async fn mcp_tool_calls(server: &TestServer, subscription: &str) -> f64 {
    count(
        server,
        "mcp_requests_total",
        &[("subscription", subscription), ("method", "tools/call")],
    )
    .await
}

#[tokio::test]
async fn mcp_routing_is_held_to_the_mcp_rate_limit() {
    let (mock, server, body) = four_tool_turn("mcp", "routing-limited", "key-limited").await;
    assert_eq!(body["reply"], "Done with the tools.");
    let calls = tool_calls(&body);
    assert_eq!(calls.len(), 4, "{body}");
    assert!(calls.iter().all(|c| c["routed_via"] == "mcp"), "{body}");
    // The connection's handshake and whoami spend the 2 calls; the rest are refused, and the
    // model is told why in plain words.
    assert_eq!(calls[0]["is_error"], false, "{body}");
    for call in &calls[1..] {
        assert_eq!(call["is_error"], true, "{call}");
        let error = call["result"]["error"].as_str().unwrap();
        assert!(error.contains("rate limit"), "{error}");
        assert!(error.contains("retry after"), "{error}");
    }
    // The model saw the refusals as tool results and still answered.
    assert_eq!(mock.chat_requests().len(), 5);

    let limited = [("subscription", "routing-limited")];
    assert_eq!(
        count(&server, "mcp_rate_limited_total", &limited).await,
        3.0
    );
    let tool_calls_with = |status: &'static str| {
        [
            ("subscription", "routing-limited"),
            ("method", "tools/call"),
            ("status", status),
        ]
    };
    assert_eq!(
        count(&server, "mcp_requests_total", &tool_calls_with("200")).await,
        1.0
    );
    assert_eq!(
        count(&server, "mcp_requests_total", &tool_calls_with("429")).await,
        3.0
    );
}

#[tokio::test]
async fn in_process_routing_is_not_mcp_traffic() {
    let (_mock, server, body) =
        four_tool_turn("in-process", "routing-in-process", "key-in-process").await;
    let calls = tool_calls(&body);
    assert_eq!(calls.len(), 4, "{body}");
    for call in calls {
        assert_eq!(call["is_error"], false, "{call}");
        assert_eq!(call["routed_via"], "in-process", "{call}");
    }
    let subscription = [("subscription", "routing-in-process")];
    assert_eq!(
        count(&server, "mcp_requests_total", &subscription).await,
        0.0
    );
    assert_eq!(
        count(&server, "mcp_rate_limited_total", &subscription).await,
        0.0
    );
}

#[tokio::test]
async fn mcp_routing_calls_tools_with_the_callers_key() {
    // The agent's own key belongs to another subscription: a caller's key comes first.
    let (mock, server) = start_with_mock(&[
        "--tool-routing",
        "mcp",
        "--subscription-keys",
        "routing-caller=key-caller,routing-agent=key-agent",
        "--agent-subscription-key",
        "key-agent",
    ])
    .await;
    mock.push_many([
        Reply::tool_calls([("whoami", "{}"), ("echo", r#"{"message":"hi"}"#)]),
        Reply::text("Hello."),
    ]);

    let (status, body) = chat(&client(), &server, Some("key-caller"), &message("Hi")).await;
    assert_eq!(status, 200, "{body}");
    assert!(tools_succeeded_via(&body, "mcp"), "{body}");
    assert_eq!(mcp_tool_calls(&server, "routing-caller").await, 2.0);
    assert_eq!(mcp_tool_calls(&server, "routing-agent").await, 0.0);
}

#[tokio::test]
async fn open_server_calls_tools_with_the_agents_key() {
    let mock = start_mock().await;
    // The tools live on a keyed server; the agent's server is open, so its callers bring no key.
    let tools =
        TestServer::start(&["--subscription-keys", "routing-agent-only=key-agent-only"]).await;
    let mcp_url = tools.mcp_url();
    let with_key = start_with_model(
        &mock.base_url(),
        &[
            "--tool-routing",
            "mcp",
            "--mcp-url",
            &mcp_url,
            "--agent-subscription-key",
            "key-agent-only",
        ],
    )
    .await;
    mock.push_many([Reply::tool_call("whoami", "{}"), Reply::text("Hello.")]);

    let (status, body) = chat(&client(), &with_key, None, &message("Hi")).await;
    assert_eq!(status, 200, "{body}");
    let calls = tool_calls(&body);
    assert_eq!(calls[0]["is_error"], false, "{body}");
    assert_eq!(calls[0]["routed_via"], "mcp");
    assert_eq!(mcp_tool_calls(&tools, "routing-agent-only").await, 1.0);

    // Without the agent's key the keyed server refuses the calls: a tool error, not a failed turn.
    let without_key = start_with_model(
        &mock.base_url(),
        &["--tool-routing", "mcp", "--mcp-url", &mcp_url],
    )
    .await;
    mock.push_many([Reply::tool_call("whoami", "{}"), Reply::text("No tools.")]);
    let (status, body) = chat(&client(), &without_key, None, &message("Hi")).await;
    assert_eq!(status, 200, "{body}");
    let calls = tool_calls(&body);
    assert_eq!(calls[0]["is_error"], true, "{body}");
    assert!(
        calls[0]["result"]["error"]
            .as_str()
            .unwrap()
            .contains("401"),
        "{body}"
    );
    assert_eq!(body["reply"], "No tools.");
    assert_eq!(mcp_tool_calls(&tools, "routing-agent-only").await, 1.0);
}
