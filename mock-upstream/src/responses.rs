//! The mock's Responses API (`POST /v1/responses`): the scripted replies of the chat queue,
//! answered as `response` objects or as the Responses stream event sequence, so a gateway's
//! native pass-through can be tested (and demoed) without OpenAI.

use std::sync::{Arc, atomic::Ordering};

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::{
    Reply, Shared, pause,
    request::ChatRequest,
    unix_now, usage,
    wire::{self, Usage},
};

/// A Responses request as the chat body the script and the usage estimates read: instructions
/// and input items as messages, function tools as chat tools.
pub(crate) fn chat_body(body: &Value) -> Result<Value, &'static str> {
    let Some(object) = body.as_object() else {
        return Err("The request body must be a JSON object.");
    };
    let mut messages = Vec::new();
    if let Some(instructions) = object.get("instructions").and_then(Value::as_str) {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    match object.get("input") {
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => messages.extend(items.iter().filter_map(item_message)),
        _ => return Err("'input' is a required property: a string or an array of items."),
    }
    let tools: Vec<Value> = object
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|tool| tool.get("type").and_then(Value::as_str) == Some("function"))
        .map(|tool| json!({"type": "function", "function": {"name": tool.get("name")}}))
        .collect();
    Ok(json!({
        "model": object.get("model"),
        "messages": messages,
        "tools": tools,
        "stream": object.get("stream").and_then(Value::as_bool).unwrap_or(false),
    }))
}

fn item_message(item: &Value) -> Option<Value> {
    match item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message")
    {
        "message" => {
            let content = match item.get("content") {
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|part| part.get("text").and_then(Value::as_str))
                    .collect::<String>(),
                Some(Value::String(text)) => text.clone(),
                _ => String::new(),
            };
            Some(json!({"role": item.get("role"), "content": content}))
        }
        "function_call" => Some(
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": item.get("call_id"), "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")}
            }]}),
        ),
        "function_call_output" => Some(json!({
            "role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output")
        })),
        _ => None,
    }
}

/// What one reply comes to in the Responses API.
struct Output {
    deltas: Vec<String>,
    calls: Vec<(String, String, String)>,
    usage: Usage,
    /// Break the stream off after this many text deltas.
    fail_after: Option<usize>,
}

/// Answers `reply` as a `response` object, or as events when the request streams.
pub(crate) async fn answer(
    shared: &Arc<Shared>,
    request: &ChatRequest<'_>,
    reply: Reply,
) -> Response {
    let output = match output_of(shared, request, reply).await {
        Ok(output) => output,
        Err(verbatim) => return verbatim,
    };
    let id = format!(
        "resp_mock{}",
        shared.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let writer = Writer {
        id,
        model: request.model.clone(),
        created_at: unix_now(),
    };
    if request.stream {
        let (events, broken) = writer.events(&output);
        return wire::sse_response(events, broken);
    }
    if output.fail_after.is_some() {
        let mut response = wire::json_response(Vec::new());
        *response.body_mut() = wire::streamed_body(Vec::new(), true);
        return response;
    }
    Json(writer.response("completed", &output, true)).into_response()
}

/// What a reply says, after its delays and usage overrides; or the answer to send as it is
/// (an error status, raw JSON or raw events).
async fn output_of(
    shared: &Shared,
    request: &ChatRequest<'_>,
    mut reply: Reply,
) -> Result<Output, Response> {
    let mut usage_override = None;
    loop {
        reply = match reply {
            Reply::Delay(delay, inner) => {
                pause(delay).await;
                *inner
            }
            Reply::WithUsage {
                prompt_tokens,
                completion_tokens,
                reply: inner,
            } => {
                usage_override.get_or_insert(Usage::new(prompt_tokens, completion_tokens));
                *inner
            }
            Reply::Status {
                status,
                retry_after,
                message,
            } => return Err(wire::error_response(status, &message, retry_after)),
            Reply::RawJson(body) => return Err(Json(body).into_response()),
            Reply::RawSse(events) => {
                return Err(wire::sse_response(wire::raw_events(&events), false));
            }
            Reply::Text(text) => return Ok(text_output(request, usage_override, vec![text], None)),
            Reply::Stream { deltas, fail_after } => {
                return Ok(text_output(request, usage_override, deltas, fail_after));
            }
            Reply::Flood { delta, chunks } => {
                return Ok(text_output(
                    request,
                    usage_override,
                    vec![delta; chunks],
                    None,
                ));
            }
            Reply::ToolCalls { content, calls } => {
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                let chars = calls.iter().map(|(n, a)| n.len() + a.len()).sum();
                let calls = calls
                    .into_iter()
                    .enumerate()
                    .map(|(index, (name, arguments))| {
                        (format!("call_mock{id}_{index}"), name, arguments)
                    })
                    .collect();
                return Ok(Output {
                    deltas: content.into_iter().collect(),
                    calls,
                    usage: usage(request, usage_override, chars),
                    fail_after: None,
                });
            }
        };
    }
}

fn text_output(
    request: &ChatRequest<'_>,
    usage_override: Option<Usage>,
    deltas: Vec<String>,
    fail_after: Option<usize>,
) -> Output {
    let chars = deltas.iter().map(|d| d.chars().count()).sum();
    Output {
        deltas,
        calls: Vec::new(),
        usage: usage(request, usage_override, chars),
        fail_after,
    }
}

struct Writer {
    id: String,
    model: String,
    created_at: u64,
}

impl Writer {
    fn items(&self, output: &Output) -> Vec<Value> {
        let mut items = Vec::new();
        if !output.deltas.is_empty() {
            items.push(message(
                &format!("msg_{}", self.id),
                &output.deltas.concat(),
                "completed",
            ));
        }
        for (index, (call_id, name, arguments)) in output.calls.iter().enumerate() {
            items.push(
                json!({"type": "function_call", "id": format!("fc_{}_{index}", self.id),
                "call_id": call_id, "name": name, "arguments": arguments, "status": "completed"}),
            );
        }
        items
    }

    fn response(&self, status: &str, output: &Output, done: bool) -> Value {
        let usage = done.then(|| {
            json!({
                "input_tokens": output.usage.prompt_tokens,
                "output_tokens": output.usage.completion_tokens,
                "total_tokens": output.usage.total_tokens,
            })
        });
        json!({
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "model": self.model, "output": if done { self.items(output) } else { Vec::new() },
            "usage": usage, "error": null, "store": false,
        })
    }

    /// The event sequence, and whether it breaks off (a scripted failure).
    fn events(&self, output: &Output) -> (Vec<Bytes>, bool) {
        let mut events = Events::default();
        for name in ["response.created", "response.in_progress"] {
            events.push(
                name,
                json!({"response": self.response("in_progress", output, false)}),
            );
        }
        let items = self.items(output);
        let mut index = 0;
        if !output.deltas.is_empty() {
            let id = format!("msg_{}", self.id);
            let at = json!({"item_id": id, "output_index": 0, "content_index": 0});
            events.push(
                "response.output_item.added",
                json!({"output_index": 0, "item": message(&id, "", "in_progress")}),
            );
            events.push(
                "response.content_part.added",
                with(&at, "part", json!({"type": "output_text", "text": ""})),
            );
            for (sent, delta) in output.deltas.iter().enumerate() {
                if output.fail_after == Some(sent) {
                    return (events.0, true);
                }
                events.push(
                    "response.output_text.delta",
                    with(&at, "delta", json!(delta)),
                );
            }
            if output.fail_after.is_some() {
                return (events.0, true);
            }
            let text = output.deltas.concat();
            events.push("response.output_text.done", with(&at, "text", json!(text)));
            events.push(
                "response.content_part.done",
                with(&at, "part", json!({"type": "output_text", "text": text})),
            );
            events.push(
                "response.output_item.done",
                json!({"output_index": 0, "item": items[0]}),
            );
            index = 1;
        }
        for item in &items[index..] {
            let at = json!({"item_id": item["id"], "output_index": index});
            let mut added = item.clone();
            added["arguments"] = json!("");
            added["status"] = json!("in_progress");
            events.push(
                "response.output_item.added",
                json!({"output_index": index, "item": added}),
            );
            events.push(
                "response.function_call_arguments.delta",
                with(&at, "delta", item["arguments"].clone()),
            );
            events.push(
                "response.function_call_arguments.done",
                with(&at, "arguments", item["arguments"].clone()),
            );
            events.push(
                "response.output_item.done",
                json!({"output_index": index, "item": item}),
            );
            index += 1;
        }
        events.push(
            "response.completed",
            json!({"response": self.response("completed", output, true)}),
        );
        (events.0, false)
    }
}

fn message(id: &str, text: &str, status: &str) -> Value {
    let content = if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "output_text", "text": text, "annotations": []}])
    };
    json!({"type": "message", "id": id, "role": "assistant", "status": status, "content": content})
}

fn with(base: &Value, key: &str, value: Value) -> Value {
    let mut out = base.clone();
    out[key] = value;
    out
}

/// Server-sent events with `type` and `sequence_number` filled in.
#[derive(Default)]
struct Events(Vec<Bytes>);

impl Events {
    fn push(&mut self, name: &str, mut data: Value) {
        data["type"] = json!(name);
        data["sequence_number"] = json!(self.0.len());
        self.0
            .push(Bytes::from(format!("event: {name}\ndata: {data}\n\n")));
    }
}
