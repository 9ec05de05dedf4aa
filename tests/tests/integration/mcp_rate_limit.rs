//! MCP rate limits: per key, per tool, and `Retry-After` in each configured format.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tests::{TestServer, post_mcp, rpc};

fn echo(id: u64) -> Value {
    rpc(
        id,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "hi"}}),
    )
}

fn summarize(id: u64) -> Value {
    rpc(
        id,
        "tools/call",
        json!({"name": "summarize", "arguments": {"text": "One. Two."}}),
    )
}

/// Spends a 2-call budget, then returns the refusal.
async fn third_call_refused(format: &str) -> reqwest::Response {
    let server = TestServer::start(&[
        "--mcp-rate-limit",
        "2/60",
        "--retry-after-format",
        format,
        "--subscription-keys",
        "alice=ka,bob=kb",
    ])
    .await;
    let client = tests::http_client();
    for id in 0..2 {
        let response = post_mcp(&client, &server, &echo(id), &[("api-key", "ka")]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-limit"], "2");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            (1 - id).to_string().as_str()
        );
    }
    let refused = post_mcp(&client, &server, &echo(3), &[("api-key", "ka")]).await;
    // Another key is not affected by alice's spending.
    let bob = post_mcp(&client, &server, &echo(4), &[("api-key", "kb")]).await;
    assert_eq!(bob.status(), 200);
    refused
}

async fn assert_envelope(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    let retry_after = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    retry_after
}

#[tokio::test]
async fn retry_after_in_seconds() {
    let retry_after = assert_envelope(third_call_refused("seconds").await).await;
    let seconds: u64 = retry_after.parse().unwrap();
    // 2 calls per 60 s replenish one every 30 s.
    assert!((1..=30).contains(&seconds), "{seconds}");
}

#[tokio::test]
async fn retry_after_as_an_http_date() {
    let retry_after = assert_envelope(third_call_refused("http-date").await).await;
    let at = httpdate::parse_http_date(&retry_after).unwrap();
    let now = SystemTime::now();
    assert!(
        at > now - Duration::from_secs(2) && at <= now + Duration::from_secs(31),
        "{retry_after}"
    );
}

#[tokio::test]
async fn retry_after_as_an_iso8601_timestamp() {
    let retry_after = assert_envelope(third_call_refused("iso8601").await).await;
    // 2026-11-24T23:00:07Z
    assert_eq!(retry_after.len(), 20, "{retry_after}");
    assert!(
        retry_after.ends_with('Z') && retry_after.as_bytes()[10] == b'T',
        "{retry_after}"
    );
}

#[tokio::test]
async fn per_tool_limits_hold_while_other_tools_pass() {
    let server = TestServer::start(&[
        "--mcp-rate-limit",
        "100/60",
        "--mcp-tool-rate-limits",
        "summarize=2/60",
    ])
    .await;
    let client = tests::http_client();
    for id in 0..2 {
        let response = post_mcp(&client, &server, &summarize(id), &[]).await;
        assert_eq!(response.status(), 200);
    }
    let refused = post_mcp(&client, &server, &summarize(9), &[]).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["x-ratelimit-scope"], "tool:summarize");
    assert!(refused.headers().contains_key("retry-after"));
    let response = post_mcp(&client, &server, &echo(10), &[]).await;
    assert_eq!(response.status(), 200);
}
