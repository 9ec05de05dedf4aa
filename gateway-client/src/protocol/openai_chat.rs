//! OpenAI chat completions: the gateway's neutral form is this protocol's own request, so
//! requests and answers pass through unchanged.

use serde_json::{Map, Value};

use super::{ModelCall, Protocol};
use crate::{context::Operation, error::GatewayError, pipeline::StreamEvent};

/// `POST /v1/chat/completions` (and the Azure-style deployment routes).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiChat;

impl Protocol for OpenAiChat {
    fn name(&self) -> &'static str {
        "openai-chat"
    }

    fn read_request(
        &self,
        operation: Operation,
        body: Map<String, Value>,
    ) -> Result<ModelCall, GatewayError> {
        let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        Ok(ModelCall {
            operation,
            request: body,
            stream,
        })
    }

    fn write_answer(&self, answer: Value) -> Value {
        answer
    }

    fn write_event(&self, event: &StreamEvent) -> String {
        match event {
            StreamEvent::Chunk(chunk) => chunk.to_string(),
            StreamEvent::Done { .. } => "[DONE]".to_owned(),
        }
    }

    fn write_error(&self, error: &GatewayError) -> Value {
        serde_json::json!({"error": {"code": error.code(), "message": error.to_string()}})
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::usage::Usage;

    #[test]
    fn requests_pass_through_and_say_whether_they_stream() {
        let body = json!({"model": "m", "messages": [], "stream": true, "x-extra": 1});
        let call = OpenAiChat
            .read_request(Operation::Chat, body.as_object().unwrap().clone())
            .unwrap();
        assert!(call.stream);
        assert_eq!(Value::Object(call.request), body);
        let whole = OpenAiChat
            .read_request(Operation::Chat, Map::new())
            .unwrap();
        assert!(!whole.stream);
    }

    #[test]
    fn events_and_errors_are_written_as_openai_does() {
        let chunk = json!({"object": "chat.completion.chunk"});
        assert_eq!(
            OpenAiChat.write_event(&StreamEvent::Chunk(chunk.clone())),
            chunk.to_string()
        );
        let done = StreamEvent::Done {
            usage: Usage::default(),
        };
        assert_eq!(OpenAiChat.write_event(&done), "[DONE]");
        let error = GatewayError::CompletionLimitExceeded { limit: 5 };
        assert_eq!(
            OpenAiChat.write_error(&error),
            json!({"error": {"code": "completion_limit_exceeded", "message": error.to_string()}})
        );
    }
}
