//! `/health`, `/` and `/metrics`.

use serde_json::{Value, json};
use tests::{
    TestServer,
    gateway::{content_type, metric, scrape},
    post_mcp, rpc,
};

#[tokio::test]
async fn health_reports_identity_and_configuration() {
    let server =
        TestServer::start(&["--instance-id", "inst-health", "--tool-routing", "mcp"]).await;
    let body: Value = reqwest::get(server.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["instance_id"], "inst-health");
    assert_eq!(body["tool_routing"], "mcp");
    assert_eq!(body["state_store"], "memory");
    assert_eq!(body["model_configured"], false);
    assert!(body["version"].is_string());
    // No model: no tokenizer is built; the cache's tables and the tool catalog are.
    assert_eq!(body["warmed"], json!(["cache_tables", "tool_catalog"]));
}

/// Everything the first model call would build lazily is built before `/health` answers, so the
/// first call is as fast as the next ones.
#[tokio::test]
async fn what_the_first_call_needs_is_built_before_health_answers() {
    let mock = tests::start_mock().await;
    let server = tests::start_with_model(&mock.base_url(), &[]).await;
    let body: Value = reqwest::get(server.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // gpt-4o-mini counts with o200k, text-embedding-3-small with cl100k; the semantic cache's
    // tables and the tool catalog too.
    assert_eq!(
        body["warmed"],
        json!(["o200k_base", "cl100k_base", "cache_tables", "tool_catalog"]),
        "{body}"
    );
}

#[tokio::test]
async fn index_page_lists_instance_endpoint_and_tools() {
    let server = TestServer::start(&["--instance-id", "inst-<page>"]).await;
    let response = reqwest::get(server.url("/")).await.unwrap();
    assert!(content_type(&response).starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.contains("inst-&lt;page&gt;"), "instance id is escaped");
    assert!(page.contains(&format!("http://{}/mcp", server.addr)));
    for tool in tools::catalog() {
        assert!(page.contains(tool.name));
    }
}

#[tokio::test]
async fn metrics_count_mcp_requests_by_method_and_tool() {
    let server = TestServer::start(&["--subscription-keys", "metrics-sub=k"]).await;
    let client = tests::http_client();
    let call = rpc(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "m"}}),
    );
    for _ in 0..3 {
        let response = post_mcp(&client, &server, &call, &[("api-key", "k")]).await;
        assert_eq!(response.status(), 200);
    }
    let text = scrape(&client, &server).await;
    let echo_calls = [
        ("method", "tools/call"),
        ("tool", "echo"),
        ("subscription", "metrics-sub"),
        ("status", "200"),
    ];
    assert_eq!(
        metric(&text, "mcp_requests_total", &echo_calls),
        Some(3.0),
        "mcp_requests_total for echo in:\n{text}"
    );
    assert!(text.contains("mcp_request_duration_seconds_bucket{"));
    // Other tests in this process share the registry, and upstream addresses (server_address)
    // are loopback too: only the client-facing series must not carry the caller's IP.
    let client_ip_series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("mcp_") && l.contains("127.0.0.1"))
        .collect();
    assert!(
        client_ip_series.is_empty(),
        "client IPs never become labels: {client_ip_series:?}"
    );
}
