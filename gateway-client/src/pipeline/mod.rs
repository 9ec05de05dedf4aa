//! The policy pipeline. Each call reads top to bottom in the order it runs, one module a stage:
//!
//! - [`build`]: the gateway's parts, put together once at start;
//! - [`admission`]: validate the request and resolve the model; governance (check and cap the
//!   completion limits and `n`; streams have a cap of their own); content safety on the prompt
//!   (when on: a refused prompt is never sent and costs nothing); the budget (count the prompt
//!   with the model's tokenizer and reserve prompt + completion budget, or refuse before anything
//!   is sent). Admission hands back an [`admission::Admitted`] guard that owns the reservation:
//!   dropped unsettled, it releases it;
//! - [`call`]: the cache lookup (a hit answers at once and releases the reservation; calls
//!   asking for several answers, `n > 1`, bypass the cache: one cached answer is not `n`
//!   samples), then the model API through [`ModelApi`], whole or streamed, within the call's
//!   deadline;
//!   In the model-judged mode ([`judge`]) a similar answer refused only for words the verifier
//!   could not match is confirmed by the chat model first: a metered, one-token call;
//! - [`settlement`]: reconcile the reservation to the real usage; metrics and the usage ledger;
//!   content safety on the answer (when on: the tokens are spent, but a refused answer is
//!   neither returned nor cached); cache store;
//! - [`relay`]: a stream's chunks passed on to its consumer, then settled the same way;
//! - [`native`]: the same, for a call the upstream takes in the caller's own protocol.
//!
//! Streams settle when the stream ends, in a task of their own. A consumer that goes away, or
//! takes no chunk for `STREAM_SEND_TIMEOUT_SECONDS`, is sent nothing more, but the upstream is
//! still read to its end (within the call's deadline) so the usage it reports is what gets
//! charged; cut off by the deadline, the tokens seen so far are. Their chunks have gone out by
//! then, so a refused streamed answer ends with an error event instead of the normal end of the
//! stream. While a stream runs, its completion tokens are counted: one that runs past its limit
//! (an upstream that ignores `max_tokens`) is cut off with a `completion_limit_exceeded` event,
//! and the upstream connection is closed.

mod admission;
mod answer;
mod build;
mod call;
mod judge;
mod native;
mod relay;
mod settlement;
#[cfg(test)]
mod tests;

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::Stream;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

pub use answer::Answer;
pub use build::{GatewayParts, build_embedder, credential, parts, semantic_cache, shared_parts};
pub use native::NativeCall;
pub use relay::completion_as_chunks;

use crate::{
    cache::{CacheStatus, ResponseCache},
    clock::Clock,
    config::{GatewayConfig, Prices, QuotaPeriod},
    context::Api,
    entra::EntraCredential,
    error::GatewayError,
    metrics::CallMetrics,
    model_api::ModelApi,
    policy::{budget::Budget, content_safety::ContentSafety, governance},
    protocol::anthropic::MessagesApi,
    stats::{InstanceStats, ReportInputs, Stats, StatsBoard, StatsReport},
    store::{StateStore, StoreError},
    usage::{Usage, UsageReport},
};

/// The answer to a non-streamed chat call.
#[derive(Debug, Clone)]
pub struct ChatOutcome {
    /// The upstream's (or the cache's) answer, unchanged. A chat completions answer that went
    /// upstream keeps the bytes it came as: a route that passes it on unchanged sends those.
    pub answer: Answer,
    pub model: String,
    /// Tokens this call consumed (zero for a cache hit).
    pub usage: Usage,
    pub cache: CacheStatus,
    /// Tokens left in the caller's budget this minute.
    pub remaining_tokens: u64,
}

/// The answer to an embeddings call.
#[derive(Debug, Clone)]
pub struct EmbeddingsOutcome {
    pub body: Value,
    pub model: String,
    pub usage: Usage,
    pub remaining_tokens: u64,
}

/// One item of a streamed chat answer.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    /// A `chat.completion.chunk`, to forward as is.
    Chunk(Value),
    /// The stream ended well; the tokens it used, as reconciled.
    Done { usage: Usage },
}

/// A streamed chat answer. Dropping it cancels the upstream call.
pub struct ChatStream {
    pub model: String,
    pub cache: CacheStatus,
    /// Tokens left in the caller's budget when the stream started.
    pub remaining_tokens: u64,
    events: mpsc::Receiver<Result<StreamEvent, GatewayError>>,
}

impl Stream for ChatStream {
    type Item = Result<StreamEvent, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

/// The gateway: every model call goes through here.
pub struct Gateway {
    model_api: Arc<dyn ModelApi>,
    /// Where `/v1/messages` calls go (see [`crate::protocol::anthropic::MessagesApi`]).
    messages_api: Arc<dyn ModelApi>,
    /// Whether `messages_api` is a native Anthropic upstream.
    messages_native: bool,
    budget: Budget,
    store: Arc<dyn StateStore>,
    cache: Option<Arc<dyn ResponseCache>>,
    clock: Clock,
    chat_model: String,
    embedding_model: String,
    caps: governance::Caps,
    /// The whole of one call, retries and failover included.
    call_deadline: Duration,
    /// How long a stream may go without a byte from the upstream.
    stream_idle_timeout: Duration,
    /// How long a stream waits for its consumer to take a chunk before giving up on it.
    stream_send_timeout: Duration,
    usage_period: QuotaPeriod,
    prices: Prices,
    /// The per-call metrics; each model is labelled by its configured name, else `other`.
    metrics: Arc<CallMetrics>,
    /// `None` when content safety is off.
    content_safety: Option<Arc<ContentSafety>>,
    /// The Microsoft Entra ID credential, when an Azure backend has no key.
    credential: Option<Arc<EntraCredential>>,
    /// This instance's per-minute figures (`/admin/stats`).
    stats: Arc<Stats>,
    /// Where instances publish their figures to each other, when they share state.
    stats_board: Option<Arc<dyn StatsBoard>>,
}

impl Gateway {
    /// Builds the gateway with parts of its own (see [`parts`]). The response cache is `cache`
    /// when given, else the semantic cache that `config.cache` describes, else none.
    pub fn new(
        config: GatewayConfig,
        store: Arc<dyn StateStore>,
        cache: Option<Arc<dyn ResponseCache>>,
    ) -> Result<Self, GatewayError> {
        let parts = build::parts(&config, store, cache, None)?;
        Self::from_parts(config, parts)
    }

    /// The gateway over parts built elsewhere (by [`parts`], or by a test with a fake model
    /// API and a paused clock). The models configured are checked against the model API.
    pub fn from_parts(config: GatewayConfig, parts: GatewayParts) -> Result<Self, GatewayError> {
        let metrics = Arc::new(CallMetrics::new(build::configured_models(
            [&config.chat_model, &config.embedding_model],
            &config.prices,
            parts.model_api.as_ref(),
        )?));
        let messages_native = parts.messages_api.is_some();
        let messages_api = parts.messages_api.unwrap_or_else(|| {
            Arc::new(MessagesApi::translated(parts.model_api.clone())) as Arc<dyn ModelApi>
        });
        Ok(Self {
            messages_api,
            messages_native,
            budget: Budget::new(parts.store.clone(), config.budget, parts.clock),
            model_api: parts.model_api,
            store: parts.store,
            cache: parts.cache,
            clock: parts.clock,
            chat_model: config.chat_model,
            embedding_model: config.embedding_model,
            caps: governance::Caps {
                whole: config.max_tokens_cap,
                stream: config.max_stream_tokens_cap,
            },
            call_deadline: config.retry.call_deadline,
            stream_idle_timeout: config.retry.stream_idle_timeout,
            stream_send_timeout: config.stream_send_timeout,
            usage_period: config.budget.usage_period,
            prices: config.prices,
            metrics,
            content_safety: parts.content_safety,
            credential: parts.credential,
            stats: parts.stats,
            stats_board: parts.stats_board,
        })
    }

    pub fn is_configured(&self) -> bool {
        self.model_api.is_configured()
    }

    /// Builds now what the first model call would otherwise build (the configured models'
    /// tokenizers; the cache's tables, which its construction loaded); call before serving.
    /// Returns what is ready, by name.
    pub fn warm_up(&self) -> Vec<&'static str> {
        let mut ready = if self.is_configured() {
            crate::tokens::warm(&[&self.chat_model, &self.embedding_model])
        } else {
            Vec::new()
        };
        if self.cache.is_some() {
            crate::semantic::warm();
            ready.push("cache_tables");
        }
        ready
    }

    pub fn chat_model(&self) -> &str {
        &self.chat_model
    }

    /// Whether `/v1/messages` goes to a native Anthropic upstream (else it is translated).
    pub fn messages_native(&self) -> bool {
        self.messages_native
    }

    /// The prompt tokens of a chat request, counted as the budget counts them (for
    /// `count_tokens`: nothing is reserved, sent or billed).
    pub fn count_prompt_tokens(&self, request: &Map<String, Value>) -> u64 {
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(&self.chat_model);
        crate::tokens::estimate_chat_prompt(model, request)
    }

    /// The model API a call from `api` goes to.
    fn model_api_for(&self, api: Api) -> &Arc<dyn ModelApi> {
        match api {
            Api::Anthropic => &self.messages_api,
            Api::Agent | Api::OpenAi | Api::AzureOpenAi | Api::Responses => &self.model_api,
        }
    }

    /// The models this gateway serves: the configured chat and embedding models, then every
    /// model with a price, each once.
    pub fn served_models(&self) -> Vec<&str> {
        let mut priced: Vec<&str> = self.prices.0.keys().map(String::as_str).collect();
        priced.sort_unstable();
        let mut models = vec![self.chat_model.as_str(), self.embedding_model.as_str()];
        for model in priced {
            if !models.contains(&model) {
                models.push(model);
            }
        }
        models.dedup();
        models
    }

    pub fn state_store(&self) -> &'static str {
        self.store.kind()
    }

    /// Why the gateway is degraded (shared state unreachable, no Entra ID token), if it is.
    pub fn degraded_reason(&self) -> Option<String> {
        let reasons: Vec<String> = [
            self.store.degraded_reason(),
            self.credential.as_ref().and_then(|c| c.degraded_reason()),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// The Microsoft Entra ID credential, when an Azure backend has no key (to share it).
    pub fn credential(&self) -> Option<&Arc<EntraCredential>> {
        self.credential.as_ref()
    }

    pub fn tokens_per_minute(&self) -> u64 {
        self.budget.tokens_per_minute()
    }

    /// The chargeback report for the current period; `only` limits it to one subscription.
    pub async fn usage_report(&self, only: Option<&str>) -> Result<UsageReport, GatewayError> {
        let bounds = self.usage_period.bounds(self.clock.now_ms());
        let mut records = self.store.usage(bounds.0).await?;
        if let Some(name) = only {
            records.retain(|r| r.subscription == name);
        }
        Ok(UsageReport::build(
            self.usage_period.as_str(),
            bounds,
            records,
            &self.prices,
        ))
    }

    /// This instance's per-minute figures, for the HTTP layer to record its own events in.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// This instance's figures as it would publish them now.
    fn own_figures(&self, instance_id: &str) -> InstanceStats {
        InstanceStats {
            instance_id: instance_id.to_owned(),
            seen_ms: self.clock.now_ms(),
            snapshot: self.stats.snapshot(),
            breakers: self.model_api.breaker_states(),
        }
    }

    /// Publishes this instance's figures for the others, when instances share state.
    pub async fn publish_stats(&self, instance_id: &str) {
        if let Some(board) = &self.stats_board
            && let Err(error) = board.publish(&self.own_figures(instance_id)).await
        {
            tracing::debug!(%error, "could not publish this instance's figures");
        }
    }

    /// `GET /admin/stats`: this instance's figures, merged with every live instance's when
    /// they share state (this instance publishes first, so it is always among them).
    pub async fn stats_report(&self, instance_id: &str) -> Result<StatsReport, GatewayError> {
        let own = self.own_figures(instance_id);
        let now_ms = own.seen_ms;
        let (source, instances) = match &self.stats_board {
            Some(board) => match shared_figures(board.as_ref(), &own).await {
                Ok(instances) => ("redis", instances),
                Err(error) => {
                    tracing::warn!(%error, "shared figures unavailable: reporting this instance alone");
                    ("memory", vec![own])
                }
            },
            None => ("memory", vec![own]),
        };
        let inputs = ReportInputs {
            now_ms,
            instance_id: instance_id.to_owned(),
            source,
            tokens_per_minute: self.budget.tokens_per_minute(),
            quota: self.usage_report(None).await?,
        };
        Ok(StatsReport::build(inputs, &instances))
    }

    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.call_deadline
    }
}

/// Publishes `own`, then reads every live instance's figures (`own` in place of whatever of
/// this instance was read back).
async fn shared_figures(
    board: &dyn StatsBoard,
    own: &InstanceStats,
) -> Result<Vec<InstanceStats>, StoreError> {
    board.publish(own).await?;
    let mut instances = board.read(own.seen_ms).await?;
    instances.retain(|i| i.instance_id != own.instance_id);
    instances.push(own.clone());
    Ok(instances)
}
