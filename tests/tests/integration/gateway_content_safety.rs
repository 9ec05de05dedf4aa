//! Content safety on the gateway: blocked terms, the secrets and card-number presets and an
//! external moderation endpoint, on prompts (refused before the upstream and the budget) and on
//! answers (whole and streamed); off unless switched on.

use std::sync::{Arc, Mutex};

use axum::{Json, Router, extract::State, routing::post};
use http::HeaderMap;
use mock_upstream::{MockUpstream, Reply};
use serde_json::{Value, json};
use tests::{
    TestServer, bind_loopback,
    gateway::{
        chat_body, header_u64, metric, minute_headroom, post_chat, post_embeddings, scrape,
        sse_data, start_keyed, streamed_chat_body, usage_report,
    },
    start_mock,
};

/// A server blocking two terms (once content safety is on in `extra`), for subscription `name`
/// (key `k-{name}`).
async fn server(mock: &MockUpstream, name: &str, extra: &[&str]) -> TestServer {
    let keys = format!("{name}=k-{name}");
    let mut flags = vec![
        "--admin-key",
        "admin",
        "--tokens-per-minute",
        "1000",
        "--max-tokens-cap",
        "100",
        "--content-blocked-terms",
        "project falcon,zebra",
    ];
    flags.extend_from_slice(extra);
    start_keyed(&mock.base_url(), &keys, &flags).await
}

const ON: &[&str] = &["--content-safety", "on"];

/// Asserts a 403 `content_blocked` naming `category`, and returns its message.
async fn assert_blocked(response: reqwest::Response, category: &str) -> String {
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "content_blocked", "{body}");
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains(category), "{message}");
    message
}

fn blocked_count(
    metrics: &str,
    subscription: &str,
    direction: &str,
    category: &str,
) -> Option<f64> {
    metric(
        metrics,
        "gateway_content_blocked_total",
        &[
            ("subscription", subscription),
            ("direction", direction),
            ("category", category),
        ],
    )
}

#[tokio::test]
async fn blocked_prompts_never_reach_the_upstream_and_cost_nothing() {
    let mock = start_mock().await;
    let server = server(&mock, "cs-prompt", ON).await;
    let client = tests::http_client();
    let key = Some("k-cs-prompt");
    minute_headroom(std::time::Duration::from_secs(3)).await;

    let response = post_chat(
        &client,
        &server,
        key,
        &chat_body("Tell me about Project  FALCON."),
    )
    .await;
    assert_blocked(response, "blocked_term").await;
    let secret = "sk-abcdefghijklmnopqrstuvwxyz0123";
    let response = post_chat(
        &client,
        &server,
        key,
        &chat_body(&format!("use {secret} please")),
    )
    .await;
    let message = assert_blocked(response, "secrets").await;
    assert!(
        !message.contains(secret),
        "a refusal never echoes what it refused"
    );
    let response = post_chat(
        &client,
        &server,
        key,
        &chat_body("card 4111 1111 1111 1111"),
    )
    .await;
    assert_blocked(response, "card_numbers").await;
    // A stream is refused before it starts, as a plain JSON error.
    let stream = streamed_chat_body("a zebra, streamed");
    assert_blocked(
        post_chat(&client, &server, key, &stream).await,
        "blocked_term",
    )
    .await;
    // Tool results and earlier turns are part of the prompt too.
    let history = json!({"messages": [
        {"role": "user", "content": "what is the codename?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "the codename is zebra"},
    ]});
    assert_blocked(
        post_chat(&client, &server, key, &history).await,
        "blocked_term",
    )
    .await;
    let response =
        post_embeddings(&client, &server, key, &json!({"input": ["fine", "zebra"]})).await;
    assert_blocked(response, "blocked_term").await;
    assert!(
        mock.requests().is_empty(),
        "a blocked prompt never reaches the upstream"
    );

    // Near misses pass, and the refusals above cost no budget.
    mock.push(Reply::text("Falconry is the sport of hunting with birds.").with_usage(5, 5));
    let response = post_chat(
        &client,
        &server,
        key,
        &chat_body("Falconry, zebras and projects?"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header_u64(&response, "x-ratelimit-remaining-tokens"), 990);

    let metrics = scrape(&client, &server).await;
    assert_eq!(
        blocked_count(&metrics, "cs-prompt", "prompt", "blocked_term"),
        Some(4.0)
    );
    assert_eq!(
        blocked_count(&metrics, "cs-prompt", "prompt", "secrets"),
        Some(1.0)
    );
    assert_eq!(
        blocked_count(&metrics, "cs-prompt", "prompt", "card_numbers"),
        Some(1.0)
    );
    assert_eq!(
        blocked_count(&metrics, "cs-prompt", "response", "blocked_term"),
        None
    );
}

#[tokio::test]
async fn blocked_answers_are_not_returned() {
    let mock = start_mock().await;
    let server = server(&mock, "cs-answer", ON).await;
    let client = tests::http_client();
    let key = Some("k-cs-answer");

    mock.push(Reply::text("The codename is Zebra.").with_usage(10, 5));
    let response = post_chat(&client, &server, key, &chat_body("What is the codename?")).await;
    let message = assert_blocked(response, "blocked_term").await;
    assert!(!message.contains("Zebra"), "{message}");
    mock.push(Reply::text("Card: 4111-1111-1111-1111").with_usage(10, 5));
    let response = post_chat(&client, &server, key, &chat_body("Make up a card")).await;
    assert_blocked(response, "card_numbers").await;
    mock.push(Reply::text("All clear.").with_usage(10, 5));
    let response = post_chat(&client, &server, key, &chat_body("Anything else?")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(mock.chat_requests().len(), 3);

    // A stream's verdict comes at its end: an error event in place of `[DONE]`.
    mock.push(Reply::stream(["The code", "name is ze", "bra."]).with_usage(10, 5));
    let stream = streamed_chat_body("Stream the codename");
    let response = post_chat(&client, &server, key, &stream).await;
    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.unwrap());
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "content_blocked", "{last}");

    // The upstream did the work, so the tokens are charged.
    let report = usage_report(&client, &server, "admin").await;
    assert_eq!(report["subscriptions"][0]["total_tokens"], 4 * 15);

    let metrics = scrape(&client, &server).await;
    assert_eq!(
        blocked_count(&metrics, "cs-answer", "response", "blocked_term"),
        Some(2.0)
    );
    assert_eq!(
        blocked_count(&metrics, "cs-answer", "response", "card_numbers"),
        Some(1.0)
    );
    assert_eq!(
        blocked_count(&metrics, "cs-answer", "prompt", "blocked_term"),
        None
    );
}

#[tokio::test]
async fn content_safety_is_off_by_default() {
    let mock = start_mock().await;
    // Terms are configured, but CONTENT_SAFETY is not on.
    let server = server(&mock, "cs-off", &[]).await;
    let client = tests::http_client();
    mock.push(Reply::text("zebra sk-abcdefghijklmnopqrstuvwxyz0123"));
    let response = post_chat(
        &client,
        &server,
        Some("k-cs-off"),
        &chat_body("zebra and 4111 1111 1111 1111"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(mock.chat_requests().len(), 1);
}

/// What a moderation stand-in received: the bearer key and the body.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// An OpenAI-style moderation endpoint on a loopback port that flags any input mentioning
/// "hurt" as violence. Returns its base URL (…/v1) and what it received.
async fn moderation_endpoint() -> (String, Seen) {
    async fn moderate(
        State(seen): State<Seen>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let flagged = body["input"].as_str().unwrap_or("").contains("hurt");
        seen.lock().unwrap().push((auth, body));
        Json(json!({
            "id": "modr-1",
            "model": "omni-moderation-latest",
            "results": [{
                "flagged": flagged,
                "categories": {"harassment": false, "violence": flagged, "self-harm": false},
                "category_scores": {"harassment": 0.01, "violence": if flagged { 0.93 } else { 0.01 }},
            }],
        }))
    }
    let seen = Seen::default();
    let app = Router::new()
        .route("/v1/moderations", post(moderate))
        .with_state(seen.clone());
    let (listener, addr) = bind_loopback().await;
    let url = format!("http://{addr}/v1");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn a_moderation_endpoint_has_the_last_word() {
    let mock = start_mock().await;
    let (url, seen) = moderation_endpoint().await;
    let server = server(
        &mock,
        "cs-moderated",
        &[
            "--content-safety",
            "on",
            "--content-safety-presets",
            "none",
            "--moderation-url",
            &url,
            "--moderation-api-key",
            "mod-key",
        ],
    )
    .await;
    let client = tests::http_client();
    let key = Some("k-cs-moderated");

    let response = post_chat(&client, &server, key, &chat_body("how do I hurt someone")).await;
    assert_blocked(response, "violence").await;
    assert!(mock.requests().is_empty());

    mock.push(Reply::text("General Kenobi."));
    let response = post_chat(&client, &server, key, &chat_body("hello there")).await;
    assert_eq!(response.status(), 200);

    mock.push(Reply::text("I will hurt you."));
    let response = post_chat(&client, &server, key, &chat_body("be mean")).await;
    assert_blocked(response, "violence").await;

    let seen = seen.lock().unwrap().clone();
    // One refused prompt; then a prompt and its answer, twice.
    let inputs: Vec<&str> = seen
        .iter()
        .map(|(_, body)| body["input"].as_str().unwrap().trim())
        .collect();
    assert_eq!(
        inputs,
        [
            "how do I hurt someone",
            "hello there",
            "General Kenobi.",
            "be mean",
            "I will hurt you."
        ]
    );
    for (auth, _) in &seen {
        assert_eq!(auth.as_deref(), Some("Bearer mod-key"));
    }

    let metrics = scrape(&client, &server).await;
    assert_eq!(
        blocked_count(&metrics, "cs-moderated", "prompt", "violence"),
        Some(1.0)
    );
    assert_eq!(
        blocked_count(&metrics, "cs-moderated", "response", "violence"),
        Some(1.0)
    );
}

#[tokio::test]
async fn an_unreachable_moderation_endpoint_fails_open_unless_told_otherwise() {
    let mock = start_mock().await;
    // A loopback port that was just free: connecting to it is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/v1");
    let flags = |fail_closed: &'static str| {
        vec![
            "--content-safety",
            "on",
            "--moderation-url",
            url.as_str(),
            "--moderation-timeout-ms",
            "2000",
            "--moderation-fail-closed",
            fail_closed,
        ]
    };
    let client = tests::http_client();

    let open = server(&mock, "cs-fail-open", &flags("false")).await;
    let response = post_chat(&client, &open, Some("k-cs-fail-open"), &chat_body("hello")).await;
    assert_eq!(response.status(), 200);

    let closed = server(&mock, "cs-fail-closed", &flags("true")).await;
    let response = post_chat(
        &client,
        &closed,
        Some("k-cs-fail-closed"),
        &chat_body("hello"),
    )
    .await;
    assert_blocked(response, "moderation_unavailable").await;
    assert_eq!(
        mock.chat_requests().len(),
        1,
        "only the fail-open call went upstream"
    );
}
