//! No way around the keys: every protected route, under path spellings (trailing slash, `//`,
//! case, percent-encoding), every method, and every odd way of presenting a key (empty, blank,
//! several at once, wrong, in each of the four headers), never answers 2xx without a valid
//! key, and every refusal is the JSON error envelope.
//!
//! Requests are written by hand over a real socket, so no client library normalizes the paths.

use mock_upstream::MockUpstream;
use serde_json::json;
use tests::{
    TestServer,
    gateway::start_keyed,
    raw::{self, RawResponse},
    start_mock,
};

const ALICE: &str = "key-matrix-alice";
const ADMIN: &str = "key-matrix-admin";

/// The protected routes and a body each would accept.
fn protected_routes() -> Vec<(&'static str, String)> {
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]}).to_string();
    vec![
        (
            "/mcp",
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string(),
        ),
        ("/agent/chat", json!({"message": "hi"}).to_string()),
        ("/agent/chat/stream", json!({"message": "hi"}).to_string()),
        ("/v1/chat/completions", chat.clone()),
        ("/openai/deployments/x/chat/completions", chat),
        ("/v1/embeddings", json!({"input": "hi"}).to_string()),
        (
            "/v1/messages",
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        ),
        (
            "/v1/messages/count_tokens",
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        ),
        ("/admin/usage", String::new()),
    ]
}

/// The method each route serves.
fn method_of(path: &str) -> &'static str {
    if path == "/admin/usage" {
        "GET"
    } else {
        "POST"
    }
}

async fn matrix_server() -> (MockUpstream, TestServer) {
    let mock = start_mock().await;
    let server = start_keyed(
        &mock.base_url(),
        &format!("matrix-alice={ALICE}"),
        &["--admin-key", ADMIN],
    )
    .await;
    (mock, server)
}

async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> RawResponse {
    let mut all = vec![("Accept", "application/json, text/event-stream")];
    all.extend_from_slice(headers);
    raw::exchange(server.addr, &raw::request(method, path, &all, body)).await
}

/// A refusal: not 2xx (nor 3xx), and the JSON envelope, or Anthropic's error shape on its routes
/// (HEAD answers carry its headers only).
fn assert_refused(response: &RawResponse, what: &str) {
    assert!(
        response.status >= 400,
        "{what}: answered {} without a valid key: {}",
        response.status,
        response.body
    );
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {} with content type {content_type:?}",
        response.status
    );
    if what.starts_with("HEAD ") {
        return;
    }
    let body = response.json();
    // The Anthropic routes answer in Anthropic's error shape (so its SDKs raise the right
    // exception); every other route in the envelope.
    let code = if what.contains("/v1/messages") && body["type"] == "error" {
        &body["error"]["type"]
    } else {
        &body["error"]["code"]
    };
    assert!(code.is_string(), "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
}

/// Spellings of `path` that must not reach its handler without a key.
fn spellings(path: &str) -> Vec<String> {
    let mut variants = vec![
        path.to_owned(),
        format!("{path}/"),
        format!("/{path}"),
        format!("{path}//"),
        path.to_uppercase(),
        format!("{path}?api-key={ALICE}"),
        format!("{path}%20"),
        format!("{path}/."),
        format!("/./{}", &path[1..]),
    ];
    // Percent-encode the first letter of the path (`/%6dcp`) and one inner slash.
    let first = path.as_bytes()[1];
    variants.push(format!("/%{first:02x}{}", &path[2..]));
    if let Some(inner) = path[1..].find('/') {
        let at = inner + 1;
        variants.push(format!("{}%2F{}", &path[..at], &path[at + 1..]));
        variants.push(format!("{}/{}", &path[..at], &path[at..]));
    }
    variants
}

#[tokio::test]
async fn no_path_spelling_gets_past_the_keys() {
    let (_mock, server) = matrix_server().await;
    for (path, body) in protected_routes() {
        let method = method_of(path);
        for spelled in spellings(path) {
            for headers in [vec![], vec![("api-key", "key-matrix-mallory")]] {
                let response = send(&server, method, &spelled, &headers, &body).await;
                assert_refused(&response, &format!("{method} {spelled} {headers:?}"));
            }
        }
    }
}

#[tokio::test]
async fn no_method_gets_past_the_keys() {
    let (_mock, server) = matrix_server().await;
    let methods = [
        "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "POST", "TRACE",
    ];
    for (path, body) in protected_routes() {
        for method in methods {
            for headers in [vec![], vec![("authorization", "Bearer key-matrix-mallory")]] {
                let response = send(&server, method, path, &headers, &body).await;
                assert_refused(&response, &format!("{method} {path} {headers:?}"));
            }
        }
    }
}

/// Ways of presenting no valid key.
fn invalid_presentations() -> Vec<Vec<(&'static str, String)>> {
    let wrong = |header: &'static str, value: &str| vec![(header, value.to_owned())];
    let mut cases = Vec::new();
    for header in ["ocp-apim-subscription-key", "api-key", "x-api-key"] {
        cases.push(wrong(header, ""));
        cases.push(wrong(header, "   "));
        cases.push(wrong(header, "key-matrix-mallory"));
        cases.push(wrong(header, &ALICE[..ALICE.len() - 1]));
        cases.push(wrong(header, &format!("{ALICE}x")));
        cases.push(wrong(header, &ALICE.to_uppercase()));
        cases.push(wrong(header, &format!("Bearer {ALICE}x")));
    }
    for value in [
        String::new(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer    ".to_owned(),
        format!("Basic {ALICE}"),
        format!("Token {ALICE}"),
        format!("Bearer{ALICE}"),
        format!("Bearer {ALICE}x"),
        ALICE.to_owned(),
    ] {
        cases.push(vec![("authorization", value)]);
    }
    // Several at once, none of them valid.
    cases.push(vec![
        ("api-key", "key-matrix-mallory".to_owned()),
        ("api-key", "key-matrix-eve".to_owned()),
    ]);
    cases.push(vec![
        ("ocp-apim-subscription-key", "key-matrix-mallory".to_owned()),
        ("api-key", "key-matrix-eve".to_owned()),
        ("authorization", "Bearer key-matrix-trudy".to_owned()),
    ]);
    // A key in the wrong place: a header nobody reads, a cookie.
    cases.push(vec![("x-api-key-alice", ALICE.to_owned())]);
    cases.push(vec![("cookie", format!("api-key={ALICE}"))]);
    cases.push(vec![("subscription-key", ALICE.to_owned())]);
    cases
}

#[tokio::test]
async fn no_odd_key_header_gets_past_the_keys() {
    let (_mock, server) = matrix_server().await;
    for (path, body) in protected_routes() {
        let method = method_of(path);
        for presentation in invalid_presentations() {
            let headers: Vec<(&str, &str)> = presentation
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            let response = send(&server, method, path, &headers, &body).await;
            assert_refused(&response, &format!("{method} {path} {headers:?}"));
            assert_eq!(response.status, 401, "{method} {path} {headers:?}");
            assert!(!response.body.contains(ALICE), "the error echoes a key");
        }
        // The admin key is not a subscription key.
        if path != "/admin/usage" {
            let response = send(&server, method, path, &[("api-key", ADMIN)], &body).await;
            assert_refused(&response, &format!("{method} {path} with the admin key"));
        }
    }
}

#[tokio::test]
async fn a_valid_key_in_each_header_is_let_through() {
    // The control: the matrix above refuses because of the key, not because of the request.
    let (_mock, server) = matrix_server().await;
    let bearer = format!("Bearer {ALICE}");
    for (path, body) in protected_routes() {
        let method = method_of(path);
        for (header, value) in [
            ("ocp-apim-subscription-key", ALICE),
            ("api-key", ALICE),
            ("x-api-key", ALICE),
            ("authorization", bearer.as_str()),
        ] {
            let response = send(&server, method, path, &[(header, value)], &body).await;
            assert_eq!(
                response.status, 200,
                "{method} {path} with {header}: {}",
                response.body
            );
        }
    }
    let response = send(&server, "GET", "/admin/usage", &[("api-key", ADMIN)], "").await;
    assert_eq!(response.status, 200, "{}", response.body);
}
