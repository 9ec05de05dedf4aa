//! The gateway's settings, as plain typed values.
//!
//! The composition root (`mcp-server`'s config module) reads env vars and builds a
//! [`GatewayConfig`]; this crate never reads the environment itself.

use std::{collections::HashMap, time::Duration};

use secrecy::SecretString;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Upstreams in priority order. Empty means no model is configured.
    pub backends: Vec<BackendConfig>,
    /// Anthropic-compatible upstreams for `/v1/messages`, in priority order. Empty: those calls
    /// are translated to chat completions on `backends`.
    pub messages_backends: Vec<BackendConfig>,
    pub chat_model: String,
    pub embedding_model: String,
    pub budget: BudgetConfig,
    /// Ceiling on `max_tokens` for non-streamed chat calls, and the limit of any chat call
    /// that sets none.
    pub max_tokens_cap: u32,
    /// Ceiling on `max_tokens` for streamed chat calls that ask for one; enforced while the
    /// stream runs.
    pub max_stream_tokens_cap: u32,
    /// How long a stream's consumer may take to accept one chunk before the stream is given up
    /// and its upstream closed.
    pub stream_send_timeout: Duration,
    pub retry: RetryConfig,
    pub breaker: BreakerConfig,
    pub prices: Prices,
    /// Content safety on prompts and answers; off by default.
    pub content_safety: ContentSafetyConfig,
    /// The semantic cache; `None` turns it off.
    pub cache: Option<CacheSettings>,
    /// Microsoft Entra ID credentials, for the Azure backends configured without a key.
    pub entra: Option<EntraConfig>,
    /// Plain-HTTP upstreams are reached through tollgate's own connections (`upstream::direct`)
    /// rather than reqwest's client; false when an HTTP proxy must carry them.
    pub direct_plain_http: bool,
}

/// Where Microsoft Entra ID tokens come from (see `entra`): the raw settings; the credential
/// picks its source from them in the order service principal, workload identity, managed
/// identity (App Service, else the instance metadata service).
#[derive(Debug, Clone)]
pub struct EntraConfig {
    pub tenant_id: Option<String>,
    /// The service principal's or workload identity's app, or a user-assigned managed identity.
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    /// Workload identity's federated token (a JWT), re-read at every exchange.
    pub federated_token_file: Option<std::path::PathBuf>,
    /// The login host, e.g. `https://login.microsoftonline.com`.
    pub authority_host: String,
    /// App Service's managed identity endpoint and its secret header.
    pub identity_endpoint: Option<String>,
    pub identity_header: Option<SecretString>,
    /// The instance metadata service's token URL (overridable only so tests can reach it).
    pub imds_endpoint: String,
}

/// The semantic cache's settings and which embedder it uses.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub config: crate::semantic::CacheConfig,
    pub embedder: EmbedderChoice,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedderChoice {
    /// The built-in hashed-feature embedder: no download, microseconds.
    Builtin,
    /// The model API's embeddings endpoint with `embedding_model`.
    Upstream,
    /// all-MiniLM-L6-v2 from a local directory (cargo feature `minilm`).
    MiniLm { model_dir: std::path::PathBuf },
    /// The static model distilled from all-MiniLM-L6-v2, compiled into the binary.
    Static,
}

/// One upstream model API.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// OpenAI or any OpenAI-compatible server: `{base_url}/chat/completions`, bearer key.
    OpenAi {
        base_url: String,
        api_key: Option<SecretString>,
    },
    /// Azure OpenAI: `{endpoint}/openai/deployments/{model}/…?api-version=…`, `api-key` header,
    /// else a Microsoft Entra ID bearer token.
    Azure {
        endpoint: String,
        api_key: Option<SecretString>,
        api_version: String,
    },
    /// An Anthropic-compatible server: `{base_url}/v1/messages`, `x-api-key`, and
    /// `anthropic-version` (the caller's, else `version`).
    Anthropic {
        base_url: String,
        api_key: Option<SecretString>,
        version: String,
    },
    /// Azure AI Content Safety: `{endpoint}/contentsafety/text:…?api-version=2024-09-01`,
    /// `Ocp-Apim-Subscription-Key` header, else a Microsoft Entra ID bearer token.
    ContentSafety {
        endpoint: String,
        api_key: Option<SecretString>,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct BudgetConfig {
    pub tokens_per_minute: u64,
    pub quota: Option<TokenQuota>,
    /// The chargeback period of `/admin/usage` (the quota's period, `monthly` by default).
    pub usage_period: QuotaPeriod,
    /// What a chat call reserves of its completion allowance.
    pub reservation: ReservationMode,
    /// In `Expected` mode, the tokens a key's admitted calls may use beyond what they reserved,
    /// all together, as a percentage of `tokens_per_minute`: the bound on overshoot.
    pub overshoot_percent: u64,
}

impl BudgetConfig {
    /// A budget of `tokens_per_minute` with no quota, the default reservation and overshoot.
    pub fn per_minute(tokens_per_minute: u64) -> Self {
        Self {
            tokens_per_minute,
            quota: None,
            usage_period: QuotaPeriod::Monthly,
            reservation: ReservationMode::Expected,
            overshoot_percent: 100,
        }
    }
}

/// How much of a chat call's completion allowance (`max_tokens`, or the cap) is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationMode {
    /// The completion the key's recent calls to the model suggest, within the overshoot bound.
    Expected,
    /// The whole allowance: never any overshoot, but concurrency is throttled, not spend.
    Strict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenQuota {
    pub tokens: u64,
    pub period: QuotaPeriod,
}

/// Calendar periods in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

#[derive(Debug, Clone, Copy)]
pub struct RetryConfig {
    /// Attempts on one backend before failing over to the next.
    pub attempts_per_backend: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest upstream `Retry-After` honored by waiting; longer ones fail over at once.
    pub max_retry_after: Duration,
    /// Deadline of one attempt (until the full body, or a stream's first byte).
    pub attempt_timeout: Duration,
    /// Deadline of the whole call, retries and failover included.
    pub call_deadline: Duration,
    /// The longest silence tolerated between two chunks of a stream.
    pub stream_idle_timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts_per_backend: 3,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(60),
            call_deadline: Duration::from_secs(120),
            stream_idle_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Failures within `window` that open the breaker.
    pub failure_threshold: u32,
    pub window: Duration,
    /// How long an open breaker refuses traffic before one probe is let through.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window: Duration::from_secs(30),
            open_for: Duration::from_secs(30),
        }
    }
}

/// Content safety: which prompts and answers are refused (see `policy::content_safety`).
#[derive(Debug, Clone, Default)]
pub struct ContentSafetyConfig {
    /// Off by default: nothing below applies unless this is set.
    pub enabled: bool,
    /// Terms refused anywhere in the text, case-insensitively, as whole words.
    pub blocked_terms: Vec<String>,
    /// Regular expressions (`regex` crate syntax) refused anywhere in the text.
    pub blocked_patterns: Vec<String>,
    /// Built-in rule sets.
    pub presets: Vec<SafetyPreset>,
    /// An OpenAI-compatible moderation endpoint consulted after the local rules pass.
    pub moderation: Option<ModerationConfig>,
    /// Azure AI Content Safety, consulted after the local rules (and moderation) pass.
    pub azure: Option<AzureContentSafetyConfig>,
}

/// Azure AI Content Safety: `text:analyze` on prompts and answers, Prompt Shields on prompts.
#[derive(Debug, Clone)]
pub struct AzureContentSafetyConfig {
    /// e.g. `https://NAME.cognitiveservices.azure.com`.
    pub endpoint: String,
    /// Sent as `Ocp-Apim-Subscription-Key`; without it, a Microsoft Entra ID token.
    pub api_key: Option<SecretString>,
    /// The lowest severity (1–7, on the eight-level scale) refused.
    pub severity: u8,
    /// Prompt Shields on user prompts (and tool results, as documents).
    pub shield_prompts: bool,
    /// Deadline of one check, every request it makes included.
    pub timeout: Duration,
    /// When the service fails or times out: refuse the text (`true`) or let it through.
    pub fail_closed: bool,
}

/// A built-in rule set of content safety.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SafetyPreset {
    /// API keys and private keys: OpenAI-style `sk-…`, AWS access key ids, PEM private keys,
    /// GitHub and Slack tokens.
    Secrets,
    /// Payment card numbers: 13–19 digits, optionally grouped by spaces or dashes, that pass
    /// the Luhn check.
    CardNumbers,
}

impl SafetyPreset {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secrets => "secrets",
            Self::CardNumbers => "card-numbers",
        }
    }
}

/// `POST {url}/moderations` with `{"input": text}`; `results[0].flagged` decides.
#[derive(Debug, Clone)]
pub struct ModerationConfig {
    /// Base URL, e.g. `https://api.openai.com/v1`.
    pub url: String,
    /// Sent as a bearer token when set.
    pub api_key: Option<SecretString>,
    /// Deadline of one moderation call.
    pub timeout: Duration,
    /// When the endpoint fails or times out: refuse the text (`true`) or let it through with a
    /// warning (`false`, the default).
    pub fail_closed: bool,
}

/// USD per million tokens, by model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Prices(pub HashMap<String, Price>);

impl Prices {
    /// The price of `model`: an exact entry, else the longest configured prefix
    /// (`gpt-4o-mini` prices `gpt-4o-mini-2024-07-18`), else free.
    pub fn of(&self, model: &str) -> Price {
        self.0.get(model).copied().unwrap_or_else(|| {
            self.0
                .iter()
                .filter(|(name, _)| model.starts_with(name.as_str()))
                .max_by_key(|(name, _)| name.len())
                .map_or(
                    Price {
                        input_per_million: 0.0,
                        output_per_million: 0.0,
                    },
                    |(_, price)| *price,
                )
        })
    }
}
