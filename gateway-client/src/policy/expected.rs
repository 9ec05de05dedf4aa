//! The completion a call is expected to use, learned per budget key and model from recent
//! reconciled calls.
//!
//! Each (key, model) keeps a decayed mean of its completions and a decayed mean deviation; the
//! estimate is `mean + SPREAD × deviation + MARGIN`, a high percentile of recent answers. It rises
//! at once to an answer longer than expected and comes down only gradually with shorter ones, so a
//! switch to long answers is caught by the next call. Never above the call's allowance.
//!
//! The table lives in each instance (the bucket and its overshoot bound are what instances
//! share): it is a guess, and a wrong guess costs at most the overshoot allowance.

use std::collections::HashMap;

use parking_lot::Mutex;

/// Weight of the newest answer in the decayed means.
const ALPHA: f64 = 0.2;
/// Deviations above the mean the estimate sits at.
const SPREAD: f64 = 3.0;
/// Tokens added to every estimate (short answers vary by a few tokens).
const MARGIN: f64 = 8.0;
/// A key not seen for this long starts over from the prior.
const FORGET_AFTER_MS: u64 = 10 * 60 * 1000;
/// Keys remembered at most; beyond it, new keys use the prior until old ones are forgotten.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Estimate {
    mean: f64,
    deviation: f64,
    seen_ms: u64,
}

impl Estimate {
    fn first(completion: f64, now_ms: u64) -> Self {
        Self {
            mean: completion,
            deviation: completion / (2.0 * SPREAD),
            seen_ms: now_ms,
        }
    }

    fn observe(&mut self, completion: f64, now_ms: u64) {
        let error = completion - self.mean;
        self.mean += ALPHA * error;
        self.deviation += ALPHA * (error.abs() - self.deviation);
        // Fast attack: an answer longer than the estimate lifts it to that answer at once.
        let needed = (completion - self.mean) / SPREAD;
        if needed > self.deviation {
            self.deviation = needed;
        }
        self.seen_ms = now_ms;
    }

    fn tokens(&self) -> u64 {
        let estimate = (self.mean + SPREAD * self.deviation + MARGIN).ceil();
        if estimate.is_finite() && estimate > 0.0 {
            estimate as u64
        } else {
            0
        }
    }
}

/// Expected completion per choice, by budget key then model.
#[derive(Debug, Default)]
pub struct CompletionEstimator {
    keys: Mutex<HashMap<String, HashMap<String, Estimate>>>,
}

impl CompletionEstimator {
    /// The completion tokens per answer to reserve for a call allowed `allowance` per answer.
    /// With no recent history, a quarter of the allowance.
    pub fn expected(&self, key: &str, model: &str, allowance: u64, now_ms: u64) -> u64 {
        let learned = self
            .keys
            .lock()
            .get(key)
            .and_then(|models| models.get(model))
            .filter(|e| now_ms.saturating_sub(e.seen_ms) < FORGET_AFTER_MS)
            .map(Estimate::tokens);
        learned.unwrap_or(allowance / 4).min(allowance)
    }

    /// Learns from one reconciled call that used `completion` tokens over `choices` answers.
    pub fn observe(&self, key: &str, model: &str, completion: u64, choices: u64, now_ms: u64) {
        let per_choice = completion as f64 / choices.max(1) as f64;
        let mut keys = self.keys.lock();
        if let Some(estimate) = keys.get_mut(key).and_then(|models| models.get_mut(model)) {
            if now_ms.saturating_sub(estimate.seen_ms) < FORGET_AFTER_MS {
                estimate.observe(per_choice, now_ms);
            } else {
                *estimate = Estimate::first(per_choice, now_ms);
            }
            return;
        }
        if keys.len() >= MAX_KEYS && !keys.contains_key(key) {
            keys.retain(|_, models| {
                models.retain(|_, e| now_ms.saturating_sub(e.seen_ms) < FORGET_AFTER_MS);
                !models.is_empty()
            });
            if keys.len() >= MAX_KEYS {
                return;
            }
        }
        keys.entry(key.to_owned())
            .or_default()
            .insert(model.to_owned(), Estimate::first(per_choice, now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_answers_are_expected_short_and_long_ones_are_caught_at_once() {
        let estimator = CompletionEstimator::default();
        assert_eq!(estimator.expected("a", "m", 2_000, 0), 500, "the prior");
        for _ in 0..20 {
            estimator.observe("a", "m", 12, 1, 0);
        }
        let short = estimator.expected("a", "m", 2_000, 0);
        assert!((12..=30).contains(&short), "{short}");
        estimator.observe("a", "m", 1_500, 1, 0);
        let long = estimator.expected("a", "m", 2_000, 0);
        assert!(long >= 1_500, "{long}");
        // Never above the allowance.
        assert_eq!(estimator.expected("a", "m", 1_000, 0), 1_000);
        // Others are unaffected; old history is forgotten.
        assert_eq!(estimator.expected("b", "m", 2_000, 0), 500);
        assert_eq!(estimator.expected("a", "m", 2_000, FORGET_AFTER_MS), 500);
    }

    #[test]
    fn several_answers_are_counted_per_answer() {
        let estimator = CompletionEstimator::default();
        estimator.observe("a", "m", 40, 4, 0);
        let expected = estimator.expected("a", "m", 2_000, 0);
        assert!((10..=30).contains(&expected), "{expected}");
    }
}
