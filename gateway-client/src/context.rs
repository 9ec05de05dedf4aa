//! What travels with every model call: who asked, through which API, for what.

use std::{net::IpAddr, sync::Arc};

use crate::telemetry::CallRecord;

/// The API surface a call came in through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// The agent's own model calls (`/agent/chat`).
    Agent,
    /// `/v1/...`, OpenAI style.
    OpenAi,
    /// `/openai/deployments/...`, Azure style.
    AzureOpenAi,
    /// `/v1/messages`, the Anthropic Messages API.
    Anthropic,
    /// The OpenAI Responses API (`/v1/responses` and its Azure forms).
    Responses,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::OpenAi => "openai",
            Self::AzureOpenAi => "azure-openai",
            Self::Anthropic => "anthropic",
            Self::Responses => "openai-responses",
        }
    }

    /// The wire protocol the caller speaks: the cache keeps each protocol's answers apart.
    pub fn protocol(self) -> &'static str {
        match self {
            Self::Agent | Self::OpenAi | Self::AzureOpenAi => "openai-chat",
            Self::Responses => "openai-responses",
            Self::Anthropic => "anthropic-messages",
        }
    }
}

/// The operation, named as OpenTelemetry's GenAI conventions do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Chat,
    Embeddings,
    /// A content-safety check on a moderation endpoint.
    Moderations,
    /// Azure AI Content Safety's `text:analyze`.
    TextAnalyze,
    /// Azure AI Content Safety's Prompt Shields (`text:shieldPrompt`).
    ShieldPrompt,
    /// A call passed to an upstream's own Responses API (`RESPONSES_UPSTREAM=native`).
    Responses,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Embeddings => "embeddings",
            Self::Moderations => "moderations",
            Self::TextAnalyze => "text_analyze",
            Self::ShieldPrompt => "shield_prompt",
            Self::Responses => "responses",
        }
    }
}

/// How the caller wants the cache used for this call (`Cache-Control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheDirective {
    #[default]
    Use,
    /// `no-cache`: don't serve from the cache (the answer may still be stored).
    NoCache,
    /// `no-store`: neither serve from nor store into the cache.
    NoStore,
}

/// Who is calling and how; cheap to clone.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// A bounded label: the subscription name, or `anonymous` on an open server.
    pub subscription: Arc<str>,
    /// What budgets count against: the subscription, else the client address.
    pub budget_key: Arc<str>,
    pub api: Api,
    /// For logs only, never for metric labels.
    pub client_ip: Option<IpAddr>,
    pub request_id: Arc<str>,
    pub cache: CacheDirective,
    /// Where the request's access-log line gathers its calls' facts, when it has one.
    pub record: Option<Arc<CallRecord>>,
}

impl CallContext {
    /// A context for internal or test use, keyed and labelled by `subscription`.
    pub fn for_subscription(subscription: &str, api: Api) -> Self {
        let name: Arc<str> = Arc::from(subscription);
        Self {
            subscription: name.clone(),
            budget_key: name,
            api,
            client_ip: None,
            request_id: Arc::from(""),
            cache: CacheDirective::Use,
            record: None,
        }
    }
}
