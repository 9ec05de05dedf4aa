//! Load testing tools for tollgate.
//!
//! The mock OpenAI-compatible upstream lives in its own crate, `mock-upstream`; the
//! `loadtest mock-upstream` subcommand only parses flags and serves it.
//!
//! # Layout
//!
//! - The load generator (`loadtest --base-url URL …`, or [`run`] from Rust):
//!   - [`runner`]: one run — workers over a pooled HTTP client, a warmup phase, then the measured
//!     steady phase — and its [`RunConfig`].
//!   - [`target`]: what a run drives (`agent`, `gateway` or `mcp`): URL, request body, and how
//!     an answer is read (cache hits and misses, serving instance, failure).
//!   - [`prompts`]: the built-in pool of paraphrased prompts, and prompts files.
//!   - [`stats`]: the summary maths, pure: latency percentiles, rates, hit ratio ([`Summary`]).
//!   - [`report`]: the k6-style text summary.
//! - [`cli`]: the command line definition of the `loadtest` binary (`src/main.rs` only parses,
//!   binds and runs).
//!
//! ```no_run
//! # async fn demo() -> Result<(), loadtest::RunError> {
//! use std::time::Duration;
//!
//! let mut config = loadtest::RunConfig::new("http://127.0.0.1:8000");
//! config.warmup = Duration::from_secs(1);
//! config.duration = Duration::from_secs(3);
//! let summary = loadtest::run(config).await?;
//! assert!(summary.cache.hit_ratio > 0.3);
//! # Ok(())
//! # }
//! ```

pub mod cli;
pub mod prompts;
pub mod report;
pub mod runner;
pub mod stats;
pub mod target;

pub use runner::{RunConfig, RunError, run};
pub use stats::Summary;
pub use target::Target;
