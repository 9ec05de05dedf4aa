//! `/dashboard` in a real browser: headless Chromium (npm `playwright-core`) loads the page
//! after known traffic and reads what it shows; and the page's own headers and links.

use std::{path::PathBuf, process::Stdio};

use serde_json::{Value, json};
use tests::{
    TestServer, external,
    gateway::{chat_body, header, post_chat},
    meta_2026, post_mcp, rpc, start_mock, start_with_model,
};

const ADMIN: &str = "dashboard-admin";

/// Where tests leave files for people to look at: `target/test-output`.
fn test_output_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("test-output");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_page_and_its_assets_come_with_a_strict_policy() {
    let server = TestServer::start(&[
        "--subscription-keys",
        "dash-headers=k",
        "--admin-key",
        ADMIN,
    ])
    .await;
    let client = tests::http_client();
    for (path, kind) in [
        ("/dashboard", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
    ] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            header(&response, "content-type").unwrap().starts_with(kind),
            "{path}"
        );
        let policy = header(&response, "content-security-policy").unwrap();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"));
        assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
    }
    let status_page = client
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(status_page.contains(r#"<a href="/dashboard">"#));
}

#[tokio::test]
async fn chromium_shows_what_the_traffic_did() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let mock = start_mock().await;
    let instance = "dashboard-instance-1";
    let server = start_with_model(
        &mock.base_url(),
        &[
            "--subscription-keys",
            "team-alpha=ka,team-beta=kb",
            "--admin-key",
            ADMIN,
            "--instance-id",
            instance,
        ],
    )
    .await;
    let client = tests::http_client();
    let traffic = [
        ("ka", "What is a deployment slot?"),
        ("ka", "What is a deployment slot?"),
        ("ka", "How do blue-green deployments work?"),
        ("kb", "What does a circuit breaker do?"),
        ("kb", "What does a circuit breaker do?"),
    ];
    let (mut hits, mut misses) = (0, 0);
    for (key, text) in traffic {
        let response = post_chat(&client, &server, Some(key), &chat_body(text)).await;
        assert_eq!(response.status(), 200);
        match header(&response, "x-llm-cache-status") {
            Some("hit") => hits += 1,
            _ => misses += 1,
        }
    }
    assert_eq!((hits, misses), (2, 3));
    for id in 0..3 {
        let mut params = json!({"name": "echo", "arguments": {"message": "hi"}});
        params["_meta"] = meta_2026();
        let headers = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
            ("api-key", "ka"),
        ];
        let response = post_mcp(&client, &server, &rpc(id, "tools/call", params), &headers).await;
        assert_eq!(response.status(), 200);
    }

    let expected = json!({
        "subscriptions": ["team-alpha", "team-beta"],
        "tools": ["echo"],
        "instance": instance,
        "hits": hits,
        "misses": misses,
    });
    let result = browser.run(&server, &expected).await;
    assert_eq!(result["shown"]["hits"], hits.to_string());
    assert_eq!(result["shown"]["misses"], misses.to_string());
    assert_eq!(result["shown"]["instance"], instance);
    assert_eq!(result["foreign"], json!([]));
    let requests = result["requests"].as_array().unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r.as_str().unwrap().ends_with("/admin/stats"))
    );
    assert!(test_output_dir().join("dashboard.png").exists());
}

#[tokio::test]
async fn chromium_shows_the_empty_state_before_any_traffic() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let instance = "dashboard-empty-1";
    let server = TestServer::start(&["--admin-key", ADMIN, "--instance-id", instance]).await;
    let result = browser
        .run(&server, &json!({"empty": true, "instance": instance}))
        .await;
    assert_eq!(result["shown"]["emptyShown"], true);
    assert_eq!(result["foreign"], json!([]));
}

/// Node, the npm clients and chromium: what `tests/clients/dashboard.mjs` needs.
struct Browser {
    node_bin: PathBuf,
    node_modules: PathBuf,
    chromium: PathBuf,
}

impl Browser {
    fn find() -> Option<Self> {
        Some(Self {
            node_bin: external::node_bin_dir()?,
            node_modules: external::node_modules()?,
            chromium: external::chromium()?,
        })
    }

    /// Runs the script against `server`; its JSON report, once it passed its own checks.
    async fn run(&self, server: &TestServer, expected: &Value) -> Value {
        let script = external::repo_path("tests/clients/dashboard.mjs");
        // coreutils' `timeout` bounds the whole run (the script has its own, shorter waits).
        let mut command = std::process::Command::new("timeout");
        command
            .arg("180")
            .arg(self.node_bin.join("node"))
            .arg(&script)
            .arg(server.url(""))
            .arg(ADMIN)
            .arg(test_output_dir())
            .arg(expected.to_string())
            .env("TOLLGATE_TEST_NODE_MODULES", &self.node_modules)
            .env("TOLLGATE_TEST_CHROMIUM", &self.chromium)
            .stdin(Stdio::null());
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!("no JSON from the browser script ({e}): {stdout}\n{stderr}")
        });
        assert!(output.status.success(), "{result:#}\n{stderr}");
        result
    }
}
