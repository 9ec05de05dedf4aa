//! Shared state behind one narrow trait: token budgets and the usage ledger.
//!
//! [`MemoryStore`] keeps it in this process. A store shared by several instances (Redis)
//! implements the same trait, and both must pass the same behavioural tests.

pub mod bucket;

use std::{collections::HashMap, hash::RandomState};

use async_trait::async_trait;
use hashbrown::Equivalent;
use parking_lot::Mutex;

use bucket::{Ask, Bucket, Decision};

/// A request to reserve tokens for one call before it is made.
#[derive(Debug, Clone)]
pub struct ReserveRequest<'a> {
    /// Whose budget: a subscription name, or a client address on an open server.
    pub key: &'a str,
    /// Tokens held for certain: the prompt and the completion the call is expected to use.
    pub tokens: u64,
    /// Tokens the call may use beyond `tokens` (its completion allowance less the expected
    /// part). Held as well, unless the key's overshoot allowance covers them.
    pub exposure: u64,
    /// The exposure a key may have outstanding at once (0: every call holds its allowance).
    pub exposure_limit: u64,
    pub now_ms: u64,
    pub tokens_per_minute: u64,
    /// The longer quota, if any: its limit and the `[start, end)` of the current period.
    pub quota: Option<QuotaWindow>,
}

impl ReserveRequest<'_> {
    fn ask(&self) -> Ask {
        Ask {
            tokens: self.tokens,
            exposure: self.exposure,
            exposure_limit: self.exposure_limit,
        }
    }
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
    /// The minute budget cannot take the reservation before `retry_after_ms` from now: the
    /// time until enough tokens have refilled.
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
    pub quota_start_ms: Option<u64>,
    /// Tokens held in the bucket (and the quota).
    pub reserved: u64,
    /// Tokens the call may use beyond `reserved` on the key's overshoot allowance.
    pub exposure: u64,
    /// Tokens left in the bucket once this reservation is counted.
    pub remaining: u64,
    pub tokens_per_minute: u64,
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
    bucket: Bucket,
    quota_start_ms: u64,
    quota_used: u64,
}

/// (period start, subscription, model).
type LedgerKey = (u64, String, String);

/// A [`LedgerKey`] by borrowed names, to find an entry without copying them. Hashes as the key
/// it names: a tuple hashes its fields in order, and a `String` hashes as its `str`.
#[derive(Hash)]
struct LedgerEntry<'a>(u64, &'a str, &'a str);

impl Equivalent<LedgerKey> for LedgerEntry<'_> {
    fn equivalent(&self, (period, subscription, model): &LedgerKey) -> bool {
        self.0 == *period && self.1 == subscription && self.2 == model
    }
}

/// Budgets and usage in this process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    budgets: Mutex<HashMap<String, Counters>>,
    ledger: Mutex<hashbrown::HashMap<LedgerKey, (u64, u64), RandomState>>,
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
        let (now, tpm) = (request.now_ms, request.tokens_per_minute);
        let mut budgets = self.budgets.lock();
        if !budgets.contains_key(request.key) {
            // Idle keys are pruned when a new one arrives, so memory tracks active keys.
            budgets.retain(|_, c| !c.bucket.is_idle(now, tpm) || c.quota_used > 0);
            budgets.insert(request.key.to_owned(), Counters::default());
        }
        let Some(counters) = budgets.get_mut(request.key) else {
            return Err(StoreError::Unavailable("budget entry vanished".to_owned()));
        };
        counters.bucket.drain(now, tpm);
        if let Some(quota) = request.quota {
            if counters.quota_start_ms != quota.start_ms {
                counters.quota_start_ms = quota.start_ms;
                counters.quota_used = 0;
            }
            let (held, _) = counters.bucket.split(request.ask());
            if counters.quota_used.saturating_add(held) > quota.limit {
                return Ok(Admission::QuotaExhausted {
                    resets_in_ms: quota.end_ms.saturating_sub(now),
                });
            }
        }
        let (reserved, exposure, remaining) = match counters.bucket.reserve(request.ask(), now, tpm)
        {
            Decision::Wait { retry_after_ms } => {
                return Ok(Admission::Throttled { retry_after_ms });
            }
            Decision::Admit {
                reserved,
                exposure,
                remaining,
            } => (reserved, exposure, remaining),
        };
        if request.quota.is_some() {
            counters.quota_used += reserved;
        }
        Ok(Admission::Admitted(Ticket {
            key: request.key.to_owned(),
            quota_start_ms: request.quota.map(|q| q.start_ms),
            reserved,
            exposure,
            remaining,
            tokens_per_minute: tpm,
        }))
    }

    async fn reconcile(&self, ticket: &Ticket, actual: u64, now_ms: u64) -> Result<(), StoreError> {
        let mut budgets = self.budgets.lock();
        if !budgets.contains_key(&ticket.key) {
            // A bucket pruned while the call ran (it had drained) is charged afresh.
            budgets.insert(ticket.key.clone(), Counters::default());
        }
        let Some(counters) = budgets.get_mut(&ticket.key) else {
            return Err(StoreError::Unavailable("budget entry vanished".to_owned()));
        };
        counters.bucket.settle(
            ticket.reserved,
            ticket.exposure,
            actual,
            now_ms,
            ticket.tokens_per_minute,
        );
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
        let names = LedgerEntry(period_start_ms, &record.subscription, &record.model);
        let entry = match ledger.get_mut(&names) {
            Some(entry) => entry,
            None => ledger
                .entry((
                    period_start_ms,
                    record.subscription.clone(),
                    record.model.clone(),
                ))
                .or_default(),
        };
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
///
/// Time is handed to the store as `now_ms` on every call, so the checks move it exactly, the way
/// a paused clock would, without sleeping.
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

    /// 1,000 tokens a minute: one token refills every 60 ms.
    fn reserve(key: &str, tokens: u64, now_ms: u64) -> ReserveRequest<'_> {
        ReserveRequest {
            key,
            tokens,
            exposure: 0,
            exposure_limit: 0,
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
        reservations_fill_the_bucket_then_throttle(store, &format!("{prefix}fill")).await;
        no_burst_across_a_minute_boundary(store, &format!("{prefix}edge")).await;
        reconcile_moves_both_ways(store, &format!("{prefix}rec")).await;
        exposure_is_bounded_by_the_allowance(store, &format!("{prefix}exposure")).await;
        quota_exhausts_and_resets(store, &format!("{prefix}quota")).await;
        usage_ledger_adds_up(store, prefix).await;
    }

    pub async fn reservations_fill_the_bucket_then_throttle(store: &dyn StateStore, key: &str) {
        let start = t0() + 1_000;
        let first = ticket(store.reserve(&reserve(key, 600, start)).await.unwrap());
        assert_eq!(first.remaining, 400);
        // 100 tokens too many: they refill in 6 seconds.
        let refused = store.reserve(&reserve(key, 500, start)).await.unwrap();
        assert_eq!(
            refused,
            Admission::Throttled {
                retry_after_ms: 6_000
            }
        );
        let fits = ticket(store.reserve(&reserve(key, 400, start)).await.unwrap());
        assert_eq!(fits.remaining, 0);
        // After the 6 seconds, the refused call fits exactly.
        let later = ticket(
            store
                .reserve(&reserve(key, 100, start + 6_000))
                .await
                .unwrap(),
        );
        assert_eq!(later.remaining, 0);
    }

    /// A full bucket just before a minute boundary is still full just after it.
    pub async fn no_burst_across_a_minute_boundary(store: &dyn StateStore, key: &str) {
        let start = t0();
        ticket(
            store
                .reserve(&reserve(key, 1_000, start - 1))
                .await
                .unwrap(),
        );
        assert_eq!(
            store.reserve(&reserve(key, 10, start)).await.unwrap(),
            Admission::Throttled {
                retry_after_ms: 599
            }
        );
        let refilled = ticket(store.reserve(&reserve(key, 10, start + 599)).await.unwrap());
        assert_eq!(refilled.remaining, 0);
        // A whole minute later, the bucket is whole again.
        let whole = ticket(
            store
                .reserve(&reserve(key, 1, start + 60_599))
                .await
                .unwrap(),
        );
        assert_eq!(whole.remaining, 999);
    }

    pub async fn reconcile_moves_both_ways(store: &dyn StateStore, key: &str) {
        let start = t0();
        let big = ticket(store.reserve(&reserve(key, 800, start)).await.unwrap());
        // Used less than reserved: the difference comes back.
        store.reconcile(&big, 100, start).await.unwrap();
        let next = ticket(store.reserve(&reserve(key, 900, start)).await.unwrap());
        assert_eq!(next.remaining, 0);
        // Used more than reserved: the bucket is charged the real figure, and callers wait
        // until the excess has drained too.
        store.reconcile(&next, 950, start).await.unwrap();
        assert_eq!(
            store.reserve(&reserve(key, 1, start)).await.unwrap(),
            Admission::Throttled {
                retry_after_ms: 3_060
            }
        );
    }

    /// Exposure beyond the allowance is held; settling gives it back.
    pub async fn exposure_is_bounded_by_the_allowance(store: &dyn StateStore, key: &str) {
        let start = t0();
        let exposed = |now_ms| ReserveRequest {
            exposure: 150,
            exposure_limit: 200,
            ..reserve(key, 10, now_ms)
        };
        let first = ticket(store.reserve(&exposed(start)).await.unwrap());
        assert_eq!((first.reserved, first.exposure), (10, 150));
        let second = ticket(store.reserve(&exposed(start)).await.unwrap());
        assert_eq!((second.reserved, second.exposure), (110, 50));
        assert_eq!(second.remaining, 1_000 - 10 - 110);
        // The first call ran long: charged in full, and its exposure is free again.
        store.reconcile(&first, 160, start).await.unwrap();
        let third = ticket(store.reserve(&exposed(start)).await.unwrap());
        assert_eq!((third.reserved, third.exposure), (10, 150));
        assert_eq!(third.remaining, 1_000 - 160 - 110 - 10);
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

    #[test]
    fn a_ledger_entry_is_found_by_its_borrowed_names() {
        let mut ledger = hashbrown::HashMap::with_hasher(RandomState::new());
        ledger.insert((7, "team".to_owned(), "m".to_owned()), (1, 2));
        assert_eq!(ledger.get(&LedgerEntry(7, "team", "m")), Some(&(1, 2)));
        assert_eq!(ledger.get(&LedgerEntry(7, "team", "n")), None);
        assert_eq!(ledger.get(&LedgerEntry(8, "team", "m")), None);
    }
}
