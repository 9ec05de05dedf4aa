//! Calls an upstream takes in the caller's own protocol (the OpenAI Responses API on OpenAI or
//! Azure OpenAI). Admission, the cache, settlement and the relay still see the neutral chat
//! form; only the upstream gets the caller's body, with the governed completion limit, and its
//! answers and stream events are read back into the chat form for the policies.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::{ChatOutcome, ChatStream, Gateway, admission::ChatAdmission, call::serialize};
use crate::{
    context::{CallContext, Operation},
    error::GatewayError,
    model_api::ByteStream,
};

/// A call to send in the caller's own protocol, and how its answers read as chat.
pub struct NativeCall {
    /// Which upstream endpoint takes it.
    pub operation: Operation,
    /// The caller's body as the upstream should get it (model, limit and `stream` are set from
    /// the governed call).
    pub body: Map<String, Value>,
    /// The body field that carries the completion limit.
    pub limit_field: &'static str,
    /// A whole answer in the neutral chat form (a chat completion).
    pub answer_as_chat: fn(&Value) -> Value,
    /// The upstream's stream as chat-completion chunks (server-sent events).
    pub stream_as_chat: fn(ByteStream) -> ByteStream,
}

impl NativeCall {
    /// The body to send: the caller's, with the resolved model, the governed completion limit
    /// and whether it streams.
    pub(super) fn body_for(
        &self,
        admission: &ChatAdmission,
        streaming: bool,
    ) -> Result<Bytes, GatewayError> {
        let mut body = self.body.clone();
        body.insert("model".to_owned(), Value::from(admission.model.as_str()));
        body.insert(
            self.limit_field.to_owned(),
            Value::from(admission.limit.per_choice),
        );
        if streaming {
            body.insert("stream".to_owned(), Value::Bool(true));
        } else {
            body.remove("stream");
        }
        serialize(&body)
    }
}

impl Gateway {
    /// A whole call sent in the caller's protocol; the outcome's body is the upstream's own
    /// answer. `request` is the same call in the neutral chat form.
    pub async fn chat_native(
        &self,
        context: &CallContext,
        request: Map<String, Value>,
        native: &NativeCall,
    ) -> Result<ChatOutcome, GatewayError> {
        self.chat_via(context, request, Some(native)).await
    }

    /// A streamed call sent in the caller's protocol, relayed as chat chunks.
    pub async fn chat_native_stream(
        &self,
        context: &CallContext,
        request: Map<String, Value>,
        native: &NativeCall,
    ) -> Result<ChatStream, GatewayError> {
        self.chat_stream_via(context, request, Some(native)).await
    }
}
