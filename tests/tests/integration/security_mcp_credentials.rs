//! MCP routing to a foreign MCP_URL: the caller's key stays on this server (the agent's own key
//! goes instead), and the URL's password and query never reach an error, a tool result or the
//! model.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{Router, extract::State, http::HeaderMap, http::StatusCode, response::IntoResponse};
use mock_upstream::{MockUpstream, Reply};
use serde_json::Value;
use tests::{
    TestServer,
    agent::{chat, client, message, tool_calls},
    bind_loopback, start_with_mock,
};

const PASSWORD: &str = "pa55word";
const FUNCTION_KEY: &str = "FUNC-KEY-7f3a";
const CALLER_KEY: &str = "key-cred-caller";
const AGENT_KEY: &str = "key-cred-agent";

/// A stand-in for someone else's MCP server: records the headers of every request and refuses
/// each with a 503.
struct ForeignMcp {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ForeignMcp {
    async fn start() -> Self {
        let (listener, addr) = bind_loopback().await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new().fallback(record).with_state(seen.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, seen, task }
    }

    /// The URL an operator might configure for it: a password and a function key included.
    fn url_with_secrets(&self) -> String {
        format!(
            "http://svc:{PASSWORD}@{}/mcp?code={FUNCTION_KEY}",
            self.addr
        )
    }

    fn headers(&self) -> Vec<HeaderMap> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for ForeignMcp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(seen): State<Arc<Mutex<Vec<HeaderMap>>>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    seen.lock().unwrap().push(headers);
    (StatusCode::SERVICE_UNAVAILABLE, "busy")
}

/// A keyed server routing tools to `mcp_url`, with the agent's own key set, and a model that
/// calls `whoami` once and then answers.
async fn agent_routing_to(mcp_url: &str, keys: Option<&str>) -> (MockUpstream, TestServer) {
    let mut flags = vec![
        "--tool-routing",
        "mcp",
        "--mcp-url",
        mcp_url,
        "--agent-subscription-key",
        AGENT_KEY,
    ];
    if let Some(keys) = keys {
        flags.extend(["--subscription-keys", keys]);
    }
    let (mock, server) = start_with_mock(&flags).await;
    mock.push_many([
        Reply::tool_call("whoami", "{}"),
        Reply::text("No tools today."),
    ]);
    (mock, server)
}

/// Asserts that neither the turn summary nor anything sent to the model holds a secret of the URL.
fn assert_no_url_secrets(summary: &Value, mock: &MockUpstream) {
    let error = tool_calls(summary)[0]["result"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!error.is_empty(), "{summary}");
    let sent_to_model: Vec<String> = mock
        .chat_requests()
        .iter()
        .map(|request| request.body.to_string())
        .collect();
    let texts = std::iter::once(summary.to_string()).chain(sent_to_model);
    for text in texts {
        for secret in [PASSWORD, FUNCTION_KEY, "code="] {
            assert!(!text.contains(secret), "`{secret}` leaked: {text}");
        }
    }
}

#[tokio::test]
async fn a_foreign_mcp_server_gets_the_agents_key_never_the_callers() {
    let foreign = ForeignMcp::start().await;
    let keys = format!("cred-caller={CALLER_KEY}");
    let (mock, server) = agent_routing_to(&foreign.url_with_secrets(), Some(&keys)).await;

    let (status, body) = chat(&client(), &server, Some(CALLER_KEY), &message("Hi")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tool_calls(&body)[0]["is_error"], true, "{body}");
    assert_eq!(body["reply"], "No tools today.");

    let seen = foreign.headers();
    assert!(
        !seen.is_empty(),
        "the agent never called the foreign server"
    );
    for headers in &seen {
        for (name, value) in headers {
            let value = value.to_str().unwrap_or_default();
            assert!(
                !value.contains(CALLER_KEY),
                "{name} carried the caller's key"
            );
        }
        assert_eq!(
            headers.get("api-key").and_then(|v| v.to_str().ok()),
            Some(AGENT_KEY)
        );
    }

    // The error names the server by its bare URL, never with its secrets.
    let error = tool_calls(&body)[0]["result"]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("http://{}/mcp", foreign.addr)),
        "{error}"
    );
    assert_no_url_secrets(&body, &mock);
}

#[tokio::test]
async fn an_unreachable_mcp_url_is_reported_without_its_secrets() {
    // A port nobody listens on: the connection is refused, and the transport error that says so
    // names the URL.
    let (listener, addr) = bind_loopback().await;
    drop(listener);
    let url = format!("http://svc:{PASSWORD}@{addr}/mcp?code={FUNCTION_KEY}");
    let (mock, server) = agent_routing_to(&url, None).await;

    let (status, body) = chat(&client(), &server, Some(CALLER_KEY), &message("Hi")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tool_calls(&body)[0]["is_error"], true, "{body}");
    let error = tool_calls(&body)[0]["result"]["error"].as_str().unwrap();
    assert!(error.contains(&format!("http://{addr}/mcp")), "{error}");
    assert_no_url_secrets(&body, &mock);
}

#[tokio::test]
async fn on_an_open_server_a_callers_header_key_stays_here_too() {
    let foreign = ForeignMcp::start().await;
    let (mock, server) = start_with_mock(&[
        "--tool-routing",
        "mcp",
        "--mcp-url",
        &format!("http://{}/mcp", foreign.addr),
    ])
    .await;
    mock.push_many([Reply::tool_call("whoami", "{}"), Reply::text("Done.")]);

    let (status, body) = chat(&client(), &server, Some(CALLER_KEY), &message("Hi")).await;
    assert_eq!(status, 200, "{body}");
    let seen = foreign.headers();
    assert!(
        !seen.is_empty(),
        "the agent never called the foreign server"
    );
    for headers in &seen {
        assert!(headers.get("api-key").is_none(), "{headers:?}");
        assert!(headers.get("authorization").is_none(), "{headers:?}");
    }
}
