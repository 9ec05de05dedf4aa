//! The seam between the pipeline and the model API: one call answered whole, or one streamed.
//!
//! [`crate::upstream::Upstream`] implements it with retries, failover and breakers; unit tests
//! implement it with canned answers, so the pipeline runs with paused time and no sockets.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use tokio::time::Instant;

use crate::{context::Operation, error::GatewayError};

/// The bytes of a streamed answer as they arrive. Dropping it closes the upstream connection.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, GatewayError>> + Send>>;

#[async_trait]
pub trait ModelApi: Send + Sync + 'static {
    /// Sends `body` for `operation` on `model` and reads the whole answer, within `deadline`.
    async fn whole(
        &self,
        operation: Operation,
        model: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Bytes, GatewayError>;

    /// Sends `body` and returns the answer's stream once it has started, within `deadline`.
    async fn stream(
        &self,
        operation: Operation,
        model: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<ByteStream, GatewayError>;

    /// Whether any backend is configured at all.
    fn is_configured(&self) -> bool;

    /// Whether the backends can take `model` (checked at admission, before anything is spent).
    fn check_model(&self, model: &str) -> Result<(), GatewayError>;

    /// Who serves the model, as OpenTelemetry's `gen_ai.provider.name` names it.
    fn provider_name(&self) -> &'static str {
        "openai"
    }
}
