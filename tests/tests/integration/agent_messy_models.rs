//! Models answer in many shapes, small local ones especially. Each shape here ends in a useful
//! answer (a tool error the model can recover from, a nudge, a last call without tools) or a
//! clear 502, never a 500 or a hang.

use mock_upstream::{MockUpstream, Reply};
use serde_json::{Value, json};
use tests::{
    TestServer,
    agent::{chat, client, message, tool_calls},
    raw_completion, start_with_mock,
};

/// A `chat.completion` body with this assistant message.
fn completion(message: Value, finish_reason: &str) -> Reply {
    raw_completion(message, finish_reason, 5, 1)
}

fn empty_answer() -> Reply {
    completion(json!({"role": "assistant", "content": ""}), "stop")
}

/// Runs one turn; the answer must be a 200.
async fn answered(server: &TestServer) -> Value {
    let (status, body) = chat(&client(), server, None, &message("Help me.")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The tool message the model was sent after the first round.
fn fed_back(mock: &MockUpstream) -> String {
    let requests = mock.chat_requests();
    let messages = requests[1].body["messages"].as_array().unwrap();
    let tool = messages.iter().find(|m| m["role"] == "tool").unwrap();
    tool["content"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn arguments_that_are_not_json_become_a_tool_error() {
    let (mock, server) = start_with_mock(&[]).await;
    mock.push(Reply::tool_call("echo", r#"{"message": "hi""#));
    mock.push(Reply::text("Sorry, let me answer directly: hi."));

    let body = answered(&server).await;
    let call = &body["tool_calls"][0];
    assert_eq!(call["name"], "echo");
    assert_eq!(call["is_error"], true, "{call}");
    assert_eq!(call["arguments"], r#"{"message": "hi""#);
    let error = call["result"]["error"].as_str().unwrap();
    assert!(error.contains("not valid JSON"), "{error}");
    assert!(fed_back(&mock).contains("not valid JSON"));
    assert_eq!(body["reply"], "Sorry, let me answer directly: hi.");
}

#[tokio::test]
async fn arguments_that_are_not_an_object_become_a_tool_error() {
    let (mock, server) = start_with_mock(&[]).await;
    mock.push(Reply::tool_call("lookup_fact", r#"["mcp"]"#));
    mock.push(Reply::text("Answered anyway."));

    let body = answered(&server).await;
    let call = &body["tool_calls"][0];
    assert_eq!(call["is_error"], true, "{call}");
    assert!(
        call["result"]["error"]
            .as_str()
            .unwrap()
            .contains("an array")
    );
    assert_eq!(body["reply"], "Answered anyway.");
}

#[tokio::test]
async fn arguments_sent_as_an_object_are_accepted() {
    let (mock, server) = start_with_mock(&[]).await;
    mock.push(completion(
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_obj", "type": "function",
            "function": {"name": "echo", "arguments": {"message": "as an object"}}
        }]}),
        "tool_calls",
    ));
    mock.push(Reply::text("Echoed."));

    let body = answered(&server).await;
    let call = &body["tool_calls"][0];
    assert_eq!(call["is_error"], false, "{call}");
    assert_eq!(call["result"]["message"], "as an object");
}

async fn unknown_tool(routing: &str) {
    let (mock, server) = start_with_mock(&["--tool-routing", routing]).await;
    mock.push(Reply::tool_call("delete_everything", "{}"));
    mock.push(Reply::text("I cannot do that."));

    let body = answered(&server).await;
    let call = &body["tool_calls"][0];
    assert_eq!(call["name"], "delete_everything");
    assert_eq!(call["is_error"], true, "{call}");
    assert_eq!(call["routed_via"], routing);
    let error = call["result"]["error"].as_str().unwrap();
    assert!(error.contains("delete_everything"), "{error}");
    assert_eq!(body["reply"], "I cannot do that.");
}

#[tokio::test]
async fn an_unknown_tool_is_a_tool_error_in_process() {
    unknown_tool("in-process").await;
}

#[tokio::test]
async fn an_unknown_tool_is_a_tool_error_over_mcp() {
    unknown_tool("mcp").await;
}

async fn missing_field(routing: &str) {
    let (mock, server) = start_with_mock(&["--tool-routing", routing]).await;
    mock.push(Reply::tool_call("echo", "{}"));
    mock.push(Reply::tool_call("echo", r#"{"message":"second try"}"#));
    mock.push(Reply::text("Echoed on the second try."));

    let body = answered(&server).await;
    let calls = tool_calls(&body);
    assert_eq!(calls.len(), 2, "{body}");
    assert_eq!(calls[0]["is_error"], true, "{body}");
    let error = calls[0]["result"]["error"].as_str().unwrap();
    assert!(error.contains("message"), "{error}");
    assert_eq!(calls[1]["is_error"], false, "{body}");
    assert_eq!(calls[1]["result"]["message"], "second try");
    assert!(fed_back(&mock).contains("message"));
}

#[tokio::test]
async fn a_missing_required_field_is_a_tool_error_in_process() {
    missing_field("in-process").await;
}

#[tokio::test]
async fn a_missing_required_field_is_a_tool_error_over_mcp() {
    missing_field("mcp").await;
}

#[tokio::test]
async fn an_empty_answer_gets_one_nudge() {
    let (mock, server) = start_with_mock(&[]).await;
    mock.push(empty_answer());
    mock.push(Reply::text("Here is the answer."));

    let body = answered(&server).await;
    assert_eq!(body["reply"], "Here is the answer.");
    let requests = mock.chat_requests();
    assert_eq!(requests.len(), 2);
    let last = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "system", "{last}");
    assert!(
        last["content"].as_str().unwrap().contains("empty"),
        "{last}"
    );
}

#[tokio::test]
async fn two_empty_answers_are_a_502() {
    let (mock, server) = start_with_mock(&[]).await;
    mock.push(empty_answer());
    mock.push(completion(
        json!({"role": "assistant", "content": null}),
        "stop",
    ));
    mock.push(Reply::text("never asked for"));

    let (status, body) = chat(&client(), &server, None, &message("Help me.")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "empty_model_answer");
    assert!(body["error"]["message"].is_string());
    assert_eq!(mock.chat_requests().len(), 2);
}

#[tokio::test]
async fn answers_without_choices_are_a_502_not_a_500() {
    let (mock, server) = start_with_mock(&[]).await;
    mock.push(Reply::raw_json(json!({})));
    mock.push(Reply::raw_json(json!({"choices": []})));

    let (status, body) = chat(&client(), &server, None, &message("Help me.")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "empty_model_answer");
}

#[tokio::test]
async fn content_as_parts_is_read_as_text() {
    let (mock, server) = start_with_mock(&[]).await;
    mock.push(completion(
        json!({"role": "assistant", "content": [
            {"type": "text", "text": "Two "}, {"type": "text", "text": "parts."}
        ]}),
        "stop",
    ));
    let body = answered(&server).await;
    assert_eq!(body["reply"], "Two parts.");
}

#[tokio::test]
async fn a_legacy_function_call_is_run_as_a_tool_call() {
    let (mock, server) = start_with_mock(&["--instance-id", "inst-legacy"]).await;
    mock.push(completion(
        json!({"role": "assistant", "content": null,
               "function_call": {"name": "whoami", "arguments": "{}"}}),
        "function_call",
    ));
    mock.push(Reply::text("Served by instance inst-legacy."));

    let body = answered(&server).await;
    let call = &body["tool_calls"][0];
    assert_eq!(call["name"], "whoami");
    assert_eq!(call["is_error"], false, "{call}");
    assert_eq!(call["result"]["instance_id"], "inst-legacy");
    assert_eq!(body["reply"], "Served by instance inst-legacy.");
    // The result went back to the model as the answer to that call.
    let requests = mock.chat_requests();
    let messages = requests[1].body["messages"].as_array().unwrap();
    let asked = messages.iter().find(|m| m["role"] == "assistant").unwrap();
    let answered = messages.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(answered["tool_call_id"], asked["tool_calls"][0]["id"]);
}

#[tokio::test]
async fn an_endless_tool_loop_stops_after_the_iteration_limit() {
    let (mock, server) = start_with_mock(&["--agent-max-iterations", "3"]).await;
    mock.push_many((0..10).map(|_| Reply::tool_call("whoami", "{}")));

    let body = answered(&server).await;
    assert!(!body["reply"].as_str().unwrap().is_empty(), "{body}");
    assert_eq!(tool_calls(&body).len(), 3);

    // 3 calls that may use tools, then 1 that may not.
    let requests = mock.chat_requests();
    assert_eq!(requests.len(), 4);
    for request in &requests[..3] {
        assert!(request.body["tools"].is_array(), "{}", request.body);
    }
    assert!(
        requests[3].body.get("tools").is_none(),
        "{}",
        requests[3].body
    );
}

#[tokio::test]
async fn the_last_call_without_tools_gives_the_reply() {
    let (mock, server) = start_with_mock(&["--agent-max-iterations", "1"]).await;
    mock.push(Reply::tool_call("whoami", "{}"));
    mock.push(Reply::text("Wrapped up from what I have."));

    let body = answered(&server).await;
    assert_eq!(body["reply"], "Wrapped up from what I have.");
    let requests = mock.chat_requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].body.get("tools").is_none());
}
