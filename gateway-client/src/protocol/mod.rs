//! Wire protocols at the gateway's edge. The pipeline knows one neutral form of a call,
//! [`ModelCall`]; a [`Protocol`] reads a caller's request into it and writes the answers,
//! stream events and errors back the way its callers expect. The chat-completions routes speak
//! [`OpenAiChat`]; another protocol (OpenAI Responses, Anthropic Messages) is another
//! implementation, without changes to the pipeline. [`anthropic`] serves `/v1/messages`.

pub mod anthropic;
mod openai_chat;
mod responses;
mod responses_native;
mod responses_stream;

use serde_json::{Map, Value};

pub use openai_chat::OpenAiChat;
pub use responses::{OpenAiResponses, ResponsesCall, ResponsesEcho};
pub use responses_stream::{ResponsesEvent, ResponsesStream};

use crate::{context::Operation, error::GatewayError, pipeline::StreamEvent};

/// One model call in the gateway's neutral form.
#[derive(Debug, Clone)]
pub struct ModelCall {
    pub operation: Operation,
    /// The call as the OpenAI chat map: `model`, `messages`, `tools` and every parameter.
    /// Governance, the cache and token counting read it; fields the gateway does not know pass
    /// through to the upstream unchanged.
    pub request: Map<String, Value>,
    /// Whether the caller asked for the answer as a stream.
    pub stream: bool,
}

/// How one wire protocol's requests, answers, stream events and errors are written.
pub trait Protocol: Send + Sync + 'static {
    /// A short name, for logs.
    fn name(&self) -> &'static str;

    /// Reads a caller's request body (a JSON object) into the neutral form.
    fn read_request(
        &self,
        operation: Operation,
        body: Map<String, Value>,
    ) -> Result<ModelCall, GatewayError>;

    /// Writes a whole answer (an OpenAI chat completion) as this protocol's answer body.
    fn write_answer(&self, answer: Value) -> Value;

    /// Writes one stream event as the data of a server-sent event.
    fn write_event(&self, event: &StreamEvent) -> String;

    /// Writes a failure as this protocol's error body (also sent as a stream's last event).
    fn write_error(&self, error: &GatewayError) -> Value;
}
