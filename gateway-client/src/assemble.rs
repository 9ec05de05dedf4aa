//! Assembling a streamed chat answer back into one whole completion.
//!
//! The gateway uses it to count tokens and to cache what a stream said; the agent uses it to
//! read the tool calls a streamed turn asked for.

use serde_json::Value;

use crate::usage::Usage;

/// The answer a stream spelled out, chunk by chunk: for token counts and for the cache.
#[derive(Debug, Default)]
pub struct AssembledAnswer {
    pub content: String,
    /// (id, name, arguments) by tool-call index.
    pub tool_calls: Vec<(String, String, String)>,
    pub finish_reason: Option<String>,
}

impl AssembledAnswer {
    pub fn absorb(&mut self, chunk: &Value) {
        let Some(choice) = chunk.pointer("/choices/0") else {
            return;
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return;
        };
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            self.content.push_str(text);
        }
        // Legacy `function_call` deltas: one call, spelled out like tool call 0.
        if let Some(function) = delta.get("function_call") {
            if self.tool_calls.is_empty() {
                self.tool_calls.push(Default::default());
            }
            let slot = &mut self.tool_calls[0];
            if let Some(name) = function.get("name").and_then(Value::as_str) {
                slot.1.push_str(name);
            }
            if let Some(arguments) = function.get("arguments").and_then(Value::as_str) {
                slot.2.push_str(arguments);
            }
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if index >= 128 {
                continue;
            }
            while self.tool_calls.len() <= index {
                self.tool_calls.push(Default::default());
            }
            let slot = &mut self.tool_calls[index];
            if let Some(id) = call.get("id").and_then(Value::as_str) {
                slot.0.push_str(id);
            }
            if let Some(function) = call.get("function") {
                if let Some(name) = function.get("name").and_then(Value::as_str) {
                    slot.1.push_str(name);
                }
                if let Some(arguments) = function.get("arguments").and_then(Value::as_str) {
                    slot.2.push_str(arguments);
                }
            }
        }
    }

    pub fn text(&self) -> String {
        let mut text = self.content.clone();
        for (_, name, arguments) in &self.tool_calls {
            text.push(' ');
            text.push_str(name);
            text.push_str(arguments);
        }
        text
    }

    /// The whole `chat.completion` the stream amounted to.
    pub fn into_completion(self, model: &str, usage: Usage) -> Value {
        let mut message = serde_json::json!({"role": "assistant", "content": self.content});
        if !self.tool_calls.is_empty() {
            message["tool_calls"] = self
                .tool_calls
                .into_iter()
                .map(|(id, name, arguments)| {
                    serde_json::json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
                })
                .collect();
            if message["content"].as_str().is_some_and(str::is_empty) {
                message["content"] = Value::Null;
            }
        }
        serde_json::json!({
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": usage,
        })
    }
}
