//! `POST /v1/messages` over HTTP: answers and streams in Anthropic's shapes, translated to the
//! OpenAI-compatible mock and through a native Anthropic upstream (the mock's `/v1/messages`);
//! the stream event sequences pinned by golden files; the gateway's headers, governance, cache
//! (partitioned by protocol; a cached answer replays as an Anthropic stream) and ledger;
//! `count_tokens`; the key as `x-api-key`.
//!
//! Regenerate the golden files after an intended change with `UPDATE_GOLDEN=1 cargo test -p
//! tests --test integration anthropic_messages`, and review the diff.

use mock_upstream::{MockUpstream, Reply};
use serde_json::{Value, json};
use tests::{
    TestServer, UPSTREAM_KEY, agent::sse_events, gateway, http_client, start_mock, start_with_model,
};

const KEY: &str = "k-messages";

async fn server(mock: &MockUpstream, native: bool, extra: &[&str]) -> TestServer {
    let anthropic = mock.azure_endpoint();
    let mut flags = vec![
        "--subscription-keys",
        "messages=k-messages",
        "--admin-key",
        "messages-admin",
    ];
    if native {
        flags.extend([
            "--anthropic-base-url",
            anthropic.as_str(),
            "--anthropic-api-key",
            UPSTREAM_KEY,
        ]);
    }
    flags.extend_from_slice(extra);
    start_with_model(&mock.base_url(), &flags).await
}

async fn post(server: &TestServer, path: &str, body: &Value) -> reqwest::Response {
    http_client()
        .post(server.url(path))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn question(text: &str) -> Value {
    json!({
        "model": "claude-test", "max_tokens": 200,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": text}],
    })
}

fn with_tools(mut body: Value) -> Value {
    body["tools"] = json!([{
        "name": "lookup_fact", "description": "Look up a fact.",
        "input_schema": {"type": "object", "properties": {"topic": {"type": "string"}}},
    }]);
    body
}

fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

/// A stream's events as `event: name` and `data: {...}` lines with the ids that vary from run
/// to run replaced, for the golden files.
fn normalized(text: &str) -> String {
    let mut out = String::new();
    for event in sse_events(text) {
        let mut data = event.data;
        if let Some(id) = data.pointer_mut("/message/id") {
            *id = json!("msg_ID");
        }
        if let Some(id) = data.pointer_mut("/content_block/id") {
            *id = json!("toolu_ID");
        }
        out.push_str(&format!("event: {}\ndata: {data}\n\n", event.name));
    }
    out
}

fn assert_golden(name: &str, rendered: &str) {
    let path = format!("{}/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, rendered).unwrap();
    }
    let golden = std::fs::read_to_string(&path)
        .expect("golden file missing: run with UPDATE_GOLDEN=1 and review it");
    assert_eq!(
        rendered, golden,
        "{name} changed; if intended, regenerate it"
    );
}

#[tokio::test]
async fn a_whole_answer_is_an_anthropic_message_with_the_gateways_headers() {
    let mock = start_mock().await;
    let server = server(&mock, false, &["--semantic-cache", "off"]).await;
    mock.push(Reply::text("Slots swap with no downtime.").with_usage(30, 7));
    let mut body = question("Tell me about slots");
    body["max_tokens"] = json!(100_000);
    body["stop_sequences"] = json!(["END"]);
    let response = post(&server, "/v1/messages", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        gateway::header(&response, "x-llm-cache-status"),
        Some("bypass")
    );
    assert!(gateway::header(&response, "x-ratelimit-remaining-tokens").is_some());
    assert_eq!(gateway::header_u64(&response, "x-tokens-consumed"), 37);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Slots swap with no downtime."}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 30, "output_tokens": 7})
    );
    let sent = &mock.chat_requests()[0];
    assert_eq!(
        sent.body["messages"][0],
        json!({"role": "system", "content": "You are terse."})
    );
    assert_eq!(sent.body["stop"], json!(["END"]));
    // Governance caps max_tokens as on chat completions (MAX_TOKENS_CAP, 2000 by default).
    assert_eq!(sent.body["max_tokens"], json!(2000));
    assert!(
        sent.header("x-api-key").is_none(),
        "the caller's key went upstream"
    );
    let report = gateway::usage_report(&http_client(), &server, "messages-admin").await;
    assert_eq!(report["subscriptions"][0]["total_tokens"], 37);
}

#[tokio::test]
async fn tool_use_goes_out_and_tool_results_come_back_translated() {
    let mock = start_mock().await;
    let server = server(&mock, false, &["--semantic-cache", "off"]).await;
    let ask = with_tools(question("What do you know about the semantic cache?"));
    let response = post(&server, "/v1/messages", &ask).await;
    let first: Value = response.json().await.unwrap();
    assert_eq!(first["stop_reason"], "tool_use", "{first}");
    let call = &first["content"][0];
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["input"], json!({"topic": "semantic caching"}));
    let mut follow_up = ask.clone();
    follow_up["messages"] = json!([
        ask["messages"][0],
        {"role": "assistant", "content": first["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "{\"fact\": \"It reuses answers.\"}"}]},
    ]);
    let second: Value = post(&server, "/v1/messages", &follow_up)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["stop_reason"], "end_turn");
    assert!(
        second["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("It reuses answers.")
    );
    let sent = &mock.chat_requests()[1].body["messages"];
    assert_eq!(sent[2]["tool_calls"][0]["id"], call["id"]);
    assert_eq!(
        sent[3],
        json!({"role": "tool", "tool_call_id": call["id"], "content": "{\"fact\": \"It reuses answers.\"}"})
    );
}

/// The normalized stream of `body` from a fresh server, natively or translated.
async fn stream_of(native: bool, body: &Value) -> (String, MockUpstream) {
    let mock = start_mock().await;
    let server = server(&mock, native, &["--semantic-cache", "off"]).await;
    let response = post(&server, "/v1/messages", body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(gateway::content_type(&response), "text/event-stream");
    (normalized(&response.text().await.unwrap()), mock)
}

#[tokio::test]
async fn streamed_text_matches_the_golden_event_sequence() {
    let body = streamed(question("How do health probes work?"));
    let (translated, mock) = stream_of(false, &body).await;
    assert_eq!(mock.chat_requests().len(), 1);
    assert_golden("anthropic_text_stream.txt", &translated);
    let (native, mock) = stream_of(true, &body).await;
    assert_eq!(mock.messages_requests().len(), 1);
    // A native upstream's stream comes out event for event the same.
    assert_golden("anthropic_text_stream.txt", &native);
}

#[tokio::test]
async fn streamed_tool_use_matches_the_golden_event_sequence() {
    let body = streamed(with_tools(question(
        "What do you know about the semantic cache?",
    )));
    let (translated, _) = stream_of(false, &body).await;
    assert!(translated.contains("input_json_delta"));
    assert_golden("anthropic_tool_stream.txt", &translated);
    let (native, _) = stream_of(true, &body).await;
    assert_golden("anthropic_tool_stream.txt", &native);
}

#[tokio::test]
async fn a_native_upstream_gets_the_callers_body_and_headers() {
    let mock = start_mock().await;
    let server = server(&mock, true, &["--semantic-cache", "off"]).await;
    let mut body = question("hi");
    body["system"] = json!([{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    body["top_k"] = json!(4);
    let response = http_client()
        .post(server.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-01-01")
        .header("anthropic-beta", "some-beta-2025")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    assert!(
        message["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("tollgate mock model")
    );
    let sent = &mock.messages_requests()[0];
    assert_eq!(sent.header("anthropic-version"), Some("2023-01-01"));
    assert_eq!(sent.header("anthropic-beta"), Some("some-beta-2025"));
    assert_eq!(sent.header("x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(
        sent.body["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(sent.body["top_k"], json!(4));
    assert!(sent.body.get("thinking").is_none());
    assert!(sent.body.get("anthropic").is_none());
}

#[tokio::test]
async fn a_cached_answer_replays_as_an_anthropic_stream_and_stays_in_its_protocol() {
    let mock = start_mock().await;
    let server = server(&mock, false, &[]).await;
    let body = question("What is a circuit breaker in a gateway?");
    let first = post(&server, "/v1/messages", &body).await;
    assert_eq!(gateway::header(&first, "x-llm-cache-status"), Some("miss"));
    let first: Value = first.json().await.unwrap();
    let replay = post(&server, "/v1/messages", &streamed(body.clone())).await;
    assert_eq!(gateway::header(&replay, "x-llm-cache-status"), Some("hit"));
    let events = sse_events(&replay.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[3].data["delta"]["text"], first["content"][0]["text"]);
    assert_eq!(mock.chat_requests().len(), 1);
    // The same conversation on chat completions is another protocol: no hit.
    let chat = json!({"model": "claude-test", "max_tokens": 200, "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is a circuit breaker in a gateway?"},
    ]});
    let response = http_client()
        .post(server.url("/v1/chat/completions"))
        .header("x-api-key", KEY)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        gateway::header(&response, "x-llm-cache-status"),
        Some("miss")
    );
}

#[tokio::test]
async fn count_tokens_counts_without_calling_or_billing() {
    let mock = start_mock().await;
    let server = server(&mock, false, &[]).await;
    let count = |text: &str| {
        let server = &server;
        let body = json!({"model": "claude-test", "system": "S", "messages": [{"role": "user", "content": text}]});
        async move {
            let response = post(server, "/v1/messages/count_tokens", &body).await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()["input_tokens"]
                .as_u64()
                .unwrap()
        }
    };
    let short = count("hi").await;
    let long = count("hi there, this prompt has quite a few more words in it").await;
    assert!(short > 0 && long > short + 5, "{short} {long}");
    assert!(mock.requests().is_empty());
    let report = gateway::usage_report(&http_client(), &server, "messages-admin").await;
    assert_eq!(report["subscriptions"], json!([]));
}

/// What Claude Code sends (recorded from `claude -p`): system turns among the messages, text
/// blocks with `cache_control`, tools with `defer_loading`, adaptive `thinking`,
/// `context_management`, `output_config`, a JSON `metadata.user_id`, beta headers and
/// `?beta=true`. Accepted, translated where chat has a place for it, dropped where not.
#[tokio::test]
async fn claude_codes_extra_fields_are_accepted() {
    let mock = start_mock().await;
    let server = server(&mock, false, &["--semantic-cache", "off"]).await;
    let body = json!({
        "model": "claude-opus-5-5", "max_tokens": 128_000, "stream": true,
        "system": [{"type": "text", "text": "You are Claude Code."}, {"type": "text", "text": "Be careful.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>ctx</system-reminder>"}, {"type": "text", "text": "hello there"}]},
            {"role": "system", "content": [{"type": "text", "text": "Mode: default", "cache_control": {"type": "ephemeral"}}]},
        ],
        "tools": [
            {"name": "Bash", "description": "Runs a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "$schema": "http://json-schema.org/draft-07/schema#", "additionalProperties": false}},
            {"name": "Later", "description": "Deferred", "input_schema": {"type": "object"}, "defer_loading": true},
        ],
        "metadata": {"user_id": "{\"device_id\":\"d\",\"session_id\":\"s\"}"},
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium"},
    });
    let response = http_client()
        .post(server.url("/v1/messages?beta=true"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header(
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14",
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap().name, "message_stop");
    let sent = &mock.chat_requests()[0].body;
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "You are Claude Code.\n\nBe careful."})
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "system", "content": "Mode: default"})
    );
    assert_eq!(sent["tools"].as_array().unwrap().len(), 2);
    for dropped in [
        "thinking",
        "context_management",
        "output_config",
        "metadata",
        "anthropic",
    ] {
        assert!(sent.get(dropped).is_none(), "{dropped} went upstream");
    }
}

/// A native upstream goes through the same machinery as the chat one: an overloaded answer
/// (529) is retried, and a pool fails over past a backend that is down.
#[tokio::test]
async fn a_native_upstream_pool_retries_and_fails_over() {
    let mock = start_mock().await;
    let (dead, dead_addr) = tests::bind_loopback().await;
    drop(dead);
    let pool = format!("http://{dead_addr},{}", mock.azure_endpoint());
    let server = start_with_model(
        &mock.base_url(),
        &[
            "--subscription-keys",
            "messages=k-messages",
            "--semantic-cache",
            "off",
            "--anthropic-base-url",
            &pool,
            "--upstream-attempts",
            "2",
            "--upstream-backoff-ms",
            "1",
        ],
    )
    .await;
    mock.push(Reply::status(529));
    mock.push(Reply::text("Back again."));
    let response = post(&server, "/v1/messages", &question("hi")).await;
    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["content"][0]["text"], "Back again.");
    assert_eq!(mock.messages_requests().len(), 2, "the 529 was not retried");
}
