//! Subscription keys: no key, a wrong key, each of the three key headers, and the public routes.

use serde_json::{Value, json};
use tests::{TestServer, post_mcp, rpc};

const KEYS: &[&str] = &["--subscription-keys", "alice=key-alice,bob=key-bob"];

#[tokio::test]
async fn mcp_needs_a_known_key() {
    let server = TestServer::start(KEYS).await;
    let client = tests::http_client();
    let ping = rpc(1, "ping", json!({}));

    let response = post_mcp(&client, &server, &ping, &[]).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_subscription_key");

    let response = post_mcp(&client, &server, &ping, &[("api-key", "key-mallory")]).await;
    assert_eq!(response.status(), 401);
    let body = response.text().await.unwrap();
    assert!(body.contains("invalid_subscription_key"));
    assert!(
        !body.contains("key-mallory"),
        "the error never echoes a key"
    );
}

#[tokio::test]
async fn each_of_the_three_key_headers_is_accepted() {
    let server = TestServer::start(KEYS).await;
    let client = tests::http_client();
    let ping = rpc(1, "ping", json!({}));
    for (header, value) in [
        ("ocp-apim-subscription-key", "key-alice"),
        ("api-key", "key-bob"),
        ("authorization", "Bearer key-alice"),
    ] {
        let response = post_mcp(&client, &server, &ping, &[(header, value)]).await;
        assert_eq!(response.status(), 200, "{header}");
    }
}

#[tokio::test]
async fn public_routes_need_no_key() {
    let server = TestServer::start(KEYS).await;
    let client = tests::http_client();
    for path in ["/", "/health", "/metrics"] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let response = client.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}
