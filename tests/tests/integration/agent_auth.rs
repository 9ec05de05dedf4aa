//! Subscription keys on the agent routes: refused without a known key, and the caller's key never
//! reaches the model upstream, which sees only the gateway's own key.

use mock_upstream::Reply;
use tests::{
    UPSTREAM_KEY,
    agent::{client, json_body, message, tools_succeeded_via},
    gateway::post_json,
    start_with_mock,
};

const CALLER_KEY: &str = "caller-secret-7f3a9c";

#[tokio::test]
async fn the_agent_routes_need_a_known_key() {
    let keys = format!("auth-agent={CALLER_KEY}");
    let (mock, server) = start_with_mock(&["--subscription-keys", &keys]).await;
    let client = client();

    for path in ["/agent/chat", "/agent/chat/stream"] {
        let response = post_json(&client, &server, path, None, &message("Hi")).await;
        assert_eq!(response.status(), 401, "{path}");
        let body = json_body(response).await;
        assert_eq!(body["error"]["code"], "missing_subscription_key", "{path}");

        let response = post_json(&client, &server, path, Some("not-the-key"), &message("Hi")).await;
        assert_eq!(response.status(), 401, "{path}");
        let text = response.text().await.unwrap();
        assert!(text.contains("invalid_subscription_key"), "{path}: {text}");
        assert!(
            !text.contains("not-the-key"),
            "the refusal never echoes the key"
        );
    }
    assert!(
        mock.requests().is_empty(),
        "refused calls never reach the model"
    );

    // Each of the three key headers works.
    for (header, value) in [
        ("ocp-apim-subscription-key", CALLER_KEY.to_owned()),
        ("api-key", CALLER_KEY.to_owned()),
        ("authorization", format!("Bearer {CALLER_KEY}")),
    ] {
        mock.push(Reply::text("Hello."));
        let response = client
            .post(server.url("/agent/chat"))
            .header(header, value)
            .json(&message("Hi"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{header}");
    }
}

/// One JSON turn and one streamed turn with tools, as a keyed caller; then every request the
/// model upstream saw is checked for the caller's key.
async fn caller_key_stays_home(routing: &str) {
    let keys = format!("auth-{routing}={CALLER_KEY}");
    let (mock, server) =
        start_with_mock(&["--subscription-keys", &keys, "--tool-routing", routing]).await;
    let client = client();

    let response = post_json(
        &client,
        &server,
        "/agent/chat",
        Some(CALLER_KEY),
        &message("What are deployment slots?"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    // In mcp routing the tools were called with the caller's key, and they worked.
    assert!(tools_succeeded_via(&body, routing), "{body}");
    let response = post_json(
        &client,
        &server,
        "/agent/chat/stream",
        Some(CALLER_KEY),
        &message("Tell me about rate limiting."),
    )
    .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("event: done"), "{text}");

    let requests = mock.requests();
    assert!(requests.len() >= 4, "{} requests", requests.len());
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {UPSTREAM_KEY}").as_str()),
            "{}",
            request.path
        );
        for (name, value) in &request.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            assert!(
                !value.contains(CALLER_KEY),
                "{} carries the caller's key in {name}",
                request.path
            );
        }
        assert!(
            !request.body.to_string().contains(CALLER_KEY),
            "{} carries the caller's key in its body",
            request.path
        );
    }
}

#[tokio::test]
async fn the_callers_key_never_reaches_the_model_in_process() {
    caller_key_stays_home("in-process").await;
}

#[tokio::test]
async fn the_callers_key_never_reaches_the_model_over_mcp() {
    caller_key_stays_home("mcp").await;
}
