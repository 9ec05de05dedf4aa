//! The agent's one error type; the HTTP surface maps it to statuses in one exhaustive match.

use std::time::Duration;

use gateway_client::GatewayError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    /// The request itself is unusable (empty message, malformed history…).
    #[error("{0}")]
    InvalidRequest(String),
    /// A model call failed; carries the gateway's reason (budget, upstream, no model…).
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The model kept answering with nothing usable.
    #[error("the model returned no answer text")]
    EmptyAnswer,
    /// The client went away mid-turn; the work was stopped.
    #[error("the client closed the request")]
    Cancelled,
    /// A `session_id` (or cursor) that cannot be one: wrong length or characters.
    #[error("{0}")]
    InvalidSessionId(String),
    /// No live session of this caller has that id (unknown, expired, deleted, or another's:
    /// the same answer for all, so ids cannot be probed).
    #[error("no session with this id")]
    SessionNotFound,
    /// The session store could not be reached to continue or show a session. The detail is
    /// for the log; the client is told only that.
    #[error("the session store is unavailable; retry shortly")]
    SessionStore(String),
    /// The whole turn ran past its deadline.
    #[error("the agent did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
}

impl AgentError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::Gateway(error) => error.code(),
            Self::EmptyAnswer => "empty_model_answer",
            Self::Cancelled => "client_closed_request",
            Self::InvalidSessionId(_) => "invalid_session_id",
            Self::SessionNotFound => "session_not_found",
            Self::SessionStore(_) => "session_store_unavailable",
            Self::Timeout(_) => "agent_timeout",
        }
    }
}
