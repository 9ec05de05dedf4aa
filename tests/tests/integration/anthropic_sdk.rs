//! The Anthropic Python SDK (a client nobody here wrote) through `/v1/messages`: create, stream,
//! tool use, count_tokens and its exception types, against a native Anthropic stand-in (the
//! mock's own `/v1/messages` as ANTHROPIC_BASE_URL) and translated to the OpenAI-compatible
//! mock. Each run is charged to its own subscription, in `/admin/usage` and `/metrics`.

use std::time::Duration;

use mock_upstream::MockUpstream;
use serde_json::Value;
use tests::{
    TestServer, UPSTREAM_KEY, external, gateway, http_client, start_mock, start_with_model,
};

const ADMIN: &str = "sdk-admin";

/// A keyed server over `mock`, natively (ANTHROPIC_BASE_URL) or translated.
async fn server(mock: &MockUpstream, keys: &str, native: bool) -> TestServer {
    let anthropic = mock.azure_endpoint();
    let mut flags = vec![
        "--subscription-keys",
        keys,
        "--admin-key",
        ADMIN,
        "--semantic-cache",
        "off",
    ];
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

/// Runs the SDK script with `key`; its JSON results.
async fn run_sdk(server: &TestServer, key: &str) -> Option<Value> {
    let python = external::python()?;
    let mut command = std::process::Command::new(python);
    command
        .arg(external::repo_path("tests/clients/anthropic_sdk.py"))
        .arg(server.url(""))
        .arg(key);
    let finished = external::run(command, Duration::from_secs(120)).await;
    assert!(
        finished.success,
        "the SDK script failed\nstdout: {}\nstderr: {}",
        finished.stdout, finished.stderr
    );
    Some(serde_json::from_str(finished.stdout.trim()).unwrap())
}

/// The subscription's row of `/admin/usage` and its token metric, from `provider`.
async fn assert_charged(server: &TestServer, subscription: &str, provider: &str) {
    let client = http_client();
    let report = gateway::usage_report(&client, server, ADMIN).await;
    let row = report["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == subscription)
        .unwrap_or_else(|| panic!("{subscription} is not in {report}"));
    assert!(row["prompt_tokens"].as_u64().unwrap() > 0, "{row}");
    assert!(row["completion_tokens"].as_u64().unwrap() > 0, "{row}");
    let metrics = gateway::scrape(&client, server).await;
    let labels = [
        ("subscription", subscription),
        ("api", "anthropic"),
        ("gen_ai_provider_name", provider),
        ("gen_ai_operation_name", "chat"),
    ];
    let tokens = gateway::metric(&metrics, "gen_ai_client_token_usage_sum", &labels);
    assert!(
        tokens.is_some_and(|t| t > 0.0),
        "no token metric for {subscription}"
    );
}

#[tokio::test]
async fn the_sdk_runs_against_a_native_anthropic_upstream() {
    let mock = start_mock().await;
    let server = server(&mock, "sdk-native=k-sdk-native", true).await;
    let Some(results) = run_sdk(&server, "k-sdk-native").await else {
        return;
    };
    assert_eq!(results["tool_use"]["tool"], "lookup_fact");
    assert_eq!(results["refusals"]["wrong_key"], 401);
    assert_eq!(results["refusals"]["bad_request"], 400);
    let native = mock.messages_requests();
    assert!(native.len() >= 5, "{} Messages requests", native.len());
    assert!(mock.chat_requests().is_empty(), "a call was translated");
    for request in &native {
        assert_eq!(request.header("x-api-key"), Some(UPSTREAM_KEY));
        // The SDK's own version, passed through.
        assert!(
            request
                .header("anthropic-version")
                .is_some_and(|v| !v.is_empty())
        );
        assert!(request.header("authorization").is_none());
    }
    assert_charged(&server, "sdk-native", "anthropic").await;
}

#[tokio::test]
async fn the_sdk_runs_translated_to_an_openai_compatible_upstream() {
    let mock = start_mock().await;
    let server = server(&mock, "sdk-translated=k-sdk-translated", false).await;
    let Some(results) = run_sdk(&server, "k-sdk-translated").await else {
        return;
    };
    assert_eq!(results["tool_use"]["tool"], "lookup_fact");
    assert!(
        results["create"]["text"]
            .as_str()
            .unwrap()
            .contains("tollgate mock model")
    );
    assert!(mock.messages_requests().is_empty(), "a call went natively");
    let chat = mock.chat_requests();
    assert!(chat.len() >= 5, "{} chat requests", chat.len());
    for request in &chat {
        assert!(
            request.body.get("anthropic").is_none(),
            "the stash leaked upstream"
        );
        assert!(request.header("x-api-key").is_none());
    }
    assert_charged(&server, "sdk-translated", "openai").await;
}
