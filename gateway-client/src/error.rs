//! The gateway's one error type. The HTTP surface maps it to statuses in one exhaustive match.

use std::time::Duration;

use crate::{semantic::EmbedError, store::StoreError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// No upstream is configured.
    #[error(
        "no model is configured: set OPENAI_BASE_URL (and OPENAI_API_KEY), or AZURE_OPENAI_ENDPOINT (with AZURE_OPENAI_API_KEY, or Microsoft Entra ID)"
    )]
    NotConfigured,
    /// The request is malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// The model (or Azure deployment) name is not acceptable; see `names`.
    #[error("{0}")]
    InvalidModel(String),
    /// One call needs more tokens than a whole minute's budget allows; it can never be admitted.
    #[error(
        "this call needs {needed} tokens but the budget is {limit} tokens per minute; send a shorter prompt or a lower max_tokens"
    )]
    ExceedsBudget { needed: u64, limit: u64 },
    /// The per-minute token budget is spent; retry after the delay.
    #[error("token budget of {limit} tokens per minute exceeded")]
    BudgetExceeded { retry_after: Duration, limit: u64 },
    /// The longer token quota is spent until its period ends.
    #[error("token quota exhausted; it resets in {} s", resets_in.as_secs())]
    QuotaExhausted { resets_in: Duration },
    /// Content safety refused the prompt or the answer.
    #[error("content blocked by policy ({category})")]
    ContentBlocked { category: String },
    /// The upstream refused the request itself (400, 404, 422…): retrying would not help.
    #[error("the model API refused the request ({status}): {summary}")]
    UpstreamRejected { status: u16, summary: String },
    /// The upstream rejected the gateway's own credentials (401/403): an operator problem.
    #[error("the model API refused the gateway's credentials ({status})")]
    UpstreamAuth { status: u16 },
    /// No Microsoft Entra ID token could be had for the upstream (the identity endpoint failed,
    /// refused or did not answer in time): an operator problem, like a refused key.
    #[error("could not get a Microsoft Entra ID token: {reason}")]
    CredentialUnavailable { reason: String },
    /// Every backend was rate limited.
    #[error("the model API is rate limiting: {summary}")]
    UpstreamRateLimited {
        retry_after: Option<Duration>,
        summary: String,
    },
    /// Every backend failed after retries (5xx, connection errors, broken streams).
    #[error("the model API failed after retries: {summary}")]
    UpstreamFailed { summary: String },
    /// A streamed answer ran past its completion limit (an upstream ignoring `max_tokens`); it
    /// was cut off there. Only ever told in the stream itself.
    #[error("the answer ran past its completion limit of {limit} tokens and was cut off")]
    CompletionLimitExceeded { limit: u64 },
    /// The call's deadline passed.
    #[error("the model API did not answer within {} s", deadline.as_secs())]
    Timeout { deadline: Duration },
    /// The shared state store failed in a way the call cannot work around.
    #[error("state store failed: {0}")]
    Store(#[from] StoreError),
    /// An embedding the gateway needed could not be made.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The gateway could not be put together from its settings; reported at start.
    #[error("{0}")]
    Startup(String),
}

impl GatewayError {
    /// A stable snake_case code for error bodies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConfigured => "model_not_configured",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidModel(_) => "invalid_model",
            Self::ExceedsBudget { .. } => "request_exceeds_budget",
            Self::BudgetExceeded { .. } => "token_budget_exceeded",
            Self::QuotaExhausted { .. } => "token_quota_exhausted",
            Self::ContentBlocked { .. } => "content_blocked",
            Self::UpstreamRejected { .. } => "upstream_rejected",
            Self::UpstreamAuth { .. } | Self::CredentialUnavailable { .. } => {
                "upstream_auth_failed"
            }
            Self::UpstreamRateLimited { .. } => "upstream_rate_limited",
            Self::UpstreamFailed { .. } => "upstream_failed",
            Self::CompletionLimitExceeded { .. } => "completion_limit_exceeded",
            Self::Timeout { .. } => "upstream_timeout",
            Self::Store(_) => "state_store_failed",
            Self::Embed(_) => "embedding_failed",
            Self::Startup(_) => "startup_failed",
        }
    }
}
