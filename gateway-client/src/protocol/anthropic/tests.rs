#![allow(clippy::unwrap_used)]

use serde_json::{Map, Value, json};

use super::{native::EventsToChunks, *};
use crate::{pipeline::StreamEvent, upstream::sse::SseParser, usage::Usage};

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn read(body: Value, native: bool) -> ModelCall {
    AnthropicMessages { native }
        .read_request(object(body), MessagesHeaders::default())
        .unwrap()
}

#[test]
fn a_conversation_with_tools_reads_into_chat_form() {
    let body = json!({
        "model": "claude-x", "max_tokens": 300, "stream": true,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a cat"}]},
                {"type": "text", "text": "Thanks"},
            ]},
        ],
        "tools": [
            {"name": "lookup", "description": "Looks up", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["END"], "temperature": 0.2, "top_k": 5,
        "metadata": {"user_id": "u-1"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    });
    let call = read(body, false);
    assert!(call.stream);
    let chat = Value::Object(call.request);
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ]},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "a cat"},
            {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
        ])
    );
    assert_eq!(
        chat["tools"],
        json!([{"type": "function", "function": {"name": "lookup", "description": "Looks up", "parameters": {"type": "object"}}}])
    );
    assert_eq!(chat["tool_choice"], json!("required"));
    assert_eq!(chat["parallel_tool_calls"], json!(false));
    assert_eq!(chat["stop"], json!(["END"]));
    assert_eq!(chat["user"], json!("u-1"));
    assert_eq!(chat["max_tokens"], json!(300));
    assert!(chat.get("top_k").is_none() && chat.get("thinking").is_none());
    assert_eq!(chat[STASH], json!({"protocol": "messages"}));
}

#[test]
fn bad_requests_are_refused_with_the_field_named() {
    for (body, expected) in [
        (json!({"max_tokens": 5, "messages": []}), "model"),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            "max_tokens",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": []}),
            "messages",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}),
            "messages.0: role",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]}),
            "messages.0: content.0",
        ),
    ] {
        let error = AnthropicMessages::default()
            .read_request(object(body), MessagesHeaders::default())
            .unwrap_err();
        assert!(matches!(error, GatewayError::InvalidRequest(_)));
        assert!(
            error.to_string().contains(expected),
            "{error} lacks {expected}"
        );
        assert_eq!(error_type(&error), "invalid_request_error");
    }
}

#[test]
fn a_native_upstream_gets_the_callers_own_body_with_the_governed_limits() {
    let body = json!({
        "model": "claude-x", "max_tokens": 64000, "stream": true,
        "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "enabled", "budget_tokens": 1024}, "top_k": 3,
    });
    let headers = MessagesHeaders {
        version: Some("2023-06-01"),
        beta: Some("tools-2024"),
    };
    let mut call = AnthropicMessages { native: true }
        .read_request(object(body), headers)
        .unwrap();
    call.request.insert("max_tokens".to_owned(), json!(2000));
    let stash = call.request.remove(STASH).unwrap();
    let (sent, headers) = native::native_request(call.request, stash).unwrap();
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(sent["max_tokens"], json!(2000));
    assert_eq!(sent["stream"], json!(true));
    assert_eq!(sent["model"], json!("claude-x"));
    assert_eq!(sent["top_k"], json!(3));
    assert_eq!(
        sent["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert!(sent.get("thinking").is_none());
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(headers["anthropic-beta"], "tools-2024");
}

#[test]
fn whole_answers_round_trip_between_messages_and_chat() {
    let message = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "text", "text": "Looking it up."},
            {"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {"q": "cat"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 5},
    });
    let chat = native::completion(&message);
    assert_eq!(chat["choices"][0]["finish_reason"], json!("tool_calls"));
    assert_eq!(
        chat["usage"],
        json!({"prompt_tokens": 15, "completion_tokens": 7, "total_tokens": 22})
    );
    let back = AnthropicMessages::default().write_answer(&chat);
    assert_eq!(back["content"], message["content"]);
    assert_eq!(back["stop_reason"], json!("tool_use"));
    assert_eq!(back["id"], json!("msg_1"));
    assert_eq!(
        back["usage"],
        json!({"input_tokens": 15, "output_tokens": 7})
    );
    let stopped = json!({"id": "msg_2", "content": [{"type": "text", "text": "a"}], "stop_reason": "stop_sequence", "stop_sequence": "END", "usage": {"input_tokens": 1, "output_tokens": 1}});
    let back = AnthropicMessages::default().write_answer(&native::completion(&stopped));
    assert_eq!(back["stop_reason"], json!("stop_sequence"));
    assert_eq!(back["stop_sequence"], json!("END"));
    let long = json!({"choices": [{"message": {"content": "x"}, "finish_reason": "length"}]});
    assert_eq!(
        AnthropicMessages::default().write_answer(&long)["stop_reason"],
        json!("max_tokens")
    );
}

/// The names and data of the events a writer makes of chat chunks then the end.
fn write_all(chunks: &[Value], usage: Usage) -> Vec<(&'static str, Value)> {
    let mut writer = MessagesStreamWriter::new("m");
    let mut events: Vec<_> = chunks
        .iter()
        .flat_map(|chunk| writer.write(&StreamEvent::Chunk(chunk.clone())))
        .collect();
    events.extend(writer.write(&StreamEvent::Done { usage }));
    events
}

fn names(events: &[(&'static str, Value)]) -> Vec<&'static str> {
    events.iter().map(|(name, _)| *name).collect()
}

#[test]
fn a_stream_of_text_then_tool_calls_is_written_as_anthropic_events() {
    let chunk = |delta: Value, finish: Value| json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    let chunks = [
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hi "}), Value::Null),
        chunk(json!({"content": "there"}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
    ];
    let events = write_all(&chunks, Usage::new(12, 9));
    assert_eq!(
        names(&events),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(events[0].1["message"]["id"], json!("msg_c1"));
    assert_eq!(
        events[6].1["content_block"],
        json!({"type": "tool_use", "id": "call_a", "name": "f", "input": {}})
    );
    assert_eq!(events[6].1["index"], json!(1));
    assert_eq!(
        events[8].1["delta"],
        json!({"type": "input_json_delta", "partial_json": "1}"})
    );
    assert_eq!(events[10].1["index"], json!(2));
    assert_eq!(events[13].1["delta"]["stop_reason"], json!("tool_use"));
    assert_eq!(
        events[13].1["usage"],
        json!({"input_tokens": 12, "output_tokens": 9})
    );
}

#[test]
fn an_empty_answer_is_still_a_whole_message() {
    let events = write_all(&[], Usage::default());
    assert_eq!(
        names(&events),
        ["message_start", "ping", "message_delta", "message_stop"]
    );
    assert_eq!(events[2].1["delta"]["stop_reason"], json!("end_turn"));
}

/// An Anthropic stream as the bytes a native upstream sends.
fn anthropic_stream(events: &[Value]) -> String {
    events
        .iter()
        .map(|event| {
            format!(
                "event: {}\ndata: {event}\n\n",
                event["type"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_native_stream_reads_into_chat_chunks_and_writes_back_the_same_events() {
    let upstream = [
        json!({"type": "message_start", "message": {"id": "msg_7", "type": "message", "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 20, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Sure."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"x\": 1}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 11}}),
        json!({"type": "message_stop"}),
    ];
    let mut reader = EventsToChunks::default();
    let text = anthropic_stream(&upstream);
    // Split mid-event, as the network would.
    let (first, second) = text.split_at(text.len() / 2);
    let mut bytes = reader.push(first.as_bytes()).unwrap().to_vec();
    bytes.extend_from_slice(&reader.push(second.as_bytes()).unwrap());
    let mut parser = SseParser::default();
    parser.push(&bytes);
    let mut chunks = Vec::new();
    while let Some(data) = parser.next_data() {
        chunks.push(data);
    }
    assert_eq!(chunks.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = chunks[..chunks.len() - 1]
        .iter()
        .map(|c| serde_json::from_str(c).unwrap())
        .collect();
    let usage = Usage::from_body(chunks.last().unwrap()).unwrap();
    assert_eq!(usage, Usage::new(20, 11));
    let events = write_all(&chunks, usage);
    let expected: Vec<&str> = upstream
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .filter(|t| *t != "ping")
        .collect();
    let mut written = names(&events);
    written.retain(|name| *name != "ping");
    assert_eq!(written, expected);
    assert_eq!(events[3].1["delta"], upstream[3]["delta"]);
    assert_eq!(events[5].1["content_block"], upstream[5]["content_block"]);
    assert_eq!(events[6].1["delta"], upstream[6]["delta"]);
    assert_eq!(events[0].1["message"]["id"], json!("msg_7"));
}

#[test]
fn an_error_event_fails_a_native_stream() {
    let mut reader = EventsToChunks::default();
    let text = anthropic_stream(&[
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ]);
    let error = reader.push(text.as_bytes()).unwrap_err();
    assert!(matches!(error, GatewayError::UpstreamFailed { .. }));
    assert!(error.to_string().contains("Overloaded"));
}

#[test]
fn errors_take_anthropics_shape_and_types() {
    let error = GatewayError::BudgetExceeded {
        retry_after: std::time::Duration::from_secs(3),
        limit: 10,
    };
    let body = AnthropicMessages::default().write_error(&error);
    assert_eq!(body["type"], json!("error"));
    assert_eq!(body["error"]["type"], json!("rate_limit_error"));
    assert_eq!(body["error"]["message"], json!(error.to_string()));
    let rejected = GatewayError::UpstreamRejected {
        status: 404,
        summary: "no such model".to_owned(),
    };
    assert_eq!(error_type(&rejected), "not_found_error");
    assert_eq!(status_type(401), "authentication_error");
    assert_eq!(status_type(413), "request_too_large");
    assert_eq!(status_type(529), "overloaded_error");
    assert_eq!(status_type(502), "api_error");
}

#[test]
fn count_requests_need_no_max_tokens() {
    let body =
        json!({"model": "m", "system": "S", "messages": [{"role": "user", "content": "hi"}]});
    let chat = AnthropicMessages::default()
        .read_count_request(object(body))
        .unwrap();
    assert_eq!(
        chat["messages"][0],
        json!({"role": "system", "content": "S"})
    );
}
