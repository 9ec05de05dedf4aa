//! The OpenAI wire shapes: chat completions, stream chunks, SSE framing and error bodies.
//!
//! Everything here is pure: it turns an [`Answer`] into bytes. The handlers decide what to answer.

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// Token usage as OpenAI reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub(crate) fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
        }
    }
}

/// A tool call of the assistant message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// What the "model" answers, independent of how it is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: &'static str,
    pub usage: Usage,
}

/// The per-response identity shared by a completion or by all chunks of a stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta<'a> {
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
}

// ---------------------------------------------------------------------------------------------
// Non-streamed completion.

#[derive(Serialize)]
struct CompletionBody<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChoiceBody<'a>; 1],
    usage: Usage,
}

#[derive(Serialize)]
struct ChoiceBody<'a> {
    index: u32,
    message: MessageBody<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct MessageBody<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallBody<'a>>,
    refusal: Option<()>,
}

#[derive(Serialize)]
struct ToolCallBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionBody<'a>,
}

#[derive(Serialize)]
struct FunctionBody<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// The `chat.completion` JSON body.
pub(crate) fn completion_json(meta: Meta<'_>, answer: &Answer) -> serde_json::Result<Vec<u8>> {
    let body = CompletionBody {
        id: meta.id,
        object: "chat.completion",
        created: meta.created,
        model: meta.model,
        choices: [ChoiceBody {
            index: 0,
            message: MessageBody {
                role: "assistant",
                content: answer.content.as_deref(),
                tool_calls: answer
                    .tool_calls
                    .iter()
                    .map(|call| ToolCallBody {
                        id: &call.id,
                        kind: "function",
                        function: FunctionBody {
                            name: &call.name,
                            arguments: &call.arguments,
                        },
                    })
                    .collect(),
                refusal: None,
            },
            logprobs: None,
            finish_reason: answer.finish_reason,
        }],
        usage: answer.usage,
    };
    serde_json::to_vec(&body)
}

// ---------------------------------------------------------------------------------------------
// Streamed completion.

#[derive(Serialize)]
struct ChunkBody<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent without `include_usage`; `null` on ordinary chunks with it; set on the last chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// Absent, `null` or a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallDelta<'a>>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// Builds the `data: …\n\n` events of one streamed completion.
pub(crate) struct SseBuilder<'a> {
    meta: Meta<'a>,
    include_usage: bool,
    events: Vec<Bytes>,
}

impl<'a> SseBuilder<'a> {
    pub(crate) fn new(meta: Meta<'a>, include_usage: bool) -> Self {
        Self {
            meta,
            include_usage,
            events: Vec::with_capacity(8),
        }
    }

    fn chunk(&mut self, delta: Delta<'_>, finish_reason: Option<&str>) -> serde_json::Result<()> {
        let choices = [ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        }];
        self.push(&ChunkBody {
            id: self.meta.id,
            object: "chat.completion.chunk",
            created: self.meta.created,
            model: self.meta.model,
            choices: &choices,
            usage: self.include_usage.then_some(None),
        })
    }

    fn push(&mut self, body: &impl Serialize) -> serde_json::Result<()> {
        let mut event = Vec::with_capacity(192);
        event.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut event, body)?;
        event.extend_from_slice(b"\n\n");
        self.events.push(Bytes::from(event));
        Ok(())
    }

    /// The first chunk: `{"role":"assistant","content":""}`.
    pub(crate) fn role(&mut self) -> serde_json::Result<()> {
        self.chunk(
            Delta {
                role: Some("assistant"),
                content: Some(Some("")),
                ..Delta::default()
            },
            None,
        )
    }

    pub(crate) fn content(&mut self, text: &str) -> serde_json::Result<()> {
        self.chunk(
            Delta {
                content: Some(Some(text)),
                ..Delta::default()
            },
            None,
        )
    }

    /// One tool call: a header chunk (index, id, type, name, empty arguments), then the arguments
    /// in one or two pieces. `with_role` puts `"role":"assistant","content":null` on the header,
    /// as OpenAI does when a turn opens with a tool call.
    pub(crate) fn tool_call(
        &mut self,
        index: usize,
        call: &ToolCall,
        with_role: bool,
    ) -> serde_json::Result<()> {
        self.chunk(
            Delta {
                role: with_role.then_some("assistant"),
                content: with_role.then_some(None),
                tool_calls: vec![ToolCallDelta {
                    index,
                    id: Some(&call.id),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(&call.name),
                        arguments: "",
                    },
                }],
            },
            None,
        )?;
        for piece in split_in_two(&call.arguments) {
            self.chunk(
                Delta {
                    tool_calls: vec![ToolCallDelta {
                        index,
                        id: None,
                        kind: None,
                        function: FunctionDelta {
                            name: None,
                            arguments: piece,
                        },
                    }],
                    ..Delta::default()
                },
                None,
            )?;
        }
        Ok(())
    }

    /// The chunk with an empty delta and the finish reason.
    pub(crate) fn finish(&mut self, finish_reason: &str) -> serde_json::Result<()> {
        self.chunk(Delta::default(), Some(finish_reason))
    }

    /// The usage chunk (only with `include_usage`), then `data: [DONE]`.
    pub(crate) fn done(mut self, usage: Usage) -> serde_json::Result<Vec<Bytes>> {
        if self.include_usage {
            self.push(&ChunkBody {
                id: self.meta.id,
                object: "chat.completion.chunk",
                created: self.meta.created,
                model: self.meta.model,
                choices: &[],
                usage: Some(Some(usage)),
            })?;
        }
        self.events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        Ok(self.events)
    }

    /// The events so far, for a stream that breaks off here.
    pub(crate) fn broken(self) -> Vec<Bytes> {
        self.events
    }
}

/// All events of a normally finished stream of `answer`.
pub(crate) fn answer_events(
    meta: Meta<'_>,
    answer: &Answer,
    include_usage: bool,
) -> serde_json::Result<Vec<Bytes>> {
    let mut sse = SseBuilder::new(meta, include_usage);
    let content = answer.content.as_deref();
    if content.is_some() || answer.tool_calls.is_empty() {
        sse.role()?;
        for piece in word_chunks(content.unwrap_or_default()) {
            sse.content(piece)?;
        }
    }
    for (index, call) in answer.tool_calls.iter().enumerate() {
        sse.tool_call(index, call, index == 0 && content.is_none())?;
    }
    sse.finish(answer.finish_reason)?;
    sse.done(answer.usage)
}

/// A flood's events: the opening ones, the content event repeated, and the closing ones.
pub(crate) fn flood_events(
    meta: Meta<'_>,
    delta: &str,
    include_usage: bool,
    usage: Usage,
) -> serde_json::Result<(Vec<Bytes>, Bytes, Vec<Bytes>)> {
    let mut head = SseBuilder::new(meta, include_usage);
    head.role()?;
    let mut repeated = SseBuilder::new(meta, include_usage);
    repeated.content(delta)?;
    let repeated = repeated.events.pop().unwrap_or_default();
    let mut tail = SseBuilder::new(meta, include_usage);
    tail.finish("stop")?;
    Ok((head.events, repeated, tail.done(usage)?))
}

/// One raw `data: <event>\n\n` per string.
pub(crate) fn raw_events(events: &[String]) -> Vec<Bytes> {
    events
        .iter()
        .map(|event| Bytes::from(format!("data: {event}\n\n")))
        .collect()
}

/// Splits text into chunks of up to four words; the chunks concatenate to the text exactly.
pub(crate) fn word_chunks(text: &str) -> impl Iterator<Item = &str> {
    const WORDS_PER_CHUNK: usize = 4;
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len();
        let mut words = 0;
        for (at, ch) in rest.char_indices() {
            if ch.is_whitespace() {
                words += 1;
                if words == WORDS_PER_CHUNK {
                    end = at + ch.len_utf8();
                    break;
                }
            }
        }
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

/// Splits at a char boundary near the middle; a string shorter than two chars stays whole.
fn split_in_two(text: &str) -> Vec<&str> {
    let mid = text.len() / 2;
    match (mid..text.len()).find(|&at| text.is_char_boundary(at)) {
        Some(at) if at > 0 && at < text.len() => vec![&text[..at], &text[at..]],
        _ => vec![text],
    }
}

// ---------------------------------------------------------------------------------------------
// Responses.

/// A 200 `application/json` response from pre-serialized bytes.
pub(crate) fn json_response(body: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// A 200 `text/event-stream` response. With `abort`, the body breaks off (the connection is
/// dropped) after the events, so the client never sees the end of the stream.
pub(crate) fn sse_response(events: Vec<Bytes>, abort: bool) -> Response {
    sse_body_response(streamed_body(events, abort))
}

/// A 200 `text/event-stream` response with this body.
pub(crate) fn sse_body_response(body: Body) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// A chunked body of these pieces; with `abort`, it then fails, which makes the server drop the
/// connection without the terminating chunk.
pub(crate) fn streamed_body(pieces: Vec<Bytes>, abort: bool) -> Body {
    use futures::StreamExt as _;
    let pieces = futures::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
    if !abort {
        return Body::from_stream(pieces);
    }
    let failure = futures::stream::once(async {
        // Pending once, so the server flushes what it has before the connection drops.
        tokio::task::yield_now().await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "mock upstream dropped the stream on purpose",
        ))
    });
    Body::from_stream(pieces.chain(failure))
}

// ---------------------------------------------------------------------------------------------
// Embeddings.

/// One embedding vector, as floats or as base64 little-endian f32s.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum EmbeddingData {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: EmbeddingData,
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// The embeddings `list` JSON body.
pub(crate) fn embeddings_json(
    model: &str,
    vectors: Vec<EmbeddingData>,
    prompt_tokens: u64,
) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&EmbeddingList {
        object: "list",
        data: vectors
            .into_iter()
            .enumerate()
            .map(|(index, embedding)| EmbeddingItem {
                object: "embedding",
                index,
                embedding,
            })
            .collect(),
        model,
        usage: EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    })
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<()>,
    code: &'static str,
}

/// The OpenAI `type` and `code` of an error status.
fn error_kind(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("invalid_request_error", "invalid_request"),
        401 => ("invalid_request_error", "invalid_api_key"),
        403 => ("invalid_request_error", "forbidden"),
        404 => ("invalid_request_error", "not_found"),
        408 | 504 => ("timeout", "timeout"),
        429 => ("requests", "rate_limit_exceeded"),
        503 => ("server_error", "overloaded"),
        500..=599 => ("server_error", "server_error"),
        _ => ("invalid_request_error", "error"),
    }
}

/// An OpenAI-style error: `{"error":{"message","type","param","code"}}`, with an optional
/// `Retry-After` in seconds. A status outside 100..=999 becomes 500.
pub(crate) fn error_response(status: u16, message: &str, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (kind, code) = error_kind(status);
    let envelope = ErrorEnvelope {
        error: ErrorBody {
            message,
            kind,
            param: None,
            code,
        },
    };
    let mut response = match serde_json::to_vec(&envelope) {
        Ok(body) => json_response(body),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    *response.status_mut() = status;
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// A 500 for a serialization failure (which our shapes cannot produce in practice).
pub(crate) fn internal_error(err: &serde_json::Error) -> Response {
    tracing::error!(error = %err, "mock upstream failed to serialize a response");
    error_response(500, "mock upstream serialization failure", None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn meta() -> Meta<'static> {
        Meta {
            id: "chatcmpl-1",
            created: 7,
            model: "m",
        }
    }

    fn parse_events(events: &[Bytes]) -> Vec<Value> {
        events
            .iter()
            .filter_map(|event| {
                let text = std::str::from_utf8(event).ok()?;
                let data = text.strip_prefix("data: ")?.strip_suffix("\n\n")?;
                (data != "[DONE]")
                    .then(|| serde_json::from_str(data).ok())
                    .flatten()
            })
            .collect()
    }

    #[test]
    fn word_chunks_concatenate_to_the_text() {
        for text in [
            "",
            "one",
            "a b c d e f g h i",
            "  lead  and trail  ",
            "é ü ß x y z",
        ] {
            let chunks: Vec<&str> = word_chunks(text).collect();
            assert_eq!(chunks.concat(), text);
            assert!(chunks.iter().all(|chunk| !chunk.is_empty()));
        }
        assert_eq!(word_chunks("a b c d e f").count(), 2);
    }

    #[test]
    fn split_in_two_respects_char_boundaries() {
        assert_eq!(split_in_two("{}"), vec!["{", "}"]);
        assert_eq!(split_in_two("x"), vec!["x"]);
        assert_eq!(split_in_two(""), vec![""]);
        assert_eq!(split_in_two("éé").concat(), "éé");
    }

    #[test]
    fn completion_with_tool_calls_has_null_content() -> serde_json::Result<()> {
        let answer = Answer {
            content: None,
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "whoami".into(),
                arguments: "{}".into(),
            }],
            finish_reason: "tool_calls",
            usage: Usage::new(3, 4),
        };
        let body: Value = serde_json::from_slice(&completion_json(meta(), &answer)?)?;
        assert_eq!(body["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"][0],
            json!({"id":"call_1","type":"function","function":{"name":"whoami","arguments":"{}"}})
        );
        assert_eq!(body["usage"]["total_tokens"], 7);
        Ok(())
    }

    #[test]
    fn streamed_tool_calls_reassemble() -> serde_json::Result<()> {
        let answer = Answer {
            content: None,
            tool_calls: vec![
                ToolCall {
                    id: "call_a".into(),
                    name: "whoami".into(),
                    arguments: "{}".into(),
                },
                ToolCall {
                    id: "call_b".into(),
                    name: "echo".into(),
                    arguments: r#"{"message":"hi"}"#.into(),
                },
            ],
            finish_reason: "tool_calls",
            usage: Usage::new(1, 1),
        };
        let chunks = parse_events(&answer_events(meta(), &answer, false)?);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(chunks.iter().all(|chunk| chunk.get("usage").is_none()));
        let mut args = [String::new(), String::new()];
        for chunk in &chunks {
            for call in chunk["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let index = call["index"].as_u64().unwrap_or(9) as usize;
                args[index].push_str(call["function"]["arguments"].as_str().unwrap_or_default());
            }
        }
        assert_eq!(args, ["{}".to_owned(), r#"{"message":"hi"}"#.to_owned()]);
        let last = chunks.last().cloned().unwrap_or_default();
        assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
        Ok(())
    }

    #[test]
    fn error_body_is_openai_shaped() {
        let response = error_response(429, "slow down", Some(2));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(2u64))
        );
        assert_eq!(error_response(42, "x", None).status(), 500);
    }
}
