//! The OpenAI-compatible endpoint as callers and upstreams see it: what reaches the upstream
//! (governed max_tokens, unknown fields untouched, the gateway's key and never the caller's),
//! the Azure-style routes, malformed bodies, relayed upstream refusals, the response headers,
//! and a server with no model configured.

use mock_upstream::{MockUpstream, RecordedRequest, Reply};
use serde_json::{Value, json};
use tests::{
    TestServer,
    gateway::{
        chat_body, content_type, header, post_chat, post_json, start_keyed, streamed_chat_body,
    },
    start_mock,
};

const SUBSCRIPTION_KEY: &str = "sub-key-tenant-5f3a9c";

/// The Azure-style routes of deployments `my-deploy` (chat) and `my-embedder` (embeddings).
const MY_DEPLOY_CHAT: &str =
    "/openai/deployments/my-deploy/chat/completions?api-version=2024-10-21";
const MY_EMBEDDER_EMBEDDINGS: &str =
    "/openai/deployments/my-embedder/embeddings?api-version=2024-10-21";

/// A server in front of `mock` for subscription `tenant`, with these extra flags.
async fn server(mock: &MockUpstream, extra: &[&str]) -> TestServer {
    let keys = format!("tenant={SUBSCRIPTION_KEY}");
    start_keyed(&mock.base_url(), &keys, extra).await
}

fn key() -> Option<&'static str> {
    Some(SUBSCRIPTION_KEY)
}

/// The body the upstream received for the last chat request.
fn last_upstream_body(mock: &MockUpstream) -> Value {
    mock.chat_requests().last().unwrap().body.clone()
}

#[tokio::test]
async fn max_tokens_is_capped_on_the_way_upstream() {
    let mock = start_mock().await;
    let server = server(&mock, &["--max-tokens-cap", "50"]).await;
    let client = tests::http_client();
    let call = |extra: Value| {
        let mut body = chat_body("hi");
        for (field, value) in extra.as_object().unwrap() {
            body[field] = value.clone();
        }
        let client = client.clone();
        let server = &server;
        async move {
            let response = post_chat(&client, server, key(), &body).await;
            assert_eq!(response.status(), 200);
            response.text().await.unwrap();
        }
    };

    call(json!({"max_tokens": 500})).await;
    assert_eq!(last_upstream_body(&mock)["max_tokens"], 50);
    call(json!({})).await;
    assert_eq!(
        last_upstream_body(&mock)["max_tokens"],
        50,
        "set when absent"
    );
    call(json!({"max_tokens": 20})).await;
    assert_eq!(
        last_upstream_body(&mock)["max_tokens"],
        20,
        "a lower value stays"
    );
    call(json!({"max_completion_tokens": 900})).await;
    let sent = last_upstream_body(&mock);
    assert_eq!(sent["max_completion_tokens"], 50);
    assert!(sent.get("max_tokens").is_none());

    // Streams deliver as they go, so they are not capped.
    call(json!({"max_tokens": 500, "stream": true})).await;
    let sent = last_upstream_body(&mock);
    assert_eq!(sent["max_tokens"], 500);
    assert_eq!(sent["stream"], true);
    // The gateway always asks for the usage chunk, to reconcile the budget.
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn unknown_fields_pass_through_unchanged() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    let client = tests::http_client();
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi", "name": "ada"}],
        "x_custom_field": {"a": 1, "nested": [true, null, "x"]},
        "logit_bias": {"50256": -100, "1234": 5},
        "temperature": 0.25,
        "seed": 7,
        "user": "end-user-42",
        "response_format": {"type": "json_object"},
        "max_tokens": 10,
    });
    let response = post_chat(&client, &server, key(), &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(last_upstream_body(&mock), body);
}

/// Every header value and the body of an upstream request, as text.
fn everything_sent(request: &RecordedRequest) -> Vec<String> {
    let mut sent: Vec<String> = request
        .headers
        .iter()
        .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("")))
        .collect();
    sent.push(request.body.to_string());
    sent.push(request.path.clone());
    sent
}

#[tokio::test]
async fn the_callers_key_never_reaches_the_upstream() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    let client = tests::http_client();
    let bearer = format!("Bearer {SUBSCRIPTION_KEY}");
    for (name, value) in [
        ("ocp-apim-subscription-key", SUBSCRIPTION_KEY),
        ("api-key", SUBSCRIPTION_KEY),
        ("authorization", bearer.as_str()),
    ] {
        for (path, body) in [
            ("/v1/chat/completions", chat_body("hi")),
            ("/v1/chat/completions", streamed_chat_body("hi")),
            ("/v1/embeddings", json!({"input": "hi"})),
        ] {
            let response = client
                .post(server.url(path))
                .header(name, value)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{name} {path}");
            response.text().await.unwrap();
        }
    }
    let requests = mock.requests();
    assert_eq!(requests.len(), 9);
    for request in &requests {
        for sent in everything_sent(request) {
            assert!(!sent.contains(SUBSCRIPTION_KEY), "leaked upstream: {sent}");
        }
        assert_eq!(request.header("authorization"), Some("Bearer sk-upstream"));
        assert_eq!(request.header("api-key"), None);
        assert_eq!(request.header("ocp-apim-subscription-key"), None);
    }
}

#[tokio::test]
async fn azure_routes_reach_an_azure_upstream_by_deployment() {
    let mock = start_mock().await;
    let endpoint = mock.azure_endpoint();
    let keys = format!("tenant={SUBSCRIPTION_KEY}");
    let server = TestServer::start(&[
        "--azure-openai-endpoint",
        &endpoint,
        "--azure-openai-api-key",
        "azure-upstream-key",
        "--subscription-keys",
        &keys,
        "--semantic-cache",
        "off",
    ])
    .await;
    let client = tests::http_client();

    let response = post_json(&client, &server, MY_DEPLOY_CHAT, key(), &chat_body("hi")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["model"], "my-deploy");
    assert_eq!(body["object"], "chat.completion");

    let response = post_json(
        &client,
        &server,
        MY_EMBEDDER_EMBEDDINGS,
        key(),
        &json!({"input": ["a", "b"]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);

    let requests = mock.requests();
    assert_eq!(requests[0].path, MY_DEPLOY_CHAT);
    assert_eq!(requests[0].body["model"], "my-deploy");
    assert_eq!(requests[1].path, MY_EMBEDDER_EMBEDDINGS);
    for request in &requests {
        // Azure's key header carries the gateway's Azure key, and nothing else of the caller's.
        assert_eq!(request.header("api-key"), Some("azure-upstream-key"));
        assert_eq!(request.header("authorization"), None);
        for sent in everything_sent(request) {
            assert!(!sent.contains(SUBSCRIPTION_KEY), "leaked upstream: {sent}");
        }
    }
}

#[tokio::test]
async fn the_azure_route_names_the_model_for_an_openai_upstream() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    let client = tests::http_client();
    let body = json!({"model": "ignored", "messages": [{"role": "user", "content": "hi"}]});
    let response = post_json(&client, &server, MY_DEPLOY_CHAT, key(), &body).await;
    assert_eq!(response.status(), 200);
    let sent = &mock.chat_requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["model"], "my-deploy");
}

#[tokio::test]
async fn malformed_bodies_are_400s_and_never_reach_the_upstream() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    let client = tests::http_client();
    let chat_cases: [(&str, &str); 9] = [
        ("not json", "invalid_json"),
        ("", "invalid_json"),
        ("{\"messages\": [", "invalid_json"),
        ("[1, 2]", "invalid_request"),
        ("{}", "invalid_request"),
        ("{\"messages\": \"hi\"}", "invalid_request"),
        ("{\"messages\": []}", "invalid_request"),
        (
            "{\"messages\": [{\"content\": \"no role\"}]}",
            "invalid_request",
        ),
        ("{\"messages\": [\"hi\"]}", "invalid_request"),
    ];
    // The Azure route names the model by its path, so only `/v1` can get a bad one.
    let bad_model = (
        "{\"model\": 7, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
        "invalid_model",
    );
    let embedding_cases: [(&str, &str); 3] = [
        ("{}", "invalid_request"),
        ("{\"input\": 5}", "invalid_request"),
        ("{\"input\": []}", "invalid_request"),
    ];
    let paths = [
        "/v1/chat/completions",
        "/openai/deployments/d/chat/completions?api-version=2024-10-21",
    ];
    let cases = paths
        .iter()
        .flat_map(|path| chat_cases.iter().map(move |case| (*path, *case)))
        .chain([("/v1/chat/completions", bad_model)])
        .chain(embedding_cases.iter().map(|case| ("/v1/embeddings", *case)));
    for (path, (raw, code)) in cases {
        let response = client
            .post(server.url(path))
            .header("api-key", SUBSCRIPTION_KEY)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path} {raw}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{path} {raw}");
        assert!(
            !body["error"]["message"].as_str().unwrap().is_empty(),
            "{path} {raw}"
        );
    }
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn an_upstream_refusal_is_relayed_as_a_clean_error() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    let client = tests::http_client();
    mock.push(
        Reply::status(404)
            .with_message("The model `gpt-9` does not exist or you do not have access to it."),
    );
    let body = json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]});
    let response = post_chat(&client, &server, key(), &body).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_rejected");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("404"), "{message}");
    assert!(message.contains("`gpt-9` does not exist"), "{message}");
    // The envelope is ours: no upstream `type` or `param` fields.
    assert_eq!(body["error"].as_object().unwrap().len(), 2, "{body}");
    assert_eq!(mock.chat_requests().len(), 1);
}

#[tokio::test]
async fn answers_carry_the_gateway_headers() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    let client = tests::http_client();
    mock.push(Reply::text("hello").with_usage(5, 2));
    let response = client
        .post(server.url("/v1/chat/completions"))
        .header("api-key", SUBSCRIPTION_KEY)
        .header("x-request-id", "req-from-caller-1")
        .header("cache-control", "no-cache")
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-llm-cache-status"), Some("bypass"));
    assert_eq!(header(&response, "x-tokens-consumed"), Some("7"));
    assert_eq!(header(&response, "x-request-id"), Some("req-from-caller-1"));
    assert!(header(&response, "x-ratelimit-remaining-tokens").is_some());

    // Streams carry them too (all but the tokens consumed, which are known only at the end).
    let response = client
        .post(server.url("/v1/chat/completions"))
        .header("api-key", SUBSCRIPTION_KEY)
        .header("cache-control", "no-cache")
        .json(&streamed_chat_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(content_type(&response).starts_with("text/event-stream"));
    assert_eq!(header(&response, "x-llm-cache-status"), Some("bypass"));
    assert!(header(&response, "x-ratelimit-remaining-tokens").is_some());
    assert!(
        header(&response, "x-request-id").is_some_and(|id| !id.is_empty()),
        "a request id is made when the caller sends none"
    );
}

#[tokio::test]
async fn no_model_configured_is_a_503_that_names_the_settings() {
    let server = TestServer::start(&[]).await;
    let client = tests::http_client();
    for (path, body) in [
        ("/v1/chat/completions", chat_body("hi")),
        ("/v1/embeddings", json!({"input": "hi"})),
        (
            "/openai/deployments/d/chat/completions?api-version=2024-10-21",
            chat_body("hi"),
        ),
    ] {
        let response = post_json(&client, &server, path, None, &body).await;
        assert_eq!(response.status(), 503, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "model_not_configured");
        let message = body["error"]["message"].as_str().unwrap();
        for setting in ["OPENAI_BASE_URL", "OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"] {
            assert!(message.contains(setting), "{message}");
        }
    }
}

#[tokio::test]
async fn bodies_up_to_the_configured_limit_are_read() {
    let mock = start_mock().await;
    // The default limit is 4 MiB; axum's own default for a buffered body is 2 MB.
    let server = server(&mock, &[]).await;
    let client = tests::http_client();
    let padding = "x".repeat(3_000_000);
    let mut body = chat_body("hi");
    body["x_padding"] = json!(padding);
    let response = post_chat(&client, &server, key(), &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        last_upstream_body(&mock)["x_padding"]
            .as_str()
            .map(str::len),
        Some(3_000_000)
    );

    // Over the limit: refused, whether the size is announced or only found while reading.
    let over =
        serde_json::to_vec(&json!({"messages": [], "x_padding": "x".repeat(4_300_000)})).unwrap();
    let announced = client
        .post(server.url("/v1/chat/completions"))
        .header("api-key", SUBSCRIPTION_KEY)
        .body(over.clone())
        .send()
        .await
        .unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        over.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let streamed = client
        .post(server.url("/v1/chat/completions"))
        .header("api-key", SUBSCRIPTION_KEY)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    for response in [announced, streamed] {
        assert_eq!(response.status(), 413);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "payload_too_large");
    }
    assert_eq!(mock.chat_requests().len(), 1);
}
