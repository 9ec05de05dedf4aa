//! The `tollgate` binary: parse settings, bind, serve until Ctrl-C or SIGTERM (or run a
//! one-off command such as `cache-eval`).

use std::net::SocketAddr;

use mcp_server::{
    Settings, Telemetry, cache_eval, config::Command, connections::ConnectionThreads, healthcheck,
    serve_with, shutdown_signal,
};

/// Request handling allocates many small, short-lived buffers across threads; mimalloc's
/// thread-local free lists handle that pattern with less overhead than glibc's malloc, which
/// profiled at ~20% of the MCP hot path (see benchmarks/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let settings = Settings::from_env();
    // Connections are served on threads of their own (`ConnectionThreads`); this runtime
    // accepts them and runs what serves the whole process.
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(settings)),
        Err(error) => {
            eprintln!("tollgate: cannot start the async runtime: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(mut settings: Settings) -> std::process::ExitCode {
    // Before anything can build an HTTP client (reqwest is built without a default provider).
    gateway_client::tls::install_crypto_provider();
    match &settings.command {
        Some(Command::CacheEval(args)) => return cache_eval::run(&settings, args).await,
        Some(Command::Healthcheck) => return healthcheck::run(&settings).await,
        None => {}
    }
    settings.settle_instance_id();
    let instance_id = settings.instance_id.clone().unwrap_or_default();
    let telemetry = match Telemetry::install(&settings.telemetry_settings(), &instance_id) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("tollgate: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    mcp_server::connections::raise_open_file_limit(settings.connection_limits().max_connections);
    let addr = SocketAddr::new(settings.host, settings.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%addr, %error, "cannot listen");
            return std::process::ExitCode::FAILURE;
        }
    };
    let count = settings.worker_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let threads = match ConnectionThreads::start(count) {
        Ok(threads) => threads,
        Err(error) => {
            tracing::error!(%error, "cannot start the connection threads");
            return std::process::ExitCode::FAILURE;
        }
    };
    match serve_with(
        listener,
        settings,
        telemetry,
        shutdown_signal(),
        Some(threads),
    )
    .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}
