//! MCP_TOOL_SCOPES: a token caller sees only the tools its scopes allow and is refused the
//! others (403 `insufficient_scope`, the same on the fast path and through rmcp); key callers
//! hold every scope; the agent's MCP-routed calls run with the caller's own rights on this
//! server's /mcp; and a foreign MCP_URL never sees the caller's token.

use std::sync::{Arc, Mutex};

use axum::{Router, extract::State, http::HeaderMap, http::StatusCode, response::IntoResponse};
use mock_upstream::Reply;
use serde_json::{Value, json};
use tests::{
    TestServer, bind_loopback, meta_2026,
    oauth::{Issuer, SigningKey},
    post_mcp, rpc, start_mock, start_with_model,
};

const PUBLIC_URL: &str = "https://gw.example.com";
const AUDIENCE: &str = "https://gw.example.com/mcp";
const SCOPES: &str = "echo=mcp.echo,summarize=mcp.docs,lookup_fact=mcp.docs";
const PREFIX: &str = "api://tollgate/";

async fn scoped_server(issuer: &Issuer, upstream: &str, extra: &[&str]) -> TestServer {
    let mut flags = vec![
        "--oauth-issuers",
        &issuer.url,
        "--public-url",
        PUBLIC_URL,
        "--mcp-tool-scopes",
        SCOPES,
        "--oauth-scope-prefix",
        PREFIX,
        "--subscription-keys",
        "keyed=key-scoped",
        "--semantic-cache",
        "off",
    ];
    flags.extend_from_slice(extra);
    start_with_model(upstream, &flags).await
}

async fn post(
    server: &TestServer,
    credential: &str,
    body: &Value,
    version: &str,
) -> reqwest::Response {
    let bearer = format!("Bearer {credential}");
    let mut headers = vec![
        ("mcp-protocol-version", version),
        ("authorization", bearer.as_str()),
    ];
    let name = body["params"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if version == "2026-07-28" {
        headers.push(("mcp-method", body["method"].as_str().unwrap_or_default()));
        if !name.is_empty() {
            headers.push(("mcp-name", name.as_str()));
        }
    }
    post_mcp(&tests::http_client(), server, body, &headers).await
}

async fn listed_tools(server: &TestServer, credential: &str) -> (Vec<String>, Value) {
    let response = post(
        server,
        credential,
        &rpc(1, "tools/list", json!({})),
        "2025-06-18",
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let names = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect();
    (names, body["result"].clone())
}

fn call(id: u64, tool: &str, arguments: Value, stateless: bool) -> Value {
    let mut params = json!({"name": tool, "arguments": arguments});
    if stateless {
        params["_meta"] = meta_2026();
    }
    rpc(id, "tools/call", params)
}

#[tokio::test]
async fn tools_list_shows_only_callable_tools_and_other_calls_are_refused() {
    let key = SigningKey::ec("scopes");
    let issuer = Issuer::start(&[&key]).await;
    let server = scoped_server(&issuer, "http://127.0.0.1:9/v1", &[]).await;
    let echo_only = key.sign(&issuer.claims(AUDIENCE, "app-echo", "mcp.echo", &json!({})));

    let (names, result) = listed_tools(&server, &echo_only).await;
    assert_eq!(names, ["whoami", "echo"]);
    assert_eq!(result["cacheScope"], "private", "{result}");
    let (names, _) = listed_tools(&server, "key-scoped").await;
    assert_eq!(names, ["whoami", "echo", "lookup_fact", "summarize"]);
    // Scopes as the client requested them (Entra ID's full form) count too.
    let full =
        key.sign(&issuer.claims(AUDIENCE, "app-full", "api://tollgate/mcp.docs", &json!({})));
    let (names, _) = listed_tools(&server, &full).await;
    assert_eq!(names, ["whoami", "lookup_fact", "summarize"]);

    // Refused on the fast path (plain 2025 call) and through rmcp (2026 call) alike.
    for (id, version, stateless) in [(7, "2025-06-18", false), (8, "2026-07-28", true)] {
        let body = call(id, "summarize", json!({"topic": "mcp"}), stateless);
        let response = post(&server, &echo_only, &body, version).await;
        assert_eq!(response.status(), 403, "{version}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(
            challenge.contains("scope=\"api://tollgate/mcp.docs\""),
            "{challenge}"
        );
        assert!(
            challenge.contains("resource_metadata=\"https://gw.example.com/"),
            "{challenge}"
        );
        let refusal: Value = response.json().await.unwrap();
        assert_eq!(refusal["id"], id, "{refusal}");
        assert_eq!(refusal["error"]["code"], -32003, "{refusal}");
        assert_eq!(refusal["error"]["data"]["scope"], "mcp.docs", "{refusal}");

        let allowed = post(
            &server,
            &echo_only,
            &call(id, "echo", json!({"message": "hi"}), stateless),
            version,
        )
        .await;
        assert_eq!(allowed.status(), 200, "{version}");
        let answer: Value = allowed.json().await.unwrap();
        assert_eq!(
            answer["result"]["structuredContent"]["message"], "hi",
            "{answer}"
        );
    }
    // A key caller may call every tool.
    let keyed = post(
        &server,
        "key-scoped",
        &call(9, "summarize", json!({"topic": "mcp"}), false),
        "2025-06-18",
    )
    .await;
    assert_eq!(keyed.status(), 200);

    // The metadata lists the scopes as clients request them.
    let metadata: Value = tests::http_client()
        .get(server.url("/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["scopes_supported"],
        json!(["api://tollgate/mcp.echo", "api://tollgate/mcp.docs"])
    );
}

#[tokio::test]
async fn the_agents_tool_calls_run_with_the_callers_own_rights_whatever_the_routing() {
    let key = SigningKey::rsa("agent-scopes");
    let issuer = Issuer::start(&[&key]).await;
    let echo_only = key.sign(&issuer.claims(AUDIENCE, "app-agent", "mcp.echo", &json!({})));
    for routing in ["mcp", "in-process"] {
        let mock = start_mock().await;
        let server = scoped_server(&issuer, &mock.base_url(), &["--tool-routing", routing]).await;
        mock.push_many([
            Reply::tool_call("summarize", r#"{"topic": "mcp"}"#),
            Reply::tool_call("echo", r#"{"message": "allowed"}"#),
            Reply::text("done"),
        ]);
        let response = tests::agent::client()
            .post(server.url("/agent/chat"))
            .bearer_auth(&echo_only)
            .json(&json!({"message": "summarize then echo"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{routing}");
        let summary: Value = response.json().await.unwrap();
        let calls = tests::agent::tool_calls(&summary);
        assert_eq!(calls.len(), 2, "{summary}");
        assert_eq!(calls[0]["name"], "summarize", "{summary}");
        assert_eq!(calls[0]["is_error"], true, "{routing}: {summary}");
        let error = calls[0]["result"]["error"].as_str().unwrap();
        assert!(
            error.contains("scope `api://tollgate/mcp.docs`"),
            "{routing}: {error}"
        );
        assert_eq!(calls[1]["is_error"], false, "{summary}");
        assert_eq!(calls[1]["routed_via"], routing, "{summary}");
        assert_eq!(calls[1]["result"]["message"], "allowed", "{summary}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_foreign_mcp_url_gets_the_agents_key_never_the_callers_token() {
    let (listener, addr) = bind_loopback().await;
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let app = Router::new().fallback(record).with_state(seen.clone());
    let foreign = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let key = SigningKey::ec("foreign");
    let issuer = Issuer::start(&[&key]).await;
    let mock = start_mock().await;
    let foreign_url = format!("http://{addr}/mcp");
    let server = scoped_server(
        &issuer,
        &mock.base_url(),
        &[
            "--tool-routing",
            "mcp",
            "--mcp-url",
            &foreign_url,
            "--agent-subscription-key",
            "agent-own-key",
        ],
    )
    .await;
    let token = key.sign(&issuer.claims(AUDIENCE, "app-foreign", "mcp.echo", &json!({})));
    mock.push_many([Reply::tool_call("whoami", "{}"), Reply::text("done")]);
    let response = tests::agent::client()
        .post(server.url("/agent/chat"))
        .bearer_auth(&token)
        .json(&json!({"message": "who?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = seen.lock().unwrap().clone();
    assert!(
        !seen.is_empty(),
        "the agent never called the foreign server"
    );
    for headers in &seen {
        for (name, value) in headers {
            assert!(
                !value.to_str().unwrap_or_default().contains(&token),
                "{name} carried the token"
            );
        }
        assert_eq!(
            headers.get("api-key").and_then(|v| v.to_str().ok()),
            Some("agent-own-key")
        );
    }
    foreign.abort();
}

async fn record(
    State(seen): State<Arc<Mutex<Vec<HeaderMap>>>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    seen.lock().unwrap().push(headers);
    (StatusCode::SERVICE_UNAVAILABLE, "busy")
}
