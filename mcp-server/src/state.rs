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
    Gateway, GatewayError, MemoryStore, StateStore, pipeline, shared::RedisState,
};
use metrics_exporter_prometheus::PrometheusHandle;
use tools::Instance;

use crate::{
    auth::{Authenticator, KeyChecks},
    config::{HttpSettings, McpSettings, Settings, ToolRouting},
    mcp::{limits::McpLimits, traffic::McpTraffic},
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
    pub started: Instant,
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
        let authenticator = Arc::new(Authenticator::new(
            settings.subscription_keys.as_ref(),
            settings.admin_key.clone(),
        ));
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
        let mcp_traffic = Arc::new(McpTraffic::new(McpLimits::new(
            settings.mcp_rate_limit,
            &settings.mcp_tool_rate_limits.0,
        )));
        Ok(Self {
            http: settings.http_settings(),
            mcp: settings.mcp_settings(),
            instance,
            authenticator,
            gateway,
            agent,
            prometheus,
            mcp_traffic,
            started: Instant::now(),
        })
    }
}

/// The Redis connection when REDIS_URL is set: one for the gateway and the agent's sessions.
fn redis(settings: &Settings) -> Result<Option<Arc<RedisState>>, GatewayError> {
    settings
        .redis_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|url| RedisState::connect(url).map_err(GatewayError::Store))
        .transpose()
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

/// Lets the key extractors ([`crate::auth::UsageViewer`]) reach the authenticator without
/// knowing the state.
impl KeyChecks for Arc<AppState> {
    fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }
}
