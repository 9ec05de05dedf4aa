//! A Messages stream that fails after its first bytes ends with Anthropic's `error` event, never
//! a silent cut nor a clean end; nothing is retried once bytes went to the client, and what was
//! generated is still charged.

use mock_upstream::{MockUpstream, Reply};
use serde_json::{Value, json};
use tests::{
    TestServer, UPSTREAM_KEY, agent::sse_events, gateway, http_client, start_mock, start_with_model,
};

async fn server(mock: &MockUpstream, native: bool) -> TestServer {
    let anthropic = mock.azure_endpoint();
    let mut flags = vec![
        "--subscription-keys",
        "cut=k-cut",
        "--admin-key",
        "cut-admin",
        "--semantic-cache",
        "off",
    ];
    if native {
        flags.extend([
            "--anthropic-base-url",
            anthropic.as_str(),
            "--anthropic-api-key",
            UPSTREAM_KEY,
        ]);
    }
    start_with_model(&mock.base_url(), &flags).await
}

/// Streams a question whose answer breaks off after two deltas; the events received.
async fn broken_stream(mock: &MockUpstream, server: &TestServer) -> Vec<(String, Value)> {
    mock.push(Reply::Stream {
        deltas: vec!["one ".into(), "two ".into(), "three".into()],
        fail_after: Some(2),
    });
    let body = json!({"model": "claude-test", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "count"}]});
    let response = http_client()
        .post(server.url("/v1/messages"))
        .header("x-api-key", "k-cut")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    sse_events(&response.text().await.unwrap())
        .into_iter()
        .map(|event| (event.name, event.data))
        .collect()
}

fn assert_ends_in_an_error(events: &[(String, Value)]) -> &Value {
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "error"
        ]
    );
    let texts: Vec<&Value> = events[3..5]
        .iter()
        .map(|(_, data)| &data["delta"]["text"])
        .collect();
    assert_eq!(texts, [&json!("one "), &json!("two ")]);
    let error = &events[5].1;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "api_error");
    error
}

async fn assert_charged(server: &TestServer) {
    let report = gateway::usage_report(&http_client(), server, "cut-admin").await;
    let row = &report["subscriptions"][0];
    assert_eq!(row["name"], "cut");
    assert!(row["completion_tokens"].as_u64().unwrap() > 0, "{report}");
}

#[tokio::test]
async fn a_translated_stream_cut_by_the_upstream_ends_with_an_error_event() {
    let mock = start_mock().await;
    let server = server(&mock, false).await;
    let events = broken_stream(&mock, &server).await;
    assert_ends_in_an_error(&events);
    assert_eq!(
        mock.chat_requests().len(),
        1,
        "retried after the first byte"
    );
    assert_charged(&server).await;
}

#[tokio::test]
async fn a_native_streams_error_event_is_passed_on_as_one() {
    let mock = start_mock().await;
    let server = server(&mock, true).await;
    let events = broken_stream(&mock, &server).await;
    let error = assert_ends_in_an_error(&events);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded")
    );
    assert_eq!(
        mock.messages_requests().len(),
        1,
        "retried after the first byte"
    );
    assert_charged(&server).await;
}
