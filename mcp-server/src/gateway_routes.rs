//! The OpenAI-compatible gateway: `/v1/...` and Azure-style `/openai/deployments/...` routes.
//!
//! Handlers only translate HTTP to a [`gateway_client::Gateway`] call and back: the same
//! policies as the agent's own model calls apply. Bodies pass through unchanged, unknown fields
//! included; the caller's key stays here and the gateway uses its own upstream key.

use std::{convert::Infallible, sync::Arc};

use axum::{
    Json,
    extract::{FromRequest, FromRequestParts, RawPathParams, Request, State},
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
};
use bytes::Bytes;
use futures::StreamExt;
use gateway_client::{
    Api, CacheDirective, CacheStatus, CallContext, ChatStream, OpenAiChat, Operation, Protocol,
    telemetry::CallRecord,
};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use serde_json::{Map, Value};

use crate::{
    auth::Caller,
    error::{ApiError, REMAINING_TOKENS, read_body_within, require_json_body},
    state::AppState,
};

pub const CACHE_STATUS: HeaderName = HeaderName::from_static("x-llm-cache-status");
pub const TOKENS_CONSUMED: HeaderName = HeaderName::from_static("x-tokens-consumed");
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `POST /v1/chat/completions` and `POST /openai/deployments/{deployment}/chat/completions`.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    call: ModelCall,
) -> Result<Response, ApiError> {
    chat(&state, call.context, call.request).await
}

/// `POST /v1/embeddings` and `POST /openai/deployments/{deployment}/embeddings`.
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    call: ModelCall,
) -> Result<Response, ApiError> {
    embed(&state, call.context, call.request).await
}

/// The call context and JSON body of one model call. An Azure-style route names the model in
/// its path (the deployment), which wins over any `model` in the body.
pub struct ModelCall {
    pub(crate) context: CallContext,
    pub(crate) request: Map<String, Value>,
}

impl FromRequest<Arc<AppState>> for ModelCall {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let deployment = RawPathParams::from_request_parts(&mut parts, state)
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| *name == "deployment")
                    .map(|(_, value)| value.to_owned())
            });
        let caller = parts
            .extensions
            .get::<Caller>()
            .ok_or_else(|| ApiError::Internal("a model route ran without the auth layer".into()))?;
        require_json_body(&parts.headers)?;
        let settings = &state.http;
        let body = read_body_within(
            body,
            settings.max_request_body_bytes,
            settings.request_timeout,
        )
        .await?;
        let mut request = json_object(&body)?;
        let api = match deployment {
            Some(deployment) => {
                request.insert("model".to_owned(), Value::String(deployment));
                Api::AzureOpenAi
            }
            None => Api::OpenAi,
        };
        Ok(Self {
            context: call_context(caller, &parts, api),
            request,
        })
    }
}

async fn chat(
    state: &AppState,
    context: CallContext,
    request: Map<String, Value>,
) -> Result<Response, ApiError> {
    let protocol = OpenAiChat;
    let call = protocol
        .read_request(Operation::Chat, request)
        .map_err(ApiError::from)?;
    if call.stream {
        let stream = state
            .gateway
            .chat_stream(&context, call.request)
            .await
            .map_err(ApiError::from)?;
        return Ok(sse_response(stream, &context, protocol));
    }
    let outcome = state
        .gateway
        .chat(&context, call.request)
        .await
        .map_err(ApiError::from)?;
    // Chat completions answers are the upstream's unchanged: send its bytes as they came.
    let mut response = match outcome.answer.upstream_bytes().cloned() {
        Some(bytes) => json_bytes_response(bytes),
        None => Json(protocol.write_answer(outcome.answer.into_tree())).into_response(),
    };
    insert_gateway_headers(
        response.headers_mut(),
        outcome.cache,
        outcome.remaining_tokens,
        Some(outcome.usage.total_tokens),
        &context,
    );
    Ok(response)
}

async fn embed(
    state: &AppState,
    context: CallContext,
    request: Map<String, Value>,
) -> Result<Response, ApiError> {
    let outcome = state.gateway.embeddings(&context, request).await?;
    let mut response = Json(outcome.body).into_response();
    insert_gateway_headers(
        response.headers_mut(),
        CacheStatus::Bypass,
        outcome.remaining_tokens,
        Some(outcome.usage.total_tokens),
        &context,
    );
    Ok(response)
}

/// Relays a gateway stream as server-sent events written by `protocol`.
fn sse_response<P: Protocol + Copy>(
    stream: ChatStream,
    context: &CallContext,
    protocol: P,
) -> Response {
    let cache = stream.cache;
    let remaining = stream.remaining_tokens;
    let events = stream.map(move |item| {
        // A failure after the stream started can only be told in the stream itself.
        let data = match item {
            Ok(event) => protocol.write_event(&event),
            Err(error) => protocol.write_error(&error).to_string(),
        };
        Ok::<Event, Infallible>(Event::default().data(data))
    });
    let mut response = Sse::new(events).into_response();
    insert_gateway_headers(response.headers_mut(), cache, remaining, None, context);
    response
}

/// A 200 with a body that is already JSON, as `Json` would send it.
fn json_bytes_response(bytes: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

pub fn insert_gateway_headers(
    headers: &mut HeaderMap,
    cache: CacheStatus,
    remaining_tokens: u64,
    consumed: Option<u64>,
    context: &CallContext,
) {
    headers.insert(CACHE_STATUS, HeaderValue::from_static(cache.as_str()));
    headers.insert(REMAINING_TOKENS, HeaderValue::from(remaining_tokens));
    if let Some(consumed) = consumed {
        headers.insert(TOKENS_CONSUMED, HeaderValue::from(consumed));
    }
    if let Ok(id) = HeaderValue::from_str(&context.request_id) {
        headers.insert(REQUEST_ID, id);
    }
}

/// The request body as a JSON object, or a 400 that says what is wrong.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "invalid_request",
            "the request body must be a JSON object",
        )),
        Err(error) => Err(ApiError::bad_request(
            "invalid_json",
            format!("the request body is not valid JSON: {error}"),
        )),
    }
}

/// The gateway's view of one HTTP call: who, through which API, with which cache wishes, and
/// the access log's record of it (put in the extensions by the telemetry layer).
pub fn call_context(caller: &Caller, parts: &http::request::Parts, api: Api) -> CallContext {
    let headers = &parts.headers;
    CallContext {
        record: parts.extensions.get::<Arc<CallRecord>>().cloned(),
        subscription: Arc::from(caller.label()),
        budget_key: caller.limit_key(),
        api,
        client_ip: caller.client_ip,
        request_id: headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(Arc::from)
            .unwrap_or_else(|| Arc::from("")),
        cache: cache_directive(headers),
    }
}

/// `Cache-Control: no-store` beats `no-cache`; anything else uses the cache.
fn cache_directive(headers: &HeaderMap) -> CacheDirective {
    let mut directive = CacheDirective::Use;
    for value in headers.get_all(header::CACHE_CONTROL) {
        for token in value.to_str().unwrap_or("").split(',') {
            match token.trim().to_ascii_lowercase().as_str() {
                "no-store" => return CacheDirective::NoStore,
                "no-cache" => directive = CacheDirective::NoCache,
                _ => {}
            }
        }
    }
    directive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_directives() {
        let mut headers = HeaderMap::new();
        assert_eq!(cache_directive(&headers), CacheDirective::Use);
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=0, No-Cache"),
        );
        assert_eq!(cache_directive(&headers), CacheDirective::NoCache);
        headers.append(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        assert_eq!(cache_directive(&headers), CacheDirective::NoStore);
    }
}
