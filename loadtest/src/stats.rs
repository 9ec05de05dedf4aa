//! The summary maths, kept pure so it can be tested on known sequences.
//!
//! Each worker of a run records its steady-phase requests into its own [`Tally`] (no shared
//! state on the hot path); the tallies are merged at the end and [`Summary::new`] turns the
//! result into the figures the report prints: requests per second, latency percentiles
//! (microsecond resolution, from an HDR histogram), errors by status, the cache hit ratio and the
//! spread over serving instances.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram tracks exactly enough (one hour, in microseconds); longer
/// samples are clamped to it.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Significant figures kept by the histogram: values below 2048 µs are exact, larger ones are
/// within 0.1%.
const SIGNIFICANT_FIGURES: u8 = 3;

/// Why a request counts as failed. The label is the key of "errors by status".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// The server answered with a non-2xx status.
    Status(u16),
    /// No answer within the per-request timeout.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// Any other transport failure (reset, broken body…).
    Transport,
    /// A 2xx answer whose body is not what the target returns.
    InvalidBody,
    /// A JSON-RPC error, or a tool result with `isError: true` (MCP target).
    RpcError,
}

impl Failure {
    pub fn label(self) -> String {
        match self {
            Self::Status(status) => status.to_string(),
            Self::Timeout => "timeout".to_owned(),
            Self::Connect => "connect".to_owned(),
            Self::Transport => "transport".to_owned(),
            Self::InvalidBody => "invalid_body".to_owned(),
            Self::RpcError => "rpc_error".to_owned(),
        }
    }
}

/// What one request reported, apart from its latency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub failure: Option<Failure>,
    /// Cache hits and misses reported for this request (an agent turn can make several model
    /// calls; a gateway call reports one or none).
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// The instance that served it, when the answer says.
    pub instance: Option<String>,
}

impl Outcome {
    pub fn failed(failure: Failure) -> Self {
        Self {
            failure: Some(failure),
            ..Self::default()
        }
    }
}

/// A mergeable accumulator of request outcomes.
#[derive(Debug, Clone)]
pub struct Tally {
    latency: Histogram<u64>,
    requests: u64,
    errors: BTreeMap<Failure, u64>,
    cache_hits: u64,
    cache_misses: u64,
    instances: BTreeMap<String, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    #[expect(
        clippy::expect_used,
        reason = "constant bounds that hdrhistogram accepts: low >= 1, high >= 2 * low, sigfig <= 5"
    )]
    pub fn new() -> Self {
        let latency = Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_FIGURES)
            .expect("valid histogram bounds");
        Self {
            latency,
            requests: 0,
            errors: BTreeMap::new(),
            cache_hits: 0,
            cache_misses: 0,
            instances: BTreeMap::new(),
        }
    }

    /// Records one request: its latency and what it reported.
    pub fn record(&mut self, latency: Duration, outcome: &Outcome) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency
            .saturating_record(micros.clamp(1, MAX_LATENCY_US));
        self.requests += 1;
        if let Some(failure) = outcome.failure {
            *self.errors.entry(failure).or_default() += 1;
        }
        self.cache_hits += outcome.cache_hits;
        self.cache_misses += outcome.cache_misses;
        let instance = outcome.instance.as_deref().unwrap_or(UNKNOWN_INSTANCE);
        // Look up before inserting, so the common case allocates nothing.
        match self.instances.get_mut(instance) {
            Some(count) => *count += 1,
            None => {
                self.instances.insert(instance.to_owned(), 1);
            }
        }
    }

    /// Adds another tally's requests to this one.
    pub fn merge(&mut self, other: &Tally) {
        if let Err(error) = self.latency.add(&other.latency) {
            // Both histograms have the same bounds, so this cannot happen.
            tracing::warn!(%error, "latency histograms could not be merged");
        }
        self.requests += other.requests;
        for (failure, count) in &other.errors {
            *self.errors.entry(*failure).or_default() += count;
        }
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        for (instance, count) in &other.instances {
            *self.instances.entry(instance.clone()).or_default() += count;
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn errors(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The instance label of answers that do not say who served them.
pub const UNKNOWN_INSTANCE: &str = "unknown";

/// Latency figures in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

/// Cache figures summed over every request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CacheFigures {
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses), 0 when there were none; between 0 and 1.
    pub hit_ratio: f64,
}

/// The figures of one steady phase, as printed and as `--json` emits them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// `agent`, `gateway` or `mcp`.
    pub target: String,
    /// The URL that was driven.
    pub url: String,
    pub concurrency: usize,
    pub warmup_seconds: f64,
    /// Length of the steady phase that the rates are computed over.
    pub duration_seconds: f64,
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    /// errors / requests, 0 when there were none; between 0 and 1.
    pub error_rate: f64,
    pub requests_per_second: f64,
    pub latency_us: Latency,
    pub cache: CacheFigures,
    /// Failed requests by HTTP status (or `timeout`, `connect`, `transport`, `invalid_body`,
    /// `rpc_error`).
    pub errors_by_status: BTreeMap<String, u64>,
    /// Requests by the instance that served them (`unknown` when the answer does not say).
    pub instances: BTreeMap<String, u64>,
}

/// Where and how a run was made; the parts of the summary that are not measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RunShape {
    pub target: String,
    pub url: String,
    pub concurrency: usize,
    pub warmup: Duration,
}

impl Summary {
    /// The figures of `tally`, measured over a steady phase of `elapsed`.
    pub fn new(shape: RunShape, tally: &Tally, elapsed: Duration) -> Self {
        let errors = tally.errors();
        Self {
            target: shape.target,
            url: shape.url,
            concurrency: shape.concurrency,
            warmup_seconds: shape.warmup.as_secs_f64(),
            duration_seconds: elapsed.as_secs_f64(),
            requests: tally.requests,
            successes: tally.requests.saturating_sub(errors),
            errors,
            error_rate: ratio(errors, tally.requests),
            requests_per_second: per_second(tally.requests, elapsed),
            latency_us: latency(&tally.latency),
            cache: CacheFigures {
                hits: tally.cache_hits,
                misses: tally.cache_misses,
                hit_ratio: ratio(tally.cache_hits, tally.cache_hits + tally.cache_misses),
            },
            errors_by_status: tally
                .errors
                .iter()
                .map(|(failure, count)| (failure.label(), *count))
                .collect(),
            instances: tally.instances.clone(),
        }
    }

    /// Whether the error rate is within `max_error_rate` (and anything was measured at all).
    pub fn passes(&self, max_error_rate: f64) -> bool {
        self.requests > 0 && self.error_rate <= max_error_rate
    }
}

/// `part / whole`, or 0 when `whole` is 0.
pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// `count` per second over `elapsed`, or 0 over no time.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

fn latency(histogram: &Histogram<u64>) -> Latency {
    if histogram.is_empty() {
        return Latency {
            min: 0,
            mean: 0.0,
            p50: 0,
            p90: 0,
            p95: 0,
            p99: 0,
            max: 0,
        };
    }
    Latency {
        min: histogram.min(),
        mean: histogram.mean(),
        p50: histogram.value_at_quantile(0.50),
        p90: histogram.value_at_quantile(0.90),
        p95: histogram.value_at_quantile(0.95),
        p99: histogram.value_at_quantile(0.99),
        max: histogram.max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> RunShape {
        RunShape {
            target: "agent".into(),
            url: "http://127.0.0.1:1/agent/chat".into(),
            concurrency: 4,
            warmup: Duration::from_secs(1),
        }
    }

    fn ok(hits: u64, misses: u64, instance: &str) -> Outcome {
        Outcome {
            failure: None,
            cache_hits: hits,
            cache_misses: misses,
            instance: Some(instance.to_owned()),
        }
    }

    #[test]
    fn percentiles_of_one_to_a_thousand_microseconds_are_exact() {
        let mut tally = Tally::new();
        for micros in 1..=1000 {
            tally.record(Duration::from_micros(micros), &ok(0, 0, "a"));
        }
        let summary = Summary::new(shape(), &tally, Duration::from_secs(2));
        let latency = summary.latency_us;
        assert_eq!(latency.min, 1);
        assert_eq!(latency.p50, 500);
        assert_eq!(latency.p90, 900);
        assert_eq!(latency.p95, 950);
        assert_eq!(latency.p99, 990);
        assert_eq!(latency.max, 1000);
        assert!((latency.mean - 500.5).abs() < 1e-9, "{}", latency.mean);
        assert_eq!(summary.requests, 1000);
        assert!((summary.requests_per_second - 500.0).abs() < 1e-9);
    }

    #[test]
    fn large_latencies_keep_three_significant_figures() {
        let mut tally = Tally::new();
        for millis in 1..=100 {
            tally.record(Duration::from_millis(millis), &Outcome::default());
        }
        let latency = Summary::new(shape(), &tally, Duration::from_secs(1)).latency_us;
        let within = |value: u64, expected: u64| value.abs_diff(expected) * 1000 <= expected;
        assert!(within(latency.p50, 50_000), "{}", latency.p50);
        assert!(within(latency.p99, 99_000), "{}", latency.p99);
        assert!(within(latency.max, 100_000), "{}", latency.max);
    }

    #[test]
    fn hit_ratio_sums_hits_and_misses_over_requests() {
        let mut tally = Tally::new();
        // An agent turn: the first model call hit, the second missed.
        tally.record(Duration::from_millis(1), &ok(1, 1, "a"));
        tally.record(Duration::from_millis(1), &ok(0, 2, "a"));
        tally.record(Duration::from_millis(1), &ok(2, 0, "b"));
        // A gateway call that bypassed the cache reports neither.
        tally.record(Duration::from_millis(1), &ok(0, 0, "b"));
        let summary = Summary::new(shape(), &tally, Duration::from_secs(1));
        assert_eq!(summary.cache.hits, 3);
        assert_eq!(summary.cache.misses, 3);
        assert!((summary.cache.hit_ratio - 0.5).abs() < 1e-12);
        assert_eq!(summary.instances.get("a"), Some(&2));
        assert_eq!(summary.instances.get("b"), Some(&2));
    }

    #[test]
    fn error_rate_and_errors_by_status() {
        let mut tally = Tally::new();
        for _ in 0..96 {
            tally.record(Duration::from_millis(2), &ok(0, 1, "a"));
        }
        tally.record(
            Duration::from_millis(2),
            &Outcome::failed(Failure::Status(429)),
        );
        tally.record(
            Duration::from_millis(2),
            &Outcome::failed(Failure::Status(429)),
        );
        tally.record(Duration::from_secs(30), &Outcome::failed(Failure::Timeout));
        tally.record(
            Duration::from_millis(2),
            &Outcome::failed(Failure::Status(502)),
        );
        let summary = Summary::new(shape(), &tally, Duration::from_secs(4));
        assert_eq!(summary.requests, 100);
        assert_eq!(summary.errors, 4);
        assert_eq!(summary.successes, 96);
        assert!((summary.error_rate - 0.04).abs() < 1e-12);
        assert!((summary.requests_per_second - 25.0).abs() < 1e-12);
        let by_status: Vec<(&str, u64)> = summary
            .errors_by_status
            .iter()
            .map(|(label, count)| (label.as_str(), *count))
            .collect();
        assert_eq!(by_status, [("429", 2), ("502", 1), ("timeout", 1)]);
        // Failed requests with no instance are "unknown".
        assert_eq!(summary.instances.get(UNKNOWN_INSTANCE), Some(&4));
        assert!(summary.passes(0.05));
        assert!(!summary.passes(0.01));
    }

    #[test]
    fn merged_tallies_equal_one_tally() {
        let mut one = Tally::new();
        let mut left = Tally::new();
        let mut right = Tally::new();
        for micros in 1..=200_u64 {
            let outcome = if micros % 50 == 0 {
                Outcome::failed(Failure::Status(500))
            } else {
                ok(
                    micros % 2,
                    1 - micros % 2,
                    if micros % 3 == 0 { "x" } else { "y" },
                )
            };
            one.record(Duration::from_micros(micros), &outcome);
            let half = if micros % 2 == 0 {
                &mut left
            } else {
                &mut right
            };
            half.record(Duration::from_micros(micros), &outcome);
        }
        left.merge(&right);
        let elapsed = Duration::from_secs(1);
        assert_eq!(
            Summary::new(shape(), &left, elapsed),
            Summary::new(shape(), &one, elapsed)
        );
    }

    #[test]
    fn an_empty_run_has_zero_figures_and_fails() {
        let summary = Summary::new(shape(), &Tally::new(), Duration::ZERO);
        assert_eq!(summary.requests, 0);
        assert_eq!(summary.error_rate, 0.0);
        assert_eq!(summary.requests_per_second, 0.0);
        assert_eq!(summary.cache.hit_ratio, 0.0);
        assert_eq!(summary.latency_us.p99, 0);
        assert!(!summary.passes(1.0));
    }
}
