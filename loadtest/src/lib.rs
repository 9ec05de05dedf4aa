//! Load testing tools for tollgate.
//!
//! # Layout
//!
//! - [`mock_upstream`]: a scripted, deterministic OpenAI-compatible model server (chat completions
//!   with tool calls and streaming, embeddings, `GET /v1/models`, Azure deployment-style routes).
//!   Integration tests start it on port 0 with [`MockUpstream::start`] and script replies with
//!   [`MockUpstream::push`]; the `loadtest mock-upstream` subcommand serves it for demos and
//!   benchmarks.
//!   - `mock_upstream/reply.rs`: [`Reply`], the scripted behaviours.
//!   - `mock_upstream/script.rs`: the default "model" used when no reply is queued.
//!   - `mock_upstream/wire.rs`: the exact OpenAI response shapes, SSE framing and error bodies.
//!   - `mock_upstream/embed.rs`: deterministic hashed embeddings.
//! - [`cli`]: the command line definition of the `loadtest` binary (`src/main.rs` only parses,
//!   binds and runs).

pub mod cli;
pub mod mock_upstream;

pub use mock_upstream::{MockOptions, MockUpstream, RecordedRequest, Reply};
