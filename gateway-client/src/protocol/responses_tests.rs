#![allow(clippy::unwrap_used)]
use serde_json::json;

use super::*;
use crate::protocol::responses_stream::ResponsesStream;
use crate::{pipeline::StreamEvent, usage::Usage};

fn read(body: Value) -> Result<ResponsesCall, GatewayError> {
    OpenAiResponses.read(body.as_object().unwrap().clone())
}

fn unsupported_param(body: Value) -> String {
    match read(body) {
        Err(GatewayError::UnsupportedParameter { param, .. }) => param,
        other => panic!("expected unsupported_parameter, got {other:?}"),
    }
}

#[test]
fn a_string_input_with_instructions_is_a_system_and_a_user_message() {
    let call = read(json!({
        "model": "m", "instructions": "Be brief.", "input": "Hi", "stream": true,
        "max_output_tokens": 50, "temperature": 0.2, "top_p": 0.9, "metadata": {"k": "v"},
        "store": false, "include": [], "truncation": "disabled"
    }))
    .unwrap();
    assert!(call.call.stream);
    assert_eq!(
        Value::Object(call.call.request),
        json!({
            "model": "m", "temperature": 0.2, "top_p": 0.9, "max_tokens": 50,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
        })
    );
}

#[test]
fn items_become_messages_tool_calls_and_tool_results() {
    let call = read(json!({
        "input": [
            {"role": "developer", "content": "Use tools."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Weather in Oslo?"},
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"}
            ]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "weather", "arguments": "{\"city\":\"Oslo\"}"},
            {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_a", "output": "rain"},
            {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "noon"}]}
        ],
        "tools": [{"type": "function", "name": "weather", "description": "d", "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "weather"},
        "parallel_tool_calls": false
    }))
    .unwrap();
    let request = Value::Object(call.call.request);
    assert_eq!(
        request["messages"],
        json!([
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Oslo?"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
            ]},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "rain"},
            {"role": "tool", "tool_call_id": "call_b", "content": "noon"}
        ])
    );
    assert_eq!(
        request["tools"],
        json!([{"type": "function", "function": {"name": "weather", "description": "d", "parameters": {"type": "object"}, "strict": true}}])
    );
    assert_eq!(
        request["tool_choice"],
        json!({"type": "function", "function": {"name": "weather"}})
    );
    assert_eq!(request["parallel_tool_calls"], json!(false));
}

#[test]
fn a_json_schema_format_is_a_response_format() {
    let call = read(json!({
        "input": "x",
        "text": {"format": {"type": "json_schema", "name": "city", "schema": {"type": "object"}, "strict": true}}
    }))
    .unwrap();
    assert_eq!(
        call.call.request["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": true}})
    );
    let plain = read(json!({"input": "x", "text": {"format": {"type": "text"}}})).unwrap();
    assert!(!plain.call.request.contains_key("response_format"));
}

#[test]
fn state_and_hosted_tools_are_unsupported_parameters() {
    assert_eq!(
        unsupported_param(json!({"input": "x", "previous_response_id": "resp_1"})),
        "previous_response_id"
    );
    assert_eq!(
        unsupported_param(json!({"input": "x", "conversation": "conv_1"})),
        "conversation"
    );
    assert_eq!(
        unsupported_param(json!({"input": "x", "store": true})),
        "store"
    );
    assert_eq!(
        unsupported_param(json!({"input": "x", "tools": [{"type": "web_search"}]})),
        "tools[0].type"
    );
    assert_eq!(
        unsupported_param(json!({"input": "x", "tool_choice": {"type": "file_search"}})),
        "tool_choice"
    );
    assert_eq!(
        unsupported_param(json!({"input": [{"type": "item_reference", "id": "msg_1"}]})),
        "input[0].type"
    );
    // Explicit stateless values are fine.
    read(json!({"input": "x", "store": false, "previous_response_id": null, "background": false}))
        .unwrap();
}

#[test]
fn malformed_input_is_invalid() {
    for body in [
        json!({}),
        json!({"input": 5}),
        json!({"input": [{"role": "wizard", "content": "x"}]}),
        json!({"input": [{"type": "function_call", "name": "f"}]}),
        json!({"input": "x", "metadata": {"k": 1}}),
        json!({"input": "x", "instructions": ["no"]}),
    ] {
        assert!(
            matches!(read(body.clone()), Err(GatewayError::InvalidRequest(_))),
            "{body}"
        );
    }
}

fn chat_answer(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    })
}

#[test]
fn a_chat_answer_is_written_as_a_response_with_the_request_echoed() {
    let echo = read(json!({"input": "x", "instructions": "Be brief.", "metadata": {"k": "v"}, "temperature": 0.5}))
        .unwrap()
        .echo;
    let response = echo.write_answer(&chat_answer(
        json!({"role": "assistant", "content": "Hello."}),
        "stop",
    ));
    assert!(response["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "m");
    assert_eq!(response["instructions"], "Be brief.");
    assert_eq!(response["metadata"], json!({"k": "v"}));
    assert_eq!(response["temperature"], json!(0.5));
    assert_eq!(response["store"], json!(false));
    assert_eq!(response["output"][0]["type"], "message");
    assert_eq!(
        response["output"][0]["content"][0],
        json!({"type": "output_text", "text": "Hello.", "annotations": [], "logprobs": []})
    );
    assert_eq!(response["usage"]["input_tokens"], 7);
    assert_eq!(response["usage"]["output_tokens"], 3);
    assert_eq!(response["usage"]["total_tokens"], 10);
}

#[test]
fn tool_calls_and_truncation_round_trip() {
    let echo = ResponsesEcho::default();
    let calls = json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
    ]});
    let response = echo.write_answer(&chat_answer(calls, "tool_calls"));
    let item = &response["output"][0];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["call_id"], "call_1");
    assert_eq!(item["name"], "weather");
    // The item read back as input is the same tool call.
    let again = read(json!({"input": [item, {"type": "function_call_output", "call_id": "call_1", "output": "rain"}]}))
        .unwrap();
    assert_eq!(
        again.call.request["messages"][0]["tool_calls"][0]["function"],
        json!({"name": "weather", "arguments": "{\"city\":\"Oslo\"}"})
    );
    let cut = echo.write_answer(&chat_answer(json!({"content": "Hel"}), "length"));
    assert_eq!(cut["status"], "incomplete");
    assert_eq!(
        cut["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
}

fn chunk(delta: Value, finish: Option<&str>) -> StreamEvent {
    StreamEvent::Chunk(json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))
}

fn names_and_sequence(events: &[super::super::responses_stream::ResponsesEvent]) -> Vec<&str> {
    for (expected, event) in events.iter().enumerate() {
        assert_eq!(event.data["sequence_number"], expected);
        assert_eq!(event.data["type"], event.name);
    }
    events.iter().map(|e| e.name).collect()
}

#[test]
fn a_text_stream_becomes_the_responses_event_sequence() {
    let mut writer = ResponsesStream::new(ResponsesEcho::default(), "m", 1);
    let mut events = writer.start();
    for event in [
        chunk(json!({"role": "assistant", "content": "Hel"}), None),
        chunk(json!({"content": "lo"}), None),
        chunk(json!({}), Some("stop")),
        StreamEvent::Done {
            usage: Usage::new(5, 2),
        },
    ] {
        events.extend(writer.on_event(&event));
    }
    assert_eq!(
        names_and_sequence(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[6].data["text"], "Hello");
    let done = &events[9].data["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["usage"]["total_tokens"], 7);
    assert_eq!(done["id"], events[0].data["response"]["id"]);
}

#[test]
fn a_tool_call_stream_and_a_failure() {
    let mut writer = ResponsesStream::new(ResponsesEcho::default(), "m", 1);
    let mut events = writer.start();
    let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut call = json!({"index": index, "function": {"arguments": args}});
        if let Some(id) = id {
            call["id"] = json!(id);
            call["type"] = json!("function");
        }
        if let Some(name) = name {
            call["function"]["name"] = json!(name);
        }
        chunk(json!({"tool_calls": [call]}), None)
    };
    for event in [
        call(0, Some("call_a"), Some("weather"), ""),
        call(0, None, None, "{\"city\":"),
        call(0, None, None, "\"Oslo\"}"),
        call(1, Some("call_b"), Some("time"), "{}"),
    ] {
        events.extend(writer.on_event(&event));
    }
    events.extend(writer.on_error(&GatewayError::UpstreamFailed {
        summary: "cut".to_owned(),
    }));
    assert_eq!(
        names_and_sequence(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.failed",
        ]
    );
    assert_eq!(events[5].data["arguments"], "{\"city\":\"Oslo\"}");
    assert_eq!(events[6].data["item"]["call_id"], "call_a");
    let failed = &events[9].data["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "upstream_failed");
}
