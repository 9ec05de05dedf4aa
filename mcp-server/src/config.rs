//! Every setting tollgate reads, in one place, in three parts:
//!
//! - this file, the clap surface: every setting with its env var, flag, default and range, and
//!   the ways to parse them (the binary's `from_env`; `from_args` and `from_map` for tests, which
//!   never read the process environment);
//! - [`parse`]: the values that are more than a number or a name (keys, rates, prices, rules);
//! - [`build`]: the typed configs built from [`Settings`] for the crates and the HTTP layer.
//!
//! `tollgate --help` lists every setting with its env var and default. A bad value is refused
//! at start with a message naming the variable and what it accepts; nothing is clamped.

use std::net::IpAddr;

use clap::{
    CommandFactory, FromArgMatches, Parser, ValueEnum,
    builder::{PossibleValuesParser, TypedValueParser},
};
use gateway_client::{config::QuotaPeriod, shared::CaRoots};
use secrecy::SecretString;

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

    /// Threads that serve connections (default: one per CPU core). Each runs a runtime of its
    /// own, and a connection stays on one for its whole life (`ConnectionThreads`).
    #[arg(
        long,
        env = "WORKER_THREADS",
        value_parser = clap::value_parser!(u16).range(1..=1024).map(usize::from)
    )]
    pub worker_threads: Option<usize>,

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
    #[arg(
        long,
        env = "AGENT_MAX_ITERATIONS",
        default_value_t = 6,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub agent_max_iterations: u32,

    /// Deadline of one agent turn, in seconds.
    #[arg(
        long,
        env = "AGENT_TIMEOUT_SECONDS",
        default_value_t = 120,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub agent_timeout_seconds: u64,

    /// Deadline of one tool call made by the agent, in seconds.
    #[arg(
        long,
        env = "AGENT_TOOL_TIMEOUT_SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub agent_tool_timeout_seconds: u64,

    /// Lifetime of an agent session after its last turn, in seconds.
    #[arg(
        long,
        env = "AGENT_SESSION_TTL_SECONDS",
        default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub agent_session_ttl_seconds: u64,

    /// Turns an agent session keeps (its newest); older ones are dropped.
    #[arg(
        long,
        env = "AGENT_SESSION_MAX_TURNS",
        default_value_t = 50,
        value_parser = clap::value_parser!(u64).range(1..=10_000)
    )]
    pub agent_session_max_turns: u64,

    /// Bytes of turns an agent session keeps (its newest turn always).
    #[arg(
        long,
        env = "AGENT_SESSION_MAX_BYTES",
        default_value_t = 262_144,
        value_parser = clap::value_parser!(u64).range(1024..=16_777_216)
    )]
    pub agent_session_max_bytes: u64,

    /// Tokens of a session's conversation sent to the model per turn (summary, earlier turns,
    /// the new message; counted with the model's tokenizer). Older turns are compacted.
    #[arg(
        long,
        env = "AGENT_SESSION_MAX_CONTEXT_TOKENS",
        default_value_t = 4000,
        value_parser = clap::value_parser!(u64).range(100..)
    )]
    pub agent_session_max_context_tokens: u64,

    /// How older turns are compacted: `extractive` (built in, no tokens) or `model` (a
    /// summary written by the model through the gateway, metered like any call).
    #[arg(long, env = "AGENT_SESSION_SUMMARIZER", value_enum, default_value_t = SummarizerSetting::Extractive)]
    pub agent_session_summarizer: SummarizerSetting,

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

    /// The externally visible base URL, e.g. `https://tollgate.example.com` (behind App Service
    /// or a proxy): the protected-resource metadata and the default OAUTH_AUDIENCE use it.
    #[arg(long, env = "PUBLIC_URL", value_parser = parse::public_url)]
    pub public_url: Option<String>,

    /// OpenID Connect issuers whose JWT access tokens are accepted, comma-separated, e.g.
    /// `https://login.microsoftonline.com/{tenant}/v2.0`. Needs PUBLIC_URL.
    #[arg(
        long,
        env = "OAUTH_ISSUERS",
        value_delimiter = ',',
        value_parser = parse::issuer_url,
        requires = "public_url"
    )]
    pub oauth_issuers: Vec<String>,

    /// Audiences accepted in access tokens, comma-separated (RFC 8707 resource indicators; for
    /// Entra ID, the API's application ID URI and client id). [default: PUBLIC_URL + /mcp]
    #[arg(long, env = "OAUTH_AUDIENCE", value_delimiter = ',', value_parser = parse::audience)]
    pub oauth_audience: Vec<String>,

    /// The token claims that name a token caller's subscription, comma-separated: the first
    /// one present wins.
    #[arg(
        long,
        env = "OAUTH_SUBSCRIPTION_CLAIM",
        value_delimiter = ',',
        default_value = "azp,appid,client_id,sub",
        value_parser = parse::claim_name
    )]
    pub oauth_subscription_claim: Vec<String>,

    /// What turns a scope name into the scope clients request, e.g. Entra ID's
    /// `api://<client-id>/`: tokens carry `mcp.tools`, clients ask for `api://<client-id>/mcp.tools`.
    #[arg(long, env = "OAUTH_SCOPE_PREFIX", default_value = "")]
    pub oauth_scope_prefix: String,

    /// Scopes per tool, `tool=scope,…`: a token caller sees and may call such a tool only when
    /// its token grants the scope (`scp`, `scope` or `roles`). Subscription keys carry every scope.
    #[arg(long, env = "MCP_TOOL_SCOPES", default_value = "")]
    pub mcp_tool_scopes: ToolScopeList,

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

    /// Azure OpenAI key (sent as `api-key`). Without it, Microsoft Entra ID tokens (AZURE_TENANT_ID
    /// and the settings below).
    #[arg(long, env = "AZURE_OPENAI_API_KEY", hide_env_values = true)]
    pub azure_openai_api_key: Option<SecretString>,

    /// Azure OpenAI API version.
    #[arg(long, env = "AZURE_OPENAI_API_VERSION", default_value = "2024-10-21")]
    pub azure_openai_api_version: String,

    /// Anthropic-compatible upstream for `/v1/messages` (e.g. https://api.anthropic.com, as the
    /// Anthropic SDKs take it); a comma-separated list is a priority-ordered pool. Unset:
    /// `/v1/messages` is translated to the OpenAI-compatible upstream.
    #[arg(long, env = "ANTHROPIC_BASE_URL", value_delimiter = ',', value_parser = http_url)]
    pub anthropic_base_url: Vec<String>,

    /// Key for the Anthropic-compatible upstream (sent as `x-api-key`; never the caller's key).
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    pub anthropic_api_key: Option<SecretString>,

    /// `anthropic-version` sent to the Anthropic upstream when the caller sends none.
    #[arg(long, env = "ANTHROPIC_VERSION", default_value = gateway_client::protocol::anthropic::DEFAULT_VERSION, value_parser = header_text)]
    pub anthropic_version: String,

    /// Microsoft Entra ID tenant (id or domain) of a service principal or workload identity.
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub azure_tenant_id: Option<String>,

    /// Client (application) id of a service principal or workload identity, or of the
    /// user-assigned managed identity to use.
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub azure_client_id: Option<String>,

    /// A service principal's client secret (with AZURE_TENANT_ID and AZURE_CLIENT_ID).
    #[arg(long, env = "AZURE_CLIENT_SECRET", hide_env_values = true)]
    pub azure_client_secret: Option<SecretString>,

    /// Workload identity's federated token file (with AZURE_TENANT_ID and AZURE_CLIENT_ID),
    /// re-read at every token exchange.
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub azure_federated_token_file: Option<std::path::PathBuf>,

    /// Microsoft Entra ID login host.
    #[arg(
        long,
        env = "AZURE_AUTHORITY_HOST",
        default_value = gateway_client::entra::DEFAULT_AUTHORITY_HOST,
        value_parser = http_url
    )]
    pub azure_authority_host: String,

    /// App Service's managed identity endpoint (App Service sets it).
    #[arg(long, env = "IDENTITY_ENDPOINT", hide_short_help = true, value_parser = http_url)]
    pub identity_endpoint: Option<String>,

    /// App Service's managed identity secret header (App Service sets it).
    #[arg(
        long,
        env = "IDENTITY_HEADER",
        hide_env_values = true,
        hide_short_help = true
    )]
    pub identity_header: Option<SecretString>,

    /// The instance metadata service's token URL. For tests only (they cannot reach
    /// 169.254.169.254).
    #[arg(
        long,
        env = "AZURE_IMDS_ENDPOINT",
        default_value = gateway_client::entra::IMDS_ENDPOINT,
        hide = true,
        value_parser = http_url
    )]
    pub azure_imds_endpoint: String,
    /// How `/v1/responses` reaches the model: `native` passes it to the upstream's own Responses
    /// API, `translate` turns it into chat completions (llama.cpp, vLLM, Ollama…), `auto` is native
    /// when every upstream is OpenAI's API (api.openai.com) or Azure OpenAI, else translate.
    #[arg(long, env = "RESPONSES_UPSTREAM", value_enum, default_value_t = ResponsesUpstream::Auto)]
    pub responses_upstream: ResponsesUpstream,

    /// Chat model (or Azure deployment) name.
    #[arg(long, env = "CHAT_MODEL", default_value = "gpt-4o-mini", value_parser = model_name)]
    pub chat_model: String,

    /// Embedding model (or Azure deployment) name.
    #[arg(
        long,
        env = "EMBEDDING_MODEL",
        default_value = "text-embedding-3-small",
        value_parser = model_name
    )]
    pub embedding_model: String,

    /// Token budget per subscription per minute: a bucket of this many tokens that refills
    /// continuously (no minute edges to burst across).
    #[arg(
        long,
        env = "TOKENS_PER_MINUTE",
        default_value_t = 50_000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000)
    )]
    pub tokens_per_minute: u64,

    /// What a chat call reserves of its completion allowance before it is sent: `expected` (the
    /// completion the subscription's recent calls to the model used, within
    /// BUDGET_OVERSHOOT_PERCENT) or `strict` (all of max_tokens, or the cap: never overshoots,
    /// but throttles concurrency rather than spend).
    #[arg(long, env = "BUDGET_RESERVATION", value_enum, default_value_t = BudgetReservation::Expected)]
    pub budget_reservation: BudgetReservation,

    /// With BUDGET_RESERVATION=expected, the tokens a subscription's open calls may use beyond
    /// what they reserved, all together, as a percentage of TOKENS_PER_MINUTE: the worst-case
    /// overshoot, paid back by waiting once spent.
    #[arg(
        long,
        env = "BUDGET_OVERSHOOT_PERCENT",
        default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(0..=1000)
    )]
    pub budget_overshoot_percent: u64,

    /// Optional longer token quota per subscription, per TOKEN_QUOTA_PERIOD (403 when spent).
    #[arg(long, env = "TOKEN_QUOTA")]
    pub token_quota: Option<u64>,

    /// Period of TOKEN_QUOTA and of the /admin/usage report (UTC calendar periods).
    #[arg(
        long,
        env = "TOKEN_QUOTA_PERIOD",
        default_value = "monthly",
        value_parser = quota_period()
    )]
    pub token_quota_period: QuotaPeriod,

    /// max_tokens ceiling applied to non-streamed model calls (and set when a call has none).
    #[arg(long, env = "MAX_TOKENS_CAP", default_value_t = 2000)]
    pub max_tokens_cap: u32,

    /// max_tokens ceiling for streamed model calls that ask for a limit (a stream that asks for
    /// none gets MAX_TOKENS_CAP). Enforced while the stream runs: one that runs past it is cut
    /// off with a `completion_limit_exceeded` event.
    #[arg(
        long,
        env = "MAX_STREAM_TOKENS_CAP",
        default_value_t = 16_384,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_stream_tokens_cap: u32,

    /// Seconds a streaming client may take to accept one chunk. A client that stops reading is
    /// given up on after this long: its upstream call is closed and its usage booked.
    #[arg(
        long,
        env = "STREAM_SEND_TIMEOUT_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub stream_send_timeout_seconds: u64,

    /// An HTTP proxy in the environment (`HTTP_PROXY`, `http_proxy`, `ALL_PROXY`, `all_proxy`),
    /// as every HTTP client reads it. With one, plain-HTTP upstreams are reached through the
    /// client that honours it instead of tollgate's own connections (the faster path).
    #[arg(long, env = "HTTP_PROXY", hide = true, hide_env_values = true)]
    pub http_proxy: Option<String>,
    #[arg(long, env = "http_proxy", hide = true, hide_env_values = true)]
    pub http_proxy_lowercase: Option<String>,
    #[arg(long, env = "ALL_PROXY", hide = true, hide_env_values = true)]
    pub all_proxy: Option<String>,
    #[arg(long, env = "all_proxy", hide = true, hide_env_values = true)]
    pub all_proxy_lowercase: Option<String>,

    /// Key for the admin routes (/admin/usage for every subscription).
    #[arg(long, env = "ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<SecretString>,

    /// Prices per model in USD per million tokens, `model=input/output,…`. A model also matches
    /// a longer dated name (`gpt-4o-mini` prices `gpt-4o-mini-2024-07-18`).
    #[arg(long, env = "MODEL_PRICES", default_value = "gpt-4o-mini=0.15/0.60")]
    pub model_prices: PriceTable,

    /// Deadline of one model call, retries and failover included, in seconds.
    #[arg(
        long,
        env = "UPSTREAM_TIMEOUT_SECONDS",
        default_value_t = 120,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub upstream_timeout_seconds: u64,

    /// Deadline of one attempt against one backend, in seconds.
    #[arg(
        long,
        env = "UPSTREAM_ATTEMPT_TIMEOUT_SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub upstream_attempt_timeout_seconds: u64,

    /// Attempts per backend before failing over to the next one.
    #[arg(
        long,
        env = "UPSTREAM_ATTEMPTS",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub upstream_attempts: u32,

    /// First retry backoff in milliseconds (doubles per retry, with jitter).
    #[arg(long, env = "UPSTREAM_BACKOFF_MS", default_value_t = 200)]
    pub upstream_backoff_ms: u64,

    /// Longest upstream Retry-After honored by waiting; longer ones fail over at once (seconds).
    #[arg(long, env = "UPSTREAM_MAX_RETRY_AFTER_SECONDS", default_value_t = 10)]
    pub upstream_max_retry_after_seconds: u64,

    /// Failures within BREAKER_WINDOW_SECONDS that open a backend's circuit breaker.
    #[arg(
        long,
        env = "BREAKER_FAILURES",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub breaker_failures: u32,

    /// Window in which breaker failures are counted, in seconds.
    #[arg(
        long,
        env = "BREAKER_WINDOW_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub breaker_window_seconds: u64,

    /// How long an open breaker keeps traffic off a backend before probing it, in seconds.
    #[arg(
        long,
        env = "BREAKER_OPEN_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
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

    /// When the moderation API (or Azure AI Content Safety) fails or times out, refuse the text
    /// (`true`) instead of letting it through with a warning (`false`).
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

    /// Azure AI Content Safety endpoint (https://NAME.cognitiveservices.azure.com): prompts and
    /// answers are checked with `text:analyze` (this turns content safety on by itself).
    #[arg(long, env = "AZURE_CONTENT_SAFETY_ENDPOINT", value_parser = http_url)]
    pub azure_content_safety_endpoint: Option<String>,

    /// Azure AI Content Safety key (sent as `Ocp-Apim-Subscription-Key`). Without it, a
    /// Microsoft Entra ID token.
    #[arg(long, env = "AZURE_CONTENT_SAFETY_KEY", hide_env_values = true)]
    pub azure_content_safety_key: Option<SecretString>,

    /// The lowest Azure AI Content Safety severity refused (1–7, on its eight-level scale), for
    /// Hate, SelfHarm, Sexual and Violence.
    #[arg(
        long,
        env = "CONTENT_SAFETY_SEVERITY",
        default_value_t = 4,
        value_parser = clap::value_parser!(u8).range(1..=7)
    )]
    pub content_safety_severity: u8,

    /// Check user prompts (and tool results, as documents) with Azure AI Content Safety's
    /// Prompt Shields too.
    #[arg(
        long,
        env = "CONTENT_SAFETY_SHIELD_PROMPTS",
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub content_safety_shield_prompts: bool,

    /// Deadline of one moderation call (and of one Azure AI Content Safety check), in
    /// milliseconds.
    #[arg(
        long,
        env = "MODERATION_TIMEOUT_MS",
        default_value_t = 3000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub moderation_timeout_ms: u64,

    /// The semantic cache: `on` or `off`.
    #[arg(long, env = "SEMANTIC_CACHE", value_enum, default_value_t = Switch::On)]
    pub semantic_cache: Switch,

    /// Minimum similarity (0–1, higher is stricter) for a cached answer to be considered; a
    /// verification step then refuses near-misses. [default: tuned per embedder: builtin 0.6,
    /// upstream 0.82, minilm 0.8, static 0.65]
    #[arg(long, env = "CACHE_SIMILARITY_THRESHOLD", value_parser = unit_interval)]
    pub cache_similarity_threshold: Option<f32>,

    /// Lifetime of a cached answer, in seconds.
    #[arg(
        long,
        env = "CACHE_TTL_SECONDS",
        default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub cache_ttl_seconds: u64,

    /// Cached answers kept in all. Over it (or over CACHE_MAX_MB), the subscription holding the
    /// most gives up its oldest entries first.
    #[arg(
        long,
        env = "CACHE_MAX_ENTRIES",
        default_value_t = 20_000,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub cache_max_entries: usize,

    /// Memory the cached entries may take, in MiB (answers, prompt text, embeddings and index
    /// postings, counted per entry). Shared fairly: the subscription holding the most gives up
    /// its oldest entries first.
    #[arg(
        long,
        env = "CACHE_MAX_MB",
        default_value_t = 64,
        value_parser = clap::value_parser!(u64).range(1..=1_048_576)
    )]
    pub cache_max_mb: u64,

    /// The largest cacheable prompt, in bytes (its messages' text and every hashed part, images
    /// included). Larger prompts bypass the cache.
    #[arg(
        long,
        env = "CACHE_MAX_PROMPT_BYTES",
        default_value_t = 32 * 1024,
        value_parser = clap::value_parser!(u64).range(256..=16_777_216)
    )]
    pub cache_max_prompt_bytes: u64,

    /// The embedder: `builtin` (no download), `upstream` (EMBEDDING_MODEL through the gateway's
    /// backends), `minilm` (local all-MiniLM-L6-v2; needs the `minilm` build feature) or `static`
    /// (a static model distilled from all-MiniLM-L6-v2, built into the binary).
    #[arg(long, env = "CACHE_EMBEDDER", value_enum, default_value_t = EmbedderSetting::Static)]
    pub cache_embedder: EmbedderSetting,

    /// Directory with all-MiniLM-L6-v2's model.safetensors, tokenizer.json and config.json.
    #[arg(long, env = "CACHE_MINILM_DIR")]
    pub cache_minilm_dir: Option<std::path::PathBuf>,

    /// How many recent messages make up a cached prompt.
    #[arg(
        long,
        env = "CACHE_WINDOW_MESSAGES",
        default_value_t = 8,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub cache_window_messages: usize,

    /// Include system messages in the cached prompt (ignored by default).
    #[arg(long, env = "CACHE_INCLUDE_SYSTEM", default_value_t = false)]
    pub cache_include_system: bool,

    /// Share cached answers across subscriptions (each subscription has its own by default).
    #[arg(long, env = "CACHE_SHARED", default_value_t = false)]
    pub cache_shared: bool,

    /// The model-judged mode: `model` asks the chat model (one metered token, charged to the
    /// caller) to confirm a similar cached answer that verification refused only for words it
    /// could not match; `off` serves verified answers only.
    #[arg(long, env = "CACHE_JUDGE", value_enum, default_value_t = CacheJudge::Off)]
    pub cache_judge: CacheJudge,

    /// Shared state for budgets, cache and usage across instances (e.g. redis://127.0.0.1:6379).
    /// Without it, state stays in this process. `rediss://` is TLS; `user:password@` logs in as
    /// an ACL user. With REDIS_CLUSTER, a comma-separated list of seed nodes.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// REDIS_URL is a Redis Cluster: use a cluster-aware client (REDIS_URL may list several seed
    /// nodes, comma-separated).
    #[arg(
        long,
        env = "REDIS_CLUSTER",
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub redis_cluster: bool,

    /// A PEM file of extra root certificates trusted for `rediss://` (a private CA), besides
    /// the system's. Read and checked at start.
    #[arg(long, env = "REDIS_CA_CERT", value_parser = parse::ca_roots)]
    pub redis_ca_cert: Option<CaRoots>,

    /// While Redis is unreachable: `open` serves model calls with budgets counted by each
    /// instance alone and the cache bypassed; `closed` refuses them with 503
    /// `state_store_unavailable`, since shared budgets cannot be enforced.
    #[arg(long, env = "REDIS_FAILURE_MODE", value_enum, default_value_t = RedisFailureMode::Open)]
    pub redis_failure_mode: RedisFailureMode,

    /// Log in to Redis with Entra ID tokens (Azure Managed Redis): the token is the password,
    /// the identity's object id the user, renewed on live connections before it expires. Needs
    /// an Entra ID credential.
    #[arg(
        long,
        env = "REDIS_ENTRA_AUTH",
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub redis_entra_auth: bool,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAX_REQUEST_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_request_body_bytes: usize,

    /// Deadline for one request to /mcp and the other short routes, in seconds.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,

    /// Time allowed for a request's headers to arrive once its first byte has, in seconds; a
    /// trickled header is cut.
    #[arg(
        long,
        env = "HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub header_read_timeout_seconds: u64,

    /// How long a connection may wait for its next request (fresh or kept alive), or a response
    /// make no write progress, before it is closed, in seconds. Longer than the idle timeout of
    /// a proxy in front (60 s for many), so the proxy closes idle connections first.
    #[arg(
        long,
        env = "IDLE_TIMEOUT_SECONDS",
        default_value_t = 75,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub idle_timeout_seconds: u64,

    /// Connections served at once; one more is answered 503 `server_busy` and closed. The
    /// open-file limit is raised at start to fit them where the system allows.
    #[arg(
        long,
        env = "MAX_CONNECTIONS",
        default_value_t = 4096,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    pub max_connections: u32,

    /// How long shutdown waits for in-flight requests, in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,

    /// Log format: `text` or `json`. Verbosity comes from RUST_LOG (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The access log: one line per request (JSON with LOG_FORMAT=json) with its request id,
    /// trace id, route, status, duration, subscription, model, cache status, tokens, backend
    /// and attempts: `on` or `off`.
    #[arg(long, env = "ACCESS_LOG", value_enum, default_value_t = Switch::On)]
    pub access_log: Switch,

    /// OpenTelemetry collector (OTLP/HTTP) base URL, e.g. `http://localhost:4318`: traces go to
    /// `/v1/traces` and metrics to `/v1/metrics` under it. Unset: no export at all.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = otlp_endpoint)]
    pub otel_exporter_otlp_endpoint: Option<String>,

    /// The OTLP protocol: `http/protobuf` (`grpc` is refused: this build speaks OTLP/HTTP).
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        default_value = "http/protobuf",
        value_parser = otlp_protocol
    )]
    pub otel_exporter_otlp_protocol: String,

    /// Headers sent with every export: `name=value,…` (values percent-encoded), e.g. a key.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_HEADERS", hide_env_values = true, value_parser = OtlpHeaders::parse)]
    pub otel_exporter_otlp_headers: Option<OtlpHeaders>,

    /// How long one export may take, in milliseconds.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_TIMEOUT",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..=600_000)
    )]
    pub otel_exporter_otlp_timeout: u64,

    /// `service.name` of the exported telemetry (App Insights' cloud_RoleName).
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "tollgate")]
    pub otel_service_name: String,

    /// More resource attributes: `key=value,…` (values percent-encoded).
    #[arg(long, env = "OTEL_RESOURCE_ATTRIBUTES", value_parser = KeyValues::parse)]
    pub otel_resource_attributes: Option<KeyValues>,

    /// Which traces are sampled: `always_on`, `always_off`, `traceidratio`,
    /// `parentbased_always_on`, `parentbased_always_off` or `parentbased_traceidratio`.
    #[arg(
        long,
        env = "OTEL_TRACES_SAMPLER",
        default_value = "parentbased_always_on",
        value_parser = PossibleValuesParser::new(SAMPLERS)
    )]
    pub otel_traces_sampler: String,

    /// The ratio (0 to 1) of the `traceidratio` samplers. [default: 1]
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG", value_parser = unit_interval)]
    pub otel_traces_sampler_arg: Option<f32>,

    /// Longest wait before finished spans are exported, in milliseconds.
    #[arg(
        long,
        env = "OTEL_BSP_SCHEDULE_DELAY",
        default_value_t = 5000,
        value_parser = clap::value_parser!(u64).range(1..=3_600_000)
    )]
    pub otel_bsp_schedule_delay: u64,

    /// Finished spans waiting for export; past that, new ones are dropped (a dead collector
    /// never holds requests up).
    #[arg(
        long,
        env = "OTEL_BSP_MAX_QUEUE_SIZE",
        default_value_t = 2048,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    pub otel_bsp_max_queue_size: u32,

    /// How often metrics are exported, in milliseconds.
    #[arg(
        long,
        env = "OTEL_METRIC_EXPORT_INTERVAL",
        default_value_t = 60_000,
        value_parser = clap::value_parser!(u64).range(100..=86_400_000)
    )]
    pub otel_metric_export_interval: u64,

    /// A one-off command run with these settings instead of serving (no command: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Measure the semantic cache, built from these settings as the server builds it, on
    /// labelled prompt pairs: recall, wrong hits and lookup latency per kind.
    ///
    /// The cache's settings (CACHE_EMBEDDER, CACHE_SIMILARITY_THRESHOLD, CACHE_WINDOW_MESSAGES…)
    /// come from env vars, or from flags given before `cache-eval`. The cache is built in this
    /// process only: REDIS_URL is not used.
    CacheEval(CacheEvalArgs),
    /// Ask this server's /health (on HOST and PORT; loopback when HOST is a wildcard): exit 0 if
    /// it answers 200 within 5 seconds, else 1. For container health checks, where no curl is.
    Healthcheck,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CacheEvalArgs {
    /// Files of `kind<TAB>cached<TAB>query<TAB>expect` rows (expect is `hit` or `miss`; lines
    /// starting with `#` are comments), e.g. tests/data/cache-dev-set.tsv.
    #[arg(required = true, value_name = "FILE.tsv")]
    pub files: Vec<std::path::PathBuf>,

    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,

    /// List the rows whose outcome differs from their expectation.
    #[arg(long)]
    pub show_errors: bool,

    /// Exit with status 1 if any wrong answer was served.
    #[arg(long)]
    pub fail_on_wrong_hit: bool,
}

impl Settings {
    /// Parses settings from flags and the process environment; used by the binary.
    pub fn from_env() -> Self {
        Self::parse()
    }

    /// Parses settings from an argument list (`--port 0 …`) alone: env vars are not read, so a
    /// test's result never depends on the shell it runs in.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = Self::command().mut_args(|arg| arg.env(None));
        let mut matches = command.try_get_matches_from(
            std::iter::once("tollgate".into()).chain(args.into_iter().map(Into::into)),
        )?;
        Self::from_arg_matches_mut(&mut matches)
    }

    /// Parses settings from `(ENV_VAR, value)` pairs, as if they were the environment (and
    /// nothing else were): each pair becomes its setting's flag, then [`Self::from_args`].
    pub fn from_map(vars: &[(&str, &str)]) -> Result<Self, clap::Error> {
        let command = Self::command();
        let mut args = Vec::with_capacity(vars.len() * 2);
        for (name, value) in vars {
            let flag = command
                .get_arguments()
                .find(|arg| arg.get_env().is_some_and(|env| env == *name))
                .and_then(|arg| arg.get_long())
                .ok_or_else(|| {
                    Self::command().error(
                        clap::error::ErrorKind::UnknownArgument,
                        format!("{name} is not a tollgate setting"),
                    )
                })?;
            args.push(format!("--{flag}={value}"));
        }
        Self::from_args(args)
    }
}

/// RESPONSES_UPSTREAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResponsesUpstream {
    Auto,
    Native,
    Translate,
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
pub enum BudgetReservation {
    Expected,
    Strict,
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
pub enum SummarizerSetting {
    Extractive,
    Model,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheJudge {
    Off,
    Model,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RedisFailureMode {
    Open,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// TOKEN_QUOTA_PERIOD: the library's own [`QuotaPeriod`], by name.
fn quota_period() -> impl TypedValueParser<Value = QuotaPeriod> {
    PossibleValuesParser::new(["hourly", "daily", "weekly", "monthly", "yearly"]).try_map(|name| {
        match name.as_str() {
            "hourly" => Ok(QuotaPeriod::Hourly),
            "daily" => Ok(QuotaPeriod::Daily),
            "weekly" => Ok(QuotaPeriod::Weekly),
            "monthly" => Ok(QuotaPeriod::Monthly),
            "yearly" => Ok(QuotaPeriod::Yearly),
            other => Err(format!("`{other}` is not a quota period")),
        }
    })
}

mod build;
mod parse;

pub use build::{
    ConnectionLimits, HttpSettings, McpSettings, OAuthSettings, OtlpSettings, RootSampler,
    SamplerSetting, TelemetrySettings,
};
pub use parse::fetchable_url;
pub use parse::{
    BlockedPatterns, KeyValues, OtlpHeaders, PATTERN_SEPARATOR, PriceTable, RateSpec, SAMPLERS,
    SafetyPresets, Subscription, SubscriptionKeys, ToolRateLimits, ToolScopeList,
};
use parse::{header_text, http_url, model_name, otlp_endpoint, otlp_protocol, unit_interval};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use gateway_client::config::{BackendConfig, SafetyPreset};
    use secrecy::ExposeSecret;
    use std::time::Duration;

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
        assert_eq!(settings.budget_reservation, BudgetReservation::Expected);
        assert_eq!(settings.budget_overshoot_percent, 100);
        assert_eq!(settings.max_tokens_cap, 2000);
        assert_eq!(settings.max_stream_tokens_cap, 16_384);
        assert_eq!(settings.stream_send_timeout_seconds, 30);
        let cache = settings.cache_settings().unwrap().config;
        assert_eq!(
            (cache.max_bytes, cache.max_prompt_bytes),
            (64 << 20, 32 << 10)
        );
        assert!(settings.backend_configs().is_empty());
        let limits = settings.connection_limits();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.idle_timeout, Duration::from_secs(75));
        assert_eq!(limits.max_connections, 4096);
    }

    #[test]
    fn connection_settings_are_refused_out_of_range() {
        for (flag, value) in [
            ("--header-read-timeout-seconds", "0"),
            ("--idle-timeout-seconds", "0"),
            ("--max-connections", "0"),
            ("--max-connections", "2000000"),
            ("--max-connections", "-1"),
        ] {
            let error = Settings::from_args([format!("{flag}={value}")])
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&flag[2..].to_uppercase().replace('-', "_")),
                "{error}"
            );
        }
    }

    #[test]
    fn every_setting_has_an_env_var_and_no_command_means_serve() {
        use clap::CommandFactory;
        for arg in Settings::command().get_arguments() {
            let id = arg.get_id().as_str();
            assert!(
                matches!(id, "help" | "version") || arg.get_env().is_some(),
                "--{id} has no env var"
            );
        }
        assert!(
            Settings::from_args(Vec::<String>::new())
                .unwrap()
                .command
                .is_none()
        );
        let eval = Settings::from_args([
            "--cache-similarity-threshold",
            "0.9",
            "cache-eval",
            "--json",
            "a.tsv",
            "b.tsv",
        ])
        .unwrap();
        assert_eq!(eval.cache_similarity_threshold, Some(0.9));
        let Some(Command::CacheEval(args)) = eval.command else {
            panic!("cache-eval did not parse: {eval:?}");
        };
        assert_eq!(args.files.len(), 2);
        assert!(args.json && !args.show_errors && !args.fail_on_wrong_hit);
        assert!(
            Settings::from_args(["cache-eval"]).is_err(),
            "a file is required"
        );
        assert!(Settings::from_args(["serve-please"]).is_err());
    }

    #[test]
    fn limit_settings_refuse_bad_values_naming_the_variable() {
        for (flag, bad, variable) in [
            ("--max-stream-tokens-cap", "0", "MAX_STREAM_TOKENS_CAP"),
            ("--max-stream-tokens-cap", "lots", "MAX_STREAM_TOKENS_CAP"),
            (
                "--stream-send-timeout-seconds",
                "0",
                "STREAM_SEND_TIMEOUT_SECONDS",
            ),
            ("--cache-max-mb", "0", "CACHE_MAX_MB"),
            ("--worker-threads", "0", "WORKER_THREADS"),
            ("--worker-threads", "2000", "WORKER_THREADS"),
            ("--cache-max-prompt-bytes", "10", "CACHE_MAX_PROMPT_BYTES"),
            ("--tokens-per-minute", "0", "TOKENS_PER_MINUTE"),
            ("--budget-reservation", "loose", "BUDGET_RESERVATION"),
            (
                "--budget-overshoot-percent",
                "1001",
                "BUDGET_OVERSHOOT_PERCENT",
            ),
        ] {
            let error = Settings::from_args([flag, bad]).unwrap_err().to_string();
            assert!(error.contains(variable), "{error}");
        }
    }

    #[test]
    fn values_that_were_clamped_are_refused_naming_the_variable_and_the_range() {
        for variable in [
            "UPSTREAM_ATTEMPTS",
            "UPSTREAM_ATTEMPT_TIMEOUT_SECONDS",
            "UPSTREAM_TIMEOUT_SECONDS",
            "BREAKER_FAILURES",
            "BREAKER_WINDOW_SECONDS",
            "BREAKER_OPEN_SECONDS",
            "MODERATION_TIMEOUT_MS",
            "CACHE_TTL_SECONDS",
            "CACHE_MAX_ENTRIES",
            "CACHE_WINDOW_MESSAGES",
            "AGENT_MAX_ITERATIONS",
            "AGENT_TIMEOUT_SECONDS",
            "AGENT_TOOL_TIMEOUT_SECONDS",
            "AGENT_SESSION_TTL_SECONDS",
            "AGENT_SESSION_MAX_TURNS",
        ] {
            let error = Settings::from_map(&[(variable, "0")])
                .unwrap_err()
                .to_string();
            assert!(error.contains(variable), "{error}");
            assert!(
                error.contains("1.."),
                "{variable} should say what it accepts: {error}"
            );
            assert!(Settings::from_map(&[(variable, "1")]).is_ok(), "{variable}");
        }
        for bad in ["1.5", "-0.1", "high"] {
            let error = Settings::from_map(&[("CACHE_SIMILARITY_THRESHOLD", bad)])
                .unwrap_err()
                .to_string();
            assert!(error.contains("CACHE_SIMILARITY_THRESHOLD"), "{error}");
            assert!(error.contains("from 0 to 1"), "{error}");
        }
    }

    #[test]
    fn settings_from_a_map_use_the_env_var_names_and_nothing_else() {
        let settings =
            Settings::from_map(&[("OPENAI_API_KEY", "sk-test"), ("TOKENS_PER_MINUTE", "7")])
                .unwrap();
        assert!(!settings.backend_configs().is_empty());
        assert_eq!(settings.tokens_per_minute, 7);
        let error = Settings::from_map(&[("NOT_A_SETTING", "1")]).unwrap_err();
        assert!(error.to_string().contains("NOT_A_SETTING"), "{error}");
    }

    #[test]
    fn argument_lists_ignore_the_process_environment() {
        // No env var is read by `from_args`, whatever the shell exported: every setting with an
        // env var has it stripped before parsing.
        let command = Settings::command().mut_args(|arg| arg.env(None));
        assert!(command.get_arguments().all(|arg| arg.get_env().is_none()));
        // And the binary's own command does read them (the stripping is not permanent).
        assert!(
            Settings::command()
                .get_arguments()
                .any(|arg| arg.get_env().is_some_and(|env| env == "OPENAI_API_KEY"))
        );
    }

    #[test]
    fn backends_come_from_the_openai_list_or_azure() {
        let pool = Settings::from_args(["--openai-base-url", "http://a/v1,http://b/v1"]).unwrap();
        assert_eq!(pool.backend_configs().len(), 2);
        let key_only = Settings::from_args(["--openai-api-key", "sk-x"]).unwrap();
        assert!(matches!(
            &key_only.backend_configs()[..],
            [BackendConfig::OpenAi { base_url, .. }] if base_url == build::DEFAULT_OPENAI_BASE_URL
        ));
        let azure =
            Settings::from_args(["--azure-openai-endpoint", "https://x.openai.azure.com"]).unwrap();
        assert!(matches!(
            &azure.backend_configs()[..],
            [BackendConfig::Azure { .. }]
        ));
    }

    #[test]
    fn worker_threads_default_to_the_runtimes_choice() {
        assert_eq!(Settings::from_map(&[]).unwrap().worker_threads, None);
        let one = Settings::from_map(&[("WORKER_THREADS", "1")]).unwrap();
        assert_eq!(one.worker_threads, Some(1));
    }

    #[test]
    fn an_http_proxy_in_the_environment_sends_plain_http_upstreams_through_it() {
        let base = ("OPENAI_BASE_URL", "http://llm.internal:8000/v1");
        let direct = Settings::from_map(&[base]).unwrap();
        assert!(direct.gateway_config().direct_plain_http);
        for name in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
            let proxied = Settings::from_map(&[base, (name, "http://proxy:3128")]).unwrap();
            assert!(!proxied.gateway_config().direct_plain_http, "{name}");
        }
        let empty = Settings::from_map(&[base, ("HTTP_PROXY", " ")]).unwrap();
        assert!(empty.gateway_config().direct_plain_http);
    }

    #[test]
    fn anthropic_backends_come_from_their_own_list() {
        let none = Settings::from_args(["--openai-base-url", "http://a/v1"]).unwrap();
        assert!(none.gateway_config().messages_backends.is_empty());
        let pool = Settings::from_args([
            "--anthropic-base-url",
            "http://a, https://b",
            "--anthropic-api-key",
            "k",
        ])
        .unwrap();
        let backends = pool.gateway_config().messages_backends;
        assert!(matches!(
            &backends[..],
            [BackendConfig::Anthropic { base_url, version, api_key: Some(_) }, BackendConfig::Anthropic { .. }]
                if base_url == "http://a" && version == "2023-06-01"
        ));
        for bad in [
            ["--anthropic-base-url", "ftp://x"],
            ["--anthropic-version", "a\nb"],
        ] {
            let error = Settings::from_args(bad).unwrap_err().to_string();
            assert!(
                error.contains("ANTHROPIC_") || error.contains("anthropic"),
                "{error}"
            );
        }
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
    fn keyless_azure_builds_entra_settings_and_keys_need_none() {
        let keyed = Settings::from_map(&[
            ("AZURE_OPENAI_ENDPOINT", "https://x.openai.azure.com"),
            ("AZURE_OPENAI_API_KEY", "k"),
        ])
        .unwrap();
        assert!(keyed.gateway_config().entra.is_none());
        let keyless = Settings::from_map(&[
            ("AZURE_OPENAI_ENDPOINT", "https://x.openai.azure.com"),
            ("AZURE_TENANT_ID", " contoso "),
            ("AZURE_CLIENT_ID", "app"),
            ("AZURE_CLIENT_SECRET", "s3cret"),
        ])
        .unwrap();
        let entra = keyless.gateway_config().entra.unwrap();
        assert_eq!(entra.tenant_id.as_deref(), Some("contoso"));
        assert_eq!(entra.authority_host, "https://login.microsoftonline.com");
        assert_eq!(entra.imds_endpoint, gateway_client::entra::IMDS_ENDPOINT);
        assert!(!format!("{keyless:?}").contains("s3cret"));
        let safety_only = Settings::from_map(&[(
            "AZURE_CONTENT_SAFETY_ENDPOINT",
            "https://cs.cognitiveservices.azure.com",
        )])
        .unwrap();
        assert!(safety_only.gateway_config().entra.is_some());
        for (variable, bad) in [
            ("AZURE_AUTHORITY_HOST", "login.microsoftonline.com"),
            ("IDENTITY_ENDPOINT", "ftp://x/token"),
            ("AZURE_CONTENT_SAFETY_ENDPOINT", "not a url"),
        ] {
            let error = Settings::from_map(&[(variable, bad)])
                .unwrap_err()
                .to_string();
            assert!(error.contains(variable), "{error}");
        }
    }

    #[test]
    fn azure_content_safety_turns_content_safety_on_with_its_severity() {
        let settings = Settings::from_map(&[
            (
                "AZURE_CONTENT_SAFETY_ENDPOINT",
                "https://cs.cognitiveservices.azure.com",
            ),
            ("CONTENT_SAFETY_SHIELD_PROMPTS", "true"),
            ("MODERATION_FAIL_CLOSED", "true"),
        ])
        .unwrap();
        let config = settings.content_safety_config();
        assert!(config.enabled && config.blocked_terms.is_empty() && config.presets.is_empty());
        let azure = config.azure.unwrap();
        assert_eq!(azure.severity, 4);
        assert!(azure.shield_prompts && azure.fail_closed);
        assert_eq!(azure.timeout, Duration::from_millis(3000));
        for bad in ["0", "8", "high"] {
            let error = Settings::from_map(&[("CONTENT_SAFETY_SEVERITY", bad)])
                .unwrap_err()
                .to_string();
            assert!(error.contains("CONTENT_SAFETY_SEVERITY"), "{error}");
        }
        let lenient = Settings::from_map(&[("CONTENT_SAFETY_SEVERITY", "7")]).unwrap();
        assert_eq!(lenient.content_safety_severity, 7);
        assert!(
            Settings::from_args(["healthcheck"])
                .unwrap()
                .command
                .is_some()
        );
    }

    #[test]
    fn prices_parse() {
        let table: PriceTable = "gpt-4o-mini=0.15/0.60, gpt-4o=2.5/10".parse().unwrap();
        assert_eq!(table.0.of("gpt-4o").output_per_million, 10.0);
        assert!("gpt=1".parse::<PriceTable>().is_err());
        assert!("gpt=x/1".parse::<PriceTable>().is_err());
        assert!("gpt\u{1f}x=1/1".parse::<PriceTable>().is_err());
    }

    #[test]
    fn names_that_become_keys_refuse_control_characters() {
        assert!(Settings::from_args(["--chat-model", "gpt-4o-mini\u{1f}x"]).is_err());
        assert!(Settings::from_args(["--embedding-model", "emb\nx"]).is_err());
        assert!(Settings::from_args(["--chat-model", " "]).is_err());
        let trimmed = Settings::from_args(["--chat-model", " gpt-4o "]).unwrap();
        assert_eq!(trimmed.chat_model, "gpt-4o");
        // Subscription names become budget keys and ledger fields.
        assert!("a\u{1f}b=k".parse::<SubscriptionKeys>().is_err());
        assert!("a b=k".parse::<SubscriptionKeys>().is_err());
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
    fn oauth_settings_are_validated_and_defaulted() {
        assert!(
            Settings::from_args(Vec::<String>::new())
                .unwrap()
                .oauth_settings()
                .is_none()
        );
        let error = Settings::from_map(&[("OAUTH_ISSUERS", "https://idp.example.com")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("PUBLIC_URL"), "{error}");
        let settings = Settings::from_map(&[
            (
                "OAUTH_ISSUERS",
                "https://login.microsoftonline.com/t/v2.0,http://127.0.0.1:9/",
            ),
            ("PUBLIC_URL", "https://gw.example.com/"),
        ])
        .unwrap();
        let oauth = settings.oauth_settings().unwrap();
        assert_eq!(oauth.public_url, "https://gw.example.com");
        assert_eq!(oauth.audiences, ["https://gw.example.com/mcp"]);
        assert_eq!(
            oauth.subscription_claims,
            ["azp", "appid", "client_id", "sub"]
        );
        for (variable, bad) in [
            ("OAUTH_ISSUERS", "http://idp.example.com"),
            ("OAUTH_ISSUERS", "not a url"),
            ("PUBLIC_URL", "gw.example.com"),
            ("PUBLIC_URL", "https://gw.example.com/?x=1"),
            ("OAUTH_SUBSCRIPTION_CLAIM", "a b"),
            ("OAUTH_AUDIENCE", " "),
            ("MCP_TOOL_SCOPES", "nope=x"),
            ("MCP_TOOL_SCOPES", "echo=a\"b"),
            ("MCP_TOOL_SCOPES", "echo"),
        ] {
            let error = Settings::from_map(&[(variable, bad)])
                .unwrap_err()
                .to_string();
            assert!(error.contains(variable), "{variable}={bad}: {error}");
        }
        let scoped =
            Settings::from_map(&[("MCP_TOOL_SCOPES", "echo=mcp.echo, summarize=mcp.docs")])
                .unwrap();
        assert_eq!(
            scoped.mcp_tool_scopes.0,
            [
                ("echo".to_owned(), "mcp.echo".to_owned()),
                ("summarize".to_owned(), "mcp.docs".to_owned())
            ]
        );
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

    #[test]
    fn redis_settings_are_checked_at_start_without_showing_passwords() {
        let options = |vars: &[(&str, &str)]| Settings::from_map(vars).unwrap().redis_options();
        let defaults = Settings::from_args(Vec::<String>::new()).unwrap();
        assert!(!defaults.redis_cluster && !defaults.redis_entra_auth);
        assert_eq!(defaults.redis_failure_mode, RedisFailureMode::Open);
        assert!(defaults.redis_options().unwrap().is_none());

        let cluster = options(&[
            ("REDIS_URL", "redis://a:1, redis://b:2"),
            ("REDIS_CLUSTER", "true"),
            ("REDIS_FAILURE_MODE", "closed"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(cluster.urls, ["redis://a:1", "redis://b:2"]);
        assert!(cluster.cluster);
        assert_eq!(
            cluster.failure_mode,
            gateway_client::shared::FailureMode::Closed
        );

        for (vars, expected) in [
            (
                vec![("REDIS_URL", "redis://u:hunter2@a:1,redis://u:hunter2@b:2")],
                "REDIS_CLUSTER",
            ),
            (vec![("REDIS_URL", "http://u:hunter2@a:1")], "REDIS_URL"),
            (
                vec![
                    ("REDIS_URL", "redis://u:hunter2@a:1,rediss://u:hunter2@b:2"),
                    ("REDIS_CLUSTER", "true"),
                ],
                "mixes",
            ),
        ] {
            let error = options(&vars).unwrap_err();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }

        for bad in ["/nonexistent/ca.pem", "Cargo.toml"] {
            let error = Settings::from_map(&[("REDIS_CA_CERT", bad)])
                .unwrap_err()
                .to_string();
            assert!(error.contains("REDIS_CA_CERT"), "{error}");
        }
        assert!(Settings::from_map(&[("REDIS_FAILURE_MODE", "maybe")]).is_err());
        assert!(
            Settings::from_map(&[("REDIS_ENTRA_AUTH", "yes")])
                .unwrap()
                .redis_entra_auth
        );
    }
}
