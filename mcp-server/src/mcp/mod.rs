//! `/mcp`: rmcp's streamable-HTTP service, stateless with JSON answers, behind our limits.

mod handler;
pub mod limits;
pub mod traffic;

use std::sync::Arc;

use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::never::NeverSessionManager,
};
use tokio_util::sync::CancellationToken;
use tools::Instance;

pub use handler::TollgateMcp;

use crate::config::Settings;

/// The MCP endpoint: no sessions, JSON answers, Host/Origin checked against the allowlists.
pub fn service(
    settings: &Settings,
    instance: Arc<Instance>,
    shutdown: CancellationToken,
) -> StreamableHttpService<TollgateMcp, NeverSessionManager> {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_cancellation_token(shutdown)
        .with_max_request_body_bytes(settings.max_request_body_bytes)
        .with_allowed_hosts(settings.allowed_hosts.iter().map(|h| h.trim().to_owned()))
        .with_allowed_origins(settings.allowed_origins.iter().map(|o| o.trim().to_owned()));
    // An Origin header means a browser; with no origins allowed, refuse every browser origin.
    config = config.enforce_origin_validation();
    let handler = TollgateMcp::new(instance);
    StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}
