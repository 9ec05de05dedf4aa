//! The Anthropic Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`.
//!
//! Handlers stay thin: the protocol adapter ([`AnthropicMessages`]) reads the body into the
//! gateway's neutral form, [`gateway_client::Gateway`] applies the same policies as on chat
//! completions, and the adapter writes the answer, the stream events and the errors back in
//! Anthropic's shapes, so its SDKs raise the right exceptions. [`anthropic_errors`] gives the
//! refusals made before a handler runs (keys, body size) the same shape.

use std::{convert::Infallible, sync::Arc};

use axum::{
    Extension, Json,
    body::{Body, to_bytes},
    extract::{Request, State},
    middleware::Next,
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
};
use futures::StreamExt;
use gateway_client::{
    AnthropicMessages, Api, CallContext, ChatStream, GatewayError, MessagesHeaders,
    MessagesStreamWriter,
    protocol::anthropic::{error_body, error_type, status_type},
};
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Map, Value, json};

use crate::{
    auth::Caller,
    error::{ApiError, read_body_within, require_json_body},
    gateway_routes::{call_context, insert_gateway_headers, json_object},
    state::AppState,
};

/// `POST /v1/messages`.
pub async fn messages(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    request: axum::extract::Request,
) -> Result<Response, MessagesError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let body = read_json(&state, headers, body).await?;
    let context = call_context(&caller, &parts, Api::Anthropic);
    let protocol = AnthropicMessages {
        native: state.gateway.messages_native(),
    };
    let call = protocol.read_request(body, anthropic_headers(headers))?;
    if call.stream {
        let stream = state.gateway.chat_stream(&context, call.request).await?;
        return Ok(sse_response(stream, &context, protocol));
    }
    let outcome = state.gateway.chat(&context, call.request).await?;
    let mut response = Json(protocol.write_answer(outcome.answer.tree())).into_response();
    insert_gateway_headers(
        response.headers_mut(),
        outcome.cache,
        outcome.remaining_tokens,
        Some(outcome.usage.total_tokens),
        &context,
    );
    Ok(response)
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens as the gateway counts them for its
/// budget. Nothing is sent upstream, reserved or billed.
pub async fn count_tokens(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, MessagesError> {
    let body = read_json(&state, &headers, body).await?;
    let protocol = AnthropicMessages::default();
    let request = protocol.read_count_request(body)?;
    let input_tokens = state.gateway.count_prompt_tokens(&request);
    Ok(Json(json!({"input_tokens": input_tokens})).into_response())
}

/// The body as a JSON object: 415 unless it is sent as JSON, 413 over the size limit.
async fn read_json(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Map<String, Value>, ApiError> {
    require_json_body(headers)?;
    let settings = &state.http;
    let bytes = read_body_within(
        body,
        settings.max_request_body_bytes,
        settings.request_timeout,
    )
    .await?;
    json_object(&bytes)
}

fn anthropic_headers(headers: &HeaderMap) -> MessagesHeaders<'_> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    MessagesHeaders {
        version: text("anthropic-version"),
        beta: text("anthropic-beta"),
    }
}

/// Relays a gateway stream as Anthropic's named server-sent events. A failure after the stream
/// started ends it with an `error` event.
fn sse_response(
    stream: ChatStream,
    context: &CallContext,
    protocol: AnthropicMessages,
) -> Response {
    let cache = stream.cache;
    let remaining = stream.remaining_tokens;
    let mut writer = MessagesStreamWriter::new(&stream.model);
    let events = stream.flat_map(move |item| {
        let events: Vec<Event> = match item {
            Ok(event) => writer
                .write(&event)
                .into_iter()
                .map(|(name, data)| Event::default().event(name).data(data.to_string()))
                .collect(),
            Err(error) => vec![
                Event::default()
                    .event("error")
                    .data(protocol.write_error(&error).to_string()),
            ],
        };
        futures::stream::iter(events.into_iter().map(Ok::<Event, Infallible>))
    });
    let mut response = Sse::new(events).into_response();
    insert_gateway_headers(response.headers_mut(), cache, remaining, None, context);
    response
}

/// A refusal on the Messages routes, in Anthropic's error shape.
#[derive(Debug)]
pub struct MessagesError(ApiError);

impl From<ApiError> for MessagesError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<GatewayError> for MessagesError {
    fn from(error: GatewayError) -> Self {
        Self(ApiError::Gateway(error))
    }
}

/// Marks a response whose error body is Anthropic's already.
#[derive(Debug, Clone, Copy)]
struct AnthropicShaped;

impl IntoResponse for MessagesError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let (kind, message) = match &self.0 {
            ApiError::Gateway(error) => (error_type(error), error.to_string()),
            ApiError::Internal(_) => (
                status_type(status.as_u16()),
                "the server could not complete the request".to_owned(),
            ),
            other => (status_type(status.as_u16()), other.to_string()),
        };
        // The envelope answer keeps its status, Retry-After and rate-limit headers; only the
        // body changes.
        let (mut parts, _) = self.0.into_response().into_parts();
        let body = error_body(kind, &message).to_string();
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.extensions.insert(AnthropicShaped);
        Response::from_parts(parts, Body::from(body))
    }
}

/// Middleware for the Messages routes: an error answer in the gateway's envelope (from the key
/// check, or a layer we don't own) is rewritten in Anthropic's shape.
pub async fn anthropic_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<AnthropicShaped>().is_some()
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Error envelopes are short; anything longer is not worth echoing.
    let bytes = to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let body = error_body(status_type(status.as_u16()), &message).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}
