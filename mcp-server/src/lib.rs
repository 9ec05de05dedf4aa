//! tollgate's HTTP surface and composition root.
//!
//! Layout:
//! - [`config`]: every setting, parsed once.
//! - [`cache_eval`]: `tollgate cache-eval`, the semantic cache measured on labelled pairs.
//! - [`healthcheck`]: `tollgate healthcheck`, a running server's /health asked (containers).
//! - [`connections`]: the HTTP/1.1 server: connection limit, header-read and idle timeouts.
//! - [`state`]: [`state::AppState`], what handlers share, with the typed settings they read.
//! - [`http`]: the router, its layers and the small status handlers.
//! - [`oauth`]: the OAuth 2.1 resource server: access tokens from OAUTH_ISSUERS, the
//!   protected-resource metadata, MCP_TOOL_SCOPES.
//! - [`auth`]: subscription keys and tokens, and the [`auth::Caller`] of each request.
//! - [`mcp`]: the MCP endpoint (rmcp) and its rate limits and metrics.
//! - [`gateway_routes`]: the OpenAI-compatible gateway endpoints.
//! - [`messages_routes`]: the Anthropic Messages endpoints.
//! - [`responses_routes`]: the OpenAI Responses API over the same gateway.
//! - [`model_routes`]: the models served (`/v1/models`), in OpenAI's or Anthropic's shape.
//! - [`admin`]: the chargeback report.
//! - [`admin`]: the chargeback report and the dashboard's figures (`/admin/stats`).
//! - [`dashboard`]: `/dashboard`, the operator's page, compiled in.
//! - [`agent_routes`]: `/agent/chat` and its streaming twin.
//! - [`error`]: the one HTTP error type and its JSON envelope.
//! - [`retry_after`]: `Retry-After` in the configured format.
//! - [`telemetry`]: logs, the access log, the Prometheus registry, OpenTelemetry export.
//!
//! [`serve`] takes a bound listener and a shutdown future, so tests bind port 0 and drive a
//! real socket.

pub mod admin;
pub mod agent_routes;
pub mod auth;
pub mod cache_eval;
pub mod config;
pub mod connections;
pub mod dashboard;
pub mod error;
pub mod gateway_routes;
pub mod healthcheck;
pub mod http;
pub mod mcp;
pub mod messages_routes;
pub mod model_routes;
pub mod oauth;
pub mod responses_routes;
pub mod retry_after;
pub mod state;
mod status_page;
pub mod telemetry;

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Settings;
pub use telemetry::Telemetry;

/// Serves the app on `listener` until `shutdown` completes, then drains in-flight requests for
/// at most the configured grace period. Its telemetry is its own ([`Telemetry::scoped`], no
/// logs): several servers can run in one process, as tests run them. Connections are served on
/// `threads`, or, without them, on the runtime this runs on.
pub async fn serve(
    listener: TcpListener,
    mut settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    threads: Option<connections::ConnectionThreads>,
) -> std::io::Result<()> {
    settings.settle_instance_id();
    let instance_id = settings.instance_id.clone().unwrap_or_default();
    let telemetry = Telemetry::scoped(&settings.telemetry_settings(), &instance_id, None)
        .map_err(std::io::Error::other)?;
    serve_with(listener, settings, telemetry, shutdown, threads).await
}

/// [`serve`] with the telemetry given: the binary's process-wide one, or a test's that logs
/// to a buffer. `settings`' instance id should be settled
/// ([`Settings::settle_instance_id`]) before the telemetry was started, so both report it.
pub async fn serve_with(
    listener: TcpListener,
    settings: Settings,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()> + Send + 'static,
    threads: Option<connections::ConnectionThreads>,
) -> std::io::Result<()> {
    let prometheus = telemetry::prometheus();
    let upkeep = tokio::spawn(telemetry::run_metrics_upkeep(prometheus.clone()));
    let grace = settings.shutdown_grace();
    let local = listener.local_addr()?;
    let mut state = state::AppState::new(&settings, prometheus, local)
        .map_err(|e| std::io::Error::other(format!("cannot start the gateway: {e}")))?;
    state.observer = telemetry.observer();
    let state = Arc::new(state);

    // Idle per-key limiter state is dropped periodically so memory tracks active keys.
    let limits = state.mcp_traffic.clone();
    let forget_idle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            limits.forget_idle_keys();
        }
    });

    // With shared state, this instance's dashboard figures are published for the others.
    let gateway = state.gateway.clone();
    let instance_id = state.instance.id.clone();
    let publish_stats = tokio::spawn(async move {
        let mut tick = tokio::time::interval(gateway_client::shared::PUBLISH_EVERY);
        loop {
            tick.tick().await;
            gateway.publish_stats(&instance_id).await;
        }
    });

    let cancel = CancellationToken::new();
    let limits = settings.connection_limits();
    let app = http::app(state, cancel.clone());
    let addr = listener.local_addr()?;
    tracing::info!(%addr, mcp = %format!("http://{addr}/mcp"), "tollgate is serving");

    let draining = cancel.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        draining.cancel();
    });
    let server =
        connections::serve_connections(listener, app, limits, cancel.clone(), threads.as_ref());

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
    publish_stats.abort();
    telemetry.shutdown().await;
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

/// The modules' dependency order, checked from their sources: each module may use only the
/// modules listed before it, so there are no cycles. Handlers depend on [`state`], the router
/// ([`http`]) on the handlers, and nothing depends back on the router.
#[cfg(test)]
mod module_order {
    #![allow(clippy::unwrap_used)]

    /// Lowest first. `mcp` is one module (its files may use each other).
    const LAYERS: &[&str] = &[
        "config",
        "retry_after",
        "telemetry",
        "error",
        "connections",
        "oauth",
        "auth",
        "mcp",
        "state",
        "status_page",
        "gateway_routes",
        "messages_routes",
        "responses_routes",
        "model_routes",
        "agent_routes",
        "admin",
        "dashboard",
        "http",
        "cache_eval",
        "healthcheck",
    ];

    fn source_of(module: &str) -> String {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let file = src.join(format!("{module}.rs"));
        if file.exists() {
            return std::fs::read_to_string(file).unwrap();
        }
        std::fs::read_dir(src.join(module))
            .unwrap()
            .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
            .collect()
    }

    /// The source without comments: a doc link is not a dependency.
    fn code_of(module: &str) -> String {
        source_of(module)
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The crate modules a source names, as `crate::name` or inside `use crate::{…}`.
    fn uses(source: &str) -> Vec<&'static str> {
        let mut named = Vec::new();
        for (index, _) in source.match_indices("crate::") {
            let rest = &source[index + "crate::".len()..];
            let scope = if rest.starts_with('{') {
                &rest[..rest.find("};").unwrap_or(rest.len())]
            } else {
                rest
            };
            for module in LAYERS {
                let at_start = scope.starts_with(module)
                    && !scope[module.len()..]
                        .starts_with(|c: char| c == '_' || c.is_alphanumeric());
                let in_braces = scope.starts_with('{')
                    && scope
                        .split(|c: char| !(c == '_' || c.is_alphanumeric()))
                        .any(|word| word == *module);
                if (at_start || in_braces) && !named.contains(module) {
                    named.push(*module);
                }
            }
        }
        named
    }

    #[test]
    fn every_module_uses_only_modules_below_it() {
        for (level, module) in LAYERS.iter().enumerate() {
            for used in uses(&code_of(module)) {
                let used_level = LAYERS.iter().position(|m| *m == used).unwrap();
                assert!(
                    used_level < level || used == *module,
                    "`{module}` uses `{used}`, which is not below it: a cycle in the making"
                );
            }
        }
    }

    #[test]
    fn the_check_sees_both_forms_of_use() {
        let source = "use crate::{auth::Caller, error::ApiError};\nlet x = crate::state::AppState;";
        assert_eq!(uses(source), ["error", "auth", "state"]);
    }
}
