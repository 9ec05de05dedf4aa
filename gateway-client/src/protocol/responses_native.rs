//! The Responses API passed to an upstream that speaks it (OpenAI, Azure OpenAI): the caller's
//! body goes upstream as it is (with `store: false`, since this gateway keeps no state and
//! OpenAI would otherwise store by default), and the upstream's answers are read back into the
//! neutral chat form so the policies (usage, the stream meter, content safety, the cache) see
//! them as they see any chat answer.

use bytes::Bytes;
use futures::{StreamExt, stream};
use serde_json::{Map, Value, json};

use super::responses::OpenAiResponses;
use crate::{
    context::Operation, error::GatewayError, model_api::ByteStream, pipeline::NativeCall,
    upstream::sse::SseParser,
};

impl OpenAiResponses {
    /// The call to pass to a native Responses upstream, for a body [`Self::read`] accepted.
    pub fn native_call(&self, mut body: Map<String, Value>) -> NativeCall {
        body.insert("store".to_owned(), Value::Bool(false));
        NativeCall {
            operation: Operation::Responses,
            body,
            limit_field: "max_output_tokens",
            answer_as_chat: response_as_chat,
            stream_as_chat: events_as_chunks,
        }
    }
}

/// A `response` object as a chat completion: its text, its function calls, its usage.
pub fn response_as_chat(response: &Value) -> Value {
    let items = response
        .get("output")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut text = String::new();
    let mut calls = Vec::new();
    for item in items {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(piece) = part.get("text").and_then(Value::as_str) {
                        text.push_str(piece);
                    }
                }
            }
            Some("function_call") => calls.push(json!({
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            })),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": (!text.is_empty()).then_some(text)});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls.clone());
    }
    let finish = finish_reason(response, !calls.is_empty());
    json!({
        "id": response.get("id"),
        "object": "chat.completion",
        "created": response.get("created_at"),
        "model": response.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": response.get("usage").map(chat_usage),
    })
}

fn finish_reason(response: &Value, called: bool) -> &'static str {
    match response
        .pointer("/incomplete_details/reason")
        .and_then(Value::as_str)
    {
        Some("max_output_tokens") => "length",
        Some("content_filter") => "content_filter",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

fn chat_usage(usage: &Value) -> Value {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    let (prompt, completion) = (count("input_tokens"), count("output_tokens"));
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// A Responses event stream as chat-completion chunks: text and argument deltas as they come,
/// the finish and the usage from `response.completed`, and a failure event as an error.
pub fn events_as_chunks(events: ByteStream) -> ByteStream {
    let mut reader = EventReader::default();
    Box::pin(
        events
            .map(move |bytes| match bytes {
                Ok(bytes) => reader.read(&bytes),
                Err(error) => vec![Err(error)],
            })
            .flat_map(stream::iter),
    )
}

/// Reads Responses events and writes chat chunks.
#[derive(Default)]
struct EventReader {
    parser: SseParser,
    /// Function call item ids, in the order the calls began: a call's chat `index`.
    calls: Vec<String>,
}

impl EventReader {
    fn read(&mut self, bytes: &[u8]) -> Vec<Result<Bytes, GatewayError>> {
        self.parser.push(bytes);
        let mut out = Vec::new();
        while let Some(data) = self.parser.next_data() {
            let Ok(event) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            self.convert(&event, &mut out);
        }
        out
    }

    fn convert(&mut self, event: &Value, out: &mut Vec<Result<Bytes, GatewayError>>) {
        let text = |key: &str| event.get(key).and_then(Value::as_str).unwrap_or("");
        match text("type") {
            "response.output_text.delta" => {
                out.push(chunk(json!({"content": text("delta")}), None))
            }
            "response.output_item.added"
                if event.pointer("/item/type").and_then(Value::as_str) == Some("function_call") =>
            {
                let item = &event["item"];
                let index = self.calls.len();
                self.calls.push(
                    item.get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                );
                let call = json!({"index": index, "id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": ""}});
                out.push(chunk(json!({"tool_calls": [call]}), None));
            }
            "response.function_call_arguments.delta" => {
                let index = self.calls.iter().position(|id| id == text("item_id"));
                let call =
                    json!({"index": index.unwrap_or(0), "function": {"arguments": text("delta")}});
                out.push(chunk(json!({"tool_calls": [call]}), None));
            }
            "response.completed" | "response.incomplete" => {
                let response = &event["response"];
                let finish = finish_reason(response, !self.calls.is_empty());
                out.push(chunk(json!({}), Some(finish)));
                let usage = response.get("usage").map(chat_usage);
                out.push(Ok(sse(
                    &json!({"object": "chat.completion.chunk", "choices": [], "usage": usage}),
                )));
                out.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
            }
            "response.failed" | "error" => {
                let message = event
                    .pointer("/response/error/message")
                    .or_else(|| event.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream's response failed");
                out.push(Err(GatewayError::UpstreamFailed {
                    summary: message.to_owned(),
                }));
            }
            _ => {}
        }
    }
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> Result<Bytes, GatewayError> {
    Ok(sse(&json!({
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    })))
}

fn sse(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_response_reads_as_a_chat_completion() {
        let response = json!({
            "id": "resp_1", "created_at": 5, "model": "m", "status": "completed",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]},
                {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
            ],
            "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
        });
        let chat = response_as_chat(&response);
        assert_eq!(chat["choices"][0]["message"]["content"], "Hi");
        assert_eq!(
            chat["choices"][0]["message"]["tool_calls"][0]["id"],
            "call_1"
        );
        assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            chat["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
        );
    }

    #[tokio::test]
    async fn events_read_as_chunks_and_a_failure_as_an_error() {
        let events = [
            json!({"type": "response.created", "response": {}}),
            json!({"type": "response.output_text.delta", "item_id": "msg_1", "delta": "He"}),
            json!({"type": "response.output_item.added", "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f"}}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": "{}"}),
            json!({"type": "response.completed", "response": {"usage": {"input_tokens": 2, "output_tokens": 3}}}),
        ];
        let wire: String = events
            .iter()
            .map(|e| format!("event: x\ndata: {e}\n\n"))
            .collect();
        // Split mid-event, as a network would.
        let (a, b) = wire.split_at(wire.len() / 2);
        let pieces = vec![Ok(Bytes::from(a.to_owned())), Ok(Bytes::from(b.to_owned()))];
        let out: Vec<_> = events_as_chunks(Box::pin(stream::iter(pieces)))
            .collect()
            .await;
        let data: Vec<String> = out
            .into_iter()
            .map(|b| String::from_utf8(b.unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(data.len(), 6);
        assert!(data[0].contains(r#""content":"He""#));
        assert!(data[1].contains(r#""id":"call_1""#));
        assert!(data[2].contains(r#""arguments":"{}""#));
        assert!(data[3].contains(r#""finish_reason":"tool_calls""#));
        assert!(data[4].contains(r#""prompt_tokens":2"#));
        assert_eq!(data[5], "data: [DONE]\n\n");

        let failed = json!({"type": "response.failed", "response": {"error": {"message": "boom"}}});
        let pieces = vec![Ok(Bytes::from(format!("data: {failed}\n\n")))];
        let out: Vec<_> = events_as_chunks(Box::pin(stream::iter(pieces)))
            .collect()
            .await;
        assert!(
            matches!(&out[0], Err(GatewayError::UpstreamFailed { summary }) if summary == "boom")
        );
    }
}
