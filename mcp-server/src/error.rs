//! The one HTTP error type, and the JSON envelope every error answer uses.
//!
//! Every refusal this server makes is an [`ApiError`]. Its status comes from one exhaustive match,
//! and its body is always `{"error": {"code": "…", "message": "…"}}`. Messages are written for
//! the client and never contain a secret; detail that only operators need goes to the log.

use agent::AgentError;
use axum::{
    Json,
    extract::rejection::JsonRejection,
    response::{IntoResponse, Response},
};
use gateway_client::GatewayError;
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde::Serialize;
use std::time::{Duration, SystemTime};

use crate::config::RetryAfterFormat;

/// A refusal, ready to become an HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request body or parameters are malformed.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// The request is well-formed but its values are not acceptable.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// No subscription key was given where one is required.
    #[error("a subscription key is required")]
    MissingKey,
    /// A subscription key was given but matches no subscription.
    #[error("the subscription key is not valid")]
    InvalidKey,
    /// An access token was refused; the text says why (never quoting the token).
    #[error("{0}")]
    InvalidToken(String),
    /// An access token could not be checked: its issuer's keys cannot be fetched.
    #[error("the access token cannot be checked now: its issuer's signing keys are unavailable")]
    TokenKeysUnavailable,
    /// A key that may not see this resource.
    #[error("{0}")]
    Forbidden(String),
    /// No route at this path.
    #[error("no route for {0}")]
    NotFound(String),
    /// The request body is over MAX_REQUEST_BODY_BYTES.
    #[error("the request body is larger than {limit} bytes (MAX_REQUEST_BODY_BYTES)")]
    PayloadTooLarge { limit: usize },
    /// A JSON route was sent a body of another media type.
    #[error("this route takes a JSON body: send `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// The request was not answered within REQUEST_TIMEOUT_SECONDS.
    #[error("no answer within {} s (REQUEST_TIMEOUT_SECONDS)", .0.as_secs())]
    Timeout(Duration),
    /// A rate limit refused the call; the client may retry after the given delay.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Duration,
        /// Extra headers describing the limit (`x-ratelimit-*`).
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// A model call the gateway refused or could not complete.
    #[error("{0}")]
    Gateway(#[from] GatewayError),
    /// An agent turn that could not finish.
    #[error("{0}")]
    Agent(#[from] AgentError),
    /// The server is serving as many connections as it may (MAX_CONNECTIONS).
    #[error("the server is at its limit of {limit} connections (MAX_CONNECTIONS); retry shortly")]
    ServerBusy { limit: usize },
    /// Something broke inside the server. The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Tokens left in the caller's per-minute budget.
pub const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");

/// The HTTP status of each gateway failure: the one place they are decided.
fn gateway_status(error: &GatewayError) -> StatusCode {
    match error {
        GatewayError::NotConfigured => StatusCode::SERVICE_UNAVAILABLE,
        GatewayError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        GatewayError::UnsupportedParameter { .. } => StatusCode::BAD_REQUEST,
        GatewayError::InvalidModel(_) => StatusCode::BAD_REQUEST,
        GatewayError::ExceedsBudget { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        GatewayError::BudgetExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        GatewayError::QuotaExhausted { .. } => StatusCode::FORBIDDEN,
        GatewayError::ContentBlocked { .. } => StatusCode::FORBIDDEN,
        // The caller's request is what the upstream refused: relay its 4xx.
        GatewayError::UpstreamRejected { status, .. } => StatusCode::from_u16(*status)
            .ok()
            .filter(StatusCode::is_client_error)
            .unwrap_or(StatusCode::BAD_REQUEST),
        GatewayError::UpstreamAuth { .. } | GatewayError::CredentialUnavailable { .. } => {
            StatusCode::BAD_GATEWAY
        }
        GatewayError::UpstreamRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        GatewayError::UpstreamFailed { .. } => StatusCode::BAD_GATEWAY,
        // Told only inside a stream that has started; the upstream overran its limit.
        GatewayError::CompletionLimitExceeded { .. } => StatusCode::BAD_GATEWAY,
        GatewayError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        GatewayError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        GatewayError::Embed(_) => StatusCode::BAD_GATEWAY,
        GatewayError::Startup(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The HTTP status of each way an agent turn can fail.
fn agent_status(error: &AgentError) -> StatusCode {
    match error {
        AgentError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        AgentError::Gateway(error) => gateway_status(error),
        AgentError::EmptyAnswer => StatusCode::BAD_GATEWAY,
        // Nobody reads this answer; nginx's 499 is not a registered status, so say 400.
        AgentError::Cancelled => StatusCode::BAD_REQUEST,
        AgentError::InvalidSessionId(_) => StatusCode::BAD_REQUEST,
        AgentError::SessionNotFound => StatusCode::NOT_FOUND,
        AgentError::SessionStore(_) => StatusCode::SERVICE_UNAVAILABLE,
        AgentError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
    }
}

/// How long a refused caller should wait, for the failures where waiting helps.
fn gateway_retry_after(error: &GatewayError) -> Option<Duration> {
    match error {
        GatewayError::BudgetExceeded { retry_after, .. } => Some(*retry_after),
        GatewayError::QuotaExhausted { resets_in } => Some(*resets_in),
        GatewayError::UpstreamRateLimited { retry_after, .. } => {
            Some(retry_after.unwrap_or(Duration::from_secs(1)))
        }
        GatewayError::NotConfigured
        | GatewayError::InvalidRequest(_)
        | GatewayError::InvalidModel(_)
        | GatewayError::UnsupportedParameter { .. }
        | GatewayError::ExceedsBudget { .. }
        | GatewayError::ContentBlocked { .. }
        | GatewayError::UpstreamRejected { .. }
        | GatewayError::UpstreamAuth { .. }
        | GatewayError::CredentialUnavailable { .. }
        | GatewayError::UpstreamFailed { .. }
        | GatewayError::CompletionLimitExceeded { .. }
        | GatewayError::Timeout { .. }
        | GatewayError::Store(_)
        | GatewayError::Embed(_)
        | GatewayError::Startup(_) => None,
    }
}

/// The JSON error envelope.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub code: &'a str,
    pub message: &'a str,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MissingKey | Self::InvalidKey | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::TokenKeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Gateway(error) => gateway_status(error),
            Self::Agent(error) => agent_status(error),
            Self::ServerBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// How long the client should wait before retrying, for the refusals where waiting helps.
    pub fn retry_wait(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            Self::Gateway(error) | Self::Agent(AgentError::Gateway(error)) => {
                gateway_retry_after(error)
            }
            _ => None,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } | Self::Unprocessable { code, .. } => code,
            Self::MissingKey => "missing_subscription_key",
            Self::InvalidKey => "invalid_subscription_key",
            Self::InvalidToken(_) => "invalid_token",
            Self::TokenKeysUnavailable => "token_keys_unavailable",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Timeout(_) => "request_timeout",
            Self::RateLimited { .. } => "rate_limited",
            Self::Gateway(error) => error.code(),
            Self::Agent(error) => error.code(),
            Self::ServerBusy { .. } => "server_busy",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "the server could not complete the request".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = envelope(status, self.code(), &message);
        if let Some(wait) = self.retry_wait() {
            response.extensions_mut().insert(RetryWait(wait));
        }
        match self {
            Self::RateLimited { headers, .. } => {
                let response_headers = response.headers_mut();
                for (name, value) in headers {
                    response_headers.insert(name, value);
                }
            }
            Self::Gateway(GatewayError::BudgetExceeded { .. })
            | Self::Agent(AgentError::Gateway(GatewayError::BudgetExceeded { .. })) => {
                response
                    .headers_mut()
                    .insert(REMAINING_TOKENS, HeaderValue::from_static("0"));
            }
            _ => {}
        }
        response
    }
}

/// How long a refused client should wait before retrying, left in the response's extensions by
/// [`ApiError`]. The router's outermost layer ([`render_retry_after`]) writes it as
/// `Retry-After` in RETRY_AFTER_FORMAT, so handlers never need the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryWait(pub Duration);

/// Renders a response's [`RetryWait`] as its `Retry-After` header.
pub fn render_retry_after(format: RetryAfterFormat) -> impl Fn(Response) -> Response + Clone {
    move |mut response: Response| {
        if let Some(RetryWait(wait)) = response.extensions_mut().remove::<RetryWait>() {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                format.header_value(wait, SystemTime::now()),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match rejection {
            JsonRejection::JsonDataError(_) => "invalid_request",
            JsonRejection::JsonSyntaxError(_) => "invalid_json",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ => "invalid_request",
        };
        Self::bad_request(code, rejection.body_text())
    }
}

/// The envelope as JSON text: what a stream that has started sends as its error event.
pub fn envelope_json(code: &str, message: &str) -> String {
    serde_json::to_string(&ErrorBody {
        error: ErrorDetail { code, message },
    })
    .unwrap_or_default()
}

/// Builds the envelope answer for any status; also used to rewrite bare error answers from
/// layers we don't own (see `http::EnvelopeLayer`).
pub fn envelope(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail { code, message },
    };
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED && !response.headers().contains_key(header::ALLOW) {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    response
}

/// The snake_case code for a status when a layer we don't own refused the request.
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_entity",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
        StatusCode::GATEWAY_TIMEOUT => "gateway_timeout",
        s if s.is_client_error() => "bad_request",
        _ => "internal_error",
    }
}

/// Refuses a body that says it is not JSON (415 `unsupported_media_type`), for the routes that
/// take JSON. `application/json` and `application/*+json` pass, with any parameters. A body with
/// no `Content-Type` at all is read as JSON: the OpenAI and Anthropic SDKs always send one, and
/// hand-written clients that send none mean JSON on these routes.
pub fn require_json_body(headers: &http::HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media_type = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let json = media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// A request body, up to `limit` bytes: 413 `payload_too_large` beyond it.
///
/// Read explicitly rather than with axum's `Bytes` extractor, whose own default limit (2 MB) is
/// not the configured one.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        if is_length_limit(&error) {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::bad_request("invalid_body", "the request body could not be read")
        }
    })
}

/// [`read_body`] within `timeout` (REQUEST_TIMEOUT_SECONDS): a body trickled slower than that is
/// a 408, so it cannot hold its connection open for as long as it likes.
pub async fn read_body_within(
    body: axum::body::Body,
    limit: usize,
    timeout: Duration,
) -> Result<bytes::Bytes, ApiError> {
    tokio::time::timeout(timeout, read_body(body, limit))
        .await
        .map_err(|_| ApiError::Timeout(timeout))?
}

/// Whether a body error is a size limit (ours, or the router's RequestBodyLimitLayer's).
fn is_length_limit(error: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = current.source();
    }
    false
}

#[cfg(test)]
mod media_type_tests {
    use super::*;

    fn with(content_type: Option<&str>) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("x")),
            );
        }
        headers
    }

    #[test]
    fn json_bodies_pass_and_others_are_415() {
        for ok in [
            None,
            Some("application/json"),
            Some("Application/JSON; charset=utf-8"),
            Some("application/vnd.api+json"),
        ] {
            assert!(require_json_body(&with(ok)).is_ok(), "{ok:?}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ] {
            let error = require_json_body(&with(Some(refused))).err();
            assert_eq!(
                error.map(|e| (e.status(), e.code())),
                Some((StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")),
                "{refused}"
            );
        }
    }
}
