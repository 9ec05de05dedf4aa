//! Reading a model's answer leniently.
//!
//! Real models, small local ones especially, answer in many shapes: `tool_calls`, the legacy
//! `function_call`, `content` as a string, as parts, or missing. This turns any of them into one
//! [`AssistantTurn`], and tool arguments into an object or a clear reason why not.

use serde_json::{Map, Value};

/// What the model said in one turn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssistantTurn {
    pub content: String,
    pub tool_calls: Vec<RequestedCall>,
    pub finish_reason: Option<String>,
}

/// A tool call as the model asked for it: arguments still raw.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl AssistantTurn {
    /// Reads the first choice of a `chat.completion` body.
    pub fn from_completion(body: &Value) -> Self {
        let choice = body.pointer("/choices/0");
        let message = choice.and_then(|c| c.get("message"));
        let finish_reason = choice
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let content = message.map(content_text).unwrap_or_default();
        let mut tool_calls: Vec<RequestedCall> = message
            .and_then(|m| m.get("tool_calls"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(index, call)| {
                let function = call.get("function")?;
                Some(RequestedCall {
                    id: call
                        .get("id")
                        .and_then(Value::as_str)
                        .filter(|id| !id.is_empty())
                        .map_or_else(|| format!("call_{index}"), str::to_owned),
                    name: function.get("name").and_then(Value::as_str)?.to_owned(),
                    arguments: raw_arguments(function.get("arguments")),
                })
            })
            .collect();
        // The legacy single `function_call` becomes tool call 0.
        if tool_calls.is_empty()
            && let Some(function) = message.and_then(|m| m.get("function_call"))
            && let Some(name) = function.get("name").and_then(Value::as_str)
        {
            tool_calls.push(RequestedCall {
                id: "call_legacy_0".to_owned(),
                name: name.to_owned(),
                arguments: raw_arguments(function.get("arguments")),
            });
        }
        Self {
            content,
            tool_calls,
            finish_reason,
        }
    }
}

/// Message content as text: a string, or the text parts of an array.
fn content_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Arguments as the raw string the model sent (some models send an object instead).
fn raw_arguments(arguments: Option<&Value>) -> String {
    match arguments {
        Some(Value::String(raw)) => raw.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Parses tool arguments into an object; an empty string means no arguments.
pub fn parse_arguments(raw: &str) -> Result<Map<String, Value>, String> {
    if raw.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(format!(
            "tool arguments must be a JSON object, got {}",
            json_kind(&other)
        )),
        Err(error) => Err(format!("tool arguments are not valid JSON ({error})")),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_calls_and_text_are_both_kept() {
        let body = json!({"choices": [{"message": {"role": "assistant", "content": "Let me check.",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "whoami", "arguments": "{}"}}]},
            "finish_reason": "tool_calls"}]});
        let turn = AssistantTurn::from_completion(&body);
        assert_eq!(turn.content, "Let me check.");
        assert_eq!(turn.tool_calls.len(), 1);
        assert_eq!(turn.tool_calls[0].name, "whoami");
    }

    #[test]
    fn legacy_function_call_becomes_a_tool_call() {
        let body = json!({"choices": [{"message": {"role": "assistant", "content": null,
            "function_call": {"name": "lookup_fact", "arguments": "{\"topic\":\"mcp\"}"}},
            "finish_reason": "function_call"}]});
        let turn = AssistantTurn::from_completion(&body);
        assert_eq!(turn.tool_calls[0].name, "lookup_fact");
        assert_eq!(turn.tool_calls[0].id, "call_legacy_0");
        assert_eq!(turn.content, "");
    }

    #[test]
    fn odd_shapes_do_not_panic() {
        for body in [
            json!({}),
            json!({"choices": []}),
            json!({"choices": [{"message": {"content": [{"type": "text", "text": "hi"}]}}]}),
            json!("nope"),
        ] {
            let _ = AssistantTurn::from_completion(&body);
        }
        let parts =
            json!({"choices": [{"message": {"content": [{"type": "text", "text": "hi"}]}}]});
        assert_eq!(AssistantTurn::from_completion(&parts).content, "hi");
        let object_args = json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "echo", "arguments": {"message": "x"}}}]}}]});
        let turn = AssistantTurn::from_completion(&object_args);
        assert_eq!(
            parse_arguments(&turn.tool_calls[0].arguments).unwrap()["message"],
            "x"
        );
    }

    #[test]
    fn arguments_parse_or_explain() {
        assert!(parse_arguments("").unwrap().is_empty());
        assert!(parse_arguments("{\"a\":1}").is_ok());
        assert!(
            parse_arguments("{oops")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(parse_arguments("[1]").unwrap_err().contains("an array"));
    }
}
