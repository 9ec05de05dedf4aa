//! Token budget per subscription: reserve before the call, reconcile after it.
//!
//! A reservation is the prompt (counted with the model's tokenizer) plus the completion budget.
//! Because every call reserves before it is sent, concurrent calls cannot together overshoot the
//! budget; reconciling to the real usage afterwards keeps the counter exact.

use std::{sync::Arc, time::Duration};

use crate::{
    clock::Clock,
    config::BudgetConfig,
    context::CallContext,
    error::GatewayError,
    metrics,
    store::{Admission, QuotaWindow, ReserveRequest, StateStore, Ticket},
};

pub struct Budget {
    store: Arc<dyn StateStore>,
    config: BudgetConfig,
    clock: Clock,
}

/// Tokens held for one call until it is settled.
///
/// Dropping an unsettled reservation (the caller went away mid-call) keeps it charged in full:
/// the upstream may have done the work.
#[must_use = "settle the reservation with the real usage"]
pub struct Reservation {
    store: Arc<dyn StateStore>,
    clock: Clock,
    ticket: Ticket,
}

impl Budget {
    pub fn new(store: Arc<dyn StateStore>, config: BudgetConfig, clock: Clock) -> Self {
        Self {
            store,
            config,
            clock,
        }
    }

    pub fn tokens_per_minute(&self) -> u64 {
        self.config.tokens_per_minute
    }

    /// Reserves `tokens` for one call by `context`, or refuses without calling anything.
    pub async fn reserve(
        &self,
        context: &CallContext,
        tokens: u64,
    ) -> Result<Reservation, GatewayError> {
        let limit = self.config.tokens_per_minute;
        if tokens > limit {
            metrics::budget_refused(context, "exceeds_budget");
            tracing::Span::current().record("tollgate.budget.refused", "exceeds_budget");
            return Err(GatewayError::ExceedsBudget {
                needed: tokens,
                limit,
            });
        }
        let now_ms = self.clock.now_ms();
        let quota = self.config.quota.map(|quota| {
            let (start_ms, end_ms) = quota.period.bounds(now_ms);
            QuotaWindow {
                limit: quota.tokens,
                start_ms,
                end_ms,
            }
        });
        let request = ReserveRequest {
            key: &context.budget_key,
            tokens,
            now_ms,
            tokens_per_minute: limit,
            quota,
        };
        match self.store.reserve(&request).await {
            Ok(Admission::Admitted(ticket)) => Ok(Reservation {
                store: self.store.clone(),
                clock: self.clock,
                ticket,
            }),
            Ok(Admission::Throttled { retry_after_ms }) => {
                metrics::budget_refused(context, "tokens_per_minute");
                tracing::Span::current().record("tollgate.budget.refused", "tokens_per_minute");
                Err(GatewayError::BudgetExceeded {
                    retry_after: Duration::from_millis(retry_after_ms),
                    limit,
                })
            }
            Ok(Admission::QuotaExhausted { resets_in_ms }) => {
                metrics::budget_refused(context, "quota");
                tracing::Span::current().record("tollgate.budget.refused", "quota");
                Err(GatewayError::QuotaExhausted {
                    resets_in: Duration::from_millis(resets_in_ms),
                })
            }
            Err(error) => Err(GatewayError::Store(error)),
        }
    }
}

impl Reservation {
    pub fn reserved(&self) -> u64 {
        self.ticket.reserved
    }

    /// Tokens left in this minute if the call uses `actual` tokens.
    pub fn remaining_after(&self, actual: u64) -> u64 {
        (self.ticket.remaining + self.ticket.reserved).saturating_sub(actual)
    }

    /// Replaces the reservation with the tokens really used; returns the tokens left.
    pub async fn settle(self, actual: u64) -> u64 {
        let remaining = self.remaining_after(actual);
        if let Err(error) = self
            .store
            .reconcile(&self.ticket, actual, self.clock.now_ms())
            .await
        {
            tracing::warn!(%error, "could not reconcile a token reservation");
        }
        remaining
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{config::QuotaPeriod, context::Api, store::MemoryStore};

    fn budget(tokens_per_minute: u64) -> Budget {
        Budget::new(
            Arc::new(MemoryStore::new()),
            BudgetConfig {
                tokens_per_minute,
                quota: None,
                usage_period: QuotaPeriod::Monthly,
            },
            // A whole minute, so windows are predictable.
            Clock::starting_at(1_795_563_000_000),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn budgets_are_per_key_and_the_window_resets() {
        let budget = budget(100);
        let alice = CallContext::for_subscription("alice", Api::OpenAi);
        let bob = CallContext::for_subscription("bob", Api::OpenAi);
        let held = budget.reserve(&alice, 80).await.unwrap();
        let refused = budget.reserve(&alice, 30).await.err().unwrap();
        let GatewayError::BudgetExceeded { retry_after, .. } = refused else {
            panic!("{refused:?}")
        };
        assert_eq!(retry_after, Duration::from_secs(60));
        // Bob's budget is his own.
        let _bob = budget.reserve(&bob, 100).await.unwrap();
        // The next minute starts afresh.
        tokio::time::advance(Duration::from_secs(60)).await;
        let _again = budget.reserve(&alice, 100).await.unwrap();
        drop(held);
    }

    #[tokio::test(start_paused = true)]
    async fn settling_returns_unused_tokens() {
        let budget = budget(100);
        let alice = CallContext::for_subscription("alice", Api::OpenAi);
        let reservation = budget.reserve(&alice, 90).await.unwrap();
        assert_eq!(reservation.settle(20).await, 80);
        let _fits = budget.reserve(&alice, 80).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_larger_than_the_budget_is_refused_outright() {
        let budget = budget(100);
        let alice = CallContext::for_subscription("alice", Api::OpenAi);
        assert!(matches!(
            budget.reserve(&alice, 101).await,
            Err(GatewayError::ExceedsBudget {
                needed: 101,
                limit: 100
            })
        ));
    }
}
