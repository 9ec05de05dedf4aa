//! Real clients nobody here wrote, against a real server: the official MCP Python SDK calling
//! with a bearer token (and refused a tool its token has no scope for), the MCP Inspector's
//! `--strict` schema check (0 portability warnings), and Claude Code's `claude mcp list` / `get`
//! (connected, no schema warnings). Locally a missing client skips; on CI it fails.

use std::{path::Path, process::Command};

use serde_json::{Value, json};
use tests::{
    TestServer, external,
    oauth::{Issuer, SigningKey},
};

/// Runs `command` to completion within `seconds` (coreutils `timeout`), off the runtime's
/// threads; returns its exit code, stdout and stderr.
async fn run(command: Command, seconds: u32) -> (i32, String, String) {
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(ToOwned::to_owned).collect();
    let mut timed = Command::new("timeout");
    timed.arg(seconds.to_string()).arg(program).args(args);
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(name, value),
            None => timed.env_remove(name),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        timed.current_dir(dir);
    }
    let output = tokio::task::spawn_blocking(move || timed.output())
        .await
        .unwrap()
        .unwrap_or_else(|error| panic!("cannot run the client: {error}"));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// PATH with Node 22 first, so `#!/usr/bin/env node` scripts run under it.
fn node_path(node_bin: &Path) -> String {
    format!(
        "{}:{}",
        node_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[tokio::test]
async fn the_python_sdk_calls_with_a_bearer_token_and_is_refused_an_unscoped_tool() {
    let Some(python) = external::python() else {
        return;
    };
    let key = SigningKey::rsa("python");
    let issuer = Issuer::start(&[&key]).await;
    let server = TestServer::start(&[
        "--oauth-issuers",
        &issuer.url,
        "--public-url",
        "https://gw.example.com",
        "--mcp-tool-scopes",
        "summarize=mcp.docs",
    ])
    .await;
    let token = key.sign(&issuer.claims(
        "https://gw.example.com/mcp",
        "app-python",
        "mcp.tools",
        &json!({}),
    ));
    let mut command = Command::new(python);
    command
        .arg(external::repo_path("tests/clients/mcp_bearer.py"))
        .arg(server.mcp_url())
        .env("MCP_BEARER_TOKEN", &token)
        .env("MCP_REFUSED_TOOL", "summarize");
    let (code, stdout, stderr) = run(command, 120).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let outcome: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        outcome["tools"],
        json!(["whoami", "echo", "lookup_fact"]),
        "{outcome}"
    );
    assert_eq!(outcome["echo"]["message"], "from python", "{outcome}");
    assert_eq!(outcome["echo_is_error"], false);
    assert_eq!(
        outcome["resources"].as_array().unwrap().len(),
        tools::documents().len()
    );
    assert!(
        outcome["document_starts"]
            .as_str()
            .unwrap()
            .starts_with("# "),
        "{outcome}"
    );
    assert_eq!(
        outcome["prompts"],
        json!(["explain_scaling", "review_budget"])
    );
    assert_eq!(outcome["prompt_messages"], 2);
    // The refused tool never ran: an error either way the SDK reports it.
    let refused = &outcome["refused"];
    assert!(
        refused["called"] == false || refused["is_error"] == true,
        "{outcome}"
    );
    assert!(!stdout.contains(&token) && !stderr.contains(&token));
}

#[tokio::test]
async fn the_inspectors_strict_schema_check_finds_nothing() {
    let (Some(node_bin), Some(modules)) = (external::node_bin_dir(), external::node_modules())
    else {
        return;
    };
    let server = TestServer::start(&[]).await;
    let home = tempdir("inspector");
    let mut command = Command::new(modules.join(".bin/mcp-inspector"));
    command
        .args([
            "--cli",
            &server.mcp_url(),
            "--method",
            "tools/list",
            "--strict",
        ])
        .env("PATH", node_path(&node_bin))
        .env("HOME", &home)
        .current_dir(&home);
    let (code, stdout, stderr) = run(command, 120).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{stdout}"));
    assert_eq!(listed["tools"].as_array().unwrap().len(), 4, "{stdout}");
    for complaint in ["Warning", "Error", "Issue:", "portab"] {
        assert!(!stderr.contains(complaint), "`{complaint}` in: {stderr}");
    }
    let _ = std::fs::remove_dir_all(home);
}

#[tokio::test]
async fn claude_code_connects_and_prints_no_schema_warnings() {
    let (Some(node_bin), Some(modules)) = (external::node_bin_dir(), external::node_modules())
    else {
        return;
    };
    let server = TestServer::start(&[]).await;
    let home = tempdir("claude");
    let claude = |args: &[&str]| {
        let mut command = Command::new(modules.join(".bin/claude"));
        command
            .args(args)
            .env("PATH", node_path(&node_bin))
            .env("HOME", &home)
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env_remove("ANTHROPIC_API_KEY")
            .current_dir(&home);
        command
    };
    let (code, _, stderr) = run(
        claude(&[
            "mcp",
            "add",
            "--transport",
            "http",
            "tollgate",
            &server.mcp_url(),
        ]),
        120,
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let lists_before = tools_lists(&server).await;
    for args in [&["mcp", "list"][..], &["mcp", "get", "tollgate"][..]] {
        let (code, stdout, stderr) = run(claude(args), 120).await;
        assert_eq!(code, 0, "{args:?}: {stdout}\n{stderr}");
        assert!(stdout.contains("Connected"), "{args:?}: {stdout}");
        let all = format!("{stdout}\n{stderr}").to_lowercase();
        for complaint in ["unknown format", "schema", "warning", "invalid"] {
            assert!(!all.contains(complaint), "`{complaint}` in {args:?}: {all}");
        }
    }
    // The check is real: Claude Code fetched the tool list (and compiled its schemas).
    assert!(
        tools_lists(&server).await > lists_before,
        "claude never listed the tools"
    );
    let _ = std::fs::remove_dir_all(home);
}

/// How many `tools/list` calls the server has answered, from its metrics.
async fn tools_lists(server: &TestServer) -> u64 {
    let metrics = tests::http_client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .filter(|line| line.starts_with("mcp_requests_total{method=\"tools/list\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tollgate-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
