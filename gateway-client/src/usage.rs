//! Token usage: what one call used, and the chargeback report over a period.

use serde::Serialize;
use serde_json::Value;

use crate::{config::Prices, period::rfc3339, store::UsageRecord};

/// Tokens one call (or one agent turn) used, in OpenAI's field names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }

    /// The `usage` object of an OpenAI-style answer, if it has a usable one.
    pub fn from_body(body: &Value) -> Option<Self> {
        let usage = body.get("usage").filter(|u| u.is_object())?;
        let prompt = usage.get("prompt_tokens").and_then(Value::as_u64)?;
        let completion = usage
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Some(Self::new(prompt, completion))
    }

    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
    }
}

/// `GET /admin/usage`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UsageReport {
    pub period: &'static str,
    pub period_start: String,
    pub period_end: String,
    pub subscriptions: Vec<SubscriptionUsage>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SubscriptionUsage {
    pub name: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cost_usd: f64,
}

impl UsageReport {
    /// Folds ledger rows (per subscription and model) into one priced row per subscription.
    pub fn build(
        period: &'static str,
        (start_ms, end_ms): (u64, u64),
        records: Vec<UsageRecord>,
        prices: &Prices,
    ) -> Self {
        let mut rows: Vec<SubscriptionUsage> = Vec::new();
        for record in records {
            let price = prices.of(&record.model);
            let cost = record.prompt_tokens as f64 * price.input_per_million / 1e6
                + record.completion_tokens as f64 * price.output_per_million / 1e6;
            let row = match rows.iter_mut().find(|r| r.name == record.subscription) {
                Some(row) => row,
                None => {
                    rows.push(SubscriptionUsage {
                        name: record.subscription.clone(),
                        prompt_tokens: 0,
                        completion_tokens: 0,
                        total_tokens: 0,
                        cost_usd: 0.0,
                    });
                    let last = rows.len() - 1;
                    &mut rows[last]
                }
            };
            row.prompt_tokens += record.prompt_tokens;
            row.completion_tokens += record.completion_tokens;
            row.total_tokens += record.prompt_tokens + record.completion_tokens;
            row.cost_usd += cost;
        }
        for row in &mut rows {
            // Micro-dollar precision: enough for chargeback, stable in JSON.
            row.cost_usd = (row.cost_usd * 1e6).round() / 1e6;
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            period,
            period_start: rfc3339(start_ms),
            period_end: rfc3339(end_ms),
            subscriptions: rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Price;

    #[test]
    fn report_prices_each_model_and_sums_per_subscription() {
        let mut prices = Prices::default();
        prices.0.insert(
            "gpt-4o-mini".to_owned(),
            Price {
                input_per_million: 0.15,
                output_per_million: 0.60,
            },
        );
        let record = |subscription: &str, model: &str, prompt, completion| UsageRecord {
            subscription: subscription.to_owned(),
            model: model.to_owned(),
            prompt_tokens: prompt,
            completion_tokens: completion,
        };
        let report = UsageReport::build(
            "monthly",
            (0, 1_000),
            vec![
                record("team-b", "gpt-4o-mini-2024-07-18", 1_000_000, 0),
                record("team-a", "gpt-4o-mini", 1_000_000, 1_000_000),
                record("team-a", "unpriced-model", 10, 10),
            ],
            &prices,
        );
        assert_eq!(report.subscriptions.len(), 2);
        let a = &report.subscriptions[0];
        assert_eq!(
            (a.name.as_str(), a.prompt_tokens, a.total_tokens),
            ("team-a", 1_000_010, 2_000_020)
        );
        assert!((a.cost_usd - 0.75).abs() < 1e-9, "{}", a.cost_usd);
        assert!((report.subscriptions[1].cost_usd - 0.15).abs() < 1e-9);
    }
}
