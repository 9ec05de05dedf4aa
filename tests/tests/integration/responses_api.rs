//! The OpenAI Responses API (`/v1/responses` and its Azure forms), translated to the mock's chat
//! completions: answers, the stream event sequence (golden files), function calls, errors in
//! the Responses shape, `unsupported_parameter`, a failure mid-stream, the cache (replayed as a
//! Responses stream, partitioned from chat completions) and the budget under concurrency.

use std::time::Duration;

use mock_upstream::{MockOptions, MockUpstream, Reply};
use serde_json::{Value, json};
use tests::{
    TestServer,
    gateway::{header, header_u64, minute_headroom, post_chat, post_json, start_keyed},
    start_mock, start_with_model,
};

const KEY: &str = "k-responses";

async fn keyed(mock: &MockUpstream, flags: &[&str]) -> TestServer {
    start_keyed(&mock.base_url(), &format!("responses={KEY}"), flags).await
}

async fn post_responses(server: &TestServer, path: &str, body: &Value) -> reqwest::Response {
    post_json(&tests::http_client(), server, path, Some(KEY), body).await
}

/// The events of a Responses stream: `(event name, data)`.
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
            let data: Value = serde_json::from_str(&field("data:")).unwrap();
            (field("event:"), data)
        })
        .collect()
}

#[tokio::test]
async fn a_whole_answer_is_a_response_object_with_the_gateway_headers() {
    let mock = start_mock().await;
    let server = keyed(&mock, &[]).await;
    mock.push(Reply::text("Hello from the Responses API.").with_usage(9, 6));
    let response = post_responses(
        &server,
        "/v1/responses",
        &json!({"model": "gpt-4o-mini", "instructions": "Be brief.", "input": "Say hello",
                "max_output_tokens": 40, "metadata": {"ticket": "T-1"}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-llm-cache-status"), Some("bypass"));
    assert!(header_u64(&response, "x-ratelimit-remaining-tokens") > 0);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "Hello from the Responses API."
    );
    assert_eq!(body["metadata"], json!({"ticket": "T-1"}));
    assert_eq!(body["usage"]["input_tokens"], 9);
    assert_eq!(body["usage"]["output_tokens"], 6);
    let sent = mock.chat_requests()[0].body.clone();
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}])
    );
    assert_eq!(sent["max_tokens"], 40);
    assert!(sent.get("metadata").is_none() && sent.get("input").is_none());
}

#[tokio::test]
async fn the_azure_forms_answer_the_same() {
    let mock = start_mock().await;
    let server = keyed(&mock, &[]).await;
    for path in [
        "/openai/v1/responses",
        "/openai/responses?api-version=2025-04-01-preview",
    ] {
        mock.push(Reply::text("Azure-shaped."));
        let response = post_responses(&server, path, &json!({"input": "hi"})).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["output"][0]["content"][0]["text"], "Azure-shaped.");
    }
}

#[tokio::test]
async fn a_function_call_round_trip() {
    let mock = start_mock().await;
    let server = keyed(&mock, &[]).await;
    let tools = json!([{"type": "function", "name": "get_weather", "description": "Weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    mock.push(Reply::tool_call("get_weather", r#"{"city":"Oslo"}"#));
    let first = post_responses(
        &server,
        "/v1/responses",
        &json!({"input": "Weather in Oslo?", "tools": tools}),
    )
    .await;
    let first: Value = first.json().await.unwrap();
    let call = first["output"][0].clone();
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], r#"{"city":"Oslo"}"#);
    mock.push(Reply::text("Rainy in Oslo."));
    let input = json!([
        {"role": "user", "content": "Weather in Oslo?"},
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "rain, 8 C"}
    ]);
    let second = post_responses(
        &server,
        "/v1/responses",
        &json!({"input": input, "tools": tools}),
    )
    .await;
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["output"][0]["content"][0]["text"], "Rainy in Oslo.");
    let sent = mock.chat_requests()[1].body.clone();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["id"],
        sent["messages"][2]["tool_call_id"]
    );
    assert_eq!(sent["messages"][2]["content"], "rain, 8 C");
}

/// The stream with ids and times blanked, one event a line: what the golden files hold.
fn rendered(events: &[(String, Value)]) -> String {
    fn blank(value: &mut Value) {
        match value {
            Value::String(text) => {
                let generated = ["resp_", "msg_", "fc_"].iter().any(|prefix| {
                    text.strip_prefix(prefix).is_some_and(|rest| {
                        rest.len() == 32 && rest.chars().all(|c| c.is_ascii_hexdigit())
                    })
                });
                if generated {
                    *text = text.split('_').next().unwrap_or("").to_owned() + "_<id>";
                }
            }
            Value::Array(items) => items.iter_mut().for_each(blank),
            Value::Object(fields) => {
                for (key, field) in fields.iter_mut() {
                    if key == "created_at" {
                        *field = json!(0);
                    } else {
                        blank(field);
                    }
                }
            }
            _ => {}
        }
    }
    let mut lines = String::new();
    for (name, data) in events {
        let mut data = data.clone();
        blank(&mut data);
        lines.push_str(&format!("{name} {data}\n"));
    }
    lines
}

fn check_golden(name: &str, rendered: &str) {
    let path = format!("{}/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, rendered).unwrap();
    }
    let golden = std::fs::read_to_string(&path)
        .expect("golden file missing: run with UPDATE_GOLDEN=1 and review it");
    assert_eq!(
        rendered, golden,
        "{name} changed; UPDATE_GOLDEN=1 after review"
    );
}

/// Every event names its type, and sequence numbers count up from 0.
fn assert_well_formed(events: &[(String, Value)]) {
    for (index, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], index);
    }
}

#[tokio::test]
async fn a_streamed_text_answer_matches_the_golden_event_sequence() {
    let mock = start_mock().await;
    let server = keyed(&mock, &[]).await;
    mock.push(Reply::stream(["Streams ", "arrive ", "in pieces."]).with_usage(4, 5));
    let response = post_responses(
        &server,
        "/v1/responses",
        &json!({"model": "gpt-4o-mini", "input": "Stream something", "stream": true}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        header(&response, "content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(header(&response, "x-ratelimit-remaining-tokens").is_some());
    let events = events(response).await;
    assert_well_formed(&events);
    check_golden("responses_text.txt", &rendered(&events));
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "response.completed");
    assert_eq!(done["response"]["usage"]["total_tokens"], 9);
}

#[tokio::test]
async fn a_streamed_function_call_matches_the_golden_event_sequence() {
    let mock = start_mock().await;
    let server = keyed(&mock, &[]).await;
    mock.push(Reply::tool_call("get_weather", r#"{"city":"Oslo"}"#).with_usage(20, 8));
    let body = json!({"input": "Weather in Oslo?", "stream": true, "tools": [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    ]});
    let events = events(post_responses(&server, "/v1/responses", &body).await).await;
    assert_well_formed(&events);
    check_golden("responses_function_call.txt", &rendered(&events));
    let (_, done) = events.last().unwrap();
    assert_eq!(
        done["response"]["output"][0]["arguments"],
        r#"{"city":"Oslo"}"#
    );
}

#[tokio::test]
async fn a_failure_mid_stream_ends_with_response_failed() {
    let mock = start_mock().await;
    let server = keyed(&mock, &["--upstream-attempts", "1"]).await;
    mock.push(Reply::broken_stream(["one ", "two ", "three"], 1));
    let body = json!({"input": "Break please", "stream": true});
    let events = events(post_responses(&server, "/v1/responses", &body).await).await;
    assert_well_formed(&events);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.contains(&"response.output_text.delta"), "{names:?}");
    let (last, failed) = events.last().unwrap();
    assert_eq!(last, "response.failed");
    assert_eq!(failed["response"]["status"], "failed");
    assert_eq!(failed["response"]["error"]["code"], "upstream_failed");
    // No retry after the first byte went out.
    assert_eq!(mock.chat_requests().len(), 1);
}

#[tokio::test]
async fn state_and_hosted_tools_are_refused_in_the_responses_error_shape() {
    let mock = start_mock().await;
    let server = keyed(&mock, &[]).await;
    for (body, param) in [
        (
            json!({"input": "x", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!({"input": "x", "store": true}), "store"),
        (
            json!({"input": "x", "conversation": "conv_1"}),
            "conversation",
        ),
        (
            json!({"input": "x", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
        ),
        (
            json!({"input": "x", "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}),
            "tools[0].type",
        ),
    ] {
        let response = post_responses(&server, "/v1/responses", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "unsupported_parameter", "{error}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert_eq!(error["error"]["param"], param);
        assert!(error["error"]["message"].as_str().unwrap().len() > 10);
    }
    let missing = post_responses(&server, "/v1/responses", &json!({"model": "gpt-4o-mini"})).await;
    assert_eq!(missing.status(), 400);
    let error: Value = missing.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_request");
    assert_eq!(error["error"]["param"], Value::Null);
    let not_json = tests::http_client()
        .post(server.url("/v1/responses"))
        .header("api-key", KEY)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let error: Value = not_json.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(mock.chat_requests().len(), 0);
}

#[tokio::test]
async fn a_budget_refusal_is_a_rate_limit_error_with_retry_after() {
    let mock = start_mock().await;
    let server = keyed(
        &mock,
        &["--tokens-per-minute", "300", "--max-tokens-cap", "100"],
    )
    .await;
    minute_headroom(Duration::from_secs(3)).await;
    mock.push(Reply::text("fine").with_usage(100, 100));
    let first = post_responses(&server, "/v1/responses", &json!({"input": "hi"})).await;
    assert_eq!(first.status(), 200);
    let refused = post_responses(&server, "/v1/responses", &json!({"input": "hi"})).await;
    assert_eq!(refused.status(), 429);
    assert!(header(&refused, "retry-after").is_some());
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_error");
    assert_eq!(error["error"]["code"], "token_budget_exceeded");
}

#[tokio::test]
async fn a_cached_answer_replays_as_a_responses_stream_and_chat_does_not_share_it() {
    let mock = start_mock().await;
    let server = start_with_model(
        &mock.base_url(),
        &["--subscription-keys", &format!("responses={KEY}")],
    )
    .await;
    mock.push(Reply::stream(["Paris is ", "the capital."]));
    let body = json!({"input": "What is the capital of France?", "stream": true});
    let first = post_responses(&server, "/v1/responses", &body).await;
    assert_eq!(header(&first, "x-llm-cache-status"), Some("miss"));
    let first = events(first).await;
    let again = post_responses(&server, "/v1/responses", &body).await;
    assert_eq!(header(&again, "x-llm-cache-status"), Some("hit"));
    let again = events(again).await;
    assert_well_formed(&again);
    let names = |events: &[(String, Value)]| -> Vec<String> {
        events.iter().map(|(name, _)| name.clone()).collect()
    };
    assert_eq!(names(&again).first().unwrap(), "response.created");
    assert_eq!(names(&again).last().unwrap(), "response.completed");
    let text = |events: &[(String, Value)]| {
        events.last().unwrap().1["response"]["output"][0]["content"][0]["text"].clone()
    };
    assert_eq!(text(&again), "Paris is the capital.");
    assert_eq!(text(&again), text(&first));
    assert_eq!(mock.chat_requests().len(), 1);
    // The same question on chat completions is another protocol's partition.
    mock.push(Reply::text("Paris."));
    let chat = post_chat(
        &tests::http_client(),
        &server,
        Some(KEY),
        &json!({"messages": [{"role": "user", "content": "What is the capital of France?"}]}),
    )
    .await;
    assert_eq!(header(&chat, "x-llm-cache-status"), Some("miss"));
    assert_eq!(mock.chat_requests().len(), 2);
}

#[tokio::test]
async fn concurrent_calls_never_overshoot_the_budget() {
    let mock = MockUpstream::start(MockOptions {
        latency: Duration::from_millis(100),
        ..MockOptions::default()
    })
    .await
    .unwrap();
    let limit = 1000;
    let server = keyed(
        &mock,
        // The strict bound: every call reserves its whole allowance.
        &[
            "--tokens-per-minute",
            "1000",
            "--max-tokens-cap",
            "100",
            "--budget-reservation",
            "strict",
        ],
    )
    .await;
    minute_headroom(Duration::from_secs(3)).await;
    for _ in 0..40 {
        mock.push(Reply::text("ok").with_usage(10, 100));
    }
    let calls = (0..40).map(|index| {
        let server = &server;
        async move {
            let body = json!({"input": "hi", "stream": index % 2 == 0});
            let response = post_responses(server, "/v1/responses", &body).await;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text)
        }
    });
    let results = futures::future::join_all(calls).await;
    let admitted = results.iter().filter(|(status, _)| *status == 200).count();
    for (status, text) in &results {
        assert!(
            *status == 200 || (*status == 429 && text.contains("token_budget_exceeded")),
            "{status} {text}"
        );
    }
    assert!(admitted > 0 && admitted < 40, "{admitted} admitted");
    // Every admitted call reached the upstream and spent 110 tokens: the budget held within one
    // reservation (the prompt plus the 100 cap).
    assert_eq!(mock.chat_requests().len(), admitted);
    let spent = admitted as u64 * 110;
    assert!(
        spent <= limit + 120,
        "{admitted} calls spent {spent} of {limit}"
    );
}
