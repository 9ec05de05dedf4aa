//! The `loadtest` command line.
//!
//! `loadtest mock-upstream …` serves the mock model. The top-level load generator mode
//! (`loadtest --base-url URL …`) adds its arguments to [`Cli`] next to the optional subcommand.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::mock_upstream::{DEFAULT_EMBEDDING_DIMS, DEFAULT_MODEL, MockOptions};

/// Load testing tools for tollgate.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a fast, deterministic OpenAI-compatible stand-in model under /v1 (chat completions
    /// with tool calls and streaming, embeddings, GET /v1/models) and Azure deployment routes.
    MockUpstream(MockUpstreamArgs),
}

#[derive(Debug, Clone, Args)]
pub struct MockUpstreamArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free port; the address is printed on stdout).
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// Latency added before every chat and embeddings answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Answer every N-th chat request with 429 and `Retry-After: 1`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub fail_429_every: Option<u32>,
    /// Answer every N-th chat request with 500.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub fail_500_every: Option<u32>,
    /// Make every N-th chat request slow (see --slow-ms).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub slow_every: Option<u32>,
    /// Extra delay of the slow requests, in milliseconds.
    #[arg(long, value_name = "M", default_value_t = 1000)]
    pub slow_ms: u64,
    /// Model name reported when a request names none.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Dimensions of the embeddings when a request asks for none.
    #[arg(long, default_value_t = DEFAULT_EMBEDDING_DIMS)]
    pub embedding_dims: usize,
}

impl MockUpstreamArgs {
    /// The mock's options. Requests are not recorded: the server may run for a long time.
    pub fn options(&self) -> MockOptions {
        MockOptions {
            latency: Duration::from_millis(self.latency_ms),
            fail_429_every: self.fail_429_every,
            fail_500_every: self.fail_500_every,
            slow_every: self.slow_every,
            slow: Duration::from_millis(self.slow_ms),
            embedding_dims: self.embedding_dims,
            model: self.model.clone(),
            record_requests: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, error::ErrorKind};

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn mock_upstream_help_parses() {
        let err = Cli::try_parse_from(["loadtest", "mock-upstream", "--help"]).err();
        assert_eq!(err.map(|err| err.kind()), Some(ErrorKind::DisplayHelp));
    }

    #[test]
    fn mock_upstream_flags_become_options() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from([
            "loadtest",
            "mock-upstream",
            "--port",
            "0",
            "--latency-ms",
            "5",
            "--fail-429-every",
            "3",
            "--slow-every",
            "2",
            "--slow-ms",
            "40",
        ])?;
        let Some(Command::MockUpstream(args)) = cli.command else {
            panic!("expected the mock-upstream subcommand");
        };
        assert_eq!(args.port, 0);
        assert_eq!(args.host, "127.0.0.1");
        let options = args.options();
        assert_eq!(options.latency, Duration::from_millis(5));
        assert_eq!(options.fail_429_every, Some(3));
        assert_eq!(options.fail_500_every, None);
        assert_eq!(options.slow_every, Some(2));
        assert_eq!(options.slow, Duration::from_millis(40));
        assert!(!options.record_requests);
        Ok(())
    }

    #[test]
    fn zero_failure_period_is_refused() {
        assert!(
            Cli::try_parse_from(["loadtest", "mock-upstream", "--fail-500-every", "0"]).is_err()
        );
    }

    #[test]
    fn no_subcommand_is_allowed_for_the_load_generator() -> Result<(), clap::Error> {
        assert!(Cli::try_parse_from(["loadtest"])?.command.is_none());
        Ok(())
    }
}
