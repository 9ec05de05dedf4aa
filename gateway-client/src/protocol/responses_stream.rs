//! A chat stream written as the Responses API's stream events.
//!
//! One chat chunk may become several events (a new output item, its content part, then the
//! delta), and every event carries the next `sequence_number`, so the writer keeps the stream's
//! state: the output items so far and the one being written. The sequence is OpenAI's:
//! `response.created`, `response.in_progress`, then per item `response.output_item.added`,
//! (`response.content_part.added`, `response.output_text.delta`…, `response.output_text.done`,
//! `response.content_part.done`) or (`response.function_call_arguments.delta`…,
//! `response.function_call_arguments.done`), `response.output_item.done`, and last
//! `response.completed` (`response.incomplete` when cut at `max_output_tokens`) with the usage,
//! or `response.failed` when the stream broke off: never a silent end.

use serde_json::{Map, Value, json};

use super::responses::{
    ResponseState, ResponsesEcho, Status, function_call_item, message_item, new_id,
    output_text_part, responses_usage,
};
use crate::{error::GatewayError, pipeline::StreamEvent, usage::Usage};

/// One server-sent event: its `event:` name and its JSON `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsesEvent {
    pub name: &'static str,
    pub data: Value,
}

/// Writes one Responses stream.
#[derive(Debug)]
pub struct ResponsesStream {
    echo: ResponsesEcho,
    id: String,
    created_at: u64,
    model: String,
    sequence: u64,
    /// Finished output items.
    output: Vec<Value>,
    open: Option<OpenItem>,
    finish_reason: Option<String>,
}

/// The output item being streamed.
#[derive(Debug)]
enum OpenItem {
    Text {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        /// The tool call's `index` in the chat chunks.
        chat_index: u64,
    },
}

impl ResponsesStream {
    pub fn new(echo: ResponsesEcho, model: &str, created_at: u64) -> Self {
        Self {
            echo,
            id: new_id("resp"),
            created_at,
            model: model.to_owned(),
            sequence: 0,
            output: Vec::new(),
            open: None,
            finish_reason: None,
        }
    }

    /// The events every stream opens with.
    pub fn start(&mut self) -> Vec<ResponsesEvent> {
        let mut events = Vec::with_capacity(2);
        for name in ["response.created", "response.in_progress"] {
            let response = self.response(Status::InProgress, None, None);
            self.emit(&mut events, name, json!({"response": response}));
        }
        events
    }

    /// The events one gateway stream event becomes.
    pub fn on_event(&mut self, event: &StreamEvent) -> Vec<ResponsesEvent> {
        let mut events = Vec::new();
        match event {
            StreamEvent::Chunk(chunk) => self.on_chunk(chunk, &mut events),
            StreamEvent::Done { usage } => self.on_done(*usage, &mut events),
        }
        events
    }

    /// The stream's last event when it failed.
    pub fn on_error(&mut self, error: &GatewayError) -> Vec<ResponsesEvent> {
        let mut events = Vec::with_capacity(1);
        let failure = json!({"code": error.code(), "message": error.to_string()});
        let response = self.response(Status::Failed, None, Some(failure));
        self.emit(
            &mut events,
            "response.failed",
            json!({"response": response}),
        );
        events
    }

    fn on_chunk(&mut self, chunk: &Value, events: &mut Vec<ResponsesEvent>) {
        let Some(choice) = chunk.pointer("/choices/0") else {
            return;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            self.text_delta(text, events);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.call_delta(call, events);
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
    }

    fn text_delta(&mut self, delta: &str, events: &mut Vec<ResponsesEvent>) {
        if !matches!(self.open, Some(OpenItem::Text { .. })) {
            self.close_item(events);
            let id = new_id("msg");
            let output_index = self.output.len();
            let item = json!({"id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": []});
            self.emit(
                events,
                "response.output_item.added",
                json!({"output_index": output_index, "item": item}),
            );
            self.emit(
                events,
                "response.content_part.added",
                json!({"item_id": id, "output_index": output_index, "content_index": 0, "part": output_text_part("")}),
            );
            self.open = Some(OpenItem::Text {
                id,
                text: String::new(),
            });
        }
        let output_index = self.output.len();
        if let Some(OpenItem::Text { id, text }) = &mut self.open {
            text.push_str(delta);
            let data = json!({"item_id": id, "output_index": output_index, "content_index": 0, "delta": delta, "logprobs": []});
            self.emit(events, "response.output_text.delta", data);
        }
    }

    fn call_delta(&mut self, call: &Value, events: &mut Vec<ResponsesEvent>) {
        let chat_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let same_call = matches!(&self.open, Some(OpenItem::Call { chat_index: open, .. }) if *open == chat_index);
        if !same_call {
            self.close_item(events);
            let text = |pointer: &str| call.pointer(pointer).and_then(Value::as_str);
            let id = new_id("fc");
            let call_id = text("/id").map_or_else(|| new_id("call"), ToOwned::to_owned);
            let name = text("/function/name").unwrap_or("").to_owned();
            let item = function_call_item(&id, &call_id, &name, "", "in_progress");
            let output_index = self.output.len();
            self.emit(
                events,
                "response.output_item.added",
                json!({"output_index": output_index, "item": item}),
            );
            self.open = Some(OpenItem::Call {
                id,
                call_id,
                name,
                arguments: String::new(),
                chat_index,
            });
        }
        let Some(delta) = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
        else {
            return;
        };
        let output_index = self.output.len();
        if let Some(OpenItem::Call { id, arguments, .. }) = &mut self.open {
            arguments.push_str(delta);
            let data = json!({"item_id": id, "output_index": output_index, "delta": delta});
            self.emit(events, "response.function_call_arguments.delta", data);
        }
    }

    /// Finishes the item being written, if any.
    fn close_item(&mut self, events: &mut Vec<ResponsesEvent>) {
        let output_index = self.output.len();
        let item = match self.open.take() {
            None => return,
            Some(OpenItem::Text { id, text }) => {
                let at = json!({"item_id": id, "output_index": output_index, "content_index": 0});
                let mut done = at.clone();
                done["text"] = json!(text);
                done["logprobs"] = json!([]);
                self.emit(events, "response.output_text.done", done);
                let mut part = at;
                part["part"] = output_text_part(&text);
                self.emit(events, "response.content_part.done", part);
                message_item(&id, &text)
            }
            Some(OpenItem::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            }) => {
                let data = json!({"item_id": id, "output_index": output_index, "name": name, "arguments": arguments});
                self.emit(events, "response.function_call_arguments.done", data);
                function_call_item(&id, &call_id, &name, &arguments, "completed")
            }
        };
        self.emit(
            events,
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        );
        self.output.push(item);
    }

    fn on_done(&mut self, usage: Usage, events: &mut Vec<ResponsesEvent>) {
        self.close_item(events);
        let status = Status::from_finish(self.finish_reason.as_deref());
        let name = match status {
            Status::Completed => "response.completed",
            Status::IncompleteLength | Status::IncompleteContentFilter => "response.incomplete",
            Status::InProgress | Status::Failed => "response.failed",
        };
        let usage = responses_usage(&json!(usage));
        let response = self.response(status, Some(usage), None);
        self.emit(events, name, json!({"response": response}));
    }

    fn response(&self, status: Status, usage: Option<Value>, error: Option<Value>) -> Value {
        self.echo.response(ResponseState {
            id: self.id.clone(),
            created_at: self.created_at,
            model: &self.model,
            status,
            output: self.output.clone(),
            usage,
            error,
        })
    }

    /// Adds one event, with its `type` and the next `sequence_number`.
    fn emit(&mut self, events: &mut Vec<ResponsesEvent>, name: &'static str, data: Value) {
        let mut fields = Map::new();
        fields.insert("type".to_owned(), Value::from(name));
        fields.insert("sequence_number".to_owned(), Value::from(self.sequence));
        if let Value::Object(rest) = data {
            fields.extend(rest);
        }
        self.sequence += 1;
        events.push(ResponsesEvent {
            name,
            data: Value::Object(fields),
        });
    }
}
