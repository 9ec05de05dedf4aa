//! `/agent/chat` (JSON) and `/agent/chat/stream` (server-sent events), and the sessions they
//! keep: `GET /agent/sessions`, `GET` and `DELETE /agent/sessions/{id}`.
//!
//! Both chat routes validate the request and open its session up front, so bad input and an
//! unknown session are 4xx JSON answers even on the streaming route; the streaming turn runs in
//! a task that is aborted when the client goes away. A session is its caller's subscription's:
//! the session routes look it up under that owner only, so another's is a 404 like a missing one.

use std::{convert::Infallible, sync::Arc};

use agent::{AgentEvent, ChatRequest, ToolCallRecord, ToolCaller, TurnResult};
use axum::{
    Extension, Json,
    extract::{FromRequest, Path, Query, Request, State, rejection::QueryRejection},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt};
use gateway_client::{Api, CallContext, GatewayError};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::{Instrument, instrument::WithSubscriber};

use crate::{
    auth::Caller,
    error::{ApiError, envelope_json, read_body_within, require_json_body},
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
        require_json_body(&parts.headers)?;
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

/// The agent's tool calls run with the caller's own rights: its credential, and no tool its
/// token has no scope for.
fn tool_caller(state: &AppState, caller: &Caller) -> ToolCaller {
    let denied = tools::catalog()
        .iter()
        .filter_map(|spec| {
            caller
                .missing_scope(spec.name, &state.tool_scopes)
                .map(|scope| {
                    (
                        spec.name.to_owned(),
                        state.tool_scopes.requested_form(scope),
                    )
                })
        })
        .collect();
    ToolCaller {
        key: caller.key.clone(),
        denied,
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
    let prepared = state.agent.begin(&context, request).await?;
    record_session(&context, prepared.session_id());
    state.gateway.stats().agent_turn();
    let tool_caller = tool_caller(&state, &caller);
    let turn = state.agent.run(&context, &tool_caller, prepared).await?;
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
    let prepared = state.agent.begin(&context, request).await?;
    record_session(&context, prepared.session_id());
    state.gateway.stats().agent_turn();
    let (sender, receiver) = mpsc::channel(64);
    let agent = state.agent.clone();
    let tool_caller = tool_caller(&state, &caller);
    // The turn's spans hang off this request's span, in this server's subscriber.
    let turn = async move {
        agent
            .run_streaming(&context, &tool_caller, prepared, sender)
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

/// The session id on the request's span (a trace attribute when exported) and its access-log
/// line: an id, never anything the session holds.
fn record_session(context: &CallContext, id: Option<&str>) {
    if let Some(id) = id {
        span_session(id);
        if let Some(record) = &context.record {
            record.set_session(id);
        }
    }
}

/// The session id on the request's span.
fn span_session(id: &str) {
    tracing::Span::current().record("session.id", id);
}

pub async fn get_session(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    span_session(&id);
    let view = state.agent.sessions().view(caller.label(), &id).await?;
    Ok(Json(view).into_response())
}

pub async fn delete_session(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    span_session(&id);
    state.agent.sessions().delete(caller.label(), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

pub async fn list_sessions(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(
            "invalid_request",
            format!(
                "the query takes `cursor` (a session id) and `limit` (1 to {}): {}",
                agent::session::MAX_PAGE_SIZE,
                rejection.body_text()
            ),
        )
    })?;
    let page = state
        .agent
        .sessions()
        .list(caller.label(), query.cursor.as_deref(), query.limit)
        .await?;
    Ok(Json(page).into_response())
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
        AgentEvent::Session(id) => ("session", json!({"session_id": id}).to_string()),
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
