//! What handlers share: the crates' entry points and the typed settings the HTTP layer reads.
//!
//! Built once by [`AppState::new`] from the parsed settings; handlers depend on this module and
//! the router ([`crate::http`]) depends on the handlers, so no module depends back on the router.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use agent::{Agent, McpTools, ToolRouter};
use gateway_client::{
    Gateway, GatewayError, MemoryStore, StateStore, pipeline, shared::RedisState,
};
use metrics_exporter_prometheus::PrometheusHandle;
use tools::Instance;

use crate::{
    auth::{Authenticator, KeyChecks},
    config::{HttpSettings, McpSettings, Settings, Switch, ToolRouting},
    mcp::{limits::McpLimits, traffic::McpTraffic},
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
    /// The request layer's telemetry: spans, continued traces, the access log.
    pub observer: RequestObserver,
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
        let gateway = Arc::new(gateway(settings, &instance.id)?);
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
        let agent = Arc::new(Agent::new(gateway.clone(), router, settings.agent_config()));
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
            observer: RequestObserver {
                access_log: settings.access_log == Switch::On,
                ..RequestObserver::default()
            },
            started: Instant::now(),
        })
    }
}

/// The gateway on Redis when REDIS_URL is set, else on in-memory state.
fn gateway(settings: &Settings, instance_id: &str) -> Result<Gateway, GatewayError> {
    let config = settings.gateway_config();
    let parts = match settings
        .redis_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        Some(url) => {
            let redis = RedisState::connect(url.trim()).map_err(GatewayError::Store)?;
            pipeline::shared_parts(&config, redis, instance_id)?
        }
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
