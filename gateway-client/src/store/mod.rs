//! Shared state behind one narrow trait: token budgets and the usage ledger.
//!
//! [`MemoryStore`] keeps it in this process. A store shared by several instances (Redis)
//! implements the same trait, and both must pass the same behavioural tests.

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::period::{MINUTE_MS, minute_window};

/// A request to reserve tokens for one call before it is made.
#[derive(Debug, Clone)]
pub struct ReserveRequest<'a> {
    /// Whose budget: a subscription name, or a client address on an open server.
    pub key: &'a str,
    pub tokens: u64,
    pub now_ms: u64,
    pub tokens_per_minute: u64,
    /// The longer quota, if any: its limit and the `[start, end)` of the current period.
    pub quota: Option<QuotaWindow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaWindow {
    pub limit: u64,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// The store's answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted(Ticket),
    /// The minute budget cannot take the reservation before `retry_after_ms` from now.
    Throttled {
        retry_after_ms: u64,
    },
    /// The longer quota is spent until its period ends, `resets_in_ms` from now.
    QuotaExhausted {
        resets_in_ms: u64,
    },
}

/// Proof of a reservation, handed back to reconcile it with real usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub key: String,
    pub window_ms: u64,
    pub quota_start_ms: Option<u64>,
    pub reserved: u64,
    /// Tokens left in the minute window once this reservation is counted.
    pub remaining: u64,
}

/// One row of the usage ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub subscription: String,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("state store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// `memory` or `redis`, as /health reports it.
    fn kind(&self) -> &'static str;

    /// Why the store is running degraded (shared state unreachable), if it is.
    fn degraded_reason(&self) -> Option<String> {
        None
    }

    /// Atomically reserves `tokens` against the minute budget and the quota, or refuses.
    async fn reserve(&self, request: &ReserveRequest<'_>) -> Result<Admission, StoreError>;

    /// Replaces a reservation with the tokens really used (more or fewer).
    async fn reconcile(&self, ticket: &Ticket, actual: u64, now_ms: u64) -> Result<(), StoreError>;

    /// Adds one call's usage to the ledger of the period starting at `period_start_ms`.
    async fn record_usage(
        &self,
        period_start_ms: u64,
        record: &UsageRecord,
    ) -> Result<(), StoreError>;

    /// The ledger of the period starting at `period_start_ms`.
    async fn usage(&self, period_start_ms: u64) -> Result<Vec<UsageRecord>, StoreError>;
}

#[derive(Debug, Default)]
struct Counters {
    window_ms: u64,
    /// Tokens used or reserved in the current minute window.
    used: u64,
    quota_start_ms: u64,
    quota_used: u64,
}

/// (period start, subscription, model).
type LedgerKey = (u64, String, String);

/// Budgets and usage in this process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    budgets: Mutex<HashMap<String, Counters>>,
    ledger: Mutex<HashMap<LedgerKey, (u64, u64)>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn reserve(&self, request: &ReserveRequest<'_>) -> Result<Admission, StoreError> {
        let window = minute_window(request.now_ms);
        let mut budgets = self.budgets.lock();
        if !budgets.contains_key(request.key) {
            // Idle keys are pruned when a new one arrives, so memory tracks active keys.
            budgets.retain(|_, c| c.window_ms == window || c.quota_used > 0);
            budgets.insert(request.key.to_owned(), Counters::default());
        }
        let Some(counters) = budgets.get_mut(request.key) else {
            return Err(StoreError::Unavailable("budget entry vanished".to_owned()));
        };
        if counters.window_ms != window {
            counters.window_ms = window;
            counters.used = 0;
        }
        if let Some(quota) = request.quota {
            if counters.quota_start_ms != quota.start_ms {
                counters.quota_start_ms = quota.start_ms;
                counters.quota_used = 0;
            }
            if counters.quota_used.saturating_add(request.tokens) > quota.limit {
                return Ok(Admission::QuotaExhausted {
                    resets_in_ms: quota.end_ms.saturating_sub(request.now_ms),
                });
            }
        }
        if counters.used.saturating_add(request.tokens) > request.tokens_per_minute {
            return Ok(Admission::Throttled {
                retry_after_ms: window + MINUTE_MS - request.now_ms,
            });
        }
        counters.used += request.tokens;
        if request.quota.is_some() {
            counters.quota_used += request.tokens;
        }
        Ok(Admission::Admitted(Ticket {
            key: request.key.to_owned(),
            window_ms: window,
            quota_start_ms: request.quota.map(|q| q.start_ms),
            reserved: request.tokens,
            remaining: request.tokens_per_minute - counters.used,
        }))
    }

    async fn reconcile(&self, ticket: &Ticket, actual: u64, now_ms: u64) -> Result<(), StoreError> {
        let mut budgets = self.budgets.lock();
        let Some(counters) = budgets.get_mut(&ticket.key) else {
            return Ok(());
        };
        let now_window = minute_window(now_ms);
        if counters.window_ms == ticket.window_ms && now_window == ticket.window_ms {
            counters.used = (counters.used + actual).saturating_sub(ticket.reserved);
        } else {
            // The window rolled during the call: the reservation was paid in the old window, so
            // only usage beyond it is charged to the current one.
            if counters.window_ms != now_window {
                counters.window_ms = now_window;
                counters.used = 0;
            }
            counters.used += actual.saturating_sub(ticket.reserved);
        }
        if ticket.quota_start_ms == Some(counters.quota_start_ms) {
            counters.quota_used = (counters.quota_used + actual).saturating_sub(ticket.reserved);
        }
        Ok(())
    }

    async fn record_usage(
        &self,
        period_start_ms: u64,
        record: &UsageRecord,
    ) -> Result<(), StoreError> {
        let mut ledger = self.ledger.lock();
        let entry = ledger
            .entry((
                period_start_ms,
                record.subscription.clone(),
                record.model.clone(),
            ))
            .or_default();
        entry.0 += record.prompt_tokens;
        entry.1 += record.completion_tokens;
        Ok(())
    }

    async fn usage(&self, period_start_ms: u64) -> Result<Vec<UsageRecord>, StoreError> {
        let ledger = self.ledger.lock();
        Ok(ledger
            .iter()
            .filter(|((period, _, _), _)| *period == period_start_ms)
            .map(
                |((_, subscription, model), (prompt, completion))| UsageRecord {
                    subscription: subscription.clone(),
                    model: model.clone(),
                    prompt_tokens: *prompt,
                    completion_tokens: *completion,
                },
            )
            .collect())
    }
}

/// The behaviour every [`StateStore`] must show; run against each implementation.
#[cfg(any(test, feature = "store-conformance"))]
pub mod conformance {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// A whole minute in the near future: shared stores give keys real expiry times, so the
    /// checks' clock must sit near the real one.
    fn t0() -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        (now / 60_000 + 1) * 60_000
    }

    fn reserve(key: &str, tokens: u64, now_ms: u64) -> ReserveRequest<'_> {
        ReserveRequest {
            key,
            tokens,
            now_ms,
            tokens_per_minute: 1_000,
            quota: None,
        }
    }

    fn ticket(admission: Admission) -> Ticket {
        match admission {
            Admission::Admitted(ticket) => ticket,
            other => panic!("expected admission, got {other:?}"),
        }
    }

    /// Runs every check against `store`. Keys are prefixed so a shared store can be reused.
    pub async fn run_all(store: &dyn StateStore, prefix: &str) {
        reservations_fill_the_window_then_throttle(store, &format!("{prefix}fill")).await;
        the_window_rolls_over(store, &format!("{prefix}roll")).await;
        reconcile_moves_both_ways(store, &format!("{prefix}rec")).await;
        quota_exhausts_and_resets(store, &format!("{prefix}quota")).await;
        usage_ledger_adds_up(store, prefix).await;
    }

    pub async fn reservations_fill_the_window_then_throttle(store: &dyn StateStore, key: &str) {
        let start = t0();
        let first = ticket(
            store
                .reserve(&reserve(key, 600, start + 1_000))
                .await
                .unwrap(),
        );
        assert_eq!(first.remaining, 400);
        let refused = store
            .reserve(&reserve(key, 500, start + 15_000))
            .await
            .unwrap();
        assert_eq!(
            refused,
            Admission::Throttled {
                retry_after_ms: 45_000
            }
        );
        let fits = ticket(
            store
                .reserve(&reserve(key, 400, start + 15_000))
                .await
                .unwrap(),
        );
        assert_eq!(fits.remaining, 0);
    }

    pub async fn the_window_rolls_over(store: &dyn StateStore, key: &str) {
        let start = t0();
        ticket(store.reserve(&reserve(key, 1_000, start)).await.unwrap());
        assert!(matches!(
            store
                .reserve(&reserve(key, 1, start + 59_999))
                .await
                .unwrap(),
            Admission::Throttled { retry_after_ms: 1 }
        ));
        let next = ticket(
            store
                .reserve(&reserve(key, 1, start + 60_000))
                .await
                .unwrap(),
        );
        assert_eq!(next.remaining, 999);
    }

    pub async fn reconcile_moves_both_ways(store: &dyn StateStore, key: &str) {
        let start = t0();
        let big = ticket(store.reserve(&reserve(key, 800, start)).await.unwrap());
        // Used less than reserved: the difference comes back.
        store.reconcile(&big, 100, start + 10).await.unwrap();
        let next = ticket(store.reserve(&reserve(key, 900, start + 20)).await.unwrap());
        assert_eq!(next.remaining, 0);
        // Used more than reserved: the window is charged the real figure.
        store.reconcile(&next, 950, start + 30).await.unwrap();
        assert!(matches!(
            store.reserve(&reserve(key, 1, start + 40)).await.unwrap(),
            Admission::Throttled { .. }
        ));
        // A reconcile after the window rolled charges only the excess to the new window.
        let key_rolled = format!("{key}-rolled");
        let spanning = ticket(
            store
                .reserve(&reserve(&key_rolled, 100, start + 59_000))
                .await
                .unwrap(),
        );
        store
            .reconcile(&spanning, 300, start + 61_000)
            .await
            .unwrap();
        let after = ticket(
            store
                .reserve(&reserve(&key_rolled, 10, start + 62_000))
                .await
                .unwrap(),
        );
        assert_eq!(after.remaining, 1_000 - 200 - 10);
    }

    pub async fn quota_exhausts_and_resets(store: &dyn StateStore, key: &str) {
        let start = t0();
        let window = |start_ms| QuotaWindow {
            limit: 1_500,
            start_ms,
            end_ms: start_ms + 3_600_000,
        };
        let mut request = reserve(key, 900, start);
        request.quota = Some(window(start));
        let first = ticket(store.reserve(&request).await.unwrap());
        store.reconcile(&first, 900, start).await.unwrap();
        let mut later = reserve(key, 900, start + 120_000);
        later.quota = Some(window(start));
        assert_eq!(
            store.reserve(&later).await.unwrap(),
            Admission::QuotaExhausted {
                resets_in_ms: 3_480_000
            }
        );
        let mut next_period = reserve(key, 900, start + 3_600_000);
        next_period.quota = Some(window(start + 3_600_000));
        ticket(store.reserve(&next_period).await.unwrap());
    }

    pub async fn usage_ledger_adds_up(store: &dyn StateStore, prefix: &str) {
        let start = t0();
        let period = start + 7; // a period start no other check uses
        let subscription = format!("{prefix}team");
        for (prompt, completion) in [(10, 5), (20, 7)] {
            let record = UsageRecord {
                subscription: subscription.clone(),
                model: "gpt-4o-mini".to_owned(),
                prompt_tokens: prompt,
                completion_tokens: completion,
            };
            store.record_usage(period, &record).await.unwrap();
        }
        let rows: Vec<UsageRecord> = store
            .usage(period)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.subscription == subscription)
            .collect();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].prompt_tokens, rows[0].completion_tokens), (30, 12));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_conforms() {
        conformance::run_all(&MemoryStore::new(), "").await;
    }
}
