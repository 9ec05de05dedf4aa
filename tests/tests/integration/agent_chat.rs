//! `POST /agent/chat`: multi-step turns in both tool routings, the summary the caller gets
//! (tool calls, usage summed over the turn, instance, model, cache), history, `x-request-id`,
//! and the mock model's own tool-using script.

use mock_upstream::{MockUpstream, Reply};
use serde_json::{Value, json};
use tests::{
    agent::{chat, client, is_uuid, message, tool_calls, tools_succeeded_via},
    gateway::post_json,
    start_with_mock,
};

/// whoami + lookup_fact in one round, echo in a second, then the answer: three model calls,
/// each reporting its own usage.
fn three_step_script(mock: &MockUpstream, instance: &str) {
    mock.push(
        Reply::tool_calls([
            ("whoami", "{}"),
            ("lookup_fact", r#"{"topic":"deployment slots"}"#),
        ])
        .with_usage(10, 3),
    );
    mock.push(Reply::tool_call("echo", r#"{"message":"ping"}"#).with_usage(20, 5));
    mock.push(Reply::text(format!("Slots swap. Served by instance {instance}.")).with_usage(7, 2));
}

async fn multi_step(routing: &str) {
    let instance = format!("inst-chat-{routing}");
    let (mock, server) = start_with_mock(&[
        "--tool-routing",
        routing,
        "--instance-id",
        &instance,
        "--chat-model",
        "mock-chat-model",
    ])
    .await;
    three_step_script(&mock, &instance);

    let (status, body) = chat(&client(), &server, None, &message("How do slots work?")).await;
    assert_eq!(status, 200, "{body}");

    let calls = tool_calls(&body);
    let names: Vec<&str> = calls.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["whoami", "lookup_fact", "echo"], "{body}");
    for call in calls {
        assert_eq!(call["routed_via"], routing, "{call}");
        assert_eq!(call["is_error"], false, "{call}");
        assert!(call["duration_ms"].as_f64().unwrap() >= 0.0, "{call}");
        assert!(call["arguments"].is_object(), "{call}");
    }
    // whoami really ran on this instance, and the model saw its result.
    assert_eq!(calls[0]["result"]["instance_id"], instance.as_str());
    assert_eq!(calls[1]["arguments"]["topic"], "deployment slots");
    assert!(calls[1]["result"]["fact"].is_string(), "{}", calls[1]);
    assert_eq!(calls[2]["result"]["message"], "ping");

    assert!(body["reply"].as_str().unwrap().contains(&instance));
    assert_eq!(body["instance_id"], instance.as_str());
    assert_eq!(body["model"], "mock-chat-model");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 37, "completion_tokens": 10, "total_tokens": 47})
    );
    assert!(body["cache"]["misses"].is_u64(), "{body}");
    // A fresh server has nothing cached to serve.
    assert_eq!(body["cache"]["hits"], 0, "{body}");

    // Three model calls: tools offered each time, tool results fed back with their call ids.
    let requests = mock.chat_requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert!(request.body["tools"].is_array(), "{}", request.body);
        assert_eq!(request.body["model"], "mock-chat-model");
    }
    let second: &Vec<Value> = requests[1].body["messages"].as_array().unwrap();
    let asked = second
        .iter()
        .rev()
        .find(|m| m["role"] == "assistant")
        .unwrap();
    let tool_messages: Vec<&Value> = second.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(tool_messages.len(), 2);
    for (index, tool_message) in tool_messages.iter().enumerate() {
        assert_eq!(
            tool_message["tool_call_id"],
            asked["tool_calls"][index]["id"]
        );
    }
    assert!(
        tool_messages[0]["content"]
            .as_str()
            .unwrap()
            .contains(&instance)
    );
}

#[tokio::test]
async fn multi_step_turn_in_process() {
    multi_step("in-process").await;
}

#[tokio::test]
async fn multi_step_turn_over_mcp() {
    multi_step("mcp").await;
}

/// With nothing scripted, the mock behaves like a tool-using model: whoami and lookup_fact, then
/// an answer that cites the instance from the tool results.
async fn default_script(routing: &str) {
    let instance = format!("inst-default-{routing}");
    let (mock, server) =
        start_with_mock(&["--tool-routing", routing, "--instance-id", &instance]).await;

    let (status, body) = chat(
        &client(),
        &server,
        None,
        &message("What are deployment slots?"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = tool_calls(&body)
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["whoami", "lookup_fact"], "{body}");
    assert!(tools_succeeded_via(&body, routing), "{body}");
    let reply = body["reply"].as_str().unwrap();
    assert!(reply.contains(&instance), "{reply}");
    assert_eq!(body["instance_id"], instance.as_str());
    let usage = &body["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(mock.chat_requests().len(), 2);
}

#[tokio::test]
async fn mock_default_script_in_process() {
    default_script("in-process").await;
}

#[tokio::test]
async fn mock_default_script_over_mcp() {
    default_script("mcp").await;
}

#[tokio::test]
async fn history_reaches_the_model_in_order() {
    let (mock, server) = start_with_mock(&[]).await;
    mock.push(Reply::text("Your name is Ada."));

    let body = json!({
        "message": "What is my name?",
        "history": [
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Nice to meet you, Ada."}
        ]
    });
    let (status, reply) = chat(&client(), &server, None, &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["reply"], "Your name is Ada.");
    assert_eq!(reply["tool_calls"], json!([]));

    let sent = &mock.chat_requests()[0].body["messages"];
    let turns: Vec<(&str, &str)> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(turns[0].0, "system");
    assert_eq!(
        &turns[1..],
        [
            ("user", "My name is Ada."),
            ("assistant", "Nice to meet you, Ada."),
            ("user", "What is my name?"),
        ]
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let (mock, server) = start_with_mock(&[]).await;
    let client = client();

    mock.push(Reply::text("One."));
    let given = client
        .post(server.url("/agent/chat"))
        .header("x-request-id", "req-agent-42")
        .json(&message("Say one."))
        .send()
        .await
        .unwrap();
    assert_eq!(given.status(), 200);
    assert_eq!(given.headers()["x-request-id"], "req-agent-42");

    mock.push(Reply::text("Two."));
    let generated = post_json(&client, &server, "/agent/chat", None, &message("Say two.")).await;
    assert_eq!(generated.status(), 200);
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(is_uuid(id), "{id}");

    // Refusals carry one too.
    let refused = post_json(&client, &server, "/agent/chat", None, &json!({})).await;
    assert_eq!(refused.status(), 400);
    let id = refused.headers()["x-request-id"].to_str().unwrap();
    assert!(is_uuid(id), "{id}");
}

#[tokio::test]
async fn a_repeated_question_is_answered_from_the_cache() {
    let (mock, server) = start_with_mock(&[]).await;
    mock.push(Reply::text("Slots are live apps with their own host names.").with_usage(40, 10));
    let client = client();
    let question = message("What are deployment slots?");

    let (status, first) = chat(&client, &server, None, &question).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["cache"], json!({"hits": 0, "misses": 1}));
    assert_eq!(first["usage"]["total_tokens"], 50);

    let (status, second) = chat(&client, &server, None, &question).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["reply"], first["reply"]);
    assert_eq!(second["cache"], json!({"hits": 1, "misses": 0}));
    assert_eq!(second["usage"]["total_tokens"], 0);
    assert_eq!(mock.chat_requests().len(), 1);
}
