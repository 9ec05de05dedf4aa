//! The gateway's chat answers written back as Anthropic Messages: a whole `message`, or the
//! stream of events (`message_start`, `ping`, `content_block_start`/`delta`/`stop`,
//! `message_delta` with usage, `message_stop`).

use serde_json::{Value, json};

use crate::{pipeline::StreamEvent, usage::Usage};

/// Anthropic's `stop_reason` for a chat `finish_reason` (and the stop sequence, when the
/// upstream said which one matched).
fn stop_reason(finish_reason: Option<&str>, stop_sequence: Option<&Value>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ if stop_sequence.is_some_and(Value::is_string) => "stop_sequence",
        _ => "end_turn",
    }
}

/// A message id from the chat answer's id.
fn message_id(id: Option<&Value>) -> String {
    match id.and_then(Value::as_str) {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        Some(id) => format!("msg_{id}"),
        None => "msg_tollgate".to_owned(),
    }
}

fn usage_json(usage: Usage) -> Value {
    json!({"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens})
}

/// A tool call's arguments as the object Anthropic's `input` is (`{}` when they are not one).
fn tool_input(arguments: Option<&Value>) -> Value {
    match arguments {
        Some(Value::String(text)) => serde_json::from_str::<Value>(text)
            .ok()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({})),
        Some(value @ Value::Object(_)) => value.clone(),
        _ => json!({}),
    }
}

/// A whole chat completion as an Anthropic `message`.
pub(super) fn message(answer: &Value) -> Value {
    let choice = answer.pointer("/choices/0");
    let message = choice.and_then(|c| c.get("message"));
    let mut content = Vec::new();
    if let Some(text) = message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array);
    for call in calls.into_iter().flatten() {
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").cloned().unwrap_or_else(|| Value::from("toolu_tollgate")),
            "name": call.pointer("/function/name").cloned().unwrap_or_default(),
            "input": tool_input(call.pointer("/function/arguments")),
        }));
    }
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);
    let stop_sequence = choice.and_then(|c| c.get("stop_sequence"));
    json!({
        "id": message_id(answer.get("id")),
        "type": "message",
        "role": "assistant",
        "model": answer.get("model").cloned().unwrap_or_default(),
        "content": content,
        "stop_reason": stop_reason(finish, stop_sequence),
        "stop_sequence": stop_sequence.filter(|s| s.is_string()).cloned().unwrap_or(Value::Null),
        "usage": usage_json(Usage::from_body(answer).unwrap_or_default()),
    })
}

/// The content block open in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Text,
    /// A tool call, by its index among the chat answer's tool calls.
    Tool(u64),
}

/// One Anthropic stream event: its name and its data.
pub type MessagesEvent = (&'static str, Value);

/// Writes a gateway stream as Anthropic events. One per stream: each event depends on the ones
/// before (block indexes, the open block, whether the message has started).
#[derive(Debug, Default)]
pub struct MessagesStreamWriter {
    started: bool,
    open: Option<OpenBlock>,
    /// The index the next content block gets.
    next_index: u64,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<Value>,
    model: String,
}

impl MessagesStreamWriter {
    /// A writer for a stream from `model` (what `message_start` reports until a chunk names one).
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            ..Self::default()
        }
    }

    /// The Anthropic events for one gateway stream event.
    pub fn write(&mut self, event: &StreamEvent) -> Vec<MessagesEvent> {
        let mut events = Vec::new();
        match event {
            StreamEvent::Chunk(chunk) => self.chunk(chunk, &mut events),
            StreamEvent::Done { usage } => self.done(*usage, &mut events),
        }
        events
    }

    fn start(&mut self, chunk: Option<&Value>, events: &mut Vec<MessagesEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        let model = chunk
            .and_then(|c| c.get("model"))
            .and_then(Value::as_str)
            .unwrap_or(&self.model);
        let message = json!({
            "id": message_id(chunk.and_then(|c| c.get("id"))),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        events.push((
            "message_start",
            json!({"type": "message_start", "message": message}),
        ));
        events.push(("ping", json!({"type": "ping"})));
    }

    fn chunk(&mut self, chunk: &Value, events: &mut Vec<MessagesEvent>) {
        self.start(Some(chunk), events);
        let Some(choice) = chunk.pointer("/choices/0") else {
            return;
        };
        let delta = choice.get("delta");
        if let Some(text) = delta
            .and_then(|d| d.get("content"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            self.open(OpenBlock::Text, json!({"type": "text", "text": ""}), events);
            self.delta(json!({"type": "text_delta", "text": text}), events);
        }
        let calls = delta
            .and_then(|d| d.get("tool_calls"))
            .and_then(Value::as_array);
        for call in calls.into_iter().flatten() {
            self.tool_call(call, events);
        }
        if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
            self.close(events);
            self.stop_sequence = choice
                .get("stop_sequence")
                .filter(|s| s.is_string())
                .cloned();
            self.stop_reason = Some(stop_reason(Some(finish), self.stop_sequence.as_ref()));
        }
    }

    fn tool_call(&mut self, call: &Value, events: &mut Vec<MessagesEvent>) {
        let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        if self.open != Some(OpenBlock::Tool(index)) {
            let block = json!({
                "type": "tool_use",
                "id": call.get("id").cloned().unwrap_or_else(|| Value::from(format!("toolu_{index}"))),
                "name": call.pointer("/function/name").cloned().unwrap_or_default(),
                "input": {},
            });
            self.open(OpenBlock::Tool(index), block, events);
        }
        if let Some(arguments) = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            self.delta(
                json!({"type": "input_json_delta", "partial_json": arguments}),
                events,
            );
        }
    }

    /// Opens `kind` unless it is the open block already (closing any other first).
    fn open(&mut self, kind: OpenBlock, block: Value, events: &mut Vec<MessagesEvent>) {
        if self.open == Some(kind) {
            return;
        }
        self.close(events);
        events.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": self.next_index, "content_block": block}),
        ));
        self.open = Some(kind);
    }

    fn delta(&self, delta: Value, events: &mut Vec<MessagesEvent>) {
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": self.next_index, "delta": delta}),
        ));
    }

    fn close(&mut self, events: &mut Vec<MessagesEvent>) {
        if self.open.take().is_some() {
            events.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": self.next_index}),
            ));
            self.next_index += 1;
        }
    }

    fn done(&mut self, usage: Usage, events: &mut Vec<MessagesEvent>) {
        self.start(None, events);
        self.close(events);
        let delta = json!({
            "stop_reason": self.stop_reason.unwrap_or("end_turn"),
            "stop_sequence": self.stop_sequence.take().unwrap_or(Value::Null),
        });
        events.push((
            "message_delta",
            json!({"type": "message_delta", "delta": delta, "usage": usage_json(usage)}),
        ));
        events.push(("message_stop", json!({"type": "message_stop"})));
    }
}
