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
            Self::Timeout(_) => "agent_timeout",
        }
    }
}
