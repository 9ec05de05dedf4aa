//! Refusals on the Anthropic routes take Anthropic's error shape and statuses
//! (`{"type":"error","error":{"type","message"}}`), so its SDKs raise the matching exceptions:
//! bad input, keys, budgets, and the upstream's own refusals.

use mock_upstream::{MockUpstream, Reply};
use serde_json::{Value, json};
use tests::{TestServer, gateway, http_client, start_mock, start_with_model};

async fn server(mock: &MockUpstream, extra: &[&str]) -> TestServer {
    let mut flags = vec![
        "--subscription-keys",
        "errors=k-errors",
        "--semantic-cache",
        "off",
        "--upstream-attempts",
        "1",
    ];
    flags.extend_from_slice(extra);
    start_with_model(&mock.base_url(), &flags).await
}

async fn post_raw(server: &TestServer, key: Option<&str>, body: String) -> reqwest::Response {
    let mut request = http_client()
        .post(server.url("/v1/messages"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    request.send().await.unwrap()
}

/// The status and Anthropic error type of a refusal, checking its shape.
async fn refusal(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (status, body["error"]["type"].as_str().unwrap().to_owned())
}

fn hello() -> Value {
    json!({"model": "claude-test", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn bad_input_is_an_invalid_request_error() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    let mut no_max_tokens = hello();
    no_max_tokens.as_object_mut().unwrap().remove("max_tokens");
    let mut zero = hello();
    zero["max_tokens"] = json!(0);
    let mut bad_role = hello();
    bad_role["messages"][0]["role"] = json!("tool");
    let mut bad_block = hello();
    bad_block["messages"][0]["content"] = json!([{"type": "video", "url": "x"}]);
    let mut bad_image = hello();
    bad_image["messages"][0]["content"] = json!([{"type": "image", "source": {"type": "file"}}]);
    for body in [
        "{not json".to_owned(),
        "[1, 2]".to_owned(),
        no_max_tokens.to_string(),
        zero.to_string(),
        bad_role.to_string(),
        bad_block.to_string(),
        bad_image.to_string(),
        json!({"model": "claude-test", "max_tokens": 5, "messages": "hi"}).to_string(),
    ] {
        let (status, kind) = refusal(post_raw(&server, Some("k-errors"), body.clone()).await).await;
        assert_eq!(
            (status, kind.as_str()),
            (400, "invalid_request_error"),
            "{body}"
        );
    }
    assert!(mock.requests().is_empty(), "bad input reached the upstream");
}

#[tokio::test]
async fn keys_are_checked_in_anthropics_shape_and_x_api_key_works_everywhere() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    let body = hello().to_string();
    assert_eq!(
        refusal(post_raw(&server, None, body.clone()).await).await,
        (401, "authentication_error".to_owned())
    );
    assert_eq!(
        refusal(post_raw(&server, Some("wrong"), body.clone()).await).await,
        (401, "authentication_error".to_owned())
    );
    let count = http_client()
        .post(server.url("/v1/messages/count_tokens"))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refusal(count).await,
        (401, "authentication_error".to_owned())
    );
    // The Anthropic clients' header is a subscription key on the other routes too.
    let chat = http_client()
        .post(server.url("/v1/chat/completions"))
        .header("x-api-key", "k-errors")
        .json(&gateway::chat_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
}

#[tokio::test]
async fn a_spent_budget_is_a_rate_limit_error_with_retry_after() {
    let mock = start_mock().await;
    let server = server(
        &mock,
        &["--tokens-per-minute", "300", "--max-tokens-cap", "100"],
    )
    .await;
    gateway::minute_headroom(std::time::Duration::from_secs(3)).await;
    mock.push(Reply::text("fine").with_usage(100, 100));
    // Each call reserves its prompt and 100 completion tokens; 100 are left after the first.
    let mut body = hello();
    body["max_tokens"] = json!(100);
    let first = post_raw(&server, Some("k-errors"), body.to_string()).await;
    assert_eq!(first.status(), 200);
    let refused = post_raw(&server, Some("k-errors"), body.to_string()).await;
    assert!(gateway::header(&refused, "retry-after").is_some());
    assert_eq!(
        gateway::header(&refused, "x-ratelimit-remaining-tokens"),
        Some("0")
    );
    assert_eq!(refusal(refused).await, (429, "rate_limit_error".to_owned()));
    let mut huge = hello();
    huge["max_tokens"] = json!(100);
    huge["messages"][0]["content"] = json!("word ".repeat(600));
    let (status, kind) = refusal(post_raw(&server, Some("k-errors"), huge.to_string()).await).await;
    assert_eq!((status, kind.as_str()), (422, "invalid_request_error"));
}

#[tokio::test]
async fn the_upstreams_refusals_keep_their_meaning() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    for (reply, expected) in [
        (Reply::status(404), (404, "not_found_error")),
        (Reply::status(400), (400, "invalid_request_error")),
        (Reply::status(500), (502, "api_error")),
        (Reply::status(401), (502, "api_error")),
    ] {
        mock.push(reply);
        let (status, kind) =
            refusal(post_raw(&server, Some("k-errors"), hello().to_string()).await).await;
        assert_eq!((status, kind.as_str()), expected);
    }
}
