//! Token budget per subscription: reserve before the call, reconcile after it.
//!
//! The minute budget is a bucket that refills continuously (see `store::bucket`). A chat call
//! reserves its prompt (counted with the model's tokenizer) plus a completion:
//!
//! - `strict`: the whole allowance (`max_tokens`, or the cap). Concurrent calls can never
//!   together overshoot, but a key is throttled by how many calls it has open, not by what it
//!   spends: short answers reserve far more than they use.
//! - `expected` (the default): the completion the key's recent calls to that model used
//!   (`policy::expected`), never above the allowance. The rest of the allowance is *exposure*,
//!   taken on the key's overshoot allowance (`overshoot_percent` of a minute's tokens, shared by
//!   every instance on Redis); exposure beyond it is reserved as in strict mode. So the tokens a
//!   key's open calls may use beyond their reservations are bounded by the allowance, and what
//!   they do use is charged when they settle: the bucket goes into debt and the key waits until
//!   it has drained. Over any span, a key spends at most its rate plus one minute's tokens plus
//!   the allowance.
//!
//! Reconciling to the real usage afterwards keeps the bucket exact either way.

use std::{sync::Arc, time::Duration};

use crate::{
    clock::Clock,
    config::{BudgetConfig, ReservationMode},
    context::CallContext,
    error::GatewayError,
    metrics,
    policy::{expected::CompletionEstimator, governance::CompletionLimit},
    store::{Admission, QuotaWindow, ReserveRequest, StateStore, Ticket},
    usage::Usage,
};

pub struct Budget {
    store: Arc<dyn StateStore>,
    config: BudgetConfig,
    clock: Clock,
    estimator: Arc<CompletionEstimator>,
}

/// Tokens held for one call until it is settled.
///
/// Dropping an unsettled reservation leaves its tokens held and its exposure outstanding until
/// the bucket drains; settle it (with the worst case, if nothing better is known) instead.
#[must_use = "settle the reservation with the real usage"]
pub struct Reservation {
    store: Arc<dyn StateStore>,
    clock: Clock,
    ticket: Ticket,
    /// Where a chat call's real completion is learned from, when it settles.
    learning: Option<Learning>,
}

struct Learning {
    estimator: Arc<CompletionEstimator>,
    model: String,
    choices: u64,
}

/// What a call asks to reserve.
struct Ask {
    tokens: u64,
    exposure: u64,
}

impl Budget {
    pub fn new(store: Arc<dyn StateStore>, config: BudgetConfig, clock: Clock) -> Self {
        Self {
            store,
            config,
            clock,
            estimator: Arc::default(),
        }
    }

    pub fn tokens_per_minute(&self) -> u64 {
        self.config.tokens_per_minute
    }

    /// Reserves exactly `tokens` for one call by `context` (an embeddings call), or refuses.
    pub async fn reserve(
        &self,
        context: &CallContext,
        tokens: u64,
    ) -> Result<Reservation, GatewayError> {
        let ask = Ask {
            tokens,
            exposure: 0,
        };
        self.reserve_ask(context, ask, None).await
    }

    /// Reserves a chat call's prompt and completion (see the module's doc), or refuses.
    pub async fn reserve_chat(
        &self,
        context: &CallContext,
        model: &str,
        prompt: u64,
        limit: CompletionLimit,
    ) -> Result<Reservation, GatewayError> {
        let allowance = limit.total();
        let expected = match self.config.reservation {
            ReservationMode::Strict => allowance,
            ReservationMode::Expected => {
                let now_ms = self.clock.now_ms();
                let per_choice =
                    self.estimator
                        .expected(&context.budget_key, model, limit.per_choice, now_ms);
                per_choice.saturating_mul(limit.choices).min(allowance)
            }
        };
        let ask = Ask {
            tokens: prompt.saturating_add(expected),
            exposure: allowance - expected,
        };
        let learning = Learning {
            estimator: self.estimator.clone(),
            model: model.to_owned(),
            choices: limit.choices,
        };
        self.reserve_ask(context, ask, Some(learning)).await
    }

    async fn reserve_ask(
        &self,
        context: &CallContext,
        ask: Ask,
        learning: Option<Learning>,
    ) -> Result<Reservation, GatewayError> {
        let limit = self.config.tokens_per_minute;
        let worst_case = ask.tokens.saturating_add(ask.exposure);
        if worst_case > limit {
            metrics::budget_refused(context, "exceeds_budget");
            tracing::Span::current().record("tollgate.budget.refused", "exceeds_budget");
            return Err(GatewayError::ExceedsBudget {
                needed: worst_case,
                limit,
            });
        }
        let now_ms = self.clock.now_ms();
        let request = ReserveRequest {
            key: &context.budget_key,
            tokens: ask.tokens,
            exposure: ask.exposure,
            exposure_limit: self.exposure_limit(),
            now_ms,
            tokens_per_minute: limit,
            quota: self.quota_window(now_ms),
        };
        match self.store.reserve(&request).await {
            Ok(Admission::Admitted(ticket)) => Ok(Reservation {
                store: self.store.clone(),
                clock: self.clock,
                ticket,
                learning,
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

    /// The exposure a key's open calls may have: the overshoot bound.
    fn exposure_limit(&self) -> u64 {
        match self.config.reservation {
            ReservationMode::Strict => 0,
            ReservationMode::Expected => {
                let percent = u128::from(self.config.overshoot_percent);
                let tokens = u128::from(self.config.tokens_per_minute) * percent / 100;
                u64::try_from(tokens).unwrap_or(u64::MAX)
            }
        }
    }

    fn quota_window(&self, now_ms: u64) -> Option<QuotaWindow> {
        self.config.quota.map(|quota| {
            let (start_ms, end_ms) = quota.period.bounds(now_ms);
            QuotaWindow {
                limit: quota.tokens,
                start_ms,
                end_ms,
            }
        })
    }
}

impl Reservation {
    pub fn reserved(&self) -> u64 {
        self.ticket.reserved
    }

    /// The most the call may use: what it reserved and its exposure.
    pub fn worst_case(&self) -> u64 {
        self.ticket.reserved + self.ticket.exposure
    }

    /// Tokens left in the bucket if the call uses `actual` tokens.
    pub fn remaining_after(&self, actual: u64) -> u64 {
        (self.ticket.remaining + self.ticket.reserved).saturating_sub(actual)
    }

    /// Settles with a real answer's usage, and learns its completion length.
    pub async fn settle_usage(self, usage: Usage) -> u64 {
        if let Some(learning) = &self.learning {
            learning.estimator.observe(
                &self.ticket.key,
                &learning.model,
                usage.completion_tokens,
                learning.choices,
                self.clock.now_ms(),
            );
        }
        self.settle(usage.total_tokens).await
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
    use crate::{context::Api, store::MemoryStore};

    fn budget(tokens_per_minute: u64, reservation: ReservationMode) -> Budget {
        Budget::new(
            Arc::new(MemoryStore::new()),
            BudgetConfig {
                reservation,
                ..BudgetConfig::per_minute(tokens_per_minute)
            },
            Clock::starting_at(1_795_563_000_000),
        )
    }

    fn limit(per_choice: u64) -> CompletionLimit {
        CompletionLimit {
            per_choice,
            choices: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn budgets_are_per_key_and_refill_continuously() {
        let budget = budget(600, ReservationMode::Strict);
        let alice = CallContext::for_subscription("alice", Api::OpenAi);
        let bob = CallContext::for_subscription("bob", Api::OpenAi);
        let held = budget.reserve(&alice, 580).await.unwrap();
        let refused = budget.reserve(&alice, 30).await.err().unwrap();
        let GatewayError::BudgetExceeded { retry_after, .. } = refused else {
            panic!("{refused:?}")
        };
        // Ten tokens a second refill: the 10 missing come back in one second.
        assert_eq!(retry_after, Duration::from_secs(1));
        // Bob's budget is his own.
        let _bob = budget.reserve(&bob, 600).await.unwrap();
        tokio::time::advance(retry_after).await;
        let _again = budget.reserve(&alice, 30).await.unwrap();
        drop(held);
    }

    #[tokio::test(start_paused = true)]
    async fn settling_returns_unused_tokens() {
        let budget = budget(100, ReservationMode::Strict);
        let alice = CallContext::for_subscription("alice", Api::OpenAi);
        let reservation = budget.reserve(&alice, 90).await.unwrap();
        assert_eq!(reservation.settle(20).await, 80);
        let _fits = budget.reserve(&alice, 80).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_larger_than_the_budget_is_refused_outright() {
        let budget = budget(100, ReservationMode::Expected);
        let alice = CallContext::for_subscription("alice", Api::OpenAi);
        assert!(matches!(
            budget.reserve_chat(&alice, "m", 2, limit(99)).await,
            Err(GatewayError::ExceedsBudget {
                needed: 101,
                limit: 100
            })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn expected_reservations_learn_from_settled_calls() {
        let budget = budget(10_000, ReservationMode::Expected);
        let alice = CallContext::for_subscription("alice", Api::OpenAi);
        // No history: a quarter of the allowance.
        let first = budget
            .reserve_chat(&alice, "m", 10, limit(1_000))
            .await
            .unwrap();
        assert_eq!((first.reserved(), first.worst_case()), (260, 1_010));
        first.settle_usage(Usage::new(10, 12)).await;
        let second = budget
            .reserve_chat(&alice, "m", 10, limit(1_000))
            .await
            .unwrap();
        assert!(second.reserved() < 60, "{}", second.reserved());
        assert_eq!(second.worst_case(), 1_010);
        second.settle(0).await;
        // Strict mode holds the whole allowance.
        let strict = budget_strict_reserve().await;
        assert_eq!(strict, 1_010);
    }

    async fn budget_strict_reserve() -> u64 {
        let budget = budget(10_000, ReservationMode::Strict);
        let alice = CallContext::for_subscription("alice", Api::OpenAi);
        let reservation = budget
            .reserve_chat(&alice, "m", 10, limit(1_000))
            .await
            .unwrap();
        reservation.reserved()
    }
}
