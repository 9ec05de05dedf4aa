//! `POST /agent/chat/stream`: `tool_call` events, then `delta` events spelling out the reply,
//! then one `done` event with the same summary as `/agent/chat`; an `error` event on failure.

use mock_upstream::{MockOptions, MockUpstream, Reply};
use serde_json::Value;
use tests::{
    TestServer,
    agent::{SseEvent, chat, client, message, sse_events, tool_calls},
    gateway::{content_type, post_json},
    start_with_mock, start_with_model,
};

const REPLY: &str = "Slots let you stage a release and swap it in. Served by instance inst-stream.";

/// whoami + lookup_fact, then a several-word answer (streamed in several chunks).
fn script(mock: &MockUpstream) {
    mock.push(
        Reply::tool_calls([
            ("whoami", "{}"),
            ("lookup_fact", r#"{"topic":"deployment slots"}"#),
        ])
        .with_usage(11, 4),
    );
    mock.push(Reply::text(REPLY).with_usage(22, 9));
}

/// Streams one turn; returns the status, the content type and the events after the first,
/// which names the turn's session (`agent_sessions` tests sessions).
async fn stream(server: &TestServer, text: &str) -> (u16, String, Vec<SseEvent>) {
    let response = post_json(
        &client(),
        server,
        "/agent/chat/stream",
        None,
        &message(text),
    )
    .await;
    let status = response.status().as_u16();
    let content_type = content_type(&response).to_owned();
    let body = response.text().await.unwrap();
    let mut events = sse_events(&body);
    if status == 200 {
        assert_eq!(
            events.first().map(|e| e.name.as_str()),
            Some("session"),
            "{events:?}"
        );
        events.remove(0);
    }
    (status, content_type, events)
}

/// The parts of a turn summary that must agree between the two routes (durations differ).
fn comparable(summary: &Value) -> Value {
    let mut summary = summary.clone();
    // Each turn starts its own session.
    summary.as_object_mut().unwrap().remove("session_id");
    for call in summary["tool_calls"].as_array_mut().unwrap() {
        call.as_object_mut().unwrap().remove("duration_ms");
        // `served_at` and `uptime_seconds` in whoami's result change from call to call.
        if let Some(result) = call["result"].as_object_mut() {
            result.remove("served_at");
            result.remove("uptime_seconds");
        }
    }
    summary
}

#[tokio::test]
async fn events_come_in_order_and_end_with_the_summary() {
    let flags = ["--instance-id", "inst-stream"];
    let (mock, server) = start_with_mock(&flags).await;
    script(&mock);

    let (status, content_type, events) = stream(&server, "How do slots work?").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );

    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    let tool_events = names.iter().take_while(|n| **n == "tool_call").count();
    let delta_events = names[tool_events..]
        .iter()
        .take_while(|n| **n == "delta")
        .count();
    assert_eq!(tool_events, 2, "{names:?}");
    assert!(delta_events > 1, "the reply arrives in pieces: {names:?}");
    assert_eq!(names[tool_events + delta_events..], ["done"], "{names:?}");

    for (event, name) in events.iter().zip(["whoami", "lookup_fact"]) {
        let data = &event.data;
        assert_eq!(data["name"], name, "{data}");
        assert!(data["arguments"].is_object(), "{data}");
        assert!(data["result_summary"].is_string(), "{data}");
        assert_eq!(data["routed_via"], "in-process", "{data}");
        assert_eq!(data["is_error"], false, "{data}");
    }
    assert!(
        events[0].data["result_summary"]
            .as_str()
            .unwrap()
            .contains("inst-stream")
    );

    let streamed: String = events[2..2 + delta_events]
        .iter()
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    let done = &events.last().unwrap().data;
    assert_eq!(streamed, REPLY);
    assert_eq!(done["reply"], REPLY);
    assert_eq!(done["instance_id"], "inst-stream");
    assert_eq!(done["model"], "gpt-4o-mini");
    assert_eq!(done["usage"]["prompt_tokens"], 33);
    assert_eq!(done["usage"]["completion_tokens"], 13);
    assert_eq!(done["usage"]["total_tokens"], 46);
    assert!(done["cache"]["hits"].is_u64() && done["cache"]["misses"].is_u64());
    assert_eq!(tool_calls(done).len(), 2);

    // The model calls really streamed.
    assert!(
        mock.chat_requests()
            .iter()
            .all(|r| r.body["stream"] == true)
    );

    // The same script through the JSON route (a fresh server, so no state is shared) gives the
    // same summary.
    let json_server = start_with_model(&mock.base_url(), &flags).await;
    script(&mock);
    let (status, body) = chat(
        &client(),
        &json_server,
        None,
        &message("How do slots work?"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(comparable(done), comparable(&body));
}

#[tokio::test]
async fn a_failed_model_call_ends_the_stream_with_an_error_event() {
    let options = MockOptions {
        fail_500_every: Some(1),
        ..MockOptions::default()
    };
    let mock = MockUpstream::start(options).await.unwrap();
    let server = start_with_model(&mock.base_url(), &["--upstream-attempts", "1"]).await;

    let (status, content_type, events) = stream(&server, "Hello?").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["error"], "{events:?}");
    let error = &events[0].data["error"];
    assert_eq!(error["code"], "upstream_failed", "{error}");
    assert!(error["message"].is_string());
    assert_eq!(mock.chat_requests().len(), 1);
}

// Paused time: the 1 s deadline and the mock's 3 s delay are reached by auto-advance.
#[tokio::test(start_paused = true)]
async fn the_turn_deadline_ends_the_stream_with_an_error_event() {
    let (mock, server) = start_with_mock(&["--agent-timeout-seconds", "1"]).await;
    mock.push(Reply::text("Too late.").delayed(std::time::Duration::from_secs(3)));

    let started = tokio::time::Instant::now();
    let (_, _, events) = stream(&server, "Hello?").await;
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(1) && took < std::time::Duration::from_secs(3),
        "{took:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(last.name, "error", "{events:?}");
    assert_eq!(last.data["error"]["code"], "agent_timeout");
    assert!(events.iter().all(|e| e.name != "done"));
}

/// Whatever shape the model's text takes, the deltas concatenate to `done.reply`.
async fn deltas_and_reply(replies: Vec<Reply>, flags: &[&str]) -> (Vec<String>, String, String) {
    let (mock, server) = start_with_mock(flags).await;
    mock.push_many(replies);
    let (status, _, events) = stream(&server, "Hello?").await;
    assert_eq!(status, 200);
    let names: Vec<String> = events.iter().map(|e| e.name.clone()).collect();
    let done = events.last().unwrap();
    assert_eq!(done.name, "done", "{events:?}");
    let streamed: String = events
        .iter()
        .filter(|e| e.name == "delta")
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    (
        names,
        streamed,
        done.data["reply"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn deltas_spell_out_the_reply_exactly() {
    // Text alongside a tool call, then the answer: both are part of the reply, a blank line apart.
    let (names, streamed, reply) = deltas_and_reply(
        vec![
            Reply::ToolCalls {
                content: Some("Let me check.".to_owned()),
                calls: vec![("whoami".to_owned(), "{}".to_owned())],
            },
            Reply::text("Done."),
        ],
        &[],
    )
    .await;
    assert_eq!(reply, "Let me check.\n\nDone.");
    assert_eq!(streamed, reply);
    assert_eq!(names, ["delta", "tool_call", "delta", "done"]);

    // Whitespace around the answer is trimmed from the reply, and so from the deltas.
    let (_, streamed, reply) = deltas_and_reply(
        vec![Reply::stream(["\n\n", " Hello", " there. ", "\n"])],
        &[],
    )
    .await;
    assert_eq!(reply, "Hello there.");
    assert_eq!(streamed, reply);

    // A model that never stops calling tools gets the agent's own closing words, streamed too.
    let (_, streamed, reply) = deltas_and_reply(
        vec![
            Reply::tool_call("whoami", "{}"),
            Reply::tool_call("whoami", "{}"),
        ],
        &["--agent-max-iterations", "1"],
    )
    .await;
    assert!(reply.starts_with("I stopped after 1 rounds"), "{reply}");
    assert_eq!(streamed, reply);
}
