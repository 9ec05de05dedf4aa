//! The Claude Code CLI (npm `@anthropic-ai/claude-code`, a client nobody here wrote) runs
//! `claude -p` through tollgate: ANTHROPIC_BASE_URL at tollgate, ANTHROPIC_API_KEY a
//! subscription key, offline (CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1), its HOME a fresh
//! temp dir. It must answer from the mock, translated to the OpenAI-compatible mock or through
//! a native Anthropic stand-in, and be charged to its subscription.

use std::{path::PathBuf, time::Duration};

use mock_upstream::MockUpstream;
use tests::{
    TestServer, UPSTREAM_KEY, external, gateway, http_client, start_mock, start_with_model,
};

const PROMPT: &str = "What do you know about deployment slots?";

/// Whether `answer` is one of the mock model's: a plain answer, or the one after a tool turn
/// (the mock calls the first tool offered when none of tollgate's own is).
fn from_the_mock(answer: &str) -> bool {
    answer.contains("deterministic answer from the tollgate mock model")
        || answer.contains("I used the tools to answer your request")
}

/// The `claude` binary and Node's bin dir, or `None` (skip) when they are not installed.
fn claude() -> Option<(PathBuf, PathBuf)> {
    let node_bin = external::node_bin_dir()?;
    let claude = external::node_modules()?.join(".bin/claude");
    Some((claude, node_bin))
}

async fn server(mock: &MockUpstream, keys: &str, native: bool) -> TestServer {
    let anthropic = mock.azure_endpoint();
    let mut flags = vec!["--subscription-keys", keys, "--admin-key", "cc-admin"];
    if native {
        flags.extend([
            "--anthropic-base-url",
            anthropic.as_str(),
            "--anthropic-api-key",
            UPSTREAM_KEY,
        ]);
    }
    start_with_model(&mock.base_url(), &flags).await
}

/// Runs `claude -p PROMPT` against `server` with `key`; its answer.
async fn run_claude(server: &TestServer, key: &str) -> Option<String> {
    let (claude, node_bin) = claude()?;
    let home = external::scratch_dir("claude-home");
    let mut command = std::process::Command::new(claude);
    command
        .arg("-p")
        .arg(PROMPT)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", node_bin.display()))
        .env("HOME", &home)
        .env("ANTHROPIC_BASE_URL", server.url(""))
        .env("ANTHROPIC_API_KEY", key)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .current_dir(&home);
    let finished = external::run(command, Duration::from_secs(180)).await;
    let _ = std::fs::remove_dir_all(&home);
    assert!(
        finished.success,
        "claude -p failed\nstdout: {}\nstderr: {}",
        finished.stdout, finished.stderr
    );
    Some(finished.stdout)
}

async fn assert_charged(server: &TestServer, subscription: &str, provider: &str) {
    let client = http_client();
    let report = gateway::usage_report(&client, server, "cc-admin").await;
    let rows = report["subscriptions"].as_array().unwrap();
    let row = rows.iter().find(|row| row["name"] == subscription).unwrap();
    assert!(row["total_tokens"].as_u64().unwrap() > 0, "{report}");
    let metrics = gateway::scrape(&client, server).await;
    let labels = [
        ("subscription", subscription),
        ("api", "anthropic"),
        ("gen_ai_provider_name", provider),
    ];
    assert!(
        gateway::metric(&metrics, "gen_ai_client_token_usage_sum", &labels)
            .is_some_and(|t| t > 0.0)
    );
}

#[tokio::test]
async fn claude_code_answers_from_an_openai_compatible_model() {
    let mock = start_mock().await;
    let server = server(&mock, "claude-code=k-claude-code", false).await;
    let Some(answer) = run_claude(&server, "k-claude-code").await else {
        return;
    };
    assert!(from_the_mock(&answer), "{answer}");
    let chat = mock.chat_requests();
    assert!(!chat.is_empty());
    // Claude Code's own tools went out as function tools.
    assert!(
        chat.iter()
            .any(|r| r.body["tools"].as_array().is_some_and(|t| !t.is_empty()))
    );
    assert_charged(&server, "claude-code", "openai").await;
}

#[tokio::test]
async fn claude_code_answers_through_a_native_anthropic_upstream() {
    let mock = start_mock().await;
    let server = server(&mock, "claude-code-native=k-claude-native", true).await;
    let Some(answer) = run_claude(&server, "k-claude-native").await else {
        return;
    };
    assert!(from_the_mock(&answer), "{answer}");
    let sent = mock.messages_requests();
    assert!(!sent.is_empty() && mock.chat_requests().is_empty());
    for request in &sent {
        assert_eq!(request.header("x-api-key"), Some(UPSTREAM_KEY));
        assert!(request.header("anthropic-version").is_some());
    }
    assert_charged(&server, "claude-code-native", "anthropic").await;
}
