//! tollgate's agent: a tool-calling loop whose every model call goes through the gateway.
//!
//! Layout:
//! - [`Agent`]: the loop (`turn.rs`): model call, tool calls run concurrently, results fed
//!   back, until the model answers in text; bounded by iterations, a turn deadline and a
//!   per-tool timeout.
//! - [`routing`]: in-process tools or MCP tools behind one [`routing::ToolRouter`].
//! - [`answer`]: reading a model's answer leniently (tool calls, legacy `function_call`,
//!   missing content), as real models produce them.
//! - [`instructions`]: the system prompt and the tool definitions offered to the model.
//! - [`session`]: conversations kept in the state store (memory or Redis), bounded in what
//!   they keep and in what they send to the model.
//! - `traced_http`: the MCP transport's HTTP client, which sends the trace context as headers.
//! - [`AgentError`]: the one error type.

pub mod answer;
mod error;
pub mod instructions;
pub mod routing;
pub mod session;
mod traced_http;
mod turn;

use std::{sync::Arc, time::Duration};

use gateway_client::{Gateway, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use error::AgentError;
pub use routing::{McpEndpoint, McpTools, ToolCaller, ToolRouter};
pub use session::Sessions;
pub use turn::AgentEvent;

/// Longest user message accepted, in characters.
pub const MAX_MESSAGE_CHARS: usize = 8000;
/// Most history messages accepted with one request.
pub const MAX_HISTORY_MESSAGES: usize = 50;

#[derive(Debug, Clone, Copy)]
pub struct AgentConfig {
    /// Model calls that may ask for tools in one turn.
    pub max_iterations: u32,
    pub turn_deadline: Duration,
    pub tool_timeout: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            max_iterations: 6,
            turn_deadline: Duration::from_secs(120),
            tool_timeout: Duration::from_secs(10),
        }
    }
}

/// A chat request: the user's message and, optionally, the session it continues or the
/// conversation so far (a stateless caller's own history).
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub message: String,
    #[serde(default)]
    pub history: Vec<HistoryMessage>,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct HistoryMessage {
    pub role: String,
    pub content: String,
}

impl ChatRequest {
    /// Checks the limits the contract sets; the message says what to fix.
    pub fn validate(&self) -> Result<(), AgentError> {
        let chars = self.message.chars().count();
        if self.message.trim().is_empty() {
            return Err(AgentError::InvalidRequest(
                "`message` must not be empty".to_owned(),
            ));
        }
        if chars > MAX_MESSAGE_CHARS {
            return Err(AgentError::InvalidRequest(format!(
                "`message` has {chars} characters; the limit is {MAX_MESSAGE_CHARS}"
            )));
        }
        if let Some(id) = &self.session_id {
            session::check_session_id(id)?;
            if !self.history.is_empty() {
                return Err(AgentError::InvalidRequest(
                    "give `session_id` or `history`, not both: a session keeps its own history"
                        .to_owned(),
                ));
            }
        }
        if self.history.len() > MAX_HISTORY_MESSAGES {
            return Err(AgentError::InvalidRequest(format!(
                "`history` has {} messages; the limit is {MAX_HISTORY_MESSAGES}",
                self.history.len()
            )));
        }
        for (index, entry) in self.history.iter().enumerate() {
            if !matches!(entry.role.as_str(), "user" | "assistant") {
                return Err(AgentError::InvalidRequest(format!(
                    "history[{index}].role must be \"user\" or \"assistant\""
                )));
            }
            if entry.content.chars().count() > MAX_MESSAGE_CHARS {
                return Err(AgentError::InvalidRequest(format!(
                    "history[{index}].content is over {MAX_MESSAGE_CHARS} characters"
                )));
            }
        }
        Ok(())
    }
}

/// One tool call made during a turn, as reported to the caller.
#[derive(Debug, Clone, Serialize)]
pub struct ToolCallRecord {
    pub name: String,
    pub arguments: Value,
    pub result: Value,
    pub routed_via: &'static str,
    pub duration_ms: f64,
    pub is_error: bool,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct CacheCounts {
    pub hits: u32,
    pub misses: u32,
}

/// The outcome of a whole turn.
#[derive(Debug, Clone, Serialize)]
pub struct TurnResult {
    pub reply: String,
    pub tool_calls: Vec<ToolCallRecord>,
    pub model: String,
    pub usage: Usage,
    pub cache: CacheCounts,
    /// The session the turn was kept in; `null` when the state store could not start one.
    pub session_id: Option<String>,
}

/// A request checked and its session opened: what [`Agent::run`] and
/// [`Agent::run_streaming`] take, from [`Agent::begin`].
#[derive(Debug, Clone)]
pub struct PreparedTurn {
    request: ChatRequest,
    session: session::OpenSession,
    started_at_ms: u64,
}

impl PreparedTurn {
    pub fn session_id(&self) -> Option<&str> {
        self.session.id.as_deref()
    }
}

/// The agent: a gateway to think with and a router to act with.
pub struct Agent {
    gateway: Arc<Gateway>,
    tools: ToolRouter,
    config: AgentConfig,
    sessions: Sessions,
}

impl Agent {
    pub fn new(
        gateway: Arc<Gateway>,
        tools: ToolRouter,
        config: AgentConfig,
        sessions: Sessions,
    ) -> Self {
        Self {
            gateway,
            tools,
            config,
            sessions,
        }
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn routing(&self) -> &'static str {
        self.tools.label()
    }
}
