//! Redis as managed services run it: TLS only, an ACL user, a private CA (REDIS_CA_CERT). A
//! server whose certificate tollgate cannot trust, or a wrong password, is refused with a
//! clear reason in /health, and the password never shows.

use std::time::Duration;

use serde_json::Value;
use tests::{
    TestServer,
    gateway::{chat_body, header, post_chat},
    redis::{RedisServer, TestCertificates, eventually, health},
    start_mock,
};

const USER: &str = "tollgate-app";
const PASSWORD: &str = "Tls-Acl-s3cret";

fn acl_users() -> [String; 2] {
    [
        "default off".to_owned(),
        format!("{USER} on >{PASSWORD} ~* &* +@all"),
    ]
}

async fn instance(
    url: &str,
    ca: &std::path::Path,
    mock: &mock_upstream::MockUpstream,
) -> TestServer {
    let ca = ca.to_string_lossy();
    TestServer::start(&[
        "--redis-url",
        url,
        "--redis-ca-cert",
        &ca,
        "--openai-base-url",
        &mock.base_url(),
    ])
    .await
}

async fn degraded_reason(client: &reqwest::Client, server: &TestServer) -> String {
    let degraded = eventually(Duration::from_secs(5), || async {
        health(client, server).await["status"] == "degraded"
    })
    .await;
    let body = health(client, server).await;
    assert!(degraded, "/health never said degraded: {body}");
    body["reason"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn tls_with_an_acl_user_and_a_private_ca_shares_budget_and_cache() {
    let Some(certificates) = TestCertificates::make("redis") else {
        return;
    };
    let users = acl_users();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let Some(redis) = RedisServer::start_tls(&certificates, &users) else {
        return;
    };
    let mock = start_mock().await;
    let url = redis.url_as(USER, PASSWORD);
    assert!(url.starts_with("rediss://"));
    let a = instance(&url, &certificates.ca_cert, &mock).await;
    let b = instance(&url, &certificates.ca_cert, &mock).await;
    let client = tests::http_client();

    let body = chat_body("What does TLS protect between tollgate and Redis?");
    // The first TLS handshakes (a debug build, a busy machine) may outlast an operation's
    // deadline: wait until both instances use Redis.
    for server in [&a, &b] {
        let connected = eventually(Duration::from_secs(5), || async {
            let response = post_chat(&client, server, None, &chat_body("warm up")).await;
            header(&response, "x-llm-cache-status") != Some("bypass")
        })
        .await;
        assert!(
            connected,
            "never used Redis: {}",
            health(&client, server).await
        );
    }
    let first = post_chat(&client, &a, None, &body).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-llm-cache-status"), Some("miss"));
    // The answer crossed to the other instance through the TLS Redis.
    let second = post_chat(&client, &b, None, &body).await;
    assert_eq!(header(&second, "x-llm-cache-status"), Some("hit"));
    let status = health(&client, &a).await;
    assert_eq!(status["status"], "healthy", "{status}");
    assert_eq!(status["state_store"], "redis");
}

#[tokio::test]
async fn an_untrusted_certificate_or_a_wrong_password_is_refused_clearly() {
    let (Some(certificates), Some(stranger)) = (
        TestCertificates::make("redis"),
        TestCertificates::make("another"),
    ) else {
        return;
    };
    let users = acl_users();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let Some(redis) = RedisServer::start_tls(&certificates, &users) else {
        return;
    };
    let mock = start_mock().await;
    let client = tests::http_client();

    // Trusting another CA: the handshake fails, and /health says why.
    let url = redis.url_as(USER, PASSWORD);
    let wrong_ca = instance(&url, &stranger.ca_cert, &mock).await;
    let reason = degraded_reason(&client, &wrong_ca).await;
    assert!(reason.contains("certificate"), "{reason}");
    assert!(!reason.contains(PASSWORD), "{reason}");
    // Calls are still served (open failure mode), without the cache.
    let response = post_chat(&client, &wrong_ca, None, &chat_body("Still served?")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-llm-cache-status"), Some("bypass"));

    // The right CA but a wrong password: refused by Redis, the password never shown.
    let wrong_password = "Not-the-s3cret";
    let url = redis.url_as(USER, wrong_password);
    let refused = instance(&url, &certificates.ca_cert, &mock).await;
    let reason = degraded_reason(&client, &refused).await;
    assert!(
        reason.to_lowercase().contains("pass") || reason.contains("auth"),
        "{reason}"
    );
    assert!(!reason.contains(wrong_password), "{reason}");
    let metrics: Value = Value::String(tests::gateway::scrape(&client, &refused).await);
    assert!(!metrics.to_string().contains(wrong_password));
}
