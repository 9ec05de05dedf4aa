//! DNS-rebinding protection on /mcp: foreign Host and Origin headers are refused.

use serde_json::{Value, json};
use tests::{TestServer, post_mcp, rpc};

/// The status of a ping to /mcp with these headers.
async fn ping_status(
    client: &reqwest::Client,
    server: &TestServer,
    headers: &[(&str, &str)],
) -> u16 {
    let response = post_mcp(client, server, &rpc(1, "ping", json!({})), headers).await;
    response.status().as_u16()
}

#[tokio::test]
async fn foreign_hosts_are_refused_by_default() {
    let server = TestServer::start(&[]).await;
    let client = tests::http_client();
    let ping = rpc(1, "ping", json!({}));
    let response = post_mcp(&client, &server, &ping, &[("host", "evil.example")]).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");

    let port = server.addr.port().to_string();
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        assert_eq!(
            ping_status(&client, &server, &[("host", &host)]).await,
            200,
            "{host}"
        );
    }
}

#[tokio::test]
async fn origins_must_be_allowed() {
    let server = TestServer::start(&["--allowed-origins", "http://localhost:6274"]).await;
    let client = tests::http_client();
    let evil = [("origin", "http://evil.example")];
    assert_eq!(ping_status(&client, &server, &evil).await, 403);
    let allowed = [("origin", "http://localhost:6274")];
    assert_eq!(ping_status(&client, &server, &allowed).await, 200);
    // No Origin (a non-browser client) passes.
    assert_eq!(ping_status(&client, &server, &[]).await, 200);
}

#[tokio::test]
async fn without_allowed_origins_only_loopback_origins_pass() {
    let server = TestServer::start(&[]).await;
    let client = tests::http_client();
    let local = [("origin", "http://localhost:3000")];
    assert_eq!(ping_status(&client, &server, &local).await, 200);
    let own = format!("http://127.0.0.1:{}", server.addr.port());
    assert_eq!(
        ping_status(&client, &server, &[("origin", &own)]).await,
        200
    );
    for foreign in [
        "http://evil.example",
        "http://localhost.evil.example:80",
        "null",
    ] {
        let status = ping_status(&client, &server, &[("origin", foreign)]).await;
        assert_eq!(status, 403, "{foreign}");
    }
}

#[tokio::test]
async fn a_deployment_hostname_can_be_allowed() {
    let server = TestServer::start(&["--allowed-hosts", "tollgate.example.com"]).await;
    let client = tests::http_client();
    let ours = [("host", "tollgate.example.com")];
    assert_eq!(ping_status(&client, &server, &ours).await, 200);
    let other = [("host", "other.example.com")];
    assert_eq!(ping_status(&client, &server, &other).await, 403);
}
