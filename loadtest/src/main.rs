//! The `loadtest` binary: parses arguments, binds, and runs.

use std::{io::Write as _, process::ExitCode};

use clap::Parser as _;
use loadtest::{
    cli::{Cli, Command, LoadArgs, MockUpstreamArgs},
    report,
};
use mock_upstream::MockUpstream;
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
        None => load(cli.load).await,
    }
}

/// The load generator: 0 when the error rate is within --max-error-rate, 1 when it is not,
/// 2 when the run could not start.
async fn load(args: LoadArgs) -> ExitCode {
    let config = match args.run_config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("loadtest: cannot read the prompts: {err}");
            return ExitCode::from(2);
        }
    };
    let summary = match loadtest::run(config).await {
        Ok(summary) => summary,
        Err(err) => {
            eprintln!("loadtest: {err}");
            return ExitCode::from(2);
        }
    };
    let printed = if args.json {
        serde_json::to_string(&summary)
            .map_err(std::io::Error::other)
            .and_then(|json| write_stdout(&format!("{json}\n")))
    } else {
        write_stdout(&report::render(&summary))
    };
    if let Err(err) = printed {
        eprintln!("loadtest: cannot print the summary: {err}");
        return ExitCode::from(2);
    }
    if summary.passes(args.max_error_rate) {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "loadtest: steady-phase error rate {:.2}% over {} requests is above the allowed {:.2}%",
            summary.error_rate * 100.0,
            summary.requests,
            args.max_error_rate * 100.0
        );
        ExitCode::FAILURE
    }
}

fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
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
