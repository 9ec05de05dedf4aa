//! The cache seam of the pipeline: a lookup before the upstream, a store after success.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::context::{CallContext, Operation};

/// What the cache did for one call; reported as `x-llm-cache-status` and in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// The cache was not consulted (off, opted out, or not cacheable).
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// A response cache for chat completions.
#[async_trait]
pub trait ResponseCache: Send + Sync + 'static {
    /// Whether the cache can be used right now (a shared cache whose store is unreachable
    /// can't); while it can't, calls bypass it.
    fn available(&self) -> bool {
        true
    }

    /// A cached answer to `request` (already governed, model resolved), if one may be served.
    async fn lookup(
        &self,
        context: &CallContext,
        operation: Operation,
        model: &str,
        request: &Map<String, Value>,
    ) -> Option<Value>;

    /// Offers a successful answer for later calls; the cache decides whether to keep it.
    async fn store(
        &self,
        context: &CallContext,
        operation: Operation,
        model: &str,
        request: &Map<String, Value>,
        response: &Value,
    );
}
