//! Settlement, after the model API answered: reconcile → metrics → ledger → content safety on
//! the answer → cache store.

use std::sync::Arc;

use serde_json::Value;
use tokio::time::Instant;

use super::{
    Answer, ChatOutcome, EmbeddingsOutcome, Gateway,
    admission::{ChatAdmission, EmbeddingsAdmission},
};
use crate::{
    cache::{CacheStatus, ResponseCache},
    clock::Clock,
    config::QuotaPeriod,
    context::{CacheDirective, CallContext, Operation},
    error::GatewayError,
    metrics::CallMetrics,
    policy::content_safety::{self, Direction},
    stats::Stats,
    store::{StateStore, UsageRecord},
    telemetry, tokens,
    usage::Usage,
};

impl Gateway {
    /// Settles a whole chat answer and hands it back, unless content safety refuses it.
    pub(super) async fn settle_whole(
        &self,
        context: &CallContext,
        mut admission: ChatAdmission,
        answer: Answer,
        cache_status: CacheStatus,
    ) -> Result<ChatOutcome, GatewayError> {
        let usage = answer.usage().unwrap_or_else(|| {
            let completion = tokens::count(&admission.model, &answer_text(answer.tree()));
            Usage::new(admission.prompt_estimate, completion)
        });
        let remaining = admission.held.settle_usage(usage).await;
        telemetry::record_answer(|| answer.tree());
        tracing::Span::current().record("tollgate.budget.remaining_tokens", remaining);
        self.account(context, Operation::Chat, &admission.model, usage)
            .await;
        if let Some(safety) = &self.content_safety {
            let text = content_safety::answer_text(answer.tree());
            safety
                .check(context, Direction::Response, &text)
                .await
                .inspect_err(|error| self.stats.refused_by(error))?;
        }
        if (cache_status == CacheStatus::Miss || context.cache == CacheDirective::NoCache)
            && let Some(cache) = self.storable_cache(context, admission.cacheable())
        {
            let (model, request) = (&admission.model, &admission.request);
            cache
                .store(context, Operation::Chat, model, request, answer.tree())
                .await;
        }
        Ok(ChatOutcome {
            answer,
            model: admission.model,
            usage,
            cache: cache_status,
            remaining_tokens: remaining,
        })
    }

    /// Settles an embeddings answer.
    pub(super) async fn settle_embeddings(
        &self,
        context: &CallContext,
        mut admission: EmbeddingsAdmission,
        body: Value,
        started: Instant,
    ) -> EmbeddingsOutcome {
        let usage = Usage::from_body(&body).unwrap_or_else(|| Usage::new(admission.estimate, 0));
        let remaining = admission.held.settle(usage.total_tokens).await;
        let model = admission.model.clone();
        self.account(context, Operation::Embeddings, &model, usage)
            .await;
        self.metrics.call_duration(
            context,
            Operation::Embeddings,
            self.model_api.provider_name(),
            &model,
            "ok",
            started.elapsed(),
        );
        EmbeddingsOutcome {
            body,
            model,
            usage,
            remaining_tokens: remaining,
        }
    }

    /// The cache to store a fresh answer in, if the call and the caller allow it.
    pub(super) fn storable_cache(
        &self,
        context: &CallContext,
        cacheable: bool,
    ) -> Option<Arc<dyn ResponseCache>> {
        if !cacheable {
            return None;
        }
        match context.cache {
            CacheDirective::NoStore => None,
            CacheDirective::Use | CacheDirective::NoCache => {
                self.cache.clone().filter(|cache| cache.available())
            }
        }
    }

    /// Metrics and the ledger for a call to the model API of `provider`.
    pub(super) fn accounting(&self, provider: &'static str) -> Accounting {
        Accounting {
            provider,
            store: self.store.clone(),
            clock: self.clock,
            usage_period: self.usage_period,
            metrics: self.metrics.clone(),
            stats: self.stats.clone(),
        }
    }

    async fn account(
        &self,
        context: &CallContext,
        operation: Operation,
        model: &str,
        usage: Usage,
    ) {
        self.accounting(self.model_api_for(context.api).provider_name())
            .record(context, operation, model, usage)
            .await;
    }
}

/// Metrics and the usage ledger, shared by whole and streamed calls.
pub(super) struct Accounting {
    store: Arc<dyn StateStore>,
    clock: Clock,
    usage_period: QuotaPeriod,
    pub(super) metrics: Arc<CallMetrics>,
    /// `gen_ai.provider.name` of the model API the call went to.
    pub(super) provider: &'static str,
    pub(super) stats: Arc<Stats>,
}

impl Accounting {
    pub(super) async fn record(
        &self,
        context: &CallContext,
        operation: Operation,
        model: &str,
        usage: Usage,
    ) {
        self.stats.tokens(
            &context.subscription,
            usage.prompt_tokens,
            usage.completion_tokens,
        );
        self.metrics.tokens(
            context,
            operation,
            self.provider,
            model,
            usage.prompt_tokens,
            usage.completion_tokens,
        );
        telemetry::record_usage(context, model, usage);
        let (period_start, _) = self.usage_period.bounds(self.clock.now_ms());
        let record = UsageRecord {
            subscription: context.subscription.to_string(),
            model: model.to_owned(),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        };
        if let Err(error) = self.store.record_usage(period_start, &record).await {
            tracing::warn!(%error, "could not record usage");
        }
    }
}

/// The text of every choice of an answer, for counting tokens when the upstream reports none.
fn answer_text(body: &Value) -> String {
    let mut text = String::new();
    for message in tokens::choice_messages(body) {
        tokens::collect_message_text(message, &mut text);
    }
    text
}
