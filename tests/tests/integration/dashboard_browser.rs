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
    let (Some(node_bin), Some(node_modules), Some(chromium)) = (
        external::node_bin_dir(),
        external::node_modules(),
        external::chromium(),
    ) else {
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
        let headers = [("mcp-protocol-version", "2026-07-28"), ("api-key", "ka")];
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
    let output_dir = test_output_dir();
    let script = external::repo_path("tests/clients/dashboard.mjs");
    // coreutils' `timeout` bounds the whole run (the script has its own, shorter waits).
    let mut command = std::process::Command::new("timeout");
    command
        .arg("180")
        .arg(node_bin.join("node"))
        .arg(&script)
        .arg(server.url(""))
        .arg(ADMIN)
        .arg(&output_dir)
        .arg(expected.to_string())
        .env("TOLLGATE_TEST_NODE_MODULES", &node_modules)
        .env("TOLLGATE_TEST_CHROMIUM", &chromium)
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let result: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON from the browser script ({e}): {stdout}\n{stderr}"));
    assert!(output.status.success(), "{result:#}\n{stderr}");
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
    assert!(output_dir.join("dashboard.png").exists());
}
