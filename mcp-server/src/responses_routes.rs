//! The OpenAI Responses API: `POST /v1/responses`, `/openai/v1/responses` and
//! `/openai/responses?api-version=…`.
//!
//! The handler reads the request with [`gateway_client::OpenAiResponses`] into a chat call, runs
//! it through the gateway like any chat call (budget, cache, governance, content safety, the
//! upstream machinery, metrics, ledger), and writes the answer, its stream events and its errors
//! in the Responses API's shapes, so the OpenAI SDKs raise the right exception types.

use std::{
    convert::Infallible,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    Json,
    body::Body,
    extract::State,
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
};
use futures::{StreamExt, stream};
use gateway_client::{
    Api, CacheStatus, CallContext, ChatStream, GatewayError, OpenAiResponses, ResponsesCall,
    ResponsesEcho, ResponsesEvent, ResponsesStream,
};
use http::{StatusCode, header};
use serde_json::json;

use crate::{
    error::ApiError,
    gateway_routes::{ModelCall, insert_gateway_headers},
    state::AppState,
};

/// `POST /v1/responses` and its Azure forms.
pub async fn responses(
    State(state): State<Arc<AppState>>,
    call: Result<ModelCall, ApiError>,
) -> Response {
    match respond(&state, call).await {
        Ok(response) => response,
        Err(error) => responses_error(error),
    }
}

async fn respond(
    state: &AppState,
    call: Result<ModelCall, ApiError>,
) -> Result<Response, ApiError> {
    let ModelCall {
        mut context,
        request,
    } = call?;
    context.api = Api::Responses;
    let native = state
        .responses_native
        .then(|| OpenAiResponses.native_call(request.clone()));
    let ResponsesCall { call, echo } = OpenAiResponses.read(request)?;
    let gateway = &state.gateway;
    if call.stream {
        let stream = match &native {
            Some(native) => {
                gateway
                    .chat_native_stream(&context, call.request, native)
                    .await?
            }
            None => gateway.chat_stream(&context, call.request).await?,
        };
        return Ok(sse_response(stream, echo, &context));
    }
    let outcome = match &native {
        Some(native) => gateway.chat_native(&context, call.request, native).await?,
        None => gateway.chat(&context, call.request).await?,
    };
    // A native answer is the upstream's own; a translated or cached one is a chat completion.
    let body = if native.is_some() && outcome.cache != CacheStatus::Hit {
        outcome.answer.into_tree()
    } else {
        echo.write_answer(outcome.answer.tree())
    };
    let mut response = Json(body).into_response();
    insert_gateway_headers(
        response.headers_mut(),
        outcome.cache,
        outcome.remaining_tokens,
        Some(outcome.usage.total_tokens),
        &context,
    );
    Ok(response)
}

/// A gateway stream as Responses events. A failure after the start is told by the stream's last
/// event, `response.failed`.
fn sse_response(stream: ChatStream, echo: ResponsesEcho, context: &CallContext) -> Response {
    let created_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (cache, remaining) = (stream.cache, stream.remaining_tokens);
    let mut writer = ResponsesStream::new(echo, &stream.model, created_at);
    let opening = writer.start();
    let rest = stream
        .map(move |item| match item {
            Ok(event) => writer.on_event(&event),
            Err(error) => writer.on_error(&error),
        })
        .flat_map(stream::iter);
    let events = stream::iter(opening).chain(rest).map(sse_event);
    let mut response = Sse::new(events).into_response();
    insert_gateway_headers(response.headers_mut(), cache, remaining, None, context);
    response
}

fn sse_event(event: ResponsesEvent) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event(event.name)
        .data(event.data.to_string()))
}

/// An error in the OpenAI shape, `{"error": {"message", "type", "param", "code"}}`, with the
/// status, headers and `Retry-After` every other route gives it.
pub fn responses_error(error: ApiError) -> Response {
    let param = match &error {
        ApiError::Gateway(GatewayError::UnsupportedParameter { param, .. }) => Some(param.clone()),
        _ => None,
    };
    let status = error.status();
    let code = error.code();
    let message = match &error {
        ApiError::Internal(_) => "the server could not complete the request".to_owned(),
        other => other.to_string(),
    };
    let body = json!({"error": {
        "message": message,
        "type": openai_error_type(status),
        "param": param,
        "code": code,
    }});
    let mut response = error.into_response();
    response.headers_mut().remove(header::CONTENT_LENGTH);
    *response.body_mut() = Body::from(body.to_string());
    response
}

/// The `type` OpenAI gives an error of this status.
pub fn openai_error_type(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::FORBIDDEN => "permission_error",
        StatusCode::NOT_FOUND => "not_found_error",
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
        status if status.is_server_error() => "server_error",
        _ => "invalid_request_error",
    }
}
