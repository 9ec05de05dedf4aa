//! DNS-rebinding protection on /mcp: foreign Host and Origin headers are refused.

use serde_json::{Value, json};
use tests::{TestServer, post_mcp, rpc};

#[tokio::test]
async fn foreign_hosts_are_refused_by_default() {
    let server = TestServer::start(&[]).await;
    let client = reqwest::Client::new();
    let ping = rpc(1, "ping", json!({}));
    let response = post_mcp(&client, &server, &ping, &[("host", "evil.example")]).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");

    let port = server.addr.port().to_string();
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let response = post_mcp(&client, &server, &ping, &[("host", &host)]).await;
        assert_eq!(response.status(), 200, "{host}");
    }
}

#[tokio::test]
async fn origins_must_be_allowed() {
    let server = TestServer::start(&["--allowed-origins", "http://localhost:6274"]).await;
    let client = reqwest::Client::new();
    let ping = rpc(1, "ping", json!({}));
    let response = post_mcp(
        &client,
        &server,
        &ping,
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(response.status(), 403);
    let response = post_mcp(
        &client,
        &server,
        &ping,
        &[("origin", "http://localhost:6274")],
    )
    .await;
    assert_eq!(response.status(), 200);
    // No Origin (a non-browser client) passes.
    let response = post_mcp(&client, &server, &ping, &[]).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn without_allowed_origins_only_loopback_origins_pass() {
    let server = TestServer::start(&[]).await;
    let client = reqwest::Client::new();
    let ping = rpc(1, "ping", json!({}));
    let response = post_mcp(
        &client,
        &server,
        &ping,
        &[("origin", "http://localhost:3000")],
    )
    .await;
    assert_eq!(response.status(), 200);
    let own = format!("http://127.0.0.1:{}", server.addr.port());
    let response = post_mcp(&client, &server, &ping, &[("origin", &own)]).await;
    assert_eq!(response.status(), 200);
    for foreign in [
        "http://evil.example",
        "http://localhost.evil.example:80",
        "null",
    ] {
        let response = post_mcp(&client, &server, &ping, &[("origin", foreign)]).await;
        assert_eq!(response.status(), 403, "{foreign}");
    }
}

#[tokio::test]
async fn a_deployment_hostname_can_be_allowed() {
    let server = TestServer::start(&["--allowed-hosts", "tollgate.example.com"]).await;
    let client = reqwest::Client::new();
    let ping = rpc(1, "ping", json!({}));
    let response = post_mcp(&client, &server, &ping, &[("host", "tollgate.example.com")]).await;
    assert_eq!(response.status(), 200);
    let response = post_mcp(&client, &server, &ping, &[("host", "other.example.com")]).await;
    assert_eq!(response.status(), 403);
}
