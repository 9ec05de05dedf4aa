//! `/agent/chat` (JSON) and `/agent/chat/stream` (server-sent events).
//!
//! Both validate the request up front, so bad input is a 4xx JSON answer even on the streaming
//! route; the streaming turn runs in a task that is aborted when the client goes away.

use std::{convert::Infallible, sync::Arc};

use agent::{AgentEvent, ChatRequest, ToolCallRecord, TurnResult};
use axum::{
    Json,
    extract::{FromRequest, Request, State},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt};
use gateway_client::{Api, CallContext, GatewayError};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::{Instrument, instrument::WithSubscriber};

use crate::{
    auth::Caller,
    error::{ApiError, envelope_json, read_body_within},
    gateway_routes::call_context,
    state::AppState,
};

/// Characters of a tool result shown in a streamed `tool_call` event.
const RESULT_SUMMARY_CHARS: usize = 500;

/// The JSON answer of `/agent/chat`, and the `done` event of the stream.
#[derive(Serialize)]
struct ChatReply<'a> {
    #[serde(flatten)]
    turn: &'a TurnResult,
    instance_id: &'a str,
}

/// One agent turn's request, checked, with its caller and call context.
pub struct AgentCall {
    caller: Caller,
    context: CallContext,
    request: ChatRequest,
}

impl FromRequest<Arc<AppState>> for AgentCall {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let caller = parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Internal("an agent route ran without the auth layer".into())
        })?;
        let settings = &state.http;
        let body = read_body_within(
            body,
            settings.max_request_body_bytes,
            settings.request_timeout,
        )
        .await?;
        let request = parse_request(state, &body)?;
        Ok(Self {
            context: call_context(&caller, &parts, Api::Agent),
            caller,
            request,
        })
    }
}

pub async fn chat(
    State(state): State<Arc<AppState>>,
    call: AgentCall,
) -> Result<Response, ApiError> {
    let AgentCall {
        caller,
        context,
        request,
    } = call;
    let turn = state
        .agent
        .run(&context, caller.key.as_ref(), &request)
        .await?;
    Ok(Json(ChatReply {
        turn: &turn,
        instance_id: &state.instance.id,
    })
    .into_response())
}

pub async fn chat_stream(
    State(state): State<Arc<AppState>>,
    call: AgentCall,
) -> Result<Response, ApiError> {
    let AgentCall {
        caller,
        context,
        request,
    } = call;
    let (sender, receiver) = mpsc::channel(64);
    let agent = state.agent.clone();
    let key = caller.key.clone();
    // The turn's spans hang off this request's span, in this server's subscriber.
    let turn = async move {
        agent
            .run_streaming(&context, key.as_ref(), &request, sender)
            .await;
    };
    let task = tokio::spawn(turn.in_current_span().with_current_subscriber());
    let instance_id: Arc<str> = Arc::from(state.instance.id.as_str());
    let events = EventStream {
        receiver,
        _abort: AbortOnDrop(task),
    }
    .map(move |event| Ok::<Event, Infallible>(to_sse(event, &instance_id)));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Body → request, with the checks that need no model: shape, limits, a configured model.
fn parse_request(state: &AppState, body: &[u8]) -> Result<ChatRequest, ApiError> {
    let invalid = |error: serde_json::Error| {
        let code = if error.is_syntax() || error.is_eof() {
            "invalid_json"
        } else {
            "invalid_request"
        };
        ApiError::bad_request(
            code,
            format!("the request body is not a valid chat request: {error}"),
        )
    };
    let value: Value = serde_json::from_slice(body).map_err(invalid)?;
    require_objects(&value)?;
    let request: ChatRequest = serde_json::from_value(value).map_err(invalid)?;
    request.validate()?;
    if !state.gateway.is_configured() {
        return Err(GatewayError::NotConfigured.into());
    }
    Ok(request)
}

/// serde also reads a struct from a JSON array, field by field in order, so `["hi"]` would pass
/// as `{"message": "hi"}` (and `["user", "hi"]` as a history entry). The contract's request and
/// history entries are objects; anything else is refused here.
fn require_objects(value: &Value) -> Result<(), ApiError> {
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the request body must be a JSON object: {\"message\": \"…\", \"history\": [...]}",
        ));
    }
    if let Some(Value::Array(entries)) = value.get("history")
        && let Some(index) = entries.iter().position(|entry| !entry.is_object())
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("history[{index}] must be an object: {{\"role\": \"…\", \"content\": \"…\"}}"),
        ));
    }
    Ok(())
}

fn to_sse(event: AgentEvent, instance_id: &str) -> Event {
    let (name, data) = match event {
        AgentEvent::ToolCall(record) => ("tool_call", tool_call_summary(&record).to_string()),
        AgentEvent::Delta(text) => ("delta", json!({"text": text}).to_string()),
        AgentEvent::Done(turn) => (
            "done",
            serde_json::to_value(ChatReply {
                turn: &turn,
                instance_id,
            })
            .unwrap_or_default()
            .to_string(),
        ),
        AgentEvent::Error(error) => ("error", envelope_json(error.code(), &error.to_string())),
    };
    Event::default().event(name).data(data)
}

fn tool_call_summary(record: &ToolCallRecord) -> Value {
    let mut result = record.result.to_string();
    if result.chars().count() > RESULT_SUMMARY_CHARS {
        result = result
            .chars()
            .take(RESULT_SUMMARY_CHARS)
            .collect::<String>()
            + "…";
    }
    json!({
        "name": record.name,
        "arguments": record.arguments,
        "result_summary": result,
        "routed_via": record.routed_via,
        "duration_ms": record.duration_ms,
        "is_error": record.is_error,
    })
}

/// The turn's events; dropping it (the client disconnected) aborts the turn.
struct EventStream {
    receiver: mpsc::Receiver<AgentEvent>,
    _abort: AbortOnDrop,
}

impl Stream for EventStream {
    type Item = AgentEvent;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx)
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
