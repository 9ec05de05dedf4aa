//! A circuit breaker per backend: stop sending traffic to a backend that keeps failing.
//!
//! Closed: failures inside a sliding window are counted; at the threshold the breaker opens.
//! Open: every call skips this backend until `open_for` has passed. Half-open: one probe call
//! is let through; its success closes the breaker, its failure opens it again.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::{config::BreakerConfig, metrics};

#[derive(Debug)]
enum State {
    Closed {
        failures: VecDeque<Instant>,
    },
    Open {
        until: Instant,
    },
    /// `probe_since`: when the probe in flight was let through (a lost probe, e.g. a cancelled
    /// call, stops blocking after `open_for`).
    HalfOpen {
        probe_since: Option<Instant>,
    },
}

#[derive(Debug)]
pub struct Breaker {
    label: std::sync::Arc<str>,
    config: BreakerConfig,
    state: Mutex<State>,
}

/// Whether a call may go to this backend now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Normal,
    /// The one call allowed through a half-open breaker.
    Probe,
}

impl Breaker {
    pub fn new(label: std::sync::Arc<str>, config: BreakerConfig) -> Self {
        metrics::circuit_state(&label, 0);
        Self {
            label,
            config,
            state: Mutex::new(State::Closed {
                failures: VecDeque::new(),
            }),
        }
    }

    /// Asks to send a call; `None` while the breaker is open or its probe is in flight.
    pub fn admit(&self) -> Option<Permit> {
        let now = Instant::now();
        let mut state = self.state.lock();
        match &mut *state {
            State::Closed { .. } => Some(Permit::Normal),
            State::Open { until } if now >= *until => {
                *state = State::HalfOpen {
                    probe_since: Some(now),
                };
                metrics::circuit_state(&self.label, 1);
                tracing::info!(backend = %self.label, "circuit half-open: probing");
                Some(Permit::Probe)
            }
            State::Open { .. } => None,
            State::HalfOpen { probe_since } => match probe_since {
                Some(since) if now.duration_since(*since) < self.config.open_for => None,
                Some(_) | None => {
                    *probe_since = Some(now);
                    Some(Permit::Probe)
                }
            },
        }
    }

    pub fn record_success(&self) {
        let mut state = self.state.lock();
        match &mut *state {
            State::Closed { failures } => failures.clear(),
            State::HalfOpen { .. } | State::Open { .. } => {
                *state = State::Closed {
                    failures: VecDeque::new(),
                };
                metrics::circuit_state(&self.label, 0);
                tracing::info!(backend = %self.label, "circuit closed");
            }
        }
    }

    pub fn record_failure(&self) {
        let now = Instant::now();
        let mut state = self.state.lock();
        let trip = match &mut *state {
            State::Closed { failures } => {
                failures.push_back(now);
                while failures
                    .front()
                    .is_some_and(|at| now.duration_since(*at) > self.config.window)
                {
                    failures.pop_front();
                }
                failures.len() >= self.config.failure_threshold as usize
            }
            State::HalfOpen { .. } => true,
            State::Open { .. } => false,
        };
        if trip {
            *state = State::Open {
                until: now + self.config.open_for,
            };
            metrics::circuit_state(&self.label, 2);
            tracing::warn!(backend = %self.label, open_for = ?self.config.open_for, "circuit opened");
        }
    }

    /// `closed`, `half_open` or `open`.
    pub fn state_label(&self) -> &'static str {
        match *self.state.lock() {
            State::Closed { .. } => "closed",
            State::HalfOpen { .. } => "half_open",
            State::Open { .. } => "open",
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(*self.state.lock(), State::Open { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn breaker() -> Breaker {
        Breaker::new(
            "b".into(),
            BreakerConfig {
                failure_threshold: 3,
                window: Duration::from_secs(10),
                open_for: Duration::from_secs(30),
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn trips_after_threshold_then_probes_then_closes() {
        let breaker = breaker();
        for _ in 0..3 {
            assert_eq!(breaker.admit(), Some(Permit::Normal));
            breaker.record_failure();
        }
        assert!(breaker.is_open());
        assert_eq!(breaker.admit(), None);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(breaker.admit(), Some(Permit::Probe));
        // Only one probe at a time.
        assert_eq!(breaker.admit(), None);
        breaker.record_success();
        assert_eq!(breaker.admit(), Some(Permit::Normal));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.record_failure();
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(breaker.admit(), Some(Permit::Probe));
        breaker.record_failure();
        assert_eq!(breaker.admit(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_do_not_count() {
        let breaker = breaker();
        breaker.record_failure();
        breaker.record_failure();
        tokio::time::advance(Duration::from_secs(11)).await;
        breaker.record_failure();
        assert!(!breaker.is_open());
    }
}
