//! Assembling a streamed chat answer back into one whole completion.
//!
//! The gateway uses it to count tokens and to cache what a stream said; the agent uses it to
//! read the tool calls a streamed turn asked for. A stream with several choices (`n > 1`)
//! interleaves their chunks, each marked with its choice's `index`; each choice is assembled
//! on its own.

use serde_json::Value;

use crate::{policy::governance::MAX_CHOICES, usage::Usage};

/// The answer a stream spelled out, chunk by chunk: for token counts and for the cache.
#[derive(Debug, Default)]
pub struct AssembledAnswer {
    /// By choice index.
    choices: Vec<AssembledChoice>,
}

/// One choice of a streamed answer.
#[derive(Debug, Default)]
pub struct AssembledChoice {
    pub content: String,
    /// (id, name, arguments) by tool-call index.
    pub tool_calls: Vec<(String, String, String)>,
    pub finish_reason: Option<String>,
}

impl AssembledAnswer {
    pub fn absorb(&mut self, chunk: &Value) {
        for choice in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            if index >= MAX_CHOICES {
                continue;
            }
            let index = index as usize;
            if self.choices.len() <= index {
                self.choices.resize_with(index + 1, Default::default);
            }
            self.choices[index].absorb(choice);
        }
    }

    /// The choices so far, by index.
    pub fn choices(&self) -> &[AssembledChoice] {
        &self.choices
    }

    /// Whether the stream said how every choice it started ended.
    pub fn finished(&self) -> bool {
        !self.choices.is_empty() && self.choices.iter().all(|c| c.finish_reason.is_some())
    }

    /// Every choice's text and tool calls: what the completion tokens were spent on.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for choice in &self.choices {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&choice.content);
            for (_, name, arguments) in &choice.tool_calls {
                text.push(' ');
                text.push_str(name);
                text.push_str(arguments);
            }
        }
        text
    }

    /// The whole `chat.completion` the stream amounted to, one choice per index.
    pub fn into_completion(self, model: &str, usage: Usage) -> Value {
        let mut choices = self.choices;
        if choices.is_empty() {
            choices.push(AssembledChoice::default());
        }
        let choices: Vec<Value> = choices
            .into_iter()
            .enumerate()
            .map(|(index, choice)| choice.into_json(index))
            .collect();
        serde_json::json!({
            "object": "chat.completion",
            "model": model,
            "choices": choices,
            "usage": usage,
        })
    }
}

impl AssembledChoice {
    fn absorb(&mut self, choice: &Value) {
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
            self.absorb_call(0, None, function);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if let Some(function) = call.get("function") {
                self.absorb_call(index, call.get("id"), function);
            } else if let Some(id) = call.get("id") {
                self.absorb_call(index, Some(id), &Value::Null);
            }
        }
    }

    fn absorb_call(&mut self, index: usize, id: Option<&Value>, function: &Value) {
        if index >= 128 {
            return;
        }
        if self.tool_calls.len() <= index {
            self.tool_calls.resize_with(index + 1, Default::default);
        }
        let slot = &mut self.tool_calls[index];
        if let Some(id) = id.and_then(Value::as_str) {
            slot.0.push_str(id);
        }
        if let Some(name) = function.get("name").and_then(Value::as_str) {
            slot.1.push_str(name);
        }
        if let Some(arguments) = function.get("arguments").and_then(Value::as_str) {
            slot.2.push_str(arguments);
        }
    }

    fn into_json(self, index: usize) -> Value {
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
        serde_json::json!({"index": index, "message": message, "finish_reason": self.finish_reason})
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn chunk(index: u64, delta: Value, finish: Option<&str>) -> Value {
        json!({"choices": [{"index": index, "delta": delta, "finish_reason": finish}]})
    }

    #[test]
    fn interleaved_choices_are_assembled_apart() {
        let mut assembled = AssembledAnswer::default();
        for piece in [
            chunk(0, json!({"role": "assistant", "content": "Red "}), None),
            chunk(1, json!({"role": "assistant", "content": "Blue "}), None),
            chunk(1, json!({"content": "sky"}), None),
            chunk(0, json!({"content": "apple"}), None),
            chunk(0, json!({}), Some("stop")),
        ] {
            assembled.absorb(&piece);
        }
        assert!(!assembled.finished(), "choice 1 has not ended");
        assembled.absorb(&chunk(1, json!({}), Some("length")));
        assert!(assembled.finished());
        assert_eq!(assembled.text(), "Red apple\nBlue sky");
        let body = assembled.into_completion("m", Usage::new(1, 4));
        assert_eq!(body["choices"][0]["message"]["content"], "Red apple");
        assert_eq!(body["choices"][1]["message"]["content"], "Blue sky");
        assert_eq!(body["choices"][1]["index"], 1);
        assert_eq!(body["choices"][1]["finish_reason"], "length");
    }

    #[test]
    fn tool_calls_and_legacy_function_calls_assemble() {
        let mut assembled = AssembledAnswer::default();
        assembled.absorb(&chunk(
            0,
            json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "whoami", "arguments": "{"}}]}),
            None,
        ));
        assembled.absorb(&chunk(
            0,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
            Some("tool_calls"),
        ));
        let body = assembled.into_completion("m", Usage::default());
        let call = &body["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["id"], "call_1");
        assert_eq!(call["function"]["arguments"], "{}");
        assert_eq!(body["choices"][0]["message"]["content"], Value::Null);

        let mut legacy = AssembledAnswer::default();
        legacy.absorb(&chunk(
            0,
            json!({"function_call": {"name": "echo", "arguments": "{}"}}),
            Some("function_call"),
        ));
        assert_eq!(legacy.text(), " echo{}");
    }
}
