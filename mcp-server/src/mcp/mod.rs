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

/// Browser origins allowed when `ALLOWED_ORIGINS` is unset: this machine, any port.
const LOOPBACK_ORIGINS: &[&str] = &[
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://[::1]:*",
    "https://[::1]:*",
];

/// ALLOWED_HOSTS plus loopback names. A rebinding attack can't make a browser send a loopback
/// Host, and the agent's MCP routing calls this server on loopback whatever the public hostname.
fn allowed_hosts(settings: &Settings) -> Vec<String> {
    let mut hosts: Vec<String> = settings
        .allowed_hosts
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    for loopback in ["localhost", "127.0.0.1", "::1"] {
        if !hosts.iter().any(|h| h == loopback) {
            hosts.push(loopback.to_owned());
        }
    }
    hosts
}

/// The MCP endpoint: no sessions, JSON answers, Host/Origin checked against the allowlists.
pub fn service(
    settings: &Settings,
    instance: Arc<Instance>,
    shutdown: CancellationToken,
) -> StreamableHttpService<TollgateMcp, NeverSessionManager> {
    // Without ALLOWED_ORIGINS, only pages served from this machine may call /mcp from a
    // browser; any other Origin is refused, as DNS-rebinding protection requires.
    let origins: Vec<String> = if settings.allowed_origins.is_empty() {
        LOOPBACK_ORIGINS.iter().map(|o| (*o).to_owned()).collect()
    } else {
        settings
            .allowed_origins
            .iter()
            .map(|o| o.trim().to_owned())
            .collect()
    };
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_cancellation_token(shutdown)
        .with_max_request_body_bytes(settings.max_request_body_bytes)
        .with_allowed_hosts(allowed_hosts(settings))
        .with_allowed_origins(origins)
        .enforce_origin_validation();
    let handler = TollgateMcp::new(instance);
    StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}
