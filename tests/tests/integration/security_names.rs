//! Model and deployment names: a dot segment never reaches an Azure upstream (with its key), a
//! control character never splits a ledger row, and names nobody configured never grow the
//! metrics.

use mock_upstream::MockUpstream;
use serde_json::{Value, json};
use tests::{
    TestServer,
    gateway::{chat_body, metric, post_chat, post_embeddings, scrape, start_keyed, usage_report},
    raw,
    redis::RedisServer,
    start_mock,
};

const KEY: &str = "key-names";

/// A keyed server in front of the mock as an Azure OpenAI resource.
async fn azure_gateway(mock: &MockUpstream) -> TestServer {
    TestServer::start(&[
        "--azure-openai-endpoint",
        &mock.azure_endpoint(),
        "--azure-openai-api-key",
        "azure-upstream-key",
        "--subscription-keys",
        &format!("names-azure={KEY}"),
        "--semantic-cache",
        "off",
    ])
    .await
}

/// POSTs a chat body to `path` exactly as written (no client normalizes the dots away).
async fn raw_chat(server: &TestServer, path: &str, body: &Value) -> raw::RawResponse {
    let request = raw::request("POST", path, &[("api-key", KEY)], &body.to_string());
    raw::exchange(server.addr, &request).await
}

fn assert_refused_as_invalid_model(response: &raw::RawResponse, what: &str) {
    assert_eq!(response.status, 400, "{what}: {}", response.body);
    assert_eq!(response.json()["error"]["code"], "invalid_model", "{what}");
}

#[tokio::test]
async fn dot_segments_never_reach_an_azure_upstream() {
    let mock = start_mock().await;
    let server = azure_gateway(&mock).await;

    for deployment in [".", "..", "%2E%2E", "%2e", "a%2Fb", "-x", "gpt%00x"] {
        let path = format!("/openai/deployments/{deployment}/chat/completions");
        let response = raw_chat(&server, &path, &chat_body("hi")).await;
        // `..` written in a path may also leave the route (a 404): either way, not upstream.
        assert!(
            [400, 404].contains(&response.status),
            "{path}: {} {}",
            response.status,
            response.body
        );
        assert!(response.json()["error"]["code"].is_string(), "{path}");
    }
    for model in [".", "..", "../tenantA", "a/b", "a b", ".hidden"] {
        let mut body = chat_body("hi");
        body["model"] = json!(model);
        let response = raw_chat(&server, "/v1/chat/completions", &body).await;
        assert_refused_as_invalid_model(&response, model);
    }
    let embed = raw::request(
        "POST",
        "/v1/embeddings",
        &[("api-key", KEY)],
        &json!({"model": "..", "input": "x"}).to_string(),
    );
    assert_refused_as_invalid_model(&raw::exchange(server.addr, &embed).await, "embeddings");
    assert_eq!(mock.request_count(), 0, "{:?}", mock.requests());

    // The same routes with a sound deployment do reach it.
    let response = raw_chat(
        &server,
        "/openai/deployments/my-deploy.v2/chat/completions",
        &chat_body("hi"),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0]
            .path
            .starts_with("/openai/deployments/my-deploy.v2/chat/completions"),
        "{}",
        requests[0].path
    );
}

#[tokio::test]
async fn an_azure_gateway_refuses_to_start_with_a_dot_deployment() {
    let mock = start_mock().await;
    let settings = mcp_server::Settings::from_args([
        "--azure-openai-endpoint",
        &mock.azure_endpoint(),
        "--chat-model",
        "..",
    ])
    .unwrap();
    let (listener, _) = tests::bind_loopback().await;
    let serving = mcp_server::serve(listener, settings, std::future::pending(), None);
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), serving).await;
    let Ok(Err(error)) = outcome else {
        panic!("the server started with CHAT_MODEL=..: {outcome:?}");
    };
    assert!(error.to_string().contains("CHAT_MODEL"), "{error}");
}

/// Control characters in a model name are refused before anything is booked; `store` adds flags
/// (Redis).
async fn control_characters_book_nothing(store: &[&str], subscription: &str) {
    let mock = start_mock().await;
    let keys = format!("{subscription}={KEY}");
    let mut flags = vec!["--admin-key", "admin-names"];
    flags.extend_from_slice(store);
    let server = start_keyed(&mock.base_url(), &keys, &flags).await;
    let client = tests::http_client();

    let ok = post_chat(&client, &server, Some(KEY), &chat_body("hi")).await;
    assert_eq!(ok.status(), 200);
    for model in [
        "gpt-4o-mini\u{1f}x",
        "gpt-4o-mini\nx",
        "gpt\u{0}",
        "gpt\u{85}x",
    ] {
        let mut body = chat_body("hi");
        body["model"] = json!(model);
        let response = post_chat(&client, &server, Some(KEY), &body).await;
        assert_eq!(response.status(), 400, "{model:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_model", "{model:?}");
        let embed = json!({"model": model, "input": "x"});
        let response = post_embeddings(&client, &server, Some(KEY), &embed).await;
        assert_eq!(response.status(), 400, "{model:?}");
    }
    assert_eq!(mock.request_count(), 1);

    let report = usage_report(&client, &server, "admin-names").await;
    let rows = report["subscriptions"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, [subscription], "{report}");
}

#[tokio::test]
async fn control_characters_in_a_model_book_no_phantom_row() {
    control_characters_book_nothing(&[], "names-memory").await;
}

#[tokio::test]
async fn control_characters_in_a_model_book_no_phantom_row_in_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    control_characters_book_nothing(&["--redis-url", &url], "names-redis").await;
}

/// Series of the model-labelled metrics for `subscription`, and the model labels among them.
fn model_series(metrics: &str, subscription: &str) -> (usize, Vec<String>) {
    let needle = format!("subscription=\"{subscription}\"");
    let lines: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("gen_ai_client_") && line.contains(&needle))
        .collect();
    let mut models: Vec<String> = lines
        .iter()
        .filter_map(|line| line.split("gen_ai_request_model=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect();
    models.sort();
    models.dedup();
    (lines.len(), models)
}

#[tokio::test]
async fn unconfigured_model_names_do_not_grow_the_metrics() {
    let mock = start_mock().await;
    // A small budget: a call keeping the default max_tokens is refused with 422 after its model
    // is known; one with a small max_tokens is answered.
    let server = start_keyed(
        &mock.base_url(),
        &format!("names-labels={KEY}"),
        &["--tokens-per-minute", "1000000", "--max-tokens-cap", "2000"],
    )
    .await;
    let tight = start_keyed(
        &mock.base_url(),
        &format!("names-labels-422={KEY}"),
        &["--tokens-per-minute", "500"],
    )
    .await;
    let client = tests::http_client();
    let call = |server: &TestServer, model: String| {
        let mut body = chat_body("hi");
        body["model"] = json!(model);
        body["max_tokens"] = json!(5);
        let client = client.clone();
        let url = server.url("/v1/chat/completions");
        async move {
            let response = client
                .post(url)
                .header("api-key", KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    let random_name = |i: usize| format!("rnd-{i}-{}", "z".repeat(200));

    assert_eq!(call(&server, "gpt-4o-mini".to_owned()).await, 200);
    for i in 0..5 {
        assert_eq!(call(&server, random_name(i)).await, 200);
    }
    let (series_after_few, _) = model_series(&scrape(&client, &server).await, "names-labels");
    for i in 5..150 {
        assert_eq!(call(&server, random_name(i)).await, 200);
    }
    for i in 0..150 {
        let mut body = chat_body("hi");
        body["model"] = json!(random_name(1000 + i));
        let status = post_chat(&client, &tight, Some(KEY), &body).await.status();
        assert_eq!(status, 422);
    }

    let metrics = scrape(&client, &server).await;
    assert!(
        !metrics.contains("rnd-"),
        "a caller's model name became a label"
    );
    let (series, models) = model_series(&metrics, "names-labels");
    assert_eq!(series, series_after_few, "the series grew with the names");
    assert_eq!(models, ["gpt-4o-mini", "other"]);
    let (_, refused_models) = model_series(&metrics, "names-labels-422");
    assert_eq!(refused_models, ["other"]);
    let other_calls = metric(
        &metrics,
        "gen_ai_client_operation_duration_seconds_count",
        &[
            ("subscription", "names-labels"),
            ("gen_ai_request_model", "other"),
        ],
    );
    assert_eq!(other_calls, Some(150.0));
}
