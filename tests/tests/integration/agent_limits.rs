//! The agent's deadlines: the whole turn, each tool call (MCP routing against a server that
//! never answers), and each model call.

use std::time::Duration;

use tokio::time::Instant;

use mock_upstream::Reply;
use serde_json::Value;
use tests::{
    agent::{SilentPeer, chat, client, message, tool_calls},
    start_with_mock,
};

/// Well past a 1 s deadline, well short of the mock's 3 s delay.
const PROMPTLY: Duration = Duration::from_millis(2500);

/// One turn on a server whose `deadline_flag` is 1 s, with a model that answers after 3 s: the
/// status, the body and how long the turn took.
async fn turn_with_a_slow_model(deadline_flag: &str) -> (u16, Value, Duration) {
    let (mock, server) = start_with_mock(&[deadline_flag, "1"]).await;
    mock.push(Reply::text("Too late.").delayed(Duration::from_secs(3)));
    let started = Instant::now();
    let (status, body) = chat(&client(), &server, None, &message("Hello?")).await;
    (status, body, started.elapsed())
}

// Paused time: the 1 s deadline and the mock's 3 s delay are reached by auto-advance, so the
// test takes no real second and the window it asserts is exact.
#[tokio::test(start_paused = true)]
async fn a_turn_past_its_deadline_is_a_504() {
    let (status, body, took) = turn_with_a_slow_model("--agent-timeout-seconds").await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "agent_timeout");
    assert!(body["error"]["message"].is_string());
    assert!(
        took >= Duration::from_millis(900) && took < PROMPTLY,
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_model_call_past_the_upstream_deadline_is_a_504() {
    let (status, body, took) = turn_with_a_slow_model("--upstream-timeout-seconds").await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "upstream_timeout");
    assert!(took < PROMPTLY, "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_tool_that_never_answers_times_out_and_the_turn_goes_on() {
    let silent = SilentPeer::start().await;
    let mcp_url = silent.url("/mcp");
    let (mock, server) = start_with_mock(&[
        "--tool-routing",
        "mcp",
        "--mcp-url",
        &mcp_url,
        "--agent-tool-timeout-seconds",
        "1",
    ])
    .await;
    // Two calls in one round: they time out together, not one after the other.
    mock.push(Reply::tool_calls([
        ("whoami", "{}"),
        ("lookup_fact", r#"{"topic":"mcp"}"#),
    ]));
    mock.push(Reply::text("The tools are down; answering from memory."));

    let started = Instant::now();
    let (status, body) = chat(&client(), &server, None, &message("Who are you?")).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"], "The tools are down; answering from memory.");
    let calls = tool_calls(&body);
    assert_eq!(calls.len(), 2);
    for call in calls {
        assert_eq!(call["is_error"], true, "{call}");
        assert_eq!(call["routed_via"], "mcp");
        let error = call["result"]["error"].as_str().unwrap();
        assert!(error.contains("did not answer"), "{error}");
        let ms = call["duration_ms"].as_f64().unwrap();
        assert!((900.0..2000.0).contains(&ms), "{ms}");
    }
    assert!(took < PROMPTLY, "{took:?}");
    // The model was told about the timeouts.
    let requests = mock.chat_requests();
    let fed_back = requests[1].body["messages"].to_string();
    assert!(fed_back.contains("did not answer"), "{fed_back}");
}
