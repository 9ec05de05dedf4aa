//! Real clients nobody here wrote against the Responses API: the OpenAI Python SDK
//! (`responses.create`, `responses.stream`, function tools, an unsupported parameter) and the
//! OpenAI Agents SDK running an agent with a function tool (its default model API is the
//! Responses API). Each is charged to its own subscription, seen in `/admin/usage` and
//! `/metrics`.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use mock_upstream::{MockUpstream, Reply};
use serde_json::Value;
use tests::gateway::{metric, scrape, start_keyed, usage_report};

const ADMIN: &str = "k-admin-responses";
const SDK_KEY: &str = "k-openai-sdk";
const AGENTS_KEY: &str = "k-openai-agents";

/// Runs `tests/clients/{script}` with these arguments and reads the JSON it prints.
async fn run_client(python: &Path, script: &str, args: &[String]) -> Value {
    let script = format!("{}/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(python)
        .arg(&script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Waited on off the runtime's threads: the server under test runs on them.
    let output = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// The OpenAI SDK's script against `base_url`, with the mock's replies queued for it.
async fn run_openai_sdk(python: &Path, mock: &MockUpstream, base_url: &str, key: &str) {
    mock.push_many([
        Reply::text("Hello from tollgate.").with_usage(12, 5),
        Reply::stream(["Streams ", "arrive ", "in pieces."]).with_usage(8, 6),
        Reply::tool_call("get_weather", r#"{"city":"Oslo"}"#).with_usage(30, 10),
        Reply::text("It is rainy in Oslo.").with_usage(45, 7),
    ]);
    let sdk = run_client(
        python,
        "openai_responses.py",
        &[base_url.to_owned(), key.to_owned()],
    )
    .await;
    assert_eq!(sdk["create"]["text"], "Hello from tollgate.");
    assert_eq!(sdk["create"]["status"], "completed");
    assert_eq!(sdk["create"]["total_tokens"], 17);
    assert_eq!(sdk["stream"]["first"], "response.created");
    assert_eq!(sdk["stream"]["last"], "response.completed");
    assert_eq!(sdk["stream"]["text"], "Streams arrive in pieces.");
    assert!(sdk["stream"]["deltas"].as_array().unwrap().len() >= 2);
    assert_eq!(sdk["stream"]["total_tokens"], 14);
    assert_eq!(sdk["tools"]["name"], "get_weather");
    assert_eq!(sdk["tools"]["arguments"]["city"], "Oslo");
    assert_eq!(sdk["tools"]["answer"], "It is rainy in Oslo.");
    assert_eq!(sdk["unsupported"]["exception"], "BadRequestError");
    assert_eq!(sdk["unsupported"]["code"], "unsupported_parameter");
    assert_eq!(sdk["unsupported"]["param"], "previous_response_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_passed_through_to_a_native_responses_upstream() {
    let Some(python) = tests::external::python() else {
        return;
    };
    let mock = tests::start_mock().await;
    let keys = format!("responses-sdk-native={SDK_KEY}");
    let flags = ["--admin-key", ADMIN, "--responses-upstream", "native"];
    let server = start_keyed(&mock.base_url(), &keys, &flags).await;
    run_openai_sdk(&python, &mock, &server.url("/v1"), SDK_KEY).await;
    // Every call went to the mock's own Responses API, the unsupported one to none.
    assert_eq!(mock.responses_requests().len(), 4);
    assert!(mock.chat_requests().is_empty());
    let report = usage_report(&tests::http_client(), &server, ADMIN).await;
    let total = report["subscriptions"][0]["total_tokens"].clone();
    assert_eq!(total, 17 + 14 + 40 + 52);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_and_the_agents_sdk_each_on_their_own_subscription() {
    let Some(python) = tests::external::python() else {
        return;
    };
    let mock = tests::start_mock().await;
    let keys = format!("responses-sdk={SDK_KEY},responses-agents={AGENTS_KEY}");
    let server = start_keyed(&mock.base_url(), &keys, &["--admin-key", ADMIN]).await;
    let base_url = server.url("/v1");

    run_openai_sdk(&python, &mock, &base_url, SDK_KEY).await;
    assert_eq!(mock.chat_requests().len(), 4);

    mock.push_many([
        Reply::tool_call("get_weather", r#"{"city":"Oslo"}"#).with_usage(60, 10),
        Reply::text("Rain, 8 C in Oslo.").with_usage(80, 8),
        Reply::tool_call("get_weather", r#"{"city":"Bergen"}"#).with_usage(60, 10),
        Reply::stream(["Rain, ", "8 C in Bergen."]).with_usage(80, 8),
    ]);
    let agents = run_client(
        &python,
        "openai_agents_run.py",
        &[base_url, AGENTS_KEY.to_owned()],
    )
    .await;
    assert_eq!(agents["whole"], "Rain, 8 C in Oslo.");
    assert_eq!(agents["streamed"], "Rain, 8 C in Bergen.");
    assert_eq!(agents["tool_calls"], serde_json::json!(["Oslo", "Bergen"]));
    assert!(agents["streamed_text_deltas"].as_u64().unwrap() >= 2);
    // The agent's second turn sent its tool call and the tool's output back as chat messages.
    let turns = mock.chat_requests();
    let follow_up = &turns[5].body["messages"];
    let tool = follow_up.as_array().unwrap().last().unwrap();
    assert_eq!(tool["role"], "tool");
    assert_eq!(tool["content"], "rain, 8 C in Oslo");

    let client = tests::http_client();
    let report = usage_report(&client, &server, ADMIN).await;
    let row = |name: &str| {
        report["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no usage row for {name}: {report}"))
    };
    assert_eq!(row("responses-sdk")["total_tokens"], 17 + 14 + 40 + 52);
    assert_eq!(row("responses-agents")["total_tokens"], 70 + 88 + 70 + 88);
    let metrics = scrape(&client, &server).await;
    for (subscription, output) in [("responses-sdk", 28.0), ("responses-agents", 36.0)] {
        let sum = metric(
            &metrics,
            "gen_ai_client_token_usage_sum",
            &[
                ("subscription", subscription),
                ("gen_ai_token_type", "output"),
                ("gen_ai_operation_name", "chat"),
                ("api", "openai-responses"),
            ],
        );
        assert_eq!(sum, Some(output), "{subscription}");
    }
}
