//! `RESPONSES_UPSTREAM=native`: `/v1/responses` passed to the upstream's own Responses API (the
//! mock's `/v1/responses`) under the same policies: the caller's body goes upstream with the
//! governed limit and `store: false`, the upstream's answer comes back as it is, streams are
//! metered and reconciled from `response.completed`, and a failure mid-stream still ends with
//! `response.failed`.

use mock_upstream::{MockUpstream, Reply};
use serde_json::{Value, json};
use tests::{
    TestServer,
    gateway::{header, post_json, start_keyed, usage_report},
    start_mock,
};

const KEY: &str = "k-native";
const ADMIN: &str = "k-native-admin";

async fn native_server(mock: &MockUpstream, flags: &[&str]) -> TestServer {
    let mut all = vec![
        "--responses-upstream",
        "native",
        "--admin-key",
        ADMIN,
        "--max-tokens-cap",
        "100",
    ];
    all.extend_from_slice(flags);
    start_keyed(&mock.base_url(), &format!("responses-native={KEY}"), &all).await
}

async fn post(server: &TestServer, body: &Value) -> reqwest::Response {
    post_json(
        &tests::http_client(),
        server,
        "/v1/responses",
        Some(KEY),
        body,
    )
    .await
}

/// `(event name, data)` of each event.
async fn events(response: reqwest::Response) -> Vec<(String, Value)> {
    let body = response.text().await.unwrap();
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .map(|v| v.trim_start().to_owned())
                    .unwrap()
            };
            (
                field("event:"),
                serde_json::from_str(&field("data:")).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_whole_answer_is_the_upstreams_own_and_is_charged() {
    let mock = start_mock().await;
    let server = native_server(&mock, &[]).await;
    mock.push(Reply::text("Native hello.").with_usage(9, 6));
    let body = json!({"input": [{"role": "user", "content": "Say hello"}],
                      "max_output_tokens": 5000, "metadata": {"k": "v"}, "truncation": "auto"});
    let response = post(&server, &body).await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "x-ratelimit-remaining-tokens").is_some());
    let answer: Value = response.json().await.unwrap();
    assert!(answer["id"].as_str().unwrap().starts_with("resp_mock"));
    assert_eq!(answer["output"][0]["content"][0]["text"], "Native hello.");
    assert!(mock.chat_requests().is_empty());
    let sent = &mock.responses_requests()[0].body;
    // The caller's body, with the model resolved, the limit governed and nothing stored.
    assert_eq!(sent["input"], body["input"]);
    assert_eq!(sent["truncation"], "auto");
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["max_output_tokens"], 100);
    assert_eq!(sent["store"], false);
    let report = usage_report(&tests::http_client(), &server, ADMIN).await;
    let row = &report["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == "responses-native")
        .cloned()
        .unwrap();
    assert_eq!(row["total_tokens"], 15);
}

#[tokio::test]
async fn a_streamed_function_call_passes_through_and_reconciles() {
    let mock = start_mock().await;
    let server = native_server(&mock, &[]).await;
    mock.push(Reply::tool_call("get_weather", r#"{"city":"Oslo"}"#).with_usage(20, 8));
    let body = json!({"input": "Weather in Oslo?", "stream": true, "tools": [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    ]});
    let events = events(post(&server, &body).await).await;
    for (index, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], index);
    }
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "response.completed");
    let call = &done["response"]["output"][0];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["call_id"], "call_mock1_0");
    assert_eq!(call["arguments"], r#"{"city":"Oslo"}"#);
    assert_eq!(done["response"]["usage"]["total_tokens"], 28);
    assert_eq!(mock.responses_requests()[0].body["stream"], true);
}

#[tokio::test]
async fn a_streamed_text_and_a_failure_mid_stream() {
    let mock = start_mock().await;
    let server = native_server(&mock, &["--upstream-attempts", "1"]).await;
    mock.push(Reply::stream(["Native ", "streams ", "work."]).with_usage(4, 5));
    let whole = events(post(&server, &json!({"input": "Stream", "stream": true})).await).await;
    let (last, done) = whole.last().unwrap();
    assert_eq!(last, "response.completed");
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "Native streams work."
    );
    assert_eq!(done["response"]["usage"]["total_tokens"], 9);

    mock.push(Reply::broken_stream(["one ", "two ", "three"], 1));
    let broken = events(post(&server, &json!({"input": "Break", "stream": true})).await).await;
    let (last, failed) = broken.last().unwrap();
    assert_eq!(last, "response.failed");
    assert_eq!(failed["response"]["error"]["code"], "upstream_failed");
    assert_eq!(mock.responses_requests().len(), 2);
}

#[tokio::test]
async fn unsupported_parameters_are_refused_before_the_upstream() {
    let mock = start_mock().await;
    let server = native_server(&mock, &[]).await;
    let refused = post(
        &server,
        &json!({"input": "x", "tools": [{"type": "file_search"}]}),
    )
    .await;
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "unsupported_parameter");
    assert!(mock.requests().is_empty());
}
