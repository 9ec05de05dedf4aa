//! What handlers share: the crates' entry points and the typed settings the HTTP layer reads.
//!
//! Built once by [`AppState::new`] from the parsed settings; handlers depend on this module and
//! the router ([`crate::http`]) depends on the handlers, so no module depends back on the router.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use agent::{
    Agent, McpTools, Sessions, ToolRouter,
    session::{MemorySessions, RedisSessions, SessionStore},
};
use gateway_client::{
    Gateway, GatewayError, MemoryStore, StateStore, pipeline,
    shared::{
        RedisState,
        credentials::{CredentialFeed, EntraRedisCredentials},
    },
};
use metrics_exporter_prometheus::PrometheusHandle;
use tools::Instance;

use crate::{
    auth::{Authenticator, KeyChecks},
    config::{HttpSettings, McpSettings, Settings, Switch, ToolRouting},
    mcp::{limits::McpLimits, traffic::McpTraffic},
    oauth::{OAuth, scopes::ToolScopes},
    telemetry::RequestObserver,
};

/// What handlers share.
pub struct AppState {
    pub http: HttpSettings,
    pub mcp: McpSettings,
    pub instance: Arc<Instance>,
    pub authenticator: Arc<Authenticator>,
    pub gateway: Arc<Gateway>,
    pub agent: Arc<Agent>,
    pub prometheus: PrometheusHandle,
    pub mcp_traffic: Arc<McpTraffic>,
    /// MCP_TOOL_SCOPES: which scope each tool needs.
    pub tool_scopes: Arc<ToolScopes>,
    /// The OAuth resource server, when OAUTH_ISSUERS is set.
    pub oauth: Option<Arc<OAuth>>,
    /// The request layer's telemetry: spans, continued traces, the access log.
    pub observer: RequestObserver,
    pub started: Instant,
    /// `/v1/responses` goes to the upstream's own Responses API (RESPONSES_UPSTREAM).
    pub responses_native: bool,
    /// What was built before serving (tokenizers, tables, the tool catalog), by name: `/health`
    /// reports it, and the first calls find it ready.
    pub warmed: Vec<&'static str>,
}

impl AppState {
    /// `local` is the address the server listens on: the agent's default MCP endpoint.
    pub fn new(
        settings: &Settings,
        prometheus: PrometheusHandle,
        local: SocketAddr,
    ) -> Result<Self, GatewayError> {
        let instance = Arc::new(settings.instance());
        let redis = redis(settings)?;
        let gateway = Arc::new(gateway(settings, redis.clone(), &instance.id)?);
        let tool_scopes = Arc::new(ToolScopes::new(
            settings.mcp_tool_scopes.0.clone(),
            settings.oauth_scope_prefix.trim().to_owned(),
        ));
        let oauth = settings
            .oauth_settings()
            .map(|oauth| OAuth::new(&oauth, tool_scopes.supported()).map(Arc::new))
            .transpose()
            .map_err(GatewayError::Startup)?;
        let authenticator = Arc::new(
            Authenticator::new(
                settings.subscription_keys.as_ref(),
                settings.admin_key.clone(),
            )
            .with_oauth(oauth.clone())
            .with_stats(gateway.stats().clone()),
        );
        let router = match settings.tool_routing {
            ToolRouting::InProcess => ToolRouter::InProcess(instance.clone()),
            ToolRouting::Mcp => ToolRouter::Mcp(McpTools::new(
                settings.mcp_endpoint(local),
                settings.agent_subscription_key.clone(),
            )),
        };
        // Sessions live in the same state backend as budgets: this process, or the same Redis.
        let session_store: Arc<dyn SessionStore> = match redis {
            Some(redis) => Arc::new(RedisSessions::new(redis)),
            None => Arc::new(MemorySessions::new()),
        };
        let sessions = Sessions::new(session_store, settings.session_settings(), &instance.id);
        let agent = Arc::new(Agent::new(
            gateway.clone(),
            router,
            settings.agent_config(),
            sessions,
        ));
        let mcp_traffic = Arc::new(McpTraffic::new(
            McpLimits::new(settings.mcp_rate_limit, &settings.mcp_tool_rate_limits.0),
            gateway.stats().clone(),
        ));
        let warmed = warm_up(&gateway);
        Ok(Self {
            warmed,
            http: settings.http_settings(),
            mcp: settings.mcp_settings(),
            instance,
            authenticator,
            gateway,
            agent,
            prometheus,
            mcp_traffic,
            tool_scopes,
            oauth,
            observer: RequestObserver {
                access_log: settings.access_log == Switch::On,
                ..RequestObserver::default()
            },
            started: Instant::now(),
            responses_native: settings.responses_native(),
        })
    }
}

/// Builds now what the first model call or tool listing would otherwise build on its way.
fn warm_up(gateway: &Gateway) -> Vec<&'static str> {
    let mut warmed = gateway.warm_up();
    crate::mcp::warm();
    std::sync::LazyLock::force(&agent::instructions::TOOL_DEFINITIONS);
    warmed.push("tool_catalog");
    warmed
}

/// The Redis connection when REDIS_URL is set: one for the gateway and the agent's sessions.
fn redis(settings: &Settings) -> Result<Option<Arc<RedisState>>, GatewayError> {
    match settings.redis_options().map_err(GatewayError::Startup)? {
        Some(mut options) => {
            options.credentials = redis_credentials(settings)?;
            RedisState::connect_with(options)
                .map(Some)
                .map_err(GatewayError::Store)
        }
        None => Ok(None),
    }
}

/// The gateway on Redis when REDIS_URL is set, else on in-memory state.
fn gateway(
    settings: &Settings,
    redis: Option<Arc<RedisState>>,
    instance_id: &str,
) -> Result<Gateway, GatewayError> {
    let config = settings.gateway_config();
    let parts = match redis {
        Some(redis) => pipeline::shared_parts(&config, redis, instance_id)?,
        None => {
            let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
            pipeline::parts(&config, store, None, None)?
        }
    };
    Gateway::from_parts(config, parts)
}

/// Credentials renewed on live Redis connections, when REDIS_ENTRA_AUTH is on: an Entra ID
/// token for Azure Redis as the password, the identity's object id as the user.
fn redis_credentials(settings: &Settings) -> Result<Option<CredentialFeed>, GatewayError> {
    if !settings.redis_entra_auth {
        return Ok(None);
    }
    let credential = pipeline::credential(&settings.gateway_config())?.ok_or_else(|| {
        GatewayError::Startup("REDIS_ENTRA_AUTH=true needs an Entra ID credential".to_owned())
    })?;
    let source = EntraRedisCredentials::new(credential);
    Ok(Some(CredentialFeed::start(Arc::new(source))))
}

/// Lets the key extractors ([`crate::auth::UsageViewer`]) reach the authenticator without
/// knowing the state.
impl KeyChecks for Arc<AppState> {
    fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn redis_entra_auth_takes_the_entra_credential() {
        let off = Settings::from_map(&[("REDIS_URL", "rediss://cache:6380")]).unwrap();
        assert!(redis_credentials(&off).unwrap().is_none());
        let on = Settings::from_map(&[
            ("REDIS_URL", "rediss://cache:6380"),
            ("REDIS_ENTRA_AUTH", "true"),
            ("AZURE_TENANT_ID", "tenant"),
            ("AZURE_CLIENT_ID", "client"),
            ("AZURE_CLIENT_SECRET", "secret"),
            ("AZURE_AUTHORITY_HOST", "http://127.0.0.1:9"),
        ])
        .unwrap();
        assert!(on.needs_entra());
        assert!(redis_credentials(&on).unwrap().is_some());
    }
}
