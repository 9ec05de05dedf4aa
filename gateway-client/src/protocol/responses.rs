//! The OpenAI Responses API, stateless subset, read into the neutral chat form and written back.
//!
//! A Responses request becomes a chat call: `instructions` a system message, input items
//! messages (function calls an assistant's `tool_calls`, their outputs `tool` messages), function
//! tools chat tools, `max_output_tokens` `max_tokens` (which governance caps), `text.format` a
//! `response_format`. The pipeline then governs, counts, caches and sends it like any chat call,
//! and the chat answer is written back as a `response` object. What needs state kept between
//! calls (`previous_response_id`, `conversation`, `store: true`, item references) or a tool only
//! OpenAI hosts (web search, file search, computer use…) is refused as `unsupported_parameter`.
//!
//! Streams are written by [`super::responses_stream::ResponsesStream`]; answers repeat the
//! request's parameters, which [`ResponsesEcho`] keeps.

use serde_json::{Map, Value, json};

use super::ModelCall;
use crate::{context::Operation, error::GatewayError};

/// Reads Responses requests (`POST /v1/responses` and its Azure forms).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiResponses;

/// A Responses request read: the chat call to make, and what its answer repeats.
#[derive(Debug, Clone)]
pub struct ResponsesCall {
    pub call: ModelCall,
    pub echo: ResponsesEcho,
}

/// The request parameters a `response` object repeats (OpenAI echoes them in every answer).
#[derive(Debug, Clone, Default)]
pub struct ResponsesEcho {
    fields: Map<String, Value>,
}

/// Parameters that ask for state this stateless gateway does not keep, refused when set.
const STATEFUL: [&str; 4] = [
    "previous_response_id",
    "conversation",
    "prompt",
    "background",
];

/// Parameters a `response` object repeats.
const ECHOED: [&str; 11] = [
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "truncation",
    "user",
];

/// Parameters that carry over to the chat call under the same name.
const SAME_IN_CHAT: [&str; 4] = ["model", "temperature", "top_p", "user"];

impl OpenAiResponses {
    /// Reads a Responses request body into the chat call it stands for.
    pub fn read(&self, body: Map<String, Value>) -> Result<ResponsesCall, GatewayError> {
        refuse_state(&body)?;
        let mut request = Map::new();
        for key in SAME_IN_CHAT {
            if let Some(value) = body.get(key).filter(|v| !v.is_null()) {
                request.insert(key.to_owned(), value.clone());
            }
        }
        let input = body
            .get("input")
            .ok_or_else(|| invalid("`input` is required: a string or an array of items"))?;
        let messages = chat_messages(body.get("instructions"), input)?;
        request.insert("messages".to_owned(), Value::Array(messages));
        if let Some(limit) = body.get("max_output_tokens").filter(|v| !v.is_null()) {
            request.insert("max_tokens".to_owned(), limit.clone());
        }
        if let Some(tools) = chat_tools(body.get("tools"))? {
            request.insert("tools".to_owned(), tools);
            if let Some(parallel) = body.get("parallel_tool_calls").filter(|v| v.is_boolean()) {
                request.insert("parallel_tool_calls".to_owned(), parallel.clone());
            }
        }
        if let Some(choice) = chat_tool_choice(body.get("tool_choice"))? {
            request.insert("tool_choice".to_owned(), choice);
        }
        if let Some(format) = chat_response_format(body.get("text"))? {
            request.insert("response_format".to_owned(), format);
        }
        check_metadata(body.get("metadata"))?;
        let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let fields = ECHOED
            .iter()
            .filter_map(|key| Some(((*key).to_owned(), body.get(*key)?.clone())))
            .collect();
        Ok(ResponsesCall {
            call: ModelCall {
                operation: Operation::Chat,
                request,
                stream,
            },
            echo: ResponsesEcho { fields },
        })
    }
}

impl ResponsesEcho {
    /// A chat completion written as a `response` object.
    pub fn write_answer(&self, chat: &Value) -> Value {
        let message = chat.pointer("/choices/0/message").unwrap_or(&Value::Null);
        let finish = chat
            .pointer("/choices/0/finish_reason")
            .and_then(Value::as_str);
        let usage = chat.get("usage").map(responses_usage);
        self.response(ResponseState {
            id: new_id("resp"),
            created_at: chat.get("created").and_then(Value::as_u64).unwrap_or(0),
            model: chat.get("model").and_then(Value::as_str).unwrap_or(""),
            status: Status::from_finish(finish),
            output: output_items(message),
            usage,
            error: None,
        })
    }

    /// The `response` object in any state, with the request's parameters repeated.
    pub(super) fn response(&self, state: ResponseState<'_>) -> Value {
        let echoed = |key: &str, default: Value| self.fields.get(key).cloned().unwrap_or(default);
        json!({
            "id": state.id,
            "object": "response",
            "created_at": state.created_at,
            "status": state.status.as_str(),
            "error": state.error,
            "incomplete_details": state.status.incomplete_details(),
            "instructions": echoed("instructions", Value::Null),
            "max_output_tokens": echoed("max_output_tokens", Value::Null),
            "metadata": echoed("metadata", json!({})),
            "model": state.model,
            "output": state.output,
            "parallel_tool_calls": echoed("parallel_tool_calls", Value::Bool(true)),
            "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null},
            "store": false,
            "temperature": echoed("temperature", json!(1.0)),
            "text": echoed("text", json!({"format": {"type": "text"}})),
            "tool_choice": echoed("tool_choice", json!("auto")),
            "tools": echoed("tools", json!([])),
            "top_p": echoed("top_p", json!(1.0)),
            "truncation": echoed("truncation", json!("disabled")),
            "usage": state.usage,
            "user": echoed("user", Value::Null),
        })
    }
}

/// A `response` object's changing parts.
pub(super) struct ResponseState<'a> {
    pub id: String,
    pub created_at: u64,
    pub model: &'a str,
    pub status: Status,
    pub output: Vec<Value>,
    pub usage: Option<Value>,
    pub error: Option<Value>,
}

/// A response's `status`, and for an incomplete one, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    InProgress,
    Completed,
    /// Stopped at `max_output_tokens`.
    IncompleteLength,
    IncompleteContentFilter,
    Failed,
}

impl Status {
    pub fn from_finish(finish_reason: Option<&str>) -> Self {
        match finish_reason {
            Some("length") => Self::IncompleteLength,
            Some("content_filter") => Self::IncompleteContentFilter,
            _ => Self::Completed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::IncompleteLength | Self::IncompleteContentFilter => "incomplete",
            Self::Failed => "failed",
        }
    }

    fn incomplete_details(self) -> Value {
        match self {
            Self::IncompleteLength => json!({"reason": "max_output_tokens"}),
            Self::IncompleteContentFilter => json!({"reason": "content_filter"}),
            Self::InProgress | Self::Completed | Self::Failed => Value::Null,
        }
    }
}

/// An id in OpenAI's style (`resp_…`, `msg_…`, `fc_…`): random, so replayed answers differ.
pub(super) fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}_{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// Chat usage in the Responses API's names.
pub(super) fn responses_usage(usage: &Value) -> Value {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    let (input, output) = (count("prompt_tokens"), count("completion_tokens"));
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + output,
    })
}

/// A finished message item with this text.
pub(super) fn message_item(id: &str, text: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [output_text_part(text)],
    })
}

pub(super) fn output_text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A function call item.
pub(super) fn function_call_item(
    id: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    })
}

/// A chat answer's message as output items: its text, then its function calls.
fn output_items(message: &Value) -> Vec<Value> {
    let mut items = Vec::new();
    if let Some(text) = message
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        items.push(message_item(&new_id("msg"), text));
    }
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
        items.push(json!({
            "id": new_id("msg"),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "refusal", "refusal": refusal}],
        }));
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = |pointer: &str| call.pointer(pointer).and_then(Value::as_str).unwrap_or("");
        let call_id = call
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| new_id("call"), ToOwned::to_owned);
        items.push(function_call_item(
            &new_id("fc"),
            &call_id,
            text("/function/name"),
            text("/function/arguments"),
            "completed",
        ));
    }
    items
}

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::InvalidRequest(message.into())
}

fn unsupported(param: impl Into<String>, message: impl Into<String>) -> GatewayError {
    GatewayError::UnsupportedParameter {
        param: param.into(),
        message: message.into(),
    }
}

/// Refuses what needs state kept between calls.
fn refuse_state(body: &Map<String, Value>) -> Result<(), GatewayError> {
    for key in STATEFUL {
        match body.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(_) => {
                return Err(unsupported(
                    key,
                    format!(
                        "`{key}` needs state this gateway does not keep: send the whole conversation as `input`"
                    ),
                ));
            }
        }
    }
    if body.get("store").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported(
            "store",
            "responses are not stored here: leave `store` out or set it to false",
        ));
    }
    Ok(())
}

/// `instructions` and `input` as chat messages.
fn chat_messages(instructions: Option<&Value>, input: &Value) -> Result<Vec<Value>, GatewayError> {
    let mut messages = Vec::new();
    match instructions {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => messages.push(json!({"role": "system", "content": text})),
        Some(_) => return Err(invalid("`instructions` must be a string")),
    }
    match input {
        Value::String(text) => messages.push(json!({"role": "user", "content": text})),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                push_item(&mut messages, index, item)?;
            }
        }
        _ => return Err(invalid("`input` must be a string or an array of items")),
    }
    Ok(messages)
}

/// One input item as (part of) a chat message.
fn push_item(messages: &mut Vec<Value>, index: usize, item: &Value) -> Result<(), GatewayError> {
    let item = item
        .as_object()
        .ok_or_else(|| invalid(format!("input[{index}] must be an object")))?;
    match item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message")
    {
        "message" => messages.push(chat_message(index, item)?),
        "function_call" => push_function_call(messages, index, item)?,
        "function_call_output" => messages.push(function_output(index, item)?),
        // An earlier turn's reasoning: a chat upstream has no use for it.
        "reasoning" => {}
        other => {
            return Err(unsupported(
                format!("input[{index}].type"),
                format!(
                    "input items of type `{other}` are not served here: only messages, function calls and their outputs are"
                ),
            ));
        }
    }
    Ok(())
}

fn string_field<'a>(
    item: &'a Map<String, Value>,
    index: usize,
    key: &str,
) -> Result<&'a str, GatewayError> {
    item.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("input[{index}] needs a string `{key}`")))
}

/// A message item as a chat message (`developer` becomes `system`, which every upstream knows).
fn chat_message(index: usize, item: &Map<String, Value>) -> Result<Value, GatewayError> {
    let role = match string_field(item, index, "role")? {
        "developer" | "system" => "system",
        role @ ("user" | "assistant") => role,
        other => {
            return Err(invalid(format!(
                "input[{index}] has an unknown role `{other}`"
            )));
        }
    };
    let content = match item.get("content") {
        Some(Value::String(text)) => Value::String(text.clone()),
        Some(Value::Array(parts)) => chat_content(index, parts)?,
        _ => {
            return Err(invalid(format!(
                "input[{index}] needs `content`: a string or an array of parts"
            )));
        }
    };
    Ok(json!({"role": role, "content": content}))
}

/// Content parts as chat content: one text part as a plain string, else chat parts.
fn chat_content(index: usize, parts: &[Value]) -> Result<Value, GatewayError> {
    let mut chat = Vec::with_capacity(parts.len());
    for part in parts {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
        let text = |key: &str| part.get(key).and_then(Value::as_str);
        let converted = match (kind, text("text"), text("refusal")) {
            ("input_text" | "output_text" | "text", Some(text), _) => {
                json!({"type": "text", "text": text})
            }
            ("refusal", _, Some(refusal)) => json!({"type": "text", "text": refusal}),
            ("input_image", _, _) => chat_image(index, part)?,
            _ => {
                return Err(unsupported(
                    format!("input[{index}].content"),
                    format!(
                        "content parts of type `{kind}` are not served here: text and image URLs are"
                    ),
                ));
            }
        };
        chat.push(converted);
    }
    if let [only] = chat.as_slice()
        && let Some(text) = only.get("text")
    {
        return Ok(text.clone());
    }
    Ok(Value::Array(chat))
}

fn chat_image(index: usize, part: &Value) -> Result<Value, GatewayError> {
    let url = part
        .get("image_url")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            unsupported(
                format!("input[{index}].content"),
                "images are served by URL (`image_url`), not by file id",
            )
        })?;
    let mut image = json!({"url": url});
    if let Some(detail) = part.get("detail").filter(|d| d.is_string()) {
        image["detail"] = detail.clone();
    }
    Ok(json!({"type": "image_url", "image_url": image}))
}

/// A function call item as a tool call of the assistant message it belongs to.
fn push_function_call(
    messages: &mut Vec<Value>,
    index: usize,
    item: &Map<String, Value>,
) -> Result<(), GatewayError> {
    let call = json!({
        "id": string_field(item, index, "call_id")?,
        "type": "function",
        "function": {
            "name": string_field(item, index, "name")?,
            "arguments": string_field(item, index, "arguments")?,
        },
    });
    // Calls made in the same turn as a text answer, or beside each other, are one message.
    if let Some(last) = messages.last_mut().and_then(Value::as_object_mut)
        && last.get("role").and_then(Value::as_str) == Some("assistant")
    {
        match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
            Some(calls) => calls.push(call),
            None => {
                last.insert("tool_calls".to_owned(), Value::Array(vec![call]));
            }
        }
        return Ok(());
    }
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
    Ok(())
}

/// A function call's output as a `tool` message.
fn function_output(index: usize, item: &Map<String, Value>) -> Result<Value, GatewayError> {
    let call_id = string_field(item, index, "call_id")?;
    let output = match item.get("output") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => return Err(invalid(format!("input[{index}] needs an `output`"))),
    };
    Ok(json!({"role": "tool", "tool_call_id": call_id, "content": output}))
}

/// Function tools as chat tools; hosted tools are refused. `None` for no tools.
fn chat_tools(tools: Option<&Value>) -> Result<Option<Value>, GatewayError> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(tools)) if tools.is_empty() => return Ok(None),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(invalid("`tools` must be an array")),
    };
    let mut chat = Vec::with_capacity(tools.len());
    for (index, tool) in tools.iter().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "function" {
            return Err(unsupported(
                format!("tools[{index}].type"),
                format!("the hosted tool `{kind}` is not served here: only function tools are"),
            ));
        }
        let name = tool
            .get("name")
            .filter(|n| n.is_string())
            .ok_or_else(|| invalid(format!("tools[{index}] needs a string `name`")))?;
        let mut function = json!({"name": name});
        for key in ["description", "parameters", "strict"] {
            if let Some(value) = tool.get(key).filter(|v| !v.is_null()) {
                function[key] = value.clone();
            }
        }
        chat.push(json!({"type": "function", "function": function}));
    }
    Ok(Some(Value::Array(chat)))
}

/// `tool_choice` in chat's form: the modes as they are, a named function wrapped.
fn chat_tool_choice(choice: Option<&Value>) -> Result<Option<Value>, GatewayError> {
    match choice {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(mode)) if matches!(mode.as_str(), "auto" | "none" | "required") => {
            Ok(Some(Value::String(mode.clone())))
        }
        Some(choice @ Value::Object(_))
            if choice.get("type").and_then(Value::as_str) == Some("function") =>
        {
            let name = choice
                .get("name")
                .filter(|n| n.is_string())
                .ok_or_else(|| invalid("`tool_choice` of type function needs a `name`"))?;
            Ok(Some(
                json!({"type": "function", "function": {"name": name}}),
            ))
        }
        Some(_) => Err(unsupported(
            "tool_choice",
            "`tool_choice` may be auto, none, required or a function: hosted tools are not served here",
        )),
    }
}

/// `text.format` as chat's `response_format`; plain text needs none.
fn chat_response_format(text: Option<&Value>) -> Result<Option<Value>, GatewayError> {
    let Some(format) = text.and_then(|t| t.get("format")).filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let schema = format
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| {
                    invalid("`text.format` of type json_schema needs a `schema` object")
                })?;
            let mut json_schema = json!({
                "name": format.get("name").cloned().unwrap_or(json!("response")),
                "schema": schema,
            });
            for key in ["strict", "description"] {
                if let Some(value) = format.get(key).filter(|v| !v.is_null()) {
                    json_schema[key] = value.clone();
                }
            }
            Ok(Some(
                json!({"type": "json_schema", "json_schema": json_schema}),
            ))
        }
        _ => Err(invalid(
            "`text.format.type` must be text, json_object or json_schema",
        )),
    }
}

/// `metadata`: at most 16 string values, as OpenAI allows; it is only echoed back.
fn check_metadata(metadata: Option<&Value>) -> Result<(), GatewayError> {
    match metadata {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(pairs)) if pairs.len() <= 16 && pairs.values().all(Value::is_string) => {
            Ok(())
        }
        Some(_) => Err(invalid(
            "`metadata` must be an object of at most 16 string values",
        )),
    }
}

#[cfg(test)]
#[path = "responses_tests.rs"]
mod tests;
