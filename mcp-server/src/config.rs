//! Every setting tollgate reads, in one place.
//!
//! Settings come from env vars (each also has a flag); `tollgate --help` lists them with their
//! defaults. Parsing turns raw strings into typed values here, so the rest of the code never sees
//! an env var or a malformed value. Tests build `Settings` from an argument list instead of
//! mutating the process environment.

use std::{fmt, net::IpAddr, num::NonZeroU32, str::FromStr, time::Duration};

use clap::{Parser, ValueEnum};
use gateway_client::config::{
    BackendConfig, BreakerConfig, BudgetConfig, CacheSettings, ContentSafetyConfig, EmbedderChoice,
    GatewayConfig, ModerationConfig, Price, Prices, QuotaPeriod, RetryConfig, SafetyPreset,
    TokenQuota,
};
use gateway_client::semantic::CacheConfig;
use secrecy::SecretString;

const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// tollgate: an MCP server, an agent runtime and an AI gateway in one binary.
#[derive(Debug, Clone, Parser)]
#[command(name = "tollgate", version, about, long_about = None)]
pub struct Settings {
    /// Listen address.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Listen port (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// Identity reported by whoami, /health, / and /agent/chat.
    #[arg(long, env = "INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// App Service's instance id; used when INSTANCE_ID is unset (else a UUID made at start).
    #[arg(long, env = "WEBSITE_INSTANCE_ID", hide_short_help = true)]
    pub website_instance_id: Option<String>,

    /// App Service site name, reported by whoami.
    #[arg(long, env = "WEBSITE_SITE_NAME", hide_short_help = true)]
    pub website_site_name: Option<String>,

    /// App Service deployment slot name, reported by whoami.
    #[arg(long, env = "WEBSITE_SLOT_NAME", hide_short_help = true)]
    pub website_slot_name: Option<String>,

    /// How the agent reaches its tools: `in-process` or `mcp`.
    #[arg(long, env = "TOOL_ROUTING", value_enum, default_value_t = ToolRouting::InProcess)]
    pub tool_routing: ToolRouting,

    /// Where TOOL_ROUTING=mcp sends tool calls. [default: this server's own /mcp]
    #[arg(long, env = "MCP_URL")]
    pub mcp_url: Option<String>,

    /// Key the agent uses for its own MCP calls when no caller key applies.
    #[arg(long, env = "AGENT_SUBSCRIPTION_KEY", hide_env_values = true)]
    pub agent_subscription_key: Option<SecretString>,

    /// Model calls that may ask for tools in one agent turn (then one last answer without tools).
    #[arg(long, env = "AGENT_MAX_ITERATIONS", default_value_t = 6)]
    pub agent_max_iterations: u32,

    /// Deadline of one agent turn, in seconds.
    #[arg(long, env = "AGENT_TIMEOUT_SECONDS", default_value_t = 120)]
    pub agent_timeout_seconds: u64,

    /// Deadline of one tool call made by the agent, in seconds.
    #[arg(long, env = "AGENT_TOOL_TIMEOUT_SECONDS", default_value_t = 10)]
    pub agent_tool_timeout_seconds: u64,

    /// Subscription keys, `name=key,name=key…`. When set, every route but /, /health and
    /// /metrics needs a key (Ocp-Apim-Subscription-Key, api-key or Authorization: Bearer).
    #[arg(long, env = "SUBSCRIPTION_KEYS", hide_env_values = true)]
    pub subscription_keys: Option<SubscriptionKeys>,

    /// MCP calls per key: `calls/seconds`.
    #[arg(long, env = "MCP_RATE_LIMIT", default_value = "120/60")]
    pub mcp_rate_limit: RateSpec,

    /// Serve plain stateless `tools/call` requests directly (`on`), skipping rmcp's per-request
    /// session machinery; anything else still goes to rmcp. Answers are the same either way;
    /// `off` sends every request through rmcp.
    #[arg(long, env = "MCP_FAST_PATH", value_enum, default_value_t = Switch::On)]
    pub mcp_fast_path: Switch,

    /// Per-tool MCP limits per key, e.g. `summarize=10/60,echo=100/60`.
    #[arg(long, env = "MCP_TOOL_RATE_LIMITS", default_value = "")]
    pub mcp_tool_rate_limits: ToolRateLimits,

    /// Host header allowlist for /mcp (DNS-rebinding protection), comma-separated. Entries are
    /// hostnames or `host:port`. Default: loopback hosts only.
    #[arg(
        long,
        env = "ALLOWED_HOSTS",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,::1"
    )]
    pub allowed_hosts: Vec<String>,

    /// Origin header allowlist for /mcp, comma-separated, with scheme (e.g.
    /// `https://app.example.com`, `http://localhost:*`). Default: none configured, which admits
    /// only loopback origins (localhost, 127.0.0.1, [::1], any port). Requests without an Origin
    /// header (non-browser clients) always pass.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Format of every Retry-After header this server sends: `seconds`, `http-date` or `iso8601`.
    #[arg(long, env = "RETRY_AFTER_FORMAT", value_enum, default_value_t = RetryAfterFormat::Seconds)]
    pub retry_after_format: RetryAfterFormat,

    /// OpenAI-compatible upstream base URL; a comma-separated list is a priority-ordered backend
    /// pool (failover, circuit breaker). [default: https://api.openai.com/v1, used when only
    /// OPENAI_API_KEY is set]
    #[arg(long, env = "OPENAI_BASE_URL", value_delimiter = ',')]
    pub openai_base_url: Vec<String>,

    /// Upstream API key (sent as a bearer token; never the caller's key).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<SecretString>,

    /// Azure OpenAI endpoint (https://NAME.openai.azure.com); used instead of OPENAI_BASE_URL.
    #[arg(long, env = "AZURE_OPENAI_ENDPOINT")]
    pub azure_openai_endpoint: Option<String>,

    /// Azure OpenAI key (sent as `api-key`).
    #[arg(long, env = "AZURE_OPENAI_API_KEY", hide_env_values = true)]
    pub azure_openai_api_key: Option<SecretString>,

    /// Azure OpenAI API version.
    #[arg(long, env = "AZURE_OPENAI_API_VERSION", default_value = "2024-10-21")]
    pub azure_openai_api_version: String,

    /// Chat model (or Azure deployment) name.
    #[arg(long, env = "CHAT_MODEL", default_value = "gpt-4o-mini")]
    pub chat_model: String,

    /// Embedding model (or Azure deployment) name.
    #[arg(
        long,
        env = "EMBEDDING_MODEL",
        default_value = "text-embedding-3-small"
    )]
    pub embedding_model: String,

    /// Token budget per subscription per minute.
    #[arg(long, env = "TOKENS_PER_MINUTE", default_value_t = 50_000)]
    pub tokens_per_minute: u64,

    /// Optional longer token quota per subscription, per TOKEN_QUOTA_PERIOD (403 when spent).
    #[arg(long, env = "TOKEN_QUOTA")]
    pub token_quota: Option<u64>,

    /// Period of TOKEN_QUOTA and of the /admin/usage report (UTC calendar periods).
    #[arg(long, env = "TOKEN_QUOTA_PERIOD", value_enum, default_value_t = QuotaPeriodSetting::Monthly)]
    pub token_quota_period: QuotaPeriodSetting,

    /// max_tokens ceiling applied to non-streamed model calls (and set when a call has none).
    #[arg(long, env = "MAX_TOKENS_CAP", default_value_t = 2000)]
    pub max_tokens_cap: u32,

    /// Key for the admin routes (/admin/usage for every subscription).
    #[arg(long, env = "ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<SecretString>,

    /// Prices per model in USD per million tokens, `model=input/output,…`. A model also matches
    /// a longer dated name (`gpt-4o-mini` prices `gpt-4o-mini-2024-07-18`).
    #[arg(long, env = "MODEL_PRICES", default_value = "gpt-4o-mini=0.15/0.60")]
    pub model_prices: PriceTable,

    /// Deadline of one model call, retries and failover included, in seconds.
    #[arg(long, env = "UPSTREAM_TIMEOUT_SECONDS", default_value_t = 120)]
    pub upstream_timeout_seconds: u64,

    /// Deadline of one attempt against one backend, in seconds.
    #[arg(long, env = "UPSTREAM_ATTEMPT_TIMEOUT_SECONDS", default_value_t = 60)]
    pub upstream_attempt_timeout_seconds: u64,

    /// Attempts per backend before failing over to the next one.
    #[arg(long, env = "UPSTREAM_ATTEMPTS", default_value_t = 3)]
    pub upstream_attempts: u32,

    /// First retry backoff in milliseconds (doubles per retry, with jitter).
    #[arg(long, env = "UPSTREAM_BACKOFF_MS", default_value_t = 200)]
    pub upstream_backoff_ms: u64,

    /// Longest upstream Retry-After honored by waiting; longer ones fail over at once (seconds).
    #[arg(long, env = "UPSTREAM_MAX_RETRY_AFTER_SECONDS", default_value_t = 10)]
    pub upstream_max_retry_after_seconds: u64,

    /// Failures within BREAKER_WINDOW_SECONDS that open a backend's circuit breaker.
    #[arg(long, env = "BREAKER_FAILURES", default_value_t = 5)]
    pub breaker_failures: u32,

    /// Window in which breaker failures are counted, in seconds.
    #[arg(long, env = "BREAKER_WINDOW_SECONDS", default_value_t = 30)]
    pub breaker_window_seconds: u64,

    /// How long an open breaker keeps traffic off a backend before probing it, in seconds.
    #[arg(long, env = "BREAKER_OPEN_SECONDS", default_value_t = 30)]
    pub breaker_open_seconds: u64,

    /// Content safety on gateway prompts and answers: `off` or `on`. When on, a refused prompt
    /// never reaches the model and a refused answer is not returned (403 `content_blocked`).
    #[arg(long, env = "CONTENT_SAFETY", value_enum, default_value_t = Switch::Off)]
    pub content_safety: Switch,

    /// Terms refused in prompts and answers when CONTENT_SAFETY=on, comma-separated; matched
    /// case-insensitively as whole words.
    #[arg(
        long,
        env = "CONTENT_BLOCKED_TERMS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub content_blocked_terms: Vec<String>,

    /// Regular expressions refused in prompts and answers when CONTENT_SAFETY=on, separated by
    /// `;;` (so a pattern may hold commas and single semicolons), e.g. `(?i)project-\d+;;ACME-\w+`.
    #[arg(
        long,
        env = "CONTENT_BLOCKED_PATTERNS",
        default_value = "",
        hide_env_values = true
    )]
    pub content_blocked_patterns: BlockedPatterns,

    /// Built-in rules when CONTENT_SAFETY=on, comma-separated: `secrets` (API and private keys),
    /// `card-numbers` (Luhn-valid card numbers); `none` for neither.
    #[arg(
        long,
        env = "CONTENT_SAFETY_PRESETS",
        default_value = "secrets,card-numbers"
    )]
    pub content_safety_presets: SafetyPresets,

    /// OpenAI-compatible moderation API base URL, consulted when CONTENT_SAFETY=on after the
    /// local rules pass (`POST {url}/moderations`), e.g. https://api.openai.com/v1.
    #[arg(long, env = "MODERATION_URL")]
    pub moderation_url: Option<String>,

    /// Key for MODERATION_URL (sent as a bearer token).
    #[arg(long, env = "MODERATION_API_KEY", hide_env_values = true)]
    pub moderation_api_key: Option<SecretString>,

    /// When the moderation API fails or times out, refuse the text (`true`) instead of letting
    /// it through with a warning (`false`).
    #[arg(
        long,
        env = "MODERATION_FAIL_CLOSED",
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub moderation_fail_closed: bool,

    /// Deadline of one moderation call, in milliseconds.
    #[arg(long, env = "MODERATION_TIMEOUT_MS", default_value_t = 3000)]
    pub moderation_timeout_ms: u64,

    /// The semantic cache: `on` or `off`.
    #[arg(long, env = "SEMANTIC_CACHE", value_enum, default_value_t = Switch::On)]
    pub semantic_cache: Switch,

    /// Minimum similarity (0–1, higher is stricter) for a cached answer to be considered; a
    /// verification step then refuses near-misses. [default: tuned per embedder: builtin 0.6,
    /// upstream 0.82, minilm 0.8, static 0.65]
    #[arg(long, env = "CACHE_SIMILARITY_THRESHOLD")]
    pub cache_similarity_threshold: Option<f32>,

    /// Lifetime of a cached answer, in seconds.
    #[arg(long, env = "CACHE_TTL_SECONDS", default_value_t = 3600)]
    pub cache_ttl_seconds: u64,

    /// Cached answers kept in all; the oldest go first. An entry takes about 4 KiB for a short
    /// answer (more for long answers or long tool results in the prompt).
    #[arg(long, env = "CACHE_MAX_ENTRIES", default_value_t = 20_000)]
    pub cache_max_entries: usize,

    /// The embedder: `builtin` (no download), `upstream` (EMBEDDING_MODEL through the gateway's
    /// backends), `minilm` (local all-MiniLM-L6-v2; needs the `minilm` build feature) or `static`
    /// (a static model distilled from all-MiniLM-L6-v2, built into the binary).
    #[arg(long, env = "CACHE_EMBEDDER", value_enum, default_value_t = EmbedderSetting::Builtin)]
    pub cache_embedder: EmbedderSetting,

    /// Directory with all-MiniLM-L6-v2's model.safetensors, tokenizer.json and config.json.
    #[arg(long, env = "CACHE_MINILM_DIR")]
    pub cache_minilm_dir: Option<std::path::PathBuf>,

    /// How many recent messages make up a cached prompt.
    #[arg(long, env = "CACHE_WINDOW_MESSAGES", default_value_t = 8)]
    pub cache_window_messages: usize,

    /// Include system messages in the cached prompt (ignored by default).
    #[arg(long, env = "CACHE_INCLUDE_SYSTEM", default_value_t = false)]
    pub cache_include_system: bool,

    /// Share cached answers across subscriptions (each subscription has its own by default).
    #[arg(long, env = "CACHE_SHARED", default_value_t = false)]
    pub cache_shared: bool,

    /// Shared state for budgets, cache and usage across instances (e.g. redis://127.0.0.1:6379).
    /// Without it, state stays in this process.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAX_REQUEST_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_request_body_bytes: usize,

    /// Deadline for one request to /mcp and the other short routes, in seconds.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,

    /// How long shutdown waits for in-flight requests, in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,

    /// Log format: `text` or `json`. Verbosity comes from RUST_LOG (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Settings {
    /// Parses settings from flags and the process environment; used by the binary.
    pub fn from_env() -> Self {
        Self::parse()
    }

    /// Parses settings from an argument list (`--port 0 …`); env vars still fill the gaps.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::try_parse_from(
            std::iter::once("tollgate".into()).chain(args.into_iter().map(Into::into)),
        )
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    /// Whether an upstream model is configured at all.
    pub fn model_configured(&self) -> bool {
        !self.backend_configs().is_empty()
    }

    /// The upstream pool: Azure if its endpoint is set, else the OpenAI-compatible list (the
    /// public OpenAI API when only a key is given).
    pub fn backend_configs(&self) -> Vec<BackendConfig> {
        if let Some(endpoint) = self
            .azure_openai_endpoint
            .as_ref()
            .filter(|e| !e.trim().is_empty())
        {
            return vec![BackendConfig::Azure {
                endpoint: endpoint.trim().to_owned(),
                api_key: self.azure_openai_api_key.clone(),
                api_version: self.azure_openai_api_version.clone(),
            }];
        }
        let mut urls: Vec<String> = self
            .openai_base_url
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() && self.openai_api_key.is_some() {
            urls.push(DEFAULT_OPENAI_BASE_URL.to_owned());
        }
        urls.into_iter()
            .map(|base_url| BackendConfig::OpenAi {
                base_url,
                api_key: self.openai_api_key.clone(),
            })
            .collect()
    }

    pub fn gateway_config(&self) -> GatewayConfig {
        let period = self.token_quota_period.into();
        GatewayConfig {
            backends: self.backend_configs(),
            chat_model: self.chat_model.clone(),
            embedding_model: self.embedding_model.clone(),
            budget: BudgetConfig {
                tokens_per_minute: self.tokens_per_minute,
                quota: self.token_quota.map(|tokens| TokenQuota { tokens, period }),
                usage_period: period,
            },
            max_tokens_cap: self.max_tokens_cap,
            retry: RetryConfig {
                attempts_per_backend: self.upstream_attempts.max(1),
                base_backoff: Duration::from_millis(self.upstream_backoff_ms),
                max_backoff: Duration::from_secs(5)
                    .max(Duration::from_millis(self.upstream_backoff_ms)),
                max_retry_after: Duration::from_secs(self.upstream_max_retry_after_seconds),
                attempt_timeout: Duration::from_secs(self.upstream_attempt_timeout_seconds.max(1)),
                call_deadline: Duration::from_secs(self.upstream_timeout_seconds.max(1)),
                stream_idle_timeout: Duration::from_secs(
                    self.upstream_attempt_timeout_seconds.max(1),
                ),
            },
            breaker: BreakerConfig {
                failure_threshold: self.breaker_failures.max(1),
                window: Duration::from_secs(self.breaker_window_seconds.max(1)),
                open_for: Duration::from_secs(self.breaker_open_seconds.max(1)),
            },
            prices: self.model_prices.0.clone(),
            cache: self.cache_settings(),
            content_safety: self.content_safety_config(),
        }
    }

    /// Content safety as the gateway takes it; the rule settings apply only when it is on.
    pub fn content_safety_config(&self) -> ContentSafetyConfig {
        if self.content_safety == Switch::Off {
            return ContentSafetyConfig::default();
        }
        ContentSafetyConfig {
            enabled: true,
            blocked_terms: self
                .content_blocked_terms
                .iter()
                .map(|term| term.trim().to_owned())
                .filter(|term| !term.is_empty())
                .collect(),
            blocked_patterns: self.content_blocked_patterns.0.clone(),
            presets: self.content_safety_presets.0.clone(),
            moderation: self
                .moderation_url
                .as_ref()
                .filter(|url| !url.trim().is_empty())
                .map(|url| ModerationConfig {
                    url: url.trim().to_owned(),
                    api_key: self.moderation_api_key.clone(),
                    timeout: Duration::from_millis(self.moderation_timeout_ms.max(1)),
                    fail_closed: self.moderation_fail_closed,
                }),
        }
    }

    /// The semantic cache's settings, or `None` when SEMANTIC_CACHE=off.
    pub fn cache_settings(&self) -> Option<CacheSettings> {
        if self.semantic_cache == Switch::Off {
            return None;
        }
        let embedder = match self.cache_embedder {
            EmbedderSetting::Builtin => EmbedderChoice::Builtin,
            EmbedderSetting::Upstream => EmbedderChoice::Upstream,
            EmbedderSetting::Minilm => EmbedderChoice::MiniLm {
                model_dir: self.cache_minilm_dir.clone().unwrap_or_default(),
            },
            EmbedderSetting::Static => EmbedderChoice::Static,
        };
        Some(CacheSettings {
            config: CacheConfig {
                threshold: self.cache_similarity_threshold.map(|t| t.clamp(0.0, 1.0)),
                ttl: Duration::from_secs(self.cache_ttl_seconds.max(1)),
                max_entries: self.cache_max_entries.max(1),
                include_system: self.cache_include_system,
                window_messages: self.cache_window_messages.max(1),
                shared_across_subscriptions: self.cache_shared,
            },
            embedder,
        })
    }

    pub fn agent_config(&self) -> agent::AgentConfig {
        agent::AgentConfig {
            max_iterations: self.agent_max_iterations.max(1),
            turn_deadline: Duration::from_secs(self.agent_timeout_seconds.max(1)),
            tool_timeout: Duration::from_secs(self.agent_tool_timeout_seconds.max(1)),
        }
    }

    /// The MCP endpoint for TOOL_ROUTING=mcp: MCP_URL, else this server's own /mcp on `local`.
    pub fn mcp_url(&self, local: std::net::SocketAddr) -> String {
        match &self.mcp_url {
            Some(url) if !url.trim().is_empty() => url.trim().to_owned(),
            _ => {
                let host = match local.ip() {
                    ip if ip.is_unspecified() && ip.is_ipv6() => "[::1]".to_owned(),
                    ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
                    std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                    ip => ip.to_string(),
                };
                format!("http://{host}:{}/mcp", local.port())
            }
        }
    }

    pub fn instance(&self) -> tools::Instance {
        tools::Instance::new(
            self.instance_id.clone(),
            self.website_instance_id.clone(),
            self.website_site_name.clone(),
            self.website_slot_name.clone(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ToolRouting {
    InProcess,
    Mcp,
}

impl ToolRouting {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProcess => "in-process",
            Self::Mcp => "mcp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RetryAfterFormat {
    /// Delay in whole seconds (`Retry-After: 7`).
    Seconds,
    /// RFC 9110 HTTP date (`Retry-After: Tue, 24 Nov 2026 23:00:07 GMT`).
    HttpDate,
    /// ISO 8601 UTC timestamp (`Retry-After: 2026-11-24T23:00:07Z`).
    Iso8601,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbedderSetting {
    Builtin,
    Upstream,
    Minilm,
    Static,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QuotaPeriodSetting {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl From<QuotaPeriodSetting> for QuotaPeriod {
    fn from(setting: QuotaPeriodSetting) -> Self {
        match setting {
            QuotaPeriodSetting::Hourly => Self::Hourly,
            QuotaPeriodSetting::Daily => Self::Daily,
            QuotaPeriodSetting::Weekly => Self::Weekly,
            QuotaPeriodSetting::Monthly => Self::Monthly,
            QuotaPeriodSetting::Yearly => Self::Yearly,
        }
    }
}

/// `MODEL_PRICES`: `model=input/output,…` in USD per million tokens.
#[derive(Debug, Clone, Default)]
pub struct PriceTable(pub Prices);

impl FromStr for PriceTable {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut prices = Prices::default();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (model, rates) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not of the form model=input/output"))?;
            let (input, output) = rates
                .split_once('/')
                .ok_or_else(|| format!("`{rates}` is not of the form input/output"))?;
            let parse = |v: &str| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| p.is_finite() && *p >= 0.0)
                    .ok_or_else(|| format!("`{v}` is not a price"))
            };
            prices.0.insert(
                model.trim().to_owned(),
                Price {
                    input_per_million: parse(input)?,
                    output_per_million: parse(output)?,
                },
            );
        }
        Ok(Self(prices))
    }
}

/// Separates the regexes of `CONTENT_BLOCKED_PATTERNS`: commas and single semicolons are common
/// inside regexes (`\d{2,4}`), a doubled semicolon is not.
pub const PATTERN_SEPARATOR: &str = ";;";

/// `CONTENT_BLOCKED_PATTERNS`: regexes separated by [`PATTERN_SEPARATOR`], each checked here.
#[derive(Debug, Clone, Default)]
pub struct BlockedPatterns(pub Vec<String>);

impl FromStr for BlockedPatterns {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut patterns = Vec::new();
        for pattern in raw.split(PATTERN_SEPARATOR).map(str::trim) {
            if pattern.is_empty() {
                continue;
            }
            gateway_client::policy::content_safety::check_pattern(pattern)?;
            patterns.push(pattern.to_owned());
        }
        Ok(Self(patterns))
    }
}

/// `CONTENT_SAFETY_PRESETS`: `secrets,card-numbers`, a subset, or `none`.
#[derive(Debug, Clone, Default)]
pub struct SafetyPresets(pub Vec<SafetyPreset>);

impl FromStr for SafetyPresets {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut presets = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let preset = match name.to_ascii_lowercase().as_str() {
                "none" => continue,
                "secrets" => SafetyPreset::Secrets,
                "card-numbers" | "card_numbers" => SafetyPreset::CardNumbers,
                _ => {
                    return Err(format!(
                        "unknown preset `{name}`; the presets are secrets, card-numbers (or none)"
                    ));
                }
            };
            if !presets.contains(&preset) {
                presets.push(preset);
            }
        }
        Ok(Self(presets))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A subscription: a name (safe to log and to use as a metrics label) and its secret key.
#[derive(Clone)]
pub struct Subscription {
    pub name: String,
    pub key: SecretString,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `SUBSCRIPTION_KEYS`: `name=key,name=key…`.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionKeys(pub Vec<Subscription>);

impl FromStr for SubscriptionKeys {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut subscriptions: Vec<Subscription> = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            // Never echo the entry itself: it holds a secret.
            let Some((name, key)) = entry.split_once('=') else {
                return Err(format!(
                    "entry {} has no `=`; expected name=key",
                    subscriptions.len() + 1
                ));
            };
            let (name, key) = (name.trim(), key.trim());
            if name.is_empty() || key.is_empty() {
                return Err(format!(
                    "entry {} has an empty name or key",
                    subscriptions.len() + 1
                ));
            }
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(format!(
                    "subscription name `{name}` may use only letters, digits, `-`, `_` and `.`"
                ));
            }
            if subscriptions.iter().any(|s| s.name == name) {
                return Err(format!("subscription name `{name}` appears twice"));
            }
            subscriptions.push(Subscription {
                name: name.to_owned(),
                key: SecretString::from(key.to_owned()),
            });
        }
        Ok(Self(subscriptions))
    }
}

/// A rate: `calls` per `period` (`120/60` is 120 calls per 60 seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    pub calls: NonZeroU32,
    pub period: Duration,
}

impl FromStr for RateSpec {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (calls, seconds) = raw
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("`{raw}` is not of the form calls/seconds"))?;
        let calls: u32 = calls
            .trim()
            .parse()
            .map_err(|_| format!("`{calls}` is not a whole number of calls"))?;
        let calls = NonZeroU32::new(calls)
            .ok_or_else(|| "the number of calls must be at least 1".to_owned())?;
        let seconds: u64 = seconds
            .trim()
            .parse()
            .map_err(|_| format!("`{seconds}` is not a whole number of seconds"))?;
        if seconds == 0 {
            return Err("the period must be at least 1 second".to_owned());
        }
        Ok(Self {
            calls,
            period: Duration::from_secs(seconds),
        })
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.calls, self.period.as_secs())
    }
}

/// `MCP_TOOL_RATE_LIMITS`: `tool=calls/seconds,…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolRateLimits(pub Vec<(String, RateSpec)>);

impl FromStr for ToolRateLimits {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut limits = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (tool, rate) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not of the form tool=calls/seconds"))?;
            let tool = tool.trim();
            if tools::spec(tool).is_none() {
                let known: Vec<&str> = tools::catalog().iter().map(|t| t.name).collect();
                return Err(format!(
                    "unknown tool `{tool}`; the tools are {}",
                    known.join(", ")
                ));
            }
            limits.push((tool.to_owned(), rate.parse()?));
        }
        Ok(Self(limits))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn defaults_match_the_contract() {
        let settings = Settings::from_args(Vec::<String>::new()).unwrap();
        assert_eq!(settings.port, 8000);
        assert_eq!(settings.host.to_string(), "127.0.0.1");
        assert_eq!(settings.mcp_rate_limit.to_string(), "120/60");
        assert_eq!(settings.retry_after_format, RetryAfterFormat::Seconds);
        assert_eq!(settings.tool_routing, ToolRouting::InProcess);
        assert_eq!(settings.allowed_hosts, ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(settings.tokens_per_minute, 50_000);
        assert_eq!(settings.max_tokens_cap, 2000);
        assert!(!settings.model_configured());
    }

    #[test]
    fn backends_come_from_the_openai_list_or_azure() {
        let pool = Settings::from_args(["--openai-base-url", "http://a/v1,http://b/v1"]).unwrap();
        assert_eq!(pool.backend_configs().len(), 2);
        let key_only = Settings::from_args(["--openai-api-key", "sk-x"]).unwrap();
        assert!(matches!(
            &key_only.backend_configs()[..],
            [BackendConfig::OpenAi { base_url, .. }] if base_url == DEFAULT_OPENAI_BASE_URL
        ));
        let azure =
            Settings::from_args(["--azure-openai-endpoint", "https://x.openai.azure.com"]).unwrap();
        assert!(matches!(
            &azure.backend_configs()[..],
            [BackendConfig::Azure { .. }]
        ));
    }

    #[test]
    fn content_safety_is_off_unless_asked_for() {
        let off = Settings::from_args(["--content-blocked-terms", "falcon"]).unwrap();
        assert!(!off.content_safety_config().enabled);
        let on = Settings::from_args([
            "--content-safety",
            "on",
            "--content-blocked-terms",
            "falcon, eagle ,",
            "--content-blocked-patterns",
            r"\d{2,4};;(?i)acme;x",
            "--moderation-url",
            "http://127.0.0.1:1/v1",
            "--moderation-fail-closed",
        ])
        .unwrap();
        let config = on.content_safety_config();
        assert!(config.enabled);
        assert_eq!(config.blocked_terms, ["falcon", "eagle"]);
        assert_eq!(config.blocked_patterns, [r"\d{2,4}", "(?i)acme;x"]);
        assert_eq!(
            config.presets,
            [SafetyPreset::Secrets, SafetyPreset::CardNumbers]
        );
        assert!(config.moderation.is_some_and(|m| m.fail_closed));
        let none =
            Settings::from_args(["--content-safety", "on", "--content-safety-presets", "none"])
                .unwrap();
        assert!(none.content_safety_config().presets.is_empty());
        assert!(Settings::from_args(["--content-blocked-patterns", "(unclosed"]).is_err());
        assert!(Settings::from_args(["--content-safety-presets", "secretz"]).is_err());
    }

    #[test]
    fn the_cache_embedder_is_chosen_by_name() {
        let default = Settings::from_args(Vec::<String>::new()).unwrap();
        assert_eq!(
            default.cache_settings().unwrap().embedder,
            EmbedderChoice::Builtin
        );
        let chosen = Settings::from_args(["--cache-embedder", "static"]).unwrap();
        assert_eq!(
            chosen.cache_settings().unwrap().embedder,
            EmbedderChoice::Static
        );
        assert!(Settings::from_args(["--cache-embedder", "statik"]).is_err());
    }

    #[test]
    fn prices_parse() {
        let table: PriceTable = "gpt-4o-mini=0.15/0.60, gpt-4o=2.5/10".parse().unwrap();
        assert_eq!(table.0.of("gpt-4o").output_per_million, 10.0);
        assert!("gpt=1".parse::<PriceTable>().is_err());
        assert!("gpt=x/1".parse::<PriceTable>().is_err());
    }

    #[test]
    fn subscription_keys_parse_and_never_print_the_key() {
        let keys: SubscriptionKeys = "alice=s3cret, bob=hunter2".parse().unwrap();
        assert_eq!(keys.0.len(), 2);
        assert_eq!(keys.0[1].name, "bob");
        assert_eq!(keys.0[1].key.expose_secret(), "hunter2");
        assert!(!format!("{keys:?}").contains("s3cret"));

        let err = "alice:s3cret".parse::<SubscriptionKeys>().unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
        assert!("a=1,a=2".parse::<SubscriptionKeys>().is_err());
        assert!("a=".parse::<SubscriptionKeys>().is_err());
    }

    #[test]
    fn rate_specs_parse_or_explain() {
        let rate: RateSpec = " 10/60 ".parse().unwrap();
        assert_eq!((rate.calls.get(), rate.period.as_secs()), (10, 60));
        for bad in ["10", "0/60", "10/0", "x/60", "10/y"] {
            assert!(bad.parse::<RateSpec>().is_err(), "{bad}");
        }
        let tools: ToolRateLimits = "summarize=10/60,echo=100/60".parse().unwrap();
        assert_eq!(tools.0[0].0, "summarize");
        assert!("nope=1/1".parse::<ToolRateLimits>().is_err());
    }
}
