//! The cache seam of the pipeline: a lookup before the upstream, a store after success.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::{
    context::{CallContext, Operation},
    semantic::Uncacheable,
};

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

/// What a cache lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheLookup {
    Hit(Value),
    Miss,
    /// The request is not one the cache takes (too large, or not a chat call).
    Bypass,
}

impl From<Option<Value>> for CacheLookup {
    fn from(found: Option<Value>) -> Self {
        found.map_or(Self::Miss, Self::Hit)
    }
}

impl From<Uncacheable> for CacheLookup {
    fn from(why: Uncacheable) -> Self {
        match why {
            // Nothing asked yet (no user message in the window): an ordinary miss.
            Uncacheable::NoQuestion => Self::Miss,
            Uncacheable::TooLarge => Self::Bypass,
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
    ) -> CacheLookup;

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
