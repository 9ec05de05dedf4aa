//! The `loadtest` binary: parses arguments, binds, and runs.

use std::{io::Write as _, process::ExitCode};

use clap::Parser as _;
use loadtest::{
    cli::{Cli, Command, MockUpstreamArgs},
    mock_upstream::MockUpstream,
};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::MockUpstream(args)) => match mock_upstream(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("loadtest mock-upstream: {err}");
                ExitCode::FAILURE
            }
        },
        None => {
            eprintln!(
                "loadtest: the load generator is not available yet; see `loadtest mock-upstream --help`"
            );
            ExitCode::from(2)
        }
    }
}

async fn mock_upstream(args: MockUpstreamArgs) -> std::io::Result<()> {
    let listener = TcpListener::bind((args.host.as_str(), args.port)).await?;
    let addr = listener.local_addr()?;
    {
        // The address on stdout, so scripts using --port 0 can read it.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "mock upstream listening on http://{addr}/v1")?;
        stdout.flush()?;
    }
    tracing::info!(%addr, options = ?args.options(), "mock upstream serving");
    MockUpstream::serve(listener, args.options(), shutdown_signal()).await
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("mock upstream shutting down");
}
