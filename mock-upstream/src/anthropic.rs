//! The Anthropic Messages wire shapes: `POST /v1/messages` read into the chat request the
//! script answers, and the answer written as a `message`, as named stream events, or as an
//! Anthropic error body.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::wire::{self, Answer, Meta, Usage, word_chunks};

/// A Messages request as the chat request the mock's script reads: `system` as a system
/// message, text blocks as text, `tool_use` blocks as tool calls, `tool_result` blocks as tool
/// messages, client tools as function tools.
pub(crate) fn to_chat(body: &Value) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = body.get("system") {
        let text = blocks_text(system);
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    for turn in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        read_turn(turn, &mut messages);
    }
    let tools: Vec<Value> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tool| {
            let name = tool.get("name")?.as_str()?;
            let schema = tool
                .get("input_schema")
                .cloned()
                .unwrap_or_else(|| json!({}));
            Some(json!({"type": "function", "function": {"name": name, "parameters": schema}}))
        })
        .collect();
    let mut chat = json!({"messages": messages, "tools": tools});
    for field in ["model", "stream", "max_tokens"] {
        if let Some(value) = body.get(field) {
            chat[field] = value.clone();
        }
    }
    chat
}

/// A string, or the text of text blocks, joined.
fn blocks_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn read_turn(turn: &Value, messages: &mut Vec<Value>) {
    let role = turn.get("role").and_then(Value::as_str).unwrap_or("user");
    let Some(Value::Array(blocks)) = turn.get("content") else {
        messages.push(
            json!({"role": role, "content": turn.get("content").cloned().unwrap_or_default()}),
        );
        return;
    };
    let mut calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("tool_use") => calls.push(json!({
                "id": block.get("id").cloned().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or_default(),
                    "arguments": block.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                },
            })),
            Some("tool_result") => messages.push(json!({
                "role": "tool",
                "tool_call_id": block.get("tool_use_id").cloned().unwrap_or_default(),
                "content": blocks_text(block.get("content").unwrap_or(&Value::Null)),
            })),
            _ => {}
        }
    }
    let text = blocks_text(&Value::Array(blocks.clone()));
    if !text.is_empty() || !calls.is_empty() {
        let mut message = json!({"role": role, "content": text});
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        messages.push(message);
    }
}

fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "tool_calls" => "tool_use",
        "length" => "max_tokens",
        _ => "end_turn",
    }
}

fn message_id(meta: Meta<'_>) -> String {
    format!("msg_{}", meta.id)
}

/// The answer's content blocks.
fn content(answer: &Answer) -> Vec<Value> {
    let mut blocks = Vec::new();
    if let Some(text) = answer.content.as_deref().filter(|t| !t.is_empty()) {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for call in &answer.tool_calls {
        let input: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
        blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
    }
    blocks
}

/// A whole answer as a Messages `message`.
pub(crate) fn message_response(meta: Meta<'_>, answer: &Answer) -> Response {
    axum::Json(json!({
        "id": message_id(meta),
        "type": "message",
        "role": "assistant",
        "model": meta.model,
        "content": content(answer),
        "stop_reason": stop_reason(answer.finish_reason),
        "stop_sequence": null,
        "usage": {"input_tokens": answer.usage.prompt_tokens, "output_tokens": answer.usage.completion_tokens},
    }))
    .into_response()
}

/// Builds the named events of one streamed message.
pub(crate) struct EventsBuilder {
    events: Vec<Bytes>,
    /// The index of the next content block.
    next_index: usize,
}

impl EventsBuilder {
    /// Starts the stream: `message_start` (with the prompt's tokens) and a `ping`.
    pub(crate) fn start(meta: Meta<'_>, usage: Usage) -> Self {
        let mut builder = Self {
            events: Vec::with_capacity(12),
            next_index: 0,
        };
        builder.push(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": message_id(meta), "type": "message", "role": "assistant", "model": meta.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": 1},
            }}),
        );
        builder.push("ping", &json!({"type": "ping"}));
        builder
    }

    fn push(&mut self, name: &str, data: &Value) {
        self.events
            .push(Bytes::from(format!("event: {name}\ndata: {data}\n\n")));
    }

    fn block_start(&mut self, block: Value) {
        let index = self.next_index;
        self.push(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
    }

    fn block_delta(&mut self, delta: Value) {
        let index = self.next_index;
        self.push(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    fn block_stop(&mut self) {
        let index = self.next_index;
        self.push(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
        self.next_index += 1;
    }

    /// Opens a text block (call once before [`Self::text`]).
    pub(crate) fn open_text(&mut self) {
        self.block_start(json!({"type": "text", "text": ""}));
    }

    pub(crate) fn text(&mut self, text: &str) {
        self.block_delta(json!({"type": "text_delta", "text": text}));
    }

    pub(crate) fn close_block(&mut self) {
        self.block_stop();
    }

    /// A `tool_use` block, its input in two `input_json_delta` pieces.
    pub(crate) fn tool_use(&mut self, call: &wire::ToolCall) {
        self.block_start(
            json!({"type": "tool_use", "id": call.id, "name": call.name, "input": {}}),
        );
        let mid = (call.arguments.len() / 2..=call.arguments.len())
            .find(|at| call.arguments.is_char_boundary(*at))
            .unwrap_or(call.arguments.len());
        let (first, second) = call.arguments.split_at(mid);
        for piece in [first, second].into_iter().filter(|p| !p.is_empty()) {
            self.block_delta(json!({"type": "input_json_delta", "partial_json": piece}));
        }
        self.block_stop();
    }

    /// `message_delta` with the stop reason and the output tokens, then `message_stop`.
    pub(crate) fn finish(mut self, finish_reason: &str, usage: Usage) -> Vec<Bytes> {
        self.push(
            "message_delta",
            &json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason(finish_reason), "stop_sequence": null},
            "usage": {"output_tokens": usage.completion_tokens}}),
        );
        self.push("message_stop", &json!({"type": "message_stop"}));
        self.events
    }

    /// The events so far, then an `error` event: a stream that fails midway.
    pub(crate) fn failed(mut self) -> Vec<Bytes> {
        self.push("error", &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded (injected by the mock upstream)."}}));
        self.events
    }
}

/// All events of a normally finished streamed answer.
pub(crate) fn answer_events(meta: Meta<'_>, answer: &Answer) -> Vec<Bytes> {
    let mut events = EventsBuilder::start(meta, answer.usage);
    if let Some(text) = answer.content.as_deref().filter(|t| !t.is_empty()) {
        events.open_text();
        for piece in word_chunks(text) {
            events.text(piece);
        }
        events.close_block();
    }
    for call in &answer.tool_calls {
        events.tool_use(call);
    }
    events.finish(answer.finish_reason, answer.usage)
}

/// An Anthropic error: `{"type":"error","error":{"type","message"}}`, with an optional
/// `Retry-After` in seconds.
pub(crate) fn error_response(status: u16, message: &str, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
