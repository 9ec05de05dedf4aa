//! tollgate's HTTP surface and composition root.
//!
//! Layout:
//! - [`config`]: every setting, parsed once.
//! - [`cache_eval`]: `tollgate cache-eval`, the semantic cache measured on labelled pairs.
//! - [`connections`]: the HTTP/1.1 server: connection limit, header-read and idle timeouts.
//! - [`http`]: the router, its layers and the small status handlers.
//! - [`auth`]: subscription keys and the [`auth::Caller`] of each request.
//! - [`mcp`]: the MCP endpoint (rmcp) and its rate limits and metrics.
//! - [`gateway_routes`]: the OpenAI-compatible gateway endpoints.
//! - [`admin`]: the chargeback report.
//! - [`agent_routes`]: `/agent/chat` and its streaming twin.
//! - [`error`]: the one HTTP error type and its JSON envelope.
//! - [`retry_after`]: `Retry-After` in the configured format.
//! - [`telemetry`]: logging and the Prometheus registry.
//!
//! [`serve`] takes a bound listener and a shutdown future, so tests bind port 0 and drive a
//! real socket.

pub mod admin;
pub mod agent_routes;
pub mod auth;
pub mod cache_eval;
pub mod config;
pub mod connections;
pub mod error;
pub mod gateway_routes;
pub mod http;
pub mod mcp;
pub mod retry_after;
mod status_page;
pub mod telemetry;

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Settings;

/// Serves the app on `listener` until `shutdown` completes, then drains in-flight requests for
/// at most the configured grace period.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let prometheus = telemetry::prometheus();
    let upkeep = tokio::spawn(telemetry::run_metrics_upkeep(prometheus.clone()));
    let grace = settings.shutdown_grace();
    let local = listener.local_addr()?;
    let state = Arc::new(
        http::AppState::new(settings, prometheus, local)
            .map_err(|e| std::io::Error::other(format!("cannot start the gateway: {e}")))?,
    );

    // Idle per-key limiter state is dropped periodically so memory tracks active keys.
    let limits = state.mcp_traffic.clone();
    let forget_idle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            limits.forget_idle_keys();
        }
    });

    let cancel = CancellationToken::new();
    let limits = state.settings.connection_limits();
    let app = http::app(state, cancel.clone());
    let addr = listener.local_addr()?;
    tracing::info!(%addr, mcp = %format!("http://{addr}/mcp"), "tollgate is serving");

    let draining = cancel.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        draining.cancel();
    });
    let server = connections::serve_connections(listener, app, limits, cancel.clone());

    tokio::select! {
        () = server => {},
        () = async {
            cancel.cancelled().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "in-flight requests outlived the shutdown grace period");
        }
    }
    upkeep.abort();
    forget_idle.abort();
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C still works");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
