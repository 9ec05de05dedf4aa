//! The mock upstream over a real socket, driven with reqwest.

use std::time::{Duration, Instant};

use mock_upstream::{MockOptions, MockUpstream, Reply};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TOOLS: [&str; 4] = ["whoami", "echo", "lookup_fact", "summarize"];

/// reqwest is built without a default TLS crypto provider (the workspace compiles only ring),
/// so one is installed before a client is built.
fn client() -> reqwest::Client {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::new()
}

async fn start() -> std::io::Result<MockUpstream> {
    MockUpstream::start(MockOptions::default()).await
}

fn tools() -> Value {
    TOOLS
        .iter()
        .map(|name| {
            json!({"type": "function", "function": {"name": name, "parameters": {"type": "object"}}})
        })
        .collect()
}

fn user(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
}

async fn post(mock: &MockUpstream, path: &str, body: &Value) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}{path}", mock.azure_endpoint()))
        .json(body)
        .send()
        .await
}

async fn post_json(mock: &MockUpstream, body: &Value) -> Result<Value, Box<dyn std::error::Error>> {
    let response = post(mock, "/v1/chat/completions", body).await?;
    assert_eq!(response.status(), 200);
    Ok(response.json().await?)
}

/// The `data:` payloads of an SSE body, in order (including `[DONE]`).
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("not an SSE data event: {event:?}"))
        })
        .collect()
}

fn chunks(data: &[String]) -> Result<Vec<Value>, serde_json::Error> {
    data.iter()
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data))
        .collect()
}

fn streamed_content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect()
}

#[tokio::test]
async fn text_reply_has_the_chat_completion_shape() -> TestResult {
    let mock = start().await?;
    mock.push(Reply::text("Hello there, friend."));
    let body = post_json(&mock, &user("hi")).await?;
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-"))
    );
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().is_some_and(|created| created > 0));
    assert_eq!(body["model"], "gpt-4o-mini");
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Hello there, friend.");
    assert!(choice["message"].get("tool_calls").is_none());
    assert_eq!(choice["finish_reason"], "stop");
    // "hi" is 2 chars → 1 token; the answer is 20 chars → 5 tokens.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6})
    );
    Ok(())
}

#[tokio::test]
async fn tool_call_reply_has_null_content_and_tool_calls() -> TestResult {
    let mock = start().await?;
    mock.push(Reply::tool_calls([
        ("whoami", "{}"),
        ("echo", r#"{"message":"x"}"#),
    ]));
    mock.push(Reply::ToolCalls {
        content: Some("Let me check.".into()),
        calls: vec![("whoami".into(), "{}".into())],
    });
    let body = post_json(&mock, &user("hi")).await?;
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let calls = message["tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(calls.len(), 2);
    assert!(
        calls[0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_"))
    );
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(
        calls[0]["function"],
        json!({"name": "whoami", "arguments": "{}"})
    );
    assert_eq!(calls[1]["function"]["arguments"], r#"{"message":"x"}"#);

    let body = post_json(&mock, &user("hi")).await?;
    assert_eq!(body["choices"][0]["message"]["content"], "Let me check.");
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "whoami"
    );
    Ok(())
}

#[tokio::test]
async fn streamed_text_is_valid_sse_with_done_and_no_usage_by_default() -> TestResult {
    let mock = start().await?;
    let text = "one two three four five six seven eight nine";
    mock.push(Reply::text(text));
    let mut request = user("hi");
    request["stream"] = json!(true);
    let response = post(&mock, "/v1/chat/completions", &request).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let data = sse_data(&response.text().await?);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks = chunks(&data)?;
    assert!(
        chunks.len() >= 4,
        "role chunk, several word chunks, finish chunk"
    );
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert!(chunk.get("usage").is_none());
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(streamed_content(&chunks), text);
    let last = &chunks[chunks.len() - 1];
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|chunk| chunk["choices"][0]["finish_reason"].is_null())
    );
    Ok(())
}

#[tokio::test]
async fn streamed_usage_chunk_only_with_include_usage() -> TestResult {
    let mock = start().await?;
    mock.push(Reply::stream(["Hel", "lo"]).with_usage(11, 22));
    let mut request = user("hi");
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let response = post(&mock, "/v1/chat/completions", &request).await?;
    let data = sse_data(&response.text().await?);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks = chunks(&data)?;
    assert_eq!(streamed_content(&chunks), "Hello");
    let usage_chunk = &chunks[chunks.len() - 1];
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33})
    );
    // Every other chunk carries `"usage": null`, as OpenAI does.
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|chunk| chunk["usage"].is_null())
    );
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    Ok(())
}

#[tokio::test]
async fn streamed_tool_calls_carry_index_id_name_and_arguments() -> TestResult {
    let mock = start().await?;
    mock.push(Reply::tool_calls([
        ("whoami", "{}"),
        ("lookup_fact", r#"{"topic":"mcp"}"#),
    ]));
    let mut request = user("hi");
    request["stream"] = json!(true);
    let response = post(&mock, "/v1/chat/completions", &request).await?;
    let data = sse_data(&response.text().await?);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks = chunks(&data)?;
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for chunk in &chunks {
        for delta in chunk["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = delta["index"].as_u64().ok_or("index")? as usize;
            if let Some(id) = delta["id"].as_str() {
                assert_eq!(delta["type"], "function");
                assert_eq!(index, calls.len());
                let name = delta["function"]["name"].as_str().ok_or("name")?;
                calls.push((id.to_owned(), name.to_owned(), String::new()));
            }
            let arguments = delta["function"]["arguments"].as_str().unwrap_or_default();
            calls[index].2.push_str(arguments);
        }
    }
    let names: Vec<(&str, &str)> = calls
        .iter()
        .map(|(_, name, arguments)| (name.as_str(), arguments.as_str()))
        .collect();
    assert_eq!(
        names,
        [("whoami", "{}"), ("lookup_fact", r#"{"topic":"mcp"}"#)]
    );
    assert_eq!(
        chunks[chunks.len() - 1]["choices"][0]["finish_reason"],
        "tool_calls"
    );
    Ok(())
}

#[tokio::test]
async fn broken_stream_drops_the_connection_before_done() -> TestResult {
    let mock = start().await?;
    mock.push(Reply::broken_stream(["a", "b", "c", "d"], 2));
    let mut request = user("hi");
    request["stream"] = json!(true);
    let mut response = post(&mock, "/v1/chat/completions", &request).await?;
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let failure = loop {
        match response.chunk().await {
            Ok(Some(bytes)) => received.extend_from_slice(&bytes),
            Ok(None) => break None,
            Err(err) => break Some(err),
        }
    };
    assert!(failure.is_some(), "the client must see the stream break");
    let text = String::from_utf8(received)?;
    assert!(!text.contains("[DONE]"));
    let data = sse_data(&text);
    let chunks = chunks(&data)?;
    assert_eq!(streamed_content(&chunks), "ab");
    assert!(
        chunks
            .iter()
            .all(|chunk| chunk["choices"][0]["finish_reason"].is_null())
    );

    // The server survives it.
    assert_eq!(
        post(&mock, "/v1/chat/completions", &user("hi"))
            .await?
            .status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn a_flood_ignores_max_tokens_and_counts_readers_that_leave() -> TestResult {
    let mock = start().await?;
    mock.push(Reply::flood(" word", 1_000));
    let mut request = user("hi");
    request["stream"] = json!(true);
    request["max_tokens"] = json!(5);
    let text = post(&mock, "/v1/chat/completions", &request)
        .await?
        .text()
        .await?;
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks = chunks(&data)?;
    assert_eq!(streamed_content(&chunks), " word".repeat(1_000));
    assert_eq!(mock.dropped_streams(), 0, "read to the end");

    // A reader that leaves mid-flood is counted once the server notices.
    mock.push(Reply::flood(" word", 10_000_000));
    let mut response = post(&mock, "/v1/chat/completions", &request).await?;
    assert!(response.chunk().await?.is_some());
    drop(response);
    tokio::time::timeout(Duration::from_secs(10), mock.dropped_streams_reach(1)).await?;
    assert_eq!(mock.dropped_streams(), 1);

    // Not streamed: one completion of every delta.
    mock.push(Reply::flood("ab", 3));
    let body = post_json(&mock, &user("hi")).await?;
    assert_eq!(body["choices"][0]["message"]["content"], "ababab");
    Ok(())
}

#[tokio::test]
async fn status_reply_has_openai_error_body_and_retry_after() -> TestResult {
    let mock = start().await?;
    mock.push(
        Reply::status(429)
            .with_retry_after(2)
            .with_message("Slow down."),
    );
    mock.push(Reply::status(503));
    let response = post(&mock, "/v1/chat/completions", &user("hi")).await?;
    assert_eq!(response.status(), 429);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["message"], "Slow down.");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(body["error"]["type"].is_string());

    let response = post(&mock, "/v1/chat/completions", &user("hi")).await?;
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_none());
    let body: Value = response.json().await?;
    assert!(body["error"]["message"].is_string());
    Ok(())
}

#[tokio::test]
async fn delay_holds_the_answer_long_enough_to_time_out() -> TestResult {
    let mock = start().await?;
    mock.push(Reply::text("late").delayed(Duration::from_secs(30)));
    mock.push(Reply::text("soon").delayed(Duration::from_millis(30)));
    let result = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .timeout(Duration::from_millis(150))
        .json(&user("hi"))
        .send()
        .await;
    assert!(result.is_err_and(|err| err.is_timeout()));

    let started = Instant::now();
    let body = post_json(&mock, &user("hi")).await?;
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(body["choices"][0]["message"]["content"], "soon");
    Ok(())
}

#[tokio::test]
async fn scripted_replies_are_fifo_then_the_default_applies() -> TestResult {
    let mock = start().await?;
    mock.push_many([Reply::text("first"), Reply::text("second")]);
    assert_eq!(mock.pending_replies(), 2);
    let mut contents = Vec::new();
    for _ in 0..3 {
        let body = post_json(&mock, &user("What time is it")).await?;
        contents.push(
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(contents[..2], ["first", "second"]);
    assert!(
        contents[2].starts_with("You asked: \"What time is it\"."),
        "{}",
        contents[2]
    );
    assert_eq!(mock.pending_replies(), 0);
    Ok(())
}

#[tokio::test]
async fn requests_are_recorded_with_headers_and_body() -> TestResult {
    let mock = start().await?;
    client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth("sk-upstream")
        .json(&user("hello"))
        .send()
        .await?;
    client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    reqwest::get(format!("{}/models", mock.base_url())).await?;
    assert_eq!(mock.request_count(), 3);
    let requests = mock.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer sk-upstream")
    );
    assert_eq!(requests[0].body["messages"][0]["content"], "hello");
    assert_eq!(requests[1].body, Value::Null);
    assert_eq!(requests[2].method, "GET");
    assert_eq!(mock.chat_requests().len(), 2);

    mock.clear();
    assert_eq!(mock.request_count(), 0);
    assert!(mock.requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn invalid_json_is_a_400_openai_error() -> TestResult {
    let mock = start().await?;
    for path in ["/v1/chat/completions", "/v1/embeddings"] {
        let response = client()
            .post(format!("{}{path}", mock.azure_endpoint()))
            .body("{\"messages\": [")
            .send()
            .await?;
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await?;
        assert!(body["error"]["message"].is_string());
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    let response = post(&mock, "/v1/chat/completions", &json!({"model": "x"})).await?;
    assert_eq!(response.status(), 400);
    Ok(())
}

#[tokio::test]
async fn default_script_calls_tools_then_cites_the_instance() -> TestResult {
    let mock = start().await?;
    let question = "How do deployment slots work? Please summarize.";
    let mut request = user(question);
    request["tools"] = tools();
    let body = post_json(&mock, &request).await?;
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let calls = choice["message"]["tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let named: Vec<(String, Value)> = calls
        .iter()
        .map(|call| {
            let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
            (
                call["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                serde_json::from_str(arguments).unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            ("whoami".to_owned(), json!({})),
            (
                "lookup_fact".to_owned(),
                json!({"topic": "deployment slots"})
            ),
            ("summarize".to_owned(), json!({"topic": "deployment slots"})),
        ]
    );

    // The agent answers the calls; the model then cites the results.
    let mut messages = vec![
        json!({"role": "user", "content": question}),
        json!({"role": "assistant", "content": null, "tool_calls": calls}),
    ];
    let results = [
        json!({"instance_id": "inst-42", "user": "anonymous"}),
        json!({"topic": "deployment slots", "fact": "Slots swap without downtime.", "instance_id": "inst-42"}),
        json!({"summary": "Slots are live apps.", "instance_id": "inst-42"}),
    ];
    for (call, result) in calls.iter().zip(&results) {
        messages.push(
            json!({"role": "tool", "tool_call_id": call["id"], "content": result.to_string()}),
        );
    }
    let request = json!({"model": "gpt-4o-mini", "messages": messages, "tools": tools()});
    let body = post_json(&mock, &request).await?;
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    let text = choice["message"]["content"].as_str().unwrap_or_default();
    assert!(text.contains("Served by instance inst-42."), "{text}");
    assert!(text.contains("Slots swap without downtime."), "{text}");
    Ok(())
}

#[tokio::test]
async fn default_script_streams_too() -> TestResult {
    let mock = start().await?;
    let mut request = user("echo the cache please");
    request["tools"] = tools();
    request["stream"] = json!(true);
    let response = post(&mock, "/v1/chat/completions", &request).await?;
    let data = sse_data(&response.text().await?);
    let chunks = chunks(&data)?;
    let names: Vec<&str> = chunks
        .iter()
        .flat_map(|chunk| {
            chunk["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(|call| call["function"]["name"].as_str())
        .collect();
    assert_eq!(names, ["whoami", "lookup_fact", "echo"]);
    Ok(())
}

#[tokio::test]
async fn azure_route_uses_the_deployment_as_model() -> TestResult {
    let mock = start().await?;
    let response = client()
        .post(format!(
            "{}/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21",
            mock.azure_endpoint()
        ))
        .header("api-key", "azure-secret")
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(body["model"], "my-gpt");
    assert_eq!(body["object"], "chat.completion");
    let recorded = mock.chat_requests();
    assert_eq!(
        recorded[0].path,
        "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(recorded[0].header("api-key"), Some("azure-secret"));

    let response = post(
        &mock,
        "/openai/deployments/emb/embeddings?api-version=2024-10-21",
        &json!({"input": "hello"}),
    )
    .await?;
    let body: Value = response.json().await?;
    assert_eq!(body["model"], "emb");
    assert_eq!(mock.embedding_requests().len(), 1);
    Ok(())
}

fn vector(body: &Value, index: usize) -> Vec<f64> {
    body["data"][index]["embedding"]
        .as_array()
        .map(|values| values.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn embeddings_are_deterministic_normalized_and_similar_for_similar_texts() -> TestResult {
    let mock = start().await?;
    let texts = json!([
        "How do deployment slots work?",
        "How do deployment slots work?",
        "how does a deployment slot work",
        "Bake a chocolate cake",
    ]);
    let response = post(
        &mock,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": texts}),
    )
    .await?;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "text-embedding-3-small");
    assert!(
        body["usage"]["prompt_tokens"]
            .as_u64()
            .is_some_and(|tokens| tokens > 0)
    );
    assert_eq!(
        body["usage"]["prompt_tokens"],
        body["usage"]["total_tokens"]
    );
    for index in 0..4 {
        assert_eq!(body["data"][index]["object"], "embedding");
        assert_eq!(body["data"][index]["index"], index);
        let v = vector(&body, index);
        assert_eq!(v.len(), 64);
        assert!((dot(&v, &v) - 1.0).abs() < 1e-4);
    }
    let [a, b, c, d] = [0, 1, 2, 3].map(|index| vector(&body, index));
    assert_eq!(a, b);
    assert!(
        dot(&a, &c) > dot(&a, &d) + 0.2,
        "{} vs {}",
        dot(&a, &c),
        dot(&a, &d)
    );

    // A single string gives the same vector again, and `dimensions` is honoured.
    let single: Value = post(
        &mock,
        "/v1/embeddings",
        &json!({"input": "How do deployment slots work?"}),
    )
    .await?
    .json()
    .await?;
    assert_eq!(vector(&single, 0), a);
    let sized: Value = post(
        &mock,
        "/v1/embeddings",
        &json!({"input": "x", "dimensions": 8}),
    )
    .await?
    .json()
    .await?;
    assert_eq!(vector(&sized, 0).len(), 8);
    Ok(())
}

#[tokio::test]
async fn embeddings_have_their_own_script_queue() -> TestResult {
    let mock = start().await?;
    mock.push(Reply::text("chat answer"));
    mock.push_embeddings(Reply::status(500));
    let response = post(&mock, "/v1/embeddings", &json!({"input": "x"})).await?;
    assert_eq!(response.status(), 500);
    let response = post(&mock, "/v1/embeddings", &json!({"input": "x"})).await?;
    assert_eq!(response.status(), 200);
    let body = post_json(&mock, &user("hi")).await?;
    assert_eq!(body["choices"][0]["message"]["content"], "chat answer");
    Ok(())
}

#[tokio::test]
async fn models_lists_the_configured_model() -> TestResult {
    let mock = MockUpstream::start(MockOptions {
        model: "mock-model".into(),
        ..MockOptions::default()
    })
    .await?;
    let body: Value = reqwest::get(format!("{}/models", mock.base_url()))
        .await?
        .json()
        .await?;
    assert_eq!(body["object"], "list");
    assert_eq!(
        body["data"][0],
        json!({"id": "mock-model", "object": "model", "created": 1_700_000_000, "owned_by": "tollgate-mock"})
    );
    // Without a model in the request, the configured one is reported.
    let body = post_json(
        &mock,
        &json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await?;
    assert_eq!(body["model"], "mock-model");
    Ok(())
}

#[tokio::test]
async fn injected_failures_hit_every_nth_chat_request_and_keep_the_script() -> TestResult {
    let mock = MockUpstream::start(MockOptions {
        fail_429_every: Some(2),
        fail_500_every: Some(3),
        ..MockOptions::default()
    })
    .await?;
    mock.push_many([Reply::text("a"), Reply::text("b"), Reply::text("c")]);
    let mut statuses = Vec::new();
    let mut contents = Vec::new();
    for _ in 0..6 {
        let response = post(&mock, "/v1/chat/completions", &user("hi")).await?;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert_eq!(
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
                Some("1")
            );
        }
        let body: Value = response.json().await?;
        if let Some(content) = body["choices"][0]["message"]["content"].as_str() {
            contents.push(content.to_owned());
        }
    }
    assert_eq!(statuses, [200, 429, 500, 429, 200, 429]);
    assert_eq!(contents, ["a", "b"]);
    assert_eq!(mock.pending_replies(), 1);
    Ok(())
}

#[tokio::test]
async fn raw_json_and_raw_sse_are_sent_verbatim() -> TestResult {
    let mock = start().await?;
    let legacy = json!({"choices": [{"message": {"role": "assistant", "function_call": {"name": "whoami", "arguments": "{}"}}, "finish_reason": "function_call"}]});
    mock.push(Reply::raw_json(legacy.clone()));
    mock.push(Reply::RawSse(vec![
        "{\"choices\":[]}".into(),
        "not json".into(),
    ]));
    assert_eq!(post_json(&mock, &user("hi")).await?, legacy);
    let mut request = user("hi");
    request["stream"] = json!(true);
    let text = post(&mock, "/v1/chat/completions", &request)
        .await?
        .text()
        .await?;
    assert_eq!(text, "data: {\"choices\":[]}\n\ndata: not json\n\n");
    Ok(())
}

#[tokio::test]
async fn broken_stream_breaks_a_non_streamed_request_and_whole_stream_joins() -> TestResult {
    let mock = start().await?;
    mock.push(Reply::broken_stream(["a", "b"], 1));
    mock.push(Reply::stream(["Hel", "lo"]));
    let response = post(&mock, "/v1/chat/completions", &user("hi")).await?;
    assert!(response.json::<Value>().await.is_err());
    let body = post_json(&mock, &user("hi")).await?;
    assert_eq!(body["choices"][0]["message"]["content"], "Hello");
    Ok(())
}

#[tokio::test]
async fn latency_option_delays_every_answer() -> TestResult {
    let mock = MockUpstream::start(MockOptions {
        latency: Duration::from_millis(25),
        ..MockOptions::default()
    })
    .await?;
    let started = Instant::now();
    post_json(&mock, &user("hi")).await?;
    post(&mock, "/v1/embeddings", &json!({"input": "x"})).await?;
    assert!(started.elapsed() >= Duration::from_millis(50));
    Ok(())
}
