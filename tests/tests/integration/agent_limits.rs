//! The agent's deadlines: the whole turn, each tool call (MCP routing against a server that
//! never answers), and each model call.

use std::time::{Duration, Instant};

use loadtest::mock_upstream::{MockOptions, MockUpstream, Reply};
use tests::agent::{SilentPeer, chat, client, message, start_with_model};

/// Well past a 1 s deadline, well short of the mock's 3 s delay.
const PROMPTLY: Duration = Duration::from_millis(2500);

#[tokio::test]
async fn a_turn_past_its_deadline_is_a_504() {
    let mock = MockUpstream::start(MockOptions::default()).await.unwrap();
    let server = start_with_model(&mock.base_url(), &["--agent-timeout-seconds", "1"]).await;
    mock.push(Reply::text("Too late.").delayed(Duration::from_secs(3)));

    let started = Instant::now();
    let (status, body) = chat(&client(), &server, None, &message("Hello?")).await;
    let took = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "agent_timeout");
    assert!(body["error"]["message"].is_string());
    assert!(
        took >= Duration::from_millis(900) && took < PROMPTLY,
        "{took:?}"
    );
}

#[tokio::test]
async fn a_model_call_past_the_upstream_deadline_is_a_504() {
    let mock = MockUpstream::start(MockOptions::default()).await.unwrap();
    let server = start_with_model(&mock.base_url(), &["--upstream-timeout-seconds", "1"]).await;
    mock.push(Reply::text("Too late.").delayed(Duration::from_secs(3)));

    let started = Instant::now();
    let (status, body) = chat(&client(), &server, None, &message("Hello?")).await;
    let took = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "upstream_timeout");
    assert!(took < PROMPTLY, "{took:?}");
}

#[tokio::test]
async fn a_tool_that_never_answers_times_out_and_the_turn_goes_on() {
    let mock = MockUpstream::start(MockOptions::default()).await.unwrap();
    let silent = SilentPeer::start().await;
    let mcp_url = silent.url("/mcp");
    let server = start_with_model(
        &mock.base_url(),
        &[
            "--tool-routing",
            "mcp",
            "--mcp-url",
            &mcp_url,
            "--agent-tool-timeout-seconds",
            "1",
        ],
    )
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
    let calls = body["tool_calls"].as_array().unwrap();
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
