//! The Anthropic Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`).
//!
//! [`AnthropicMessages`] reads a Messages request into the neutral form and writes the gateway's
//! answers, stream events ([`MessagesStreamWriter`]) and errors back in Anthropic's shapes.
//! [`MessagesApi`] is where the calls go: a native Anthropic-compatible upstream, or the chat
//! completions upstream through translation.
//!
//! The neutral request carries a stash under [`STASH`]: the protocol's name (so the cache keeps
//! Messages answers apart from chat ones) and, for a native upstream, the caller's own body and
//! `anthropic-version`/`anthropic-beta` headers. [`MessagesApi`] takes it off before anything is
//! sent.

mod answer;
mod native;
mod request;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

pub use answer::{MessagesEvent, MessagesStreamWriter};
pub use native::MessagesApi;

use super::ModelCall;
use crate::{context::Operation, error::GatewayError};

/// The neutral request's key for what only the Messages model API reads.
pub const STASH: &str = "anthropic";

/// The `anthropic-version` sent upstream when the caller sends none.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// The Anthropic headers of one call, passed on to a native upstream.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagesHeaders<'a> {
    pub version: Option<&'a str>,
    pub beta: Option<&'a str>,
}

/// `POST /v1/messages`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnthropicMessages {
    /// Whether calls go to a native Anthropic upstream (which then gets the caller's own body).
    pub native: bool,
}

impl AnthropicMessages {
    pub fn name(&self) -> &'static str {
        "anthropic-messages"
    }

    /// Reads a Messages request body into the neutral form.
    pub fn read_request(
        &self,
        body: Map<String, Value>,
        headers: MessagesHeaders<'_>,
    ) -> Result<ModelCall, GatewayError> {
        let mut request = request::to_chat(&body)?;
        let stream = request
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut stash = json!({"protocol": "messages"});
        if self.native {
            let mut original = body;
            for field in ["model", "max_tokens", "stream"] {
                original.remove(field);
            }
            stash["body"] = Value::Object(original);
            stash["version"] = Value::from(headers.version.unwrap_or(DEFAULT_VERSION));
            if let Some(beta) = headers.beta {
                stash["beta"] = Value::from(beta);
            }
        }
        request.insert(STASH.to_owned(), stash);
        Ok(ModelCall {
            operation: Operation::Chat,
            request,
            stream,
        })
    }

    /// Reads a `count_tokens` body (a Messages request without `max_tokens`) into the neutral
    /// request the tokenizer counts.
    pub fn read_count_request(
        &self,
        mut body: Map<String, Value>,
    ) -> Result<Map<String, Value>, GatewayError> {
        body.entry("max_tokens").or_insert(Value::from(1));
        body.remove("stream");
        request::to_chat(&body)
    }

    /// A whole chat answer as an Anthropic `message`.
    pub fn write_answer(&self, answer: &Value) -> Value {
        answer::message(answer)
    }

    /// A failure as Anthropic's error body (also a stream's `error` event).
    pub fn write_error(&self, error: &GatewayError) -> Value {
        error_body(error_type(error), &error.to_string())
    }
}

/// `{"type": "error", "error": {"type": …, "message": …}}`.
pub fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// Anthropic's error type for each gateway failure, so its SDKs raise the matching exception.
pub fn error_type(error: &GatewayError) -> &'static str {
    match error {
        GatewayError::InvalidRequest(_)
        | GatewayError::UnsupportedParameter { .. }
        | GatewayError::InvalidModel(_)
        | GatewayError::ExceedsBudget { .. } => "invalid_request_error",
        GatewayError::UpstreamRejected { status, .. } => status_type(*status),
        GatewayError::BudgetExceeded { .. } | GatewayError::UpstreamRateLimited { .. } => {
            "rate_limit_error"
        }
        GatewayError::QuotaExhausted { .. } | GatewayError::ContentBlocked { .. } => {
            "permission_error"
        }
        GatewayError::NotConfigured | GatewayError::Store(_) => "overloaded_error",
        GatewayError::Timeout { .. } => "timeout_error",
        GatewayError::UpstreamAuth { .. }
        | GatewayError::CredentialUnavailable { .. }
        | GatewayError::UpstreamFailed { .. }
        | GatewayError::CompletionLimitExceeded { .. }
        | GatewayError::Embed(_)
        | GatewayError::Startup(_) => "api_error",
    }
}

/// Anthropic's error type for an HTTP status (for refusals made before the gateway is asked:
/// keys, body size, malformed JSON).
pub fn status_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}
