//! The `loadtest` command line.
//!
//! `loadtest --base-url URL …` drives tollgate (the load generator, [`LoadArgs`]);
//! `loadtest mock-upstream …` serves the mock model ([`MockUpstreamArgs`]).

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use mock_upstream::{DEFAULT_EMBEDDING_DIMS, DEFAULT_MODEL, MockOptions};

use crate::{prompts, runner::RunConfig, target::Target};

/// Load testing tools for tollgate: a load generator with a k6-style summary, and a mock
/// OpenAI-compatible upstream.
#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// The load generator's arguments.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// tollgate's base URL, e.g. http://127.0.0.1:8000.
    #[arg(long, env = "BASE_URL", required = true)]
    pub base_url: Option<String>,
    /// Subscription key, sent as Ocp-Apim-Subscription-Key.
    #[arg(long, env = "APIM_SUBSCRIPTION_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Length of the steady phase, the one that is measured (e.g. 30s, 2m, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Length of the warmup phase, not counted.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Prompts file: one prompt per line; blank lines and `#` comments are ignored.
    /// [default: a built-in pool of paraphrased questions]
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<PathBuf>,
    /// Print the summary as one JSON object on stdout (and no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Exit non-zero when the steady phase's error rate is above this (0–1).
    #[arg(long, default_value_t = 0.01)]
    pub max_error_rate: f64,
    /// What to drive: `agent` (POST /agent/chat), `gateway` (POST /v1/chat/completions) or
    /// `mcp` (POST /mcp, tools/call echo).
    #[arg(long, value_enum, default_value_t = Target::Agent)]
    pub target: Target,
    /// Deadline of one request.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

impl LoadArgs {
    /// The run these arguments describe (reads the prompts file, if any).
    pub fn run_config(&self) -> std::io::Result<RunConfig> {
        let prompts = match &self.prompts {
            Some(path) => prompts::load(path)?,
            None => prompts::builtin(),
        };
        let mut config = RunConfig::new(self.base_url.clone().unwrap_or_default());
        config.key = self.key.clone();
        config.target = self.target;
        config.warmup = self.warmup;
        config.duration = self.duration;
        config.concurrency = usize::try_from(self.concurrency).unwrap_or(1);
        config.prompts = prompts;
        config.timeout = self.timeout;
        config.progress = !self.json;
        Ok(config)
    }
}

/// A duration: a number with a unit (`ms`, `s`, `m`, `h`), or a plain number of seconds;
/// fractions are allowed (`1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 30s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("`{text}`: {error}"))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a fast, deterministic OpenAI-compatible stand-in model under /v1 (chat completions
    /// with tool calls and streaming, the Responses API, embeddings, GET /v1/models), Azure
    /// deployment routes, and an Anthropic-style POST /v1/messages (streaming, tools; a native
    /// Anthropic stand-in).
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
    fn the_load_generator_needs_a_base_url() {
        let err = Cli::try_parse_from(["loadtest"]).err();
        assert_eq!(
            err.map(|err| err.kind()),
            Some(ErrorKind::MissingRequiredArgument)
        );
    }

    #[test]
    fn load_flags_become_a_run_config() -> Result<(), Box<dyn std::error::Error>> {
        let cli = Cli::try_parse_from([
            "loadtest",
            "--base-url",
            "http://127.0.0.1:8000",
            "--key",
            "k1",
            "--duration",
            "3s",
            "--warmup",
            "500ms",
            "--concurrency",
            "4",
            "--target",
            "gateway",
            "--json",
            "--max-error-rate",
            "0.05",
        ])?;
        assert!(cli.command.is_none());
        let config = cli.load.run_config()?;
        assert_eq!(config.base_url, "http://127.0.0.1:8000");
        assert_eq!(config.key.as_deref(), Some("k1"));
        assert_eq!(config.duration, Duration::from_secs(3));
        assert_eq!(config.warmup, Duration::from_millis(500));
        assert_eq!(config.concurrency, 4);
        assert_eq!(config.target, Target::Gateway);
        assert_eq!(config.prompts, prompts::builtin());
        assert!(!config.progress, "--json hides the progress bar");
        assert!((cli.load.max_error_rate - 0.05).abs() < f64::EPSILON);
        Ok(())
    }

    #[test]
    fn load_defaults_match_the_contract() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from(["loadtest", "--base-url", "http://h"])?;
        assert_eq!(cli.load.duration, Duration::from_secs(30));
        assert_eq!(cli.load.warmup, Duration::from_secs(10));
        assert_eq!(cli.load.concurrency, 8);
        assert_eq!(cli.load.target, Target::Agent);
        assert_eq!(cli.load.timeout, Duration::from_secs(30));
        assert!((cli.load.max_error_rate - 0.01).abs() < f64::EPSILON);
        Ok(())
    }

    #[test]
    fn the_load_flags_do_not_mix_with_the_subcommand() {
        assert!(
            Cli::try_parse_from(["loadtest", "--base-url", "http://h", "mock-upstream"]).is_err()
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("").is_err());
    }
}
