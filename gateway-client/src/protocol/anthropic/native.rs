//! The model API behind `/v1/messages`: a native Anthropic-compatible upstream, or the chat
//! completions upstream through translation.
//!
//! The pipeline governs, counts and caches every call in the neutral form, so both targets take
//! the neutral request and give back chat completions and chunks. The native target sends the
//! caller's own Messages body (kept in the request's stash, see [`super::STASH`]) with the
//! governed model, `max_tokens` and `stream`, through an [`Upstream`] of Anthropic backends
//! (retries, failover, breakers, deadlines), and reads Anthropic's answers and events back into
//! chat form. `thinking` is not sent on: the gateway does not relay thinking blocks (a client
//! could not send them back), and a capped `max_tokens` could fall below its budget; nor is
//! `context_management`, whose edits assume thinking.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::STASH;
use crate::{
    context::Operation,
    error::GatewayError,
    model_api::{ByteStream, ModelApi},
    names,
    upstream::{Upstream, sse::SseParser},
};

/// Where `/v1/messages` calls go.
pub struct MessagesApi {
    target: Target,
}

enum Target {
    Native(Upstream),
    Translated(Arc<dyn ModelApi>),
}

impl MessagesApi {
    /// An Anthropic-compatible upstream (its backends are `BackendConfig::Anthropic`).
    pub fn native(upstream: Upstream) -> Self {
        Self {
            target: Target::Native(upstream),
        }
    }

    /// The chat completions model API, the request translated.
    pub fn translated(chat: Arc<dyn ModelApi>) -> Self {
        Self {
            target: Target::Translated(chat),
        }
    }

    /// Whether calls go to a native Anthropic upstream.
    pub fn is_native(&self) -> bool {
        matches!(self.target, Target::Native(_))
    }
}

#[async_trait]
impl ModelApi for MessagesApi {
    async fn whole(
        &self,
        operation: Operation,
        model: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Bytes, GatewayError> {
        let (request, stash) = unstash(&body)?;
        match &self.target {
            Target::Translated(chat) => {
                chat.whole(operation, model, serialize(&request)?, deadline)
                    .await
            }
            Target::Native(upstream) => {
                let (body, headers) = native_request(request, stash)?;
                let answer = upstream
                    .whole_with_headers(operation, model, body, &headers, deadline)
                    .await?;
                let message: Value =
                    serde_json::from_slice(&answer).map_err(|_| GatewayError::UpstreamFailed {
                        summary: "the upstream's answer was not JSON".to_owned(),
                    })?;
                serialize_value(&completion(&message))
            }
        }
    }

    async fn stream(
        &self,
        operation: Operation,
        model: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<ByteStream, GatewayError> {
        let (request, stash) = unstash(&body)?;
        match &self.target {
            Target::Translated(chat) => {
                chat.stream(operation, model, serialize(&request)?, deadline)
                    .await
            }
            Target::Native(upstream) => {
                let (body, headers) = native_request(request, stash)?;
                let events = upstream
                    .stream_with_headers(operation, model, body, &headers, deadline)
                    .await?;
                Ok(chunks_from_events(events))
            }
        }
    }

    fn is_configured(&self) -> bool {
        match &self.target {
            Target::Native(upstream) => upstream.is_configured(),
            Target::Translated(chat) => chat.is_configured(),
        }
    }

    fn provider_name(&self) -> &'static str {
        match &self.target {
            Target::Native(_) => "anthropic",
            Target::Translated(chat) => chat.provider_name(),
        }
    }

    fn check_model(&self, model: &str) -> Result<(), GatewayError> {
        match &self.target {
            Target::Native(_) => names::check_model_name(model).map_err(GatewayError::InvalidModel),
            Target::Translated(chat) => chat.check_model(model),
        }
    }
}

/// The neutral request without its stash, and the stash.
fn unstash(body: &[u8]) -> Result<(Map<String, Value>, Value), GatewayError> {
    let mut request: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| GatewayError::InvalidRequest(format!("request cannot be read: {e}")))?;
    let stash = request.remove(STASH).unwrap_or(Value::Null);
    Ok((request, stash))
}

fn serialize(request: &Map<String, Value>) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(request)
        .map(Bytes::from)
        .map_err(|e| GatewayError::InvalidRequest(format!("request cannot be serialized: {e}")))
}

fn serialize_value(value: &Value) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| GatewayError::UpstreamFailed {
            summary: format!("answer cannot be serialized: {e}"),
        })
}

/// The caller's Messages body with the governed fields, and the Anthropic headers to send.
pub(super) fn native_request(
    governed: Map<String, Value>,
    stash: Value,
) -> Result<(Bytes, HeaderMap), GatewayError> {
    let Value::Object(mut stash) = stash else {
        return Err(GatewayError::InvalidRequest(
            "a Messages call lost its request on the way".to_owned(),
        ));
    };
    let mut body = match stash.remove("body") {
        Some(Value::Object(body)) => body,
        _ => Map::new(),
    };
    for field in ["model", "max_tokens"] {
        if let Some(value) = governed.get(field) {
            body.insert(field.to_owned(), value.clone());
        }
    }
    if governed.get("stream").and_then(Value::as_bool) == Some(true) {
        body.insert("stream".to_owned(), Value::Bool(true));
    }
    body.remove("thinking");
    body.remove("context_management");
    let mut headers = HeaderMap::new();
    for (field, name) in [("version", "anthropic-version"), ("beta", "anthropic-beta")] {
        if let Some(value) = stash
            .get(field)
            .and_then(Value::as_str)
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    Ok((serialize(&body)?, headers))
}

/// Anthropic's `stop_reason` as a chat `finish_reason`.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Anthropic usage as chat usage; cached prompt tokens are prompt tokens too.
fn prompt_tokens(usage: &Value) -> Option<u64> {
    let input = usage.get("input_tokens").and_then(Value::as_u64)?;
    let cached = ["cache_creation_input_tokens", "cache_read_input_tokens"]
        .iter()
        .filter_map(|field| usage.get(*field).and_then(Value::as_u64))
        .sum::<u64>();
    Some(input + cached)
}

/// A whole Anthropic `message` as a chat completion.
pub(super) fn completion(message: &Value) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    let blocks = message.get("content").and_then(Value::as_array);
    for block in blocks.into_iter().flatten() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(json!({
                "id": block.get("id").cloned().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or_default(),
                    "arguments": block.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                },
            })),
            _ => {}
        }
    }
    let mut reply = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::from(text) }});
    if !calls.is_empty() {
        reply["tool_calls"] = Value::Array(calls);
    }
    let usage = message.get("usage").cloned().unwrap_or_default();
    let prompt = prompt_tokens(&usage).unwrap_or(0);
    let output = usage
        .get("output_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut choice = json!({
        "index": 0,
        "message": reply,
        "finish_reason": finish_reason(message.get("stop_reason").and_then(Value::as_str)),
    });
    if let Some(sequence) = message.get("stop_sequence").filter(|s| s.is_string()) {
        choice["stop_sequence"] = sequence.clone();
    }
    json!({
        "id": message.get("id").cloned().unwrap_or_default(),
        "object": "chat.completion",
        "created": 0,
        "model": message.get("model").cloned().unwrap_or_default(),
        "choices": [choice],
        "usage": {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output},
    })
}

/// An Anthropic event stream read as a chat completions stream (`data:` chunks, `[DONE]`). An
/// `error` event fails the stream.
fn chunks_from_events(events: ByteStream) -> ByteStream {
    let state = (events, EventsToChunks::default(), false);
    Box::pin(futures::stream::unfold(
        state,
        |(mut events, mut reader, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let bytes = match events.next().await? {
                    Ok(bytes) => bytes,
                    Err(error) => return Some((Err(error), (events, reader, true))),
                };
                match reader.push(&bytes) {
                    Ok(chunks) if chunks.is_empty() => {}
                    Ok(chunks) => return Some((Ok(chunks), (events, reader, false))),
                    Err(error) => return Some((Err(error), (events, reader, true))),
                }
            }
        },
    ))
}

/// Reads Anthropic events, writes chat chunks.
#[derive(Debug, Default)]
pub(super) struct EventsToChunks {
    parser: SseParser,
    id: String,
    model: String,
    /// Tool-call index of each content block that is a tool call, by block index.
    tool_blocks: Vec<(u64, u64)>,
    prompt: u64,
    completion: u64,
}

impl EventsToChunks {
    /// The chat chunks (SSE framed) of the complete events in what arrived so far.
    pub(super) fn push(&mut self, bytes: &[u8]) -> Result<Bytes, GatewayError> {
        self.parser.push(bytes);
        let mut out = Vec::new();
        while let Some(data) = self.parser.next_data() {
            let Ok(event) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            for chunk in self.read(&event)? {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(chunk.as_bytes());
                out.extend_from_slice(b"\n\n");
            }
        }
        Ok(Bytes::from(out))
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        self.chunk_value(delta, finish).to_string()
    }

    fn chunk_value(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": 0, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    }

    /// The chat chunks of one Anthropic event.
    fn read(&mut self, event: &Value) -> Result<Vec<String>, GatewayError> {
        let field = |path: &str| event.pointer(path).and_then(Value::as_str).unwrap_or("");
        Ok(match field("/type") {
            "message_start" => {
                self.id = field("/message/id").to_owned();
                self.model = field("/message/model").to_owned();
                if let Some(usage) = event.pointer("/message/usage") {
                    self.absorb_usage(usage);
                }
                vec![self.chunk(json!({"role": "assistant", "content": ""}), None)]
            }
            "content_block_start" => self.block_start(event),
            "content_block_delta" => self.block_delta(event),
            "message_delta" => {
                if let Some(usage) = event.get("usage") {
                    self.absorb_usage(usage);
                }
                let finish =
                    finish_reason(event.pointer("/delta/stop_reason").and_then(Value::as_str));
                let mut chunk = self.chunk_value(json!({}), Some(finish));
                if let Some(sequence) = event
                    .pointer("/delta/stop_sequence")
                    .filter(|s| s.is_string())
                {
                    chunk["choices"][0]["stop_sequence"] = sequence.clone();
                }
                vec![chunk.to_string()]
            }
            "message_stop" => {
                let usage = json!({
                    "prompt_tokens": self.prompt,
                    "completion_tokens": self.completion,
                    "total_tokens": self.prompt + self.completion,
                });
                let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": 0, "model": self.model, "choices": [], "usage": usage});
                vec![chunk.to_string(), "[DONE]".to_owned()]
            }
            "error" => {
                return Err(GatewayError::UpstreamFailed {
                    summary: format!("the upstream stream failed: {}", field("/error/message")),
                });
            }
            _ => Vec::new(),
        })
    }

    fn absorb_usage(&mut self, usage: &Value) {
        if let Some(prompt) = prompt_tokens(usage) {
            self.prompt = prompt;
        }
        if let Some(output) = usage.get("output_tokens").and_then(Value::as_u64) {
            self.completion = output;
        }
    }

    fn block_start(&mut self, event: &Value) -> Vec<String> {
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        let Some(block) = event.get("content_block") else {
            return Vec::new();
        };
        match block.get("type").and_then(Value::as_str) {
            Some("tool_use") => {
                let call = self.tool_blocks.len() as u64;
                self.tool_blocks.push((index, call));
                let delta = json!({"tool_calls": [{
                    "index": call,
                    "id": block.get("id").cloned().unwrap_or_default(),
                    "type": "function",
                    "function": {"name": block.get("name").cloned().unwrap_or_default(), "arguments": ""},
                }]});
                vec![self.chunk(delta, None)]
            }
            Some("text") => match block.get("text").and_then(Value::as_str) {
                Some(text) if !text.is_empty() => vec![self.chunk(json!({"content": text}), None)],
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn block_delta(&mut self, event: &Value) -> Vec<String> {
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        let Some(delta) = event.get("delta") else {
            return Vec::new();
        };
        match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => {
                let text = delta.get("text").and_then(Value::as_str).unwrap_or("");
                vec![self.chunk(json!({"content": text}), None)]
            }
            Some("input_json_delta") => {
                let Some(&(_, call)) = self.tool_blocks.iter().find(|(block, _)| *block == index)
                else {
                    return Vec::new();
                };
                let partial = delta
                    .get("partial_json")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let delta =
                    json!({"tool_calls": [{"index": call, "function": {"arguments": partial}}]});
                vec![self.chunk(delta, None)]
            }
            _ => Vec::new(),
        }
    }
}
