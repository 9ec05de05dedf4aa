//! Building: the typed configs the crates and the HTTP layer take, made from [`Settings`].

use std::time::Duration;

use gateway_client::config::{
    AzureContentSafetyConfig, BackendConfig, BreakerConfig, BudgetConfig, CacheSettings,
    ContentSafetyConfig, EmbedderChoice, EntraConfig, GatewayConfig, ModerationConfig,
    ReservationMode, RetryConfig, TokenQuota,
};
use gateway_client::semantic::CacheConfig;
use gateway_client::shared::{FailureMode, RedisOptions, connection::scrub_url};
use secrecy::SecretString;

use super::{
    BudgetReservation, CacheJudge, EmbedderSetting, RedisFailureMode, ResponsesUpstream,
    RetryAfterFormat, Settings, Switch, ToolRouting,
};

pub(super) const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

impl Settings {
    /// How to reach Redis, when REDIS_URL is set (its credentials come separately when
    /// REDIS_ENTRA_AUTH is on). Errors name the setting and never show a password.
    pub fn redis_options(&self) -> Result<Option<RedisOptions>, String> {
        let Some(raw) = self.redis_url.as_deref().filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let urls: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        let tls = |url: &str| url.starts_with("rediss://");
        if let Some(bad) = urls.iter().find(|u| !u.starts_with("redis://") && !tls(u)) {
            return Err(format!(
                "REDIS_URL: `{}` is not a redis:// or rediss:// URL",
                scrub_url(bad)
            ));
        }
        if urls.len() > 1 && !self.redis_cluster {
            return Err(format!(
                "REDIS_URL lists {} servers: set REDIS_CLUSTER=true for a Redis Cluster",
                urls.len()
            ));
        }
        if urls.iter().any(|u| tls(u)) != urls.iter().all(|u| tls(u)) {
            return Err("REDIS_URL mixes redis:// and rediss:// nodes".to_owned());
        }
        if self.redis_ca_cert.is_some() && !urls.iter().all(|u| tls(u)) {
            return Err(
                "REDIS_CA_CERT applies to rediss:// (TLS) only; REDIS_URL is redis://".to_owned(),
            );
        }
        Ok(Some(RedisOptions {
            urls,
            cluster: self.redis_cluster,
            extra_roots: self.redis_ca_cert.clone(),
            failure_mode: match self.redis_failure_mode {
                RedisFailureMode::Open => FailureMode::Open,
                RedisFailureMode::Closed => FailureMode::Closed,
            },
            credentials: None,
        }))
    }

    /// What the router and its handlers read.
    pub fn http_settings(&self) -> HttpSettings {
        HttpSettings {
            max_request_body_bytes: self.max_request_body_bytes,
            request_timeout: self.request_timeout(),
            retry_after_format: self.retry_after_format,
            tool_routing: self.tool_routing,
            keys_required: self.subscription_keys.is_some(),
        }
    }

    /// What the `/mcp` route reads.
    pub fn mcp_settings(&self) -> McpSettings {
        McpSettings {
            fast_path: self.mcp_fast_path == Switch::On,
            allowed_hosts: self.allowed_hosts.clone(),
            allowed_origins: self.allowed_origins.clone(),
            max_request_body_bytes: self.max_request_body_bytes,
            request_timeout: self.request_timeout(),
        }
    }

    /// The OAuth resource server's settings, when OAUTH_ISSUERS is set (clap makes PUBLIC_URL
    /// required with it).
    pub fn oauth_settings(&self) -> Option<OAuthSettings> {
        if self.oauth_issuers.is_empty() {
            return None;
        }
        let public_url = self.public_url.clone()?;
        let audiences = if self.oauth_audience.is_empty() {
            vec![format!("{public_url}/mcp")]
        } else {
            self.oauth_audience.clone()
        };
        Some(OAuthSettings {
            issuers: self.oauth_issuers.clone(),
            audiences,
            subscription_claims: self.oauth_subscription_claim.clone(),
            scope_prefix: self.oauth_scope_prefix.trim().to_owned(),
            public_url,
        })
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            retry_after_format: self.retry_after_format,
        }
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

    /// The Anthropic-compatible pool for `/v1/messages`; empty when ANTHROPIC_BASE_URL is unset.
    pub fn messages_backend_configs(&self) -> Vec<BackendConfig> {
        self.anthropic_base_url
            .iter()
            .filter(|u| !u.is_empty())
            .map(|base_url| BackendConfig::Anthropic {
                base_url: base_url.clone(),
                api_key: self.anthropic_api_key.clone(),
                version: self.anthropic_version.clone(),
            })
            .collect()
    }

    /// Whether `/v1/responses` goes to the upstream's own Responses API (RESPONSES_UPSTREAM).
    pub fn responses_native(&self) -> bool {
        match self.responses_upstream {
            ResponsesUpstream::Native => true,
            ResponsesUpstream::Translate => false,
            ResponsesUpstream::Auto => {
                let backends = self.backend_configs();
                !backends.is_empty() && backends.iter().all(speaks_responses)
            }
        }
    }

    pub fn gateway_config(&self) -> GatewayConfig {
        let period = self.token_quota_period;
        GatewayConfig {
            backends: self.backend_configs(),
            messages_backends: self.messages_backend_configs(),
            chat_model: self.chat_model.clone(),
            embedding_model: self.embedding_model.clone(),
            budget: BudgetConfig {
                tokens_per_minute: self.tokens_per_minute,
                quota: self.token_quota.map(|tokens| TokenQuota { tokens, period }),
                usage_period: period,
                reservation: match self.budget_reservation {
                    BudgetReservation::Expected => ReservationMode::Expected,
                    BudgetReservation::Strict => ReservationMode::Strict,
                },
                overshoot_percent: self.budget_overshoot_percent,
            },
            max_tokens_cap: self.max_tokens_cap,
            max_stream_tokens_cap: self.max_stream_tokens_cap,
            stream_send_timeout: Duration::from_secs(self.stream_send_timeout_seconds),
            retry: RetryConfig {
                attempts_per_backend: self.upstream_attempts,
                base_backoff: Duration::from_millis(self.upstream_backoff_ms),
                max_backoff: Duration::from_secs(5)
                    .max(Duration::from_millis(self.upstream_backoff_ms)),
                max_retry_after: Duration::from_secs(self.upstream_max_retry_after_seconds),
                attempt_timeout: Duration::from_secs(self.upstream_attempt_timeout_seconds),
                call_deadline: Duration::from_secs(self.upstream_timeout_seconds),
                stream_idle_timeout: Duration::from_secs(self.upstream_attempt_timeout_seconds),
            },
            breaker: BreakerConfig {
                failure_threshold: self.breaker_failures,
                window: Duration::from_secs(self.breaker_window_seconds),
                open_for: Duration::from_secs(self.breaker_open_seconds),
            },
            prices: self.model_prices.0.clone(),
            cache: self.cache_settings(),
            content_safety: self.content_safety_config(),
            entra: self.needs_entra().then(|| self.entra_config()),
            direct_plain_http: !self.http_proxy_configured(),
        }
    }

    /// Whether the environment names an HTTP proxy for plain-HTTP requests.
    pub fn http_proxy_configured(&self) -> bool {
        [
            &self.http_proxy,
            &self.http_proxy_lowercase,
            &self.all_proxy,
            &self.all_proxy_lowercase,
        ]
        .into_iter()
        .any(|proxy| proxy.as_deref().is_some_and(|url| !url.trim().is_empty()))
    }

    /// Whether an Azure service is configured without its key (or Redis signs in with Entra ID), so
    /// Entra ID tokens are needed.
    pub fn needs_entra(&self) -> bool {
        let keyless = |endpoint: &Option<String>, key: &Option<SecretString>| {
            endpoint.as_ref().is_some_and(|e| !e.trim().is_empty()) && key.is_none()
        };
        self.redis_entra_auth
            || keyless(&self.azure_openai_endpoint, &self.azure_openai_api_key)
            || keyless(
                &self.azure_content_safety_endpoint,
                &self.azure_content_safety_key,
            )
    }

    /// The Microsoft Entra ID settings; the credential picks its source from them.
    pub fn entra_config(&self) -> EntraConfig {
        let given = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        EntraConfig {
            tenant_id: given(&self.azure_tenant_id),
            client_id: given(&self.azure_client_id),
            client_secret: self.azure_client_secret.clone(),
            federated_token_file: self.azure_federated_token_file.clone(),
            authority_host: self.azure_authority_host.clone(),
            identity_endpoint: given(&self.identity_endpoint),
            identity_header: self.identity_header.clone(),
            imds_endpoint: self.azure_imds_endpoint.clone(),
        }
    }

    /// Azure AI Content Safety, when its endpoint is set.
    fn azure_content_safety_config(&self) -> Option<AzureContentSafetyConfig> {
        let endpoint = self.azure_content_safety_endpoint.as_deref()?.trim();
        Some(AzureContentSafetyConfig {
            endpoint: endpoint.to_owned(),
            api_key: self.azure_content_safety_key.clone(),
            severity: self.content_safety_severity,
            shield_prompts: self.content_safety_shield_prompts,
            timeout: Duration::from_millis(self.moderation_timeout_ms),
            fail_closed: self.moderation_fail_closed,
        })
    }

    /// Content safety as the gateway takes it; the rule settings apply only when it is on, Azure
    /// AI Content Safety whenever its endpoint is set.
    pub fn content_safety_config(&self) -> ContentSafetyConfig {
        let azure = self.azure_content_safety_config();
        if self.content_safety == Switch::Off {
            return ContentSafetyConfig {
                enabled: azure.is_some(),
                azure,
                ..ContentSafetyConfig::default()
            };
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
                    timeout: Duration::from_millis(self.moderation_timeout_ms),
                    fail_closed: self.moderation_fail_closed,
                }),
            azure,
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
                threshold: self.cache_similarity_threshold,
                ttl: Duration::from_secs(self.cache_ttl_seconds),
                max_entries: self.cache_max_entries,
                max_bytes: usize::try_from(self.cache_max_mb << 20).unwrap_or(usize::MAX),
                max_prompt_bytes: usize::try_from(self.cache_max_prompt_bytes)
                    .unwrap_or(usize::MAX),
                include_system: self.cache_include_system,
                window_messages: self.cache_window_messages,
                shared_across_subscriptions: self.cache_shared,
                model_judged: self.cache_judge == CacheJudge::Model,
            },
            embedder,
        })
    }

    pub fn agent_config(&self) -> agent::AgentConfig {
        agent::AgentConfig {
            max_iterations: self.agent_max_iterations,
            turn_deadline: Duration::from_secs(self.agent_timeout_seconds),
            tool_timeout: Duration::from_secs(self.agent_tool_timeout_seconds),
        }
    }

    /// What agent sessions keep, for how long, and what of them goes to the model.
    pub fn session_settings(&self) -> agent::session::SessionSettings {
        agent::session::SessionSettings {
            ttl: Duration::from_secs(self.agent_session_ttl_seconds),
            limits: agent::session::HistoryLimits {
                max_turns: self.agent_session_max_turns,
                max_bytes: self.agent_session_max_bytes,
            },
            max_context_tokens: self.agent_session_max_context_tokens,
            summarizer: match self.agent_session_summarizer {
                super::SummarizerSetting::Extractive => agent::session::Summarizer::Extractive,
                super::SummarizerSetting::Model => agent::session::Summarizer::Model,
            },
        }
    }

    /// The MCP endpoint for TOOL_ROUTING=mcp: MCP_URL, else this server's own /mcp on `local`.
    pub fn mcp_endpoint(&self, local: std::net::SocketAddr) -> agent::McpEndpoint {
        match &self.mcp_url {
            Some(url) if !url.trim().is_empty() => {
                agent::McpEndpoint::configured(url.trim(), local)
            }
            _ => agent::McpEndpoint::local(local),
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

/// What the router and its handlers read: typed, so nothing past the composition root sees the
/// raw settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_request_body_bytes: usize,
    /// REQUEST_TIMEOUT_SECONDS: the short routes' deadline, and the time a body may take.
    pub request_timeout: Duration,
    pub retry_after_format: RetryAfterFormat,
    pub tool_routing: ToolRouting,
    /// Whether SUBSCRIPTION_KEYS is set (the status page says so).
    pub keys_required: bool,
}

/// What the `/mcp` route reads.
#[derive(Debug, Clone)]
pub struct McpSettings {
    /// MCP_FAST_PATH=on.
    pub fast_path: bool,
    /// ALLOWED_HOSTS as given (the route adds the loopback names).
    pub allowed_hosts: Vec<String>,
    /// ALLOWED_ORIGINS as given (empty: loopback pages only).
    pub allowed_origins: Vec<String>,
    pub max_request_body_bytes: usize,
    pub request_timeout: Duration,
}

/// The connection settings (see [`crate::connections`]).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub retry_after_format: RetryAfterFormat,
}

/// What telemetry reads: logs, the access log, and OTLP export when an endpoint is set.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    pub log_format: super::LogFormat,
    pub access_log: bool,
    pub otlp: Option<OtlpSettings>,
}

/// OpenTelemetry export over OTLP/HTTP (protobuf).
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// The collector's base URL; `/v1/traces` and `/v1/metrics` go under it.
    pub endpoint: String,
    pub headers: Vec<(String, secrecy::SecretString)>,
    pub timeout: Duration,
    /// `service.name` and the rest of the resource but the instance id, which is the server's.
    pub resource: Vec<(String, String)>,
    pub sampler: SamplerSetting,
    pub span_delay: Duration,
    pub span_queue: usize,
    pub metric_interval: Duration,
}

/// `OTEL_TRACES_SAMPLER` with its ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerSetting {
    /// Follow a caller's sampled flag; the root sampler decides only for new traces.
    pub parent_based: bool,
    pub root: RootSampler,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RootSampler {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
}

impl Settings {
    /// What telemetry reads.
    pub fn telemetry_settings(&self) -> TelemetrySettings {
        TelemetrySettings {
            log_format: self.log_format,
            access_log: self.access_log == Switch::On,
            otlp: self
                .otel_exporter_otlp_endpoint
                .as_ref()
                .map(|endpoint| OtlpSettings {
                    endpoint: endpoint.clone(),
                    headers: self
                        .otel_exporter_otlp_headers
                        .as_ref()
                        .map(|h| h.0.clone())
                        .unwrap_or_default(),
                    timeout: Duration::from_millis(self.otel_exporter_otlp_timeout),
                    resource: self.resource_attributes(),
                    sampler: self.sampler(),
                    span_delay: Duration::from_millis(self.otel_bsp_schedule_delay),
                    span_queue: self.otel_bsp_max_queue_size as usize,
                    metric_interval: Duration::from_millis(self.otel_metric_export_interval),
                }),
        }
    }

    /// OTEL_RESOURCE_ATTRIBUTES, then what tollgate knows, which wins: the service's name and
    /// version, and App Service's site and slot when it runs there.
    fn resource_attributes(&self) -> Vec<(String, String)> {
        let mut attributes = self
            .otel_resource_attributes
            .as_ref()
            .map(|a| a.0.clone())
            .unwrap_or_default();
        let mut ours = vec![
            ("service.name", self.otel_service_name.clone()),
            ("service.version", env!("CARGO_PKG_VERSION").to_owned()),
        ];
        let site = self
            .website_site_name
            .as_ref()
            .filter(|s| !s.trim().is_empty());
        if let Some(site) = site {
            ours.push(("cloud.provider", "azure".to_owned()));
            ours.push(("cloud.platform", "azure.app_service".to_owned()));
            ours.push(("azure.app_service.site.name", site.trim().to_owned()));
        }
        let slot = self
            .website_slot_name
            .as_ref()
            .filter(|s| !s.trim().is_empty());
        if let Some(slot) = slot {
            ours.push(("azure.app_service.slot.name", slot.trim().to_owned()));
        }
        for (key, value) in ours {
            attributes.retain(|(existing, _)| existing != key);
            attributes.push((key.to_owned(), value));
        }
        attributes
    }

    fn sampler(&self) -> SamplerSetting {
        let name = self.otel_traces_sampler.as_str();
        let ratio = f64::from(self.otel_traces_sampler_arg.unwrap_or(1.0));
        let root = match name.trim_start_matches("parentbased_") {
            "always_off" => RootSampler::AlwaysOff,
            "traceidratio" => RootSampler::Ratio(ratio),
            _ => RootSampler::AlwaysOn,
        };
        SamplerSetting {
            parent_based: name.starts_with("parentbased_"),
            root,
        }
    }

    /// Settles the instance id (INSTANCE_ID, else WEBSITE_INSTANCE_ID, else a UUID made now),
    /// so telemetry started before the server reports the id the server will.
    pub fn settle_instance_id(&mut self) {
        if self
            .instance_id
            .as_deref()
            .is_none_or(|id| id.trim().is_empty())
        {
            self.instance_id = Some(self.instance().id);
        }
    }
}

/// The OAuth resource server's settings (OAUTH_*, PUBLIC_URL).
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// PUBLIC_URL, without a trailing `/`.
    pub public_url: String,
    pub issuers: Vec<String>,
    /// OAUTH_AUDIENCE, else PUBLIC_URL + `/mcp`.
    pub audiences: Vec<String>,
    pub subscription_claims: Vec<String>,
    pub scope_prefix: String,
}

/// Whether an upstream is known to serve the Responses API: Azure OpenAI, or OpenAI's own API.
fn speaks_responses(backend: &BackendConfig) -> bool {
    match backend {
        BackendConfig::Azure { .. } => true,
        BackendConfig::OpenAi { base_url, .. } => {
            let after_scheme = base_url.split_once("://").map_or("", |(_, rest)| rest);
            after_scheme.split(['/', ':', '?']).next() == Some("api.openai.com")
        }
        // Not a model upstream: it never takes a model call.
        BackendConfig::ContentSafety { .. } => false,
        // Only `/v1/messages` goes there.
        BackendConfig::Anthropic { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn native(flags: &[&str]) -> bool {
        Settings::from_args(flags.iter().copied())
            .unwrap()
            .responses_native()
    }

    #[test]
    fn responses_go_native_to_openai_and_azure_and_are_translated_elsewhere() {
        assert!(native(&["--openai-api-key", "k"]));
        assert!(native(&["--openai-base-url", "https://api.openai.com/v1"]));
        assert!(native(&[
            "--azure-openai-endpoint",
            "https://x.openai.azure.com"
        ]));
        assert!(!native(&["--openai-base-url", "http://localhost:8080/v1"]));
        assert!(!native(&[
            "--openai-base-url",
            "https://api.openai.com/v1,http://127.0.0.1:11434/v1"
        ]));
        assert!(!native(&[]));
        let local = "http://localhost:8080/v1";
        assert!(native(&[
            "--openai-base-url",
            local,
            "--responses-upstream",
            "native"
        ]));
        assert!(!native(&[
            "--openai-api-key",
            "k",
            "--responses-upstream",
            "translate"
        ]));
        assert!(Settings::from_args(["--responses-upstream", "sometimes"]).is_err());
    }
}
