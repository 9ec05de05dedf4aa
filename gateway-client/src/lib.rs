//! Every model call tollgate makes, and the policies around it.
//!
//! Only this crate talks to the model API. The agent's calls and the OpenAI-compatible gateway
//! endpoint both come through [`Gateway`], so the same policies apply to both.
//!
//! Layout:
//! - [`pipeline`]: the policies in the order they run (read it first): `admission`, `call`,
//!   `settlement`, `relay`.
//! - [`protocol`]: wire protocols at the edge ([`Protocol`]) and the neutral call form
//!   ([`ModelCall`]); [`OpenAiChat`] for the chat-completions routes, [`protocol::anthropic`]
//!   for the Anthropic Messages routes.
//! - [`model_api`]: the [`ModelApi`] seam (whole, stream) the pipeline calls the model through.
//! - [`policy`]: one module per policy: `governance` (max_tokens), `budget` (tokens) and
//!   `content_safety` (blocked terms, patterns, presets, moderation; off by default).
//! - [`upstream`]: backend pool, retries, failover, circuit breakers, SSE parsing.
//! - [`store`]: the [`StateStore`] trait behind budgets and the usage ledger, and its in-process
//!   implementation.
//! - [`assemble`]: a streamed answer put back together.
//! - [`cache`]: the cache seam ([`ResponseCache`]); [`semantic`]: the semantic cache behind it.
//! - [`entra`]: Microsoft Entra ID tokens (service principal, workload identity, managed
//!   identity) for the Azure backends configured without keys.
//! - [`shared`]: budgets, ledger and cache shared by several instances through Redis.
//! - [`tokens`]: token counting with the model's tokenizer.
//! - [`names`]: model and deployment names: what is accepted, what labels metrics.
//! - [`stats`]: per-minute figures for the last hour (`/admin/stats`, the dashboard).
//! - [`telemetry`]: the access log's per-request record and W3C trace-context propagation.
//! - [`usage`], [`metrics`], [`period`], [`clock`], [`context`], [`config`], [`error`].

pub mod assemble;
pub mod cache;
pub mod clock;
pub mod config;
pub mod context;
pub mod entra;
pub mod error;
pub mod metrics;
pub mod model_api;
pub mod names;
pub mod period;
pub mod pipeline;
pub mod policy;
pub mod protocol;
pub mod semantic;
pub mod shared;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod tokens;
pub mod upstream;
pub mod usage;

pub use cache::{CacheLookup, CacheStatus, ResponseCache};
pub use config::GatewayConfig;
pub use context::{Api, CacheDirective, CallContext, Operation};
pub use error::GatewayError;
pub use model_api::{ByteStream, ModelApi};
pub use pipeline::{ChatOutcome, ChatStream, EmbeddingsOutcome, Gateway, NativeCall, StreamEvent};
pub use protocol::{
    ModelCall, OpenAiChat, OpenAiResponses, Protocol, ResponsesCall, ResponsesEcho, ResponsesEvent,
    ResponsesStream,
    anthropic::{AnthropicMessages, MessagesHeaders, MessagesStreamWriter},
};
pub use stats::Stats;
pub use store::{MemoryStore, StateStore};
pub use usage::{Usage, UsageReport};
