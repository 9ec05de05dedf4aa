//! Keyless Azure OpenAI: Microsoft Entra ID tokens from a service principal, workload identity
//! and managed identity (App Service, the instance metadata service), against stand-ins on
//! loopback and a mock deployment that takes only the stand-in's bearer tokens. Tokens are
//! reused, refreshed when expired and once after a 401, fetched once for many callers, never
//! logged; a failing identity endpoint is a 502 `upstream_auth_failed` and a degraded /health.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use mock_upstream::MockUpstream;
use serde_json::Value;
use tests::{
    TestServer,
    azure::IdentityStandIn,
    gateway::{chat_body, post_chat},
    start_mock,
};

const SECRET: &str = "sp-secret-value-0123456789";
const IDENTITY_HEADER: &str = "identity-header-secret-42";

/// A keyless Azure OpenAI server in front of `mock`, with `flags` naming the credential.
async fn keyless(mock: &MockUpstream, flags: &[&str]) -> TestServer {
    let endpoint = mock.azure_endpoint();
    let mut all = vec![
        "--azure-openai-endpoint",
        endpoint.as_str(),
        "--semantic-cache",
        "off",
        "--tokens-per-minute",
        "10000000",
    ];
    all.extend_from_slice(flags);
    TestServer::start(&all).await
}

fn service_principal(identity: &IdentityStandIn) -> Vec<String> {
    [
        "--azure-tenant-id",
        "contoso.onmicrosoft.com",
        "--azure-client-id",
        "app-id-1",
        "--azure-client-secret",
        SECRET,
        "--azure-authority-host",
        &identity.authority_host(),
    ]
    .map(str::to_owned)
    .to_vec()
}

fn refs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

async fn chat_ok(client: &reqwest::Client, server: &TestServer) {
    let response = post_chat(client, server, None, &chat_body("What is a token budget?")).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
}

/// The `Authorization` of each chat request the mock received.
fn bearers(mock: &MockUpstream) -> Vec<String> {
    mock.chat_requests()
        .iter()
        .map(|r| r.header("authorization").unwrap_or("none").to_owned())
        .collect()
}

#[tokio::test]
async fn a_service_principal_token_reaches_the_deployment_and_is_reused() {
    let (identity, mock) = (IdentityStandIn::start().await, start_mock().await);
    mock.require_bearer(&[&identity.token(1)]);
    let server = keyless(&mock, &refs(&service_principal(&identity))).await;
    let client = tests::http_client();
    for _ in 0..3 {
        chat_ok(&client, &server).await;
    }
    assert_eq!(identity.token_requests(), 1, "one token for three calls");
    let request = &identity.received()[0];
    assert_eq!(request.path, "/contoso.onmicrosoft.com/oauth2/v2.0/token");
    assert_eq!(request.param("grant_type"), Some("client_credentials"));
    assert_eq!(request.param("client_id"), Some("app-id-1"));
    assert_eq!(request.param("client_secret"), Some(SECRET));
    assert_eq!(
        request.param("scope"),
        Some("https://cognitiveservices.azure.com/.default")
    );
    let expected = format!("Bearer {}", identity.token(1));
    assert_eq!(bearers(&mock), vec![expected; 3]);
    assert!(
        mock.chat_requests()
            .iter()
            .all(|r| r.header("api-key").is_none())
    );
}

#[tokio::test]
async fn workload_identity_rereads_its_file_and_expired_tokens_are_replaced() {
    let (identity, mock) = (IdentityStandIn::start().await, start_mock().await);
    // Tokens that expire at once: every call needs a new one.
    identity.set_expires_in(0);
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("federated-token-{}", identity.addr.port()));
    std::fs::write(&file, "federated-jwt-one\n").unwrap();
    let host = identity.authority_host();
    let flags = [
        "--azure-tenant-id",
        "tenant-1",
        "--azure-client-id",
        "workload-app",
        "--azure-federated-token-file",
        file.to_str().unwrap(),
        "--azure-authority-host",
        &host,
    ];
    let server = keyless(&mock, &flags).await;
    let client = tests::http_client();
    chat_ok(&client, &server).await;
    // Kubernetes rotates the projected token; the next exchange must send the new one.
    std::fs::File::create(&file)
        .and_then(|mut f| f.write_all(b"federated-jwt-two"))
        .unwrap();
    chat_ok(&client, &server).await;
    std::fs::remove_file(&file).unwrap();

    let received = identity.received();
    assert_eq!(received.len(), 2);
    let assertions: Vec<_> = received
        .iter()
        .map(|r| r.param("client_assertion"))
        .collect();
    assert_eq!(
        assertions,
        [Some("federated-jwt-one"), Some("federated-jwt-two")]
    );
    for request in &received {
        assert_eq!(request.path, "/tenant-1/oauth2/v2.0/token");
        assert_eq!(
            request.param("client_assertion_type"),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        assert_eq!(request.param("client_id"), Some("workload-app"));
        assert_eq!(request.param("client_secret"), None);
    }
    let expected: Vec<String> = (1..=2)
        .map(|n| format!("Bearer {}", identity.token(n)))
        .collect();
    assert_eq!(bearers(&mock), expected);
}

#[tokio::test]
async fn app_service_managed_identity_sends_its_header_and_the_user_assigned_client_id() {
    let (identity, mock) = (IdentityStandIn::start().await, start_mock().await);
    mock.require_bearer(&[&identity.token(1)]);
    let endpoint = identity.app_service_endpoint();
    let flags = [
        "--identity-endpoint",
        &endpoint,
        "--identity-header",
        IDENTITY_HEADER,
        "--azure-client-id",
        "user-assigned-id",
    ];
    let server = keyless(&mock, &flags).await;
    let client = tests::http_client();
    chat_ok(&client, &server).await;
    chat_ok(&client, &server).await;
    let received = identity.received();
    assert_eq!(received.len(), 1, "reused: expires_on an hour away");
    let request = &received[0];
    assert_eq!(request.path, "/msi/token");
    assert_eq!(request.param("api-version"), Some("2019-08-01"));
    assert_eq!(
        request.param("resource"),
        Some("https://cognitiveservices.azure.com")
    );
    assert_eq!(request.param("client_id"), Some("user-assigned-id"));
    assert_eq!(request.header("x-identity-header"), Some(IDENTITY_HEADER));
}

#[tokio::test]
async fn the_instance_metadata_service_is_the_last_resort() {
    let (identity, mock) = (IdentityStandIn::start().await, start_mock().await);
    mock.require_bearer(&[&identity.token(1)]);
    let endpoint = identity.imds_endpoint();
    let server = keyless(&mock, &["--azure-imds-endpoint", &endpoint]).await;
    chat_ok(&tests::http_client(), &server).await;
    let request = &identity.received()[0];
    assert_eq!(request.path, "/metadata/identity/oauth2/token");
    assert_eq!(request.param("api-version"), Some("2018-02-01"));
    assert_eq!(request.param("client_id"), None, "system-assigned");
    assert_eq!(request.header("metadata"), Some("true"));
}

#[tokio::test]
async fn a_token_the_deployment_refuses_is_replaced_once() {
    let (identity, mock) = (IdentityStandIn::start().await, start_mock().await);
    let server = keyless(&mock, &refs(&service_principal(&identity))).await;
    let client = tests::http_client();
    chat_ok(&client, &server).await;
    // The first token is revoked before it expires.
    mock.require_bearer(&[&identity.token(2)]);
    chat_ok(&client, &server).await;
    assert_eq!(identity.token_requests(), 2);
    let (first, second) = (identity.token(1), identity.token(2));
    assert_eq!(
        bearers(&mock),
        [first.clone(), first, second].map(|t| format!("Bearer {t}"))
    );
    // A deployment that refuses every token: one new token, then the refusal stands.
    mock.require_bearer(&["never-issued"]);
    let response = post_chat(&client, &server, None, &chat_body("Again?")).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_auth_failed", "{body}");
    assert_eq!(identity.token_requests(), 3);
}

#[tokio::test]
async fn fifty_concurrent_calls_share_one_token_request() {
    let (identity, mock) = (IdentityStandIn::start().await, start_mock().await);
    identity.set_delay(Duration::from_millis(200));
    mock.require_bearer(&[&identity.token(1)]);
    let server = Arc::new(keyless(&mock, &refs(&service_principal(&identity))).await);
    let client = tests::http_client();
    let calls = (0..50).map(|_| {
        let (client, server) = (client.clone(), server.clone());
        tokio::spawn(async move { chat_ok(&client, &server).await })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap();
    }
    assert_eq!(identity.token_requests(), 1);
    assert_eq!(mock.chat_requests().len(), 50);
}

#[tokio::test]
async fn a_failing_identity_endpoint_is_a_502_and_a_degraded_health() {
    let (identity, mock) = (IdentityStandIn::start().await, start_mock().await);
    identity.set_failing(true);
    let endpoint = identity.app_service_endpoint();
    let flags = [
        "--identity-endpoint",
        &endpoint,
        "--identity-header",
        IDENTITY_HEADER,
        "--upstream-timeout-seconds",
        "5",
    ];
    let server = keyless(&mock, &flags).await;
    let client = tests::http_client();
    let started = Instant::now();
    let response = post_chat(&client, &server, None, &chat_body("Hello?")).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_auth_failed", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("managed identity (App Service)"),
        "{message}"
    );
    assert!(message.contains("500"), "{message}");
    assert!(!message.contains(IDENTITY_HEADER), "{message}");
    assert!(
        mock.chat_requests().is_empty(),
        "the model was never called"
    );

    let health: Value = client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    let reason = health["reason"].as_str().unwrap();
    assert!(
        reason.contains("Entra ID") && reason.contains("500"),
        "{reason}"
    );

    // Once the endpoint recovers, so do calls and /health.
    identity.set_failing(false);
    chat_ok(&client, &server).await;
    let health: Value = client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
}

/// Every log line, at every level, from every crate, while the test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_or_secret_is_in_any_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // This test's runtime has one thread, so every task the server spawns logs here.
    let _guard = tracing::subscriber::set_default(subscriber);

    let (identity, mock) = (IdentityStandIn::start().await, start_mock().await);
    let server = keyless(&mock, &refs(&service_principal(&identity))).await;
    let client = tests::http_client();
    chat_ok(&client, &server).await;
    mock.require_bearer(&[&identity.token(2)]);
    chat_ok(&client, &server).await;
    identity.set_failing(true);
    mock.require_bearer(&["never-issued"]);
    let response = post_chat(&client, &server, None, &chat_body("Once more")).await;
    assert_eq!(response.status(), 502);
    server.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("refused its Entra ID token") && logs.contains("no Microsoft Entra ID token"),
        "the capture works: {logs}"
    );
    for secret in [identity.token(1), identity.token(2), SECRET.to_owned()] {
        assert!(!logs.contains(&secret), "a secret was logged");
    }
    assert!(!logs.contains("standin"), "part of a token was logged");
}
