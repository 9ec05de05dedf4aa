//! The app driven without sockets: `app()` called with `tower::ServiceExt::oneshot`, so the
//! status mapping, the JSON envelope, `Retry-After` rendering and the key matrix are checked on
//! the router itself, in the order its layers run.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use http::{Request, Response, StatusCode, header};
use mcp_server::{Settings, http::app, state::AppState, telemetry};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const ALICE: &str = "key-oneshot-alice";
const ADMIN: &str = "key-oneshot-admin";

/// The app built from `flags`, as `serve` builds it, minus the socket.
fn app_from(
    flags: &[&str],
) -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone {
    let settings = Settings::from_args(flags.iter().copied()).unwrap();
    let local = "127.0.0.1:9".parse().unwrap();
    let state = Arc::new(AppState::new(&settings, telemetry::prometheus(), local).unwrap());
    app(state, CancellationToken::new())
}

/// One request through a fresh app built from `flags`.
async fn oneshot(flags: &[&str], request: Request<Body>) -> Response<Body> {
    app_from(flags).oneshot(request).await.unwrap()
}

fn keyed() -> Vec<&'static str> {
    vec![
        "--subscription-keys",
        "alice=key-oneshot-alice",
        "--admin-key",
        ADMIN,
    ]
}

fn request(method: &str, path: &str, key: Option<&str>, body: &str) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream");
    if let Some(key) = key {
        builder = builder.header("api-key", key);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

/// The status and the envelope's code (or `None` when the body is not an error envelope).
async fn status_and_code(response: Response<Body>) -> (StatusCode, Option<String>) {
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().map(str::to_owned);
    (status, code)
}

/// Flags, the key presented, and the status and envelope code expected.
type UsageCase<'a> = (&'a [&'a str], Option<&'a str>, StatusCode, Option<&'a str>);

fn chat() -> String {
    json!({"messages": [{"role": "user", "content": "hi"}]}).to_string()
}

#[tokio::test]
async fn statuses_map_to_their_envelope_codes() {
    let flags = [keyed(), vec!["--max-request-body-bytes", "256"]].concat();
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(1024));
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            request("GET", "/nowhere", None, ""),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            request("POST", "/v1/chat/completions", Some(ALICE), "{nope"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            request("POST", "/v1/chat/completions", Some(ALICE), "[1]"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            request("POST", "/v1/chat/completions", Some(ALICE), &big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            request("POST", "/v1/chat/completions", Some(ALICE), &chat()),
            StatusCode::SERVICE_UNAVAILABLE,
            "model_not_configured",
        ),
        (
            request("POST", "/agent/chat", Some(ALICE), "{\"message\": \"hi\"}"),
            StatusCode::SERVICE_UNAVAILABLE,
            "model_not_configured",
        ),
        (
            request("GET", "/v1/chat/completions", Some(ALICE), ""),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let answer = status_and_code(oneshot(&flags, request).await).await;
        assert_eq!(answer, (status, Some(code.to_owned())), "{what}");
    }
}

#[tokio::test]
async fn public_routes_need_no_key() {
    for path in ["/health", "/metrics", "/"] {
        let response = oneshot(&keyed(), request("GET", path, None, "")).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn protected_routes_refuse_missing_and_wrong_keys() {
    for path in [
        "/mcp",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/agent/chat",
    ] {
        for (key, code) in [
            (None, "missing_subscription_key"),
            (Some("key-wrong"), "invalid_subscription_key"),
            // The admin key reads the usage report; it is not a subscription key.
            (Some(ADMIN), "invalid_subscription_key"),
        ] {
            let response = oneshot(&keyed(), request("POST", path, key, "{}")).await;
            let answer = status_and_code(response).await;
            assert_eq!(
                answer,
                (StatusCode::UNAUTHORIZED, Some(code.to_owned())),
                "{path} with {key:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_usage_report_admits_the_admin_and_subscriptions_only() {
    let admin_only = ["--admin-key", ADMIN];
    let cases: [UsageCase; 8] = [
        (&keyed(), Some(ADMIN), StatusCode::OK, None),
        (&keyed(), Some(ALICE), StatusCode::OK, None),
        (
            &keyed(),
            None,
            StatusCode::UNAUTHORIZED,
            Some("missing_subscription_key"),
        ),
        (
            &keyed(),
            Some("key-wrong"),
            StatusCode::UNAUTHORIZED,
            Some("invalid_subscription_key"),
        ),
        (&admin_only, Some(ADMIN), StatusCode::OK, None),
        (
            &admin_only,
            None,
            StatusCode::UNAUTHORIZED,
            Some("missing_subscription_key"),
        ),
        (
            &admin_only,
            Some("key-wrong"),
            StatusCode::UNAUTHORIZED,
            Some("invalid_subscription_key"),
        ),
        (&[], None, StatusCode::OK, None),
    ];
    for (flags, key, status, code) in cases {
        let response = oneshot(flags, request("GET", "/admin/usage", key, "")).await;
        let answer = status_and_code(response).await;
        assert_eq!(
            answer,
            (status, code.map(str::to_owned)),
            "{flags:?} with {key:?}"
        );
    }
}

#[tokio::test]
async fn a_rate_limited_call_gets_retry_after_in_the_configured_format() {
    let app = app_from(&[
        "--mcp-rate-limit",
        "1/60",
        "--retry-after-format",
        "http-date",
    ]);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let first = app
        .clone()
        .oneshot(request("POST", "/mcp", None, &ping))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = app
        .oneshot(request("POST", "/mcp", None, &ping))
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = second.headers()[header::RETRY_AFTER].to_str().unwrap();
    let at = httpdate::parse_http_date(retry_after).unwrap();
    assert!(at > std::time::SystemTime::now(), "{retry_after}");
    assert!(
        second
            .extensions()
            .get::<mcp_server::error::RetryWait>()
            .is_none(),
        "the wait is rendered, not left for a later layer"
    );
    let (_, code) = status_and_code(second).await;
    assert_eq!(code.as_deref(), Some("rate_limited"));
}
