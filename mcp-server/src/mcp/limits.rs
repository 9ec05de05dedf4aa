//! Rate limits on MCP traffic: one per key, and optional per-tool limits per key.
//!
//! Built on `governor`'s keyed GCRA limiters (the engine behind tower-governor), used directly so
//! one mechanism serves both the per-key and the per-tool limits: a per-tool limit needs the tool's
//! name, which only the JSON-RPC body carries. Limits are per instance (see README).

use std::{collections::HashMap, sync::Arc, time::Duration};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

use crate::config::RateSpec;

type KeyedLimiter = RateLimiter<
    Arc<str>,
    DefaultKeyedStateStore<Arc<str>>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// One limit: its spec (for headers) and its limiter.
struct Limit {
    spec: RateSpec,
    limiter: KeyedLimiter,
}

impl Limit {
    fn new(spec: RateSpec) -> Self {
        // `calls` per `period`, all of which may be spent at once: the usual reading of "120/60".
        let replenish_every = spec.period / spec.calls.get();
        let quota = Quota::with_period(replenish_every.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(spec.calls))
            .allow_burst(spec.calls);
        Self {
            spec,
            limiter: RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>(),
        }
    }

    fn check(&self, key: &Arc<str>, scope: Scope) -> Result<Allowance, Refusal> {
        match self.limiter.check_key(key) {
            Ok(snapshot) => Ok(Allowance {
                limit: self.spec,
                remaining: snapshot.remaining_burst_capacity(),
            }),
            Err(not_until) => Err(Refusal {
                scope,
                limit: self.spec,
                wait: not_until.wait_time_from(DefaultClock::default().now()),
            }),
        }
    }
}

/// Which limit refused a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Key,
    Tool(&'static str),
}

impl Scope {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Tool(tool) => tool,
        }
    }
}

/// What is left of the per-key limit after an admitted call.
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    pub limit: RateSpec,
    pub remaining: u32,
}

/// A refused call: which limit, and how long until it would be admitted.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub scope: Scope,
    pub limit: RateSpec,
    pub wait: Duration,
}

/// The MCP rate limits of this instance.
pub struct McpLimits {
    per_key: Limit,
    per_tool: HashMap<&'static str, Limit>,
}

impl McpLimits {
    pub fn new(per_key: RateSpec, per_tool: &[(String, RateSpec)]) -> Self {
        let per_tool = per_tool
            .iter()
            .filter_map(|(tool, spec)| {
                // Config parsing already refused unknown tools; the catalog gives a 'static name.
                tools::spec(tool).map(|known| (known.name, Limit::new(*spec)))
            })
            .collect();
        Self {
            per_key: Limit::new(per_key),
            per_tool,
        }
    }

    /// Counts one MCP call by `key` (to `tool`, for tools/call) against the limits.
    ///
    /// The per-key limit is checked first: it counts every call attempted, including those a
    /// per-tool limit then refuses.
    pub fn check(&self, key: &Arc<str>, tool: Option<&'static str>) -> Result<Allowance, Refusal> {
        let allowance = self.per_key.check(key, Scope::Key)?;
        if let Some((tool, limit)) = tool.and_then(|t| self.per_tool.get_key_value(t)) {
            limit.check(key, Scope::Tool(tool))?;
        }
        Ok(allowance)
    }

    /// Forgets keys whose limits have fully replenished, so memory stays bounded by active keys.
    pub fn forget_idle_keys(&self) {
        self.per_key.limiter.retain_recent();
        for limit in self.per_tool.values() {
            limit.limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_key_gets_its_calls_then_a_wait() {
        let limits = McpLimits::new("3/60".parse().unwrap(), &[]);
        let alice: Arc<str> = Arc::from("alice");
        let remaining: Vec<u32> = (0..3)
            .map(|_| limits.check(&alice, None).unwrap().remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refusal = limits.check(&alice, None).unwrap_err();
        assert_eq!(refusal.scope, Scope::Key);
        assert!(refusal.wait > Duration::from_secs(15) && refusal.wait <= Duration::from_secs(20));
        // Another key is untouched.
        assert!(limits.check(&Arc::from("bob"), None).is_ok());
    }

    #[test]
    fn per_tool_limits_hold_independently_of_other_tools() {
        let limits = McpLimits::new(
            "100/60".parse().unwrap(),
            &[("summarize".to_owned(), "2/60".parse().unwrap())],
        );
        let key: Arc<str> = Arc::from("alice");
        assert!(limits.check(&key, Some("summarize")).is_ok());
        assert!(limits.check(&key, Some("summarize")).is_ok());
        let refusal = limits.check(&key, Some("summarize")).unwrap_err();
        assert_eq!(refusal.scope, Scope::Tool("summarize"));
        assert!(limits.check(&key, Some("echo")).is_ok());
        assert!(limits.check(&key, None).is_ok());
    }
}
