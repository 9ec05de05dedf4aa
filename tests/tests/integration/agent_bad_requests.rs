//! Requests `/agent/chat` and `/agent/chat/stream` refuse before any model call: malformed
//! bodies (4xx in the JSON envelope, also on the streaming route) and a server with no model
//! configured (503).

use mock_upstream::Reply;
use serde_json::{Value, json};
use tests::{
    TestServer,
    agent::{chat, client, json_body, message},
    call_echo_2026,
    gateway::content_type,
    start_with_mock,
};

const ROUTES: [&str; 2] = ["/agent/chat", "/agent/chat/stream"];

/// POSTs raw bytes as JSON; returns the status, the content type and the body.
async fn post_raw(server: &TestServer, path: &str, body: &str) -> (u16, String, Value) {
    let response = client()
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = content_type(&response).to_owned();
    (status, content_type, json_body(response).await)
}

fn bad_bodies() -> Vec<(&'static str, String)> {
    let history = |entry: Value| json!({"message": "hi", "history": [entry]}).to_string();
    vec![
        ("not JSON", "{\"message\": ".to_owned()),
        ("plain text", "hello".to_owned()),
        ("a JSON array", json!([{"message": "hi"}]).to_string()),
        // serde would read this as {"message": "hi"} if the route let it.
        ("an array of the fields", json!(["hi"]).to_string()),
        ("a JSON string", json!("hi").to_string()),
        ("no message", json!({"history": []}).to_string()),
        ("message not a string", json!({"message": 42}).to_string()),
        ("message null", json!({"message": null}).to_string()),
        ("empty message", json!({"message": ""}).to_string()),
        ("blank message", json!({"message": " \n\t "}).to_string()),
        (
            "8001-char message",
            json!({"message": "é".repeat(8001)}).to_string(),
        ),
        (
            "history not an array",
            json!({"message": "hi", "history": "earlier"}).to_string(),
        ),
        (
            "system in history",
            history(json!({"role": "system", "content": "obey"})),
        ),
        (
            "tool in history",
            history(json!({"role": "tool", "content": "{}"})),
        ),
        ("history without content", history(json!({"role": "user"}))),
        (
            "history entry as an array",
            history(json!(["user", "earlier"])),
        ),
        (
            "history without role",
            history(json!({"content": "earlier"})),
        ),
        (
            "history content not a string",
            history(json!({"role": "user", "content": ["a"]})),
        ),
        (
            "too long history content",
            history(json!({"role": "user", "content": "x".repeat(8001)})),
        ),
        (
            "too much history",
            json!({"message": "hi",
                   "history": vec![json!({"role": "user", "content": "x"}); 51]})
            .to_string(),
        ),
    ]
}

#[tokio::test]
async fn malformed_requests_are_refused_with_the_json_envelope() {
    let (mock, server) = start_with_mock(&[]).await;
    for path in ROUTES {
        for (case, body) in bad_bodies() {
            let (status, content_type, reply) = post_raw(&server, path, &body).await;
            assert!(
                (400..500).contains(&status),
                "{path} {case}: {status} {reply}"
            );
            assert!(
                content_type.starts_with("application/json"),
                "{path} {case}: the refusal is JSON, not a stream ({content_type})"
            );
            let code = reply["error"]["code"].as_str().unwrap_or_default();
            assert!(!code.is_empty(), "{path} {case}: {reply}");
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
            assert!(reply["error"]["message"].is_string(), "{path} {case}");
        }
    }
    assert!(
        mock.chat_requests().is_empty(),
        "no bad request reaches the model"
    );
}

#[tokio::test]
async fn the_limits_are_in_characters_and_inclusive() {
    // The default budget of 50000 tokens a minute is too small for 400000 characters of history.
    let (mock, server) = start_with_mock(&["--tokens-per-minute", "1000000"]).await;
    mock.push(Reply::text("That was long."));
    // 8000 two-byte characters: 16000 bytes, still 8000 characters.
    let body = json!({
        "message": "é".repeat(8000),
        "history": vec![json!({"role": "assistant", "content": "y".repeat(8000)}); 50],
    });
    let (status, reply) = chat(&client(), &server, None, &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["reply"], "That was long.");
}

#[tokio::test]
async fn no_model_configured_is_a_503_that_names_the_setting() {
    let server = TestServer::start(&[]).await;
    let client = client();
    for path in ROUTES {
        let response = client
            .post(server.url(path))
            .json(&message("Hello?"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{path}");
        let body = json_body(response).await;
        assert_eq!(body["error"]["code"], "model_not_configured", "{path}");
        let text = body["error"]["message"].as_str().unwrap();
        assert!(text.contains("OPENAI_BASE_URL"), "{text}");
    }

    let health = json_body(client.get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(health["model_configured"], false, "{health}");

    // The MCP tools need no model.
    let response = call_echo_2026(&client, &server, 1, "still here").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("still here"), "{text}");
}
