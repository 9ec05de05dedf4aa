//! The policy pipeline. Each call reads top to bottom in the order it runs:
//!
//! 1. validate the request and resolve the model;
//! 2. governance: cap `max_tokens` (non-streamed calls);
//! 3. content safety on the prompt (when on): a refused prompt is never sent and costs nothing;
//! 4. budget: count the prompt with the model's tokenizer and reserve prompt + completion budget,
//!    or refuse before anything is sent;
//! 5. cache lookup: a hit answers at once and the reservation is released;
//! 6. upstream, with retries, failover and circuit breakers, within the call's deadline;
//! 7. reconcile the reservation to the real usage;
//! 8. metrics and the usage ledger;
//! 9. content safety on the answer (when on): the tokens are spent, but a refused answer is
//!    neither returned nor cached;
//! 10. cache store.
//!
//! Streams run steps 7–10 when the stream ends, in a task of their own, so a slow or vanished
//! client never holds the upstream open. Their chunks have gone out by then, so a refused
//! streamed answer ends with an error event instead of the normal end of the stream.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures::Stream;
use serde_json::{Map, Value};
use tokio::{sync::mpsc, time::Instant};

use crate::{
    assemble::AssembledAnswer,
    cache::{CacheStatus, ResponseCache},
    clock::Clock,
    config::{EmbedderChoice, GatewayConfig, Prices},
    context::{CacheDirective, CallContext, Operation},
    error::GatewayError,
    metrics,
    policy::{
        budget::{Budget, Reservation},
        content_safety::{self, ContentSafety, Direction},
        governance,
    },
    semantic::{BuiltinEmbedder, Embedder, SemanticCache, UpstreamEmbedder},
    shared::{RedisState, RedisStore, SharedCache},
    store::{StateStore, UsageRecord},
    tokens,
    upstream::{Answer, Upstream, sse::SseParser},
    usage::{Usage, UsageReport},
};

/// The answer to a non-streamed chat call.
#[derive(Debug, Clone)]
pub struct ChatOutcome {
    /// The upstream's (or the cache's) answer, unchanged.
    pub body: Value,
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
    upstream: Arc<Upstream>,
    budget: Budget,
    store: Arc<dyn StateStore>,
    cache: Option<Arc<dyn ResponseCache>>,
    clock: Clock,
    chat_model: String,
    embedding_model: String,
    max_tokens_cap: u32,
    usage_period: crate::config::QuotaPeriod,
    prices: Prices,
    /// `None` when content safety is off.
    content_safety: Option<Arc<ContentSafety>>,
}

impl Gateway {
    /// Builds the gateway. The response cache is `cache` when given, else the semantic cache
    /// that `config.cache` describes, else none.
    pub fn new(
        config: GatewayConfig,
        store: Arc<dyn StateStore>,
        cache: Option<Arc<dyn ResponseCache>>,
    ) -> Result<Self, GatewayError> {
        Self::build(config, store, cache, None)
    }

    /// Builds a gateway whose budgets, usage ledger and cache are shared through Redis with
    /// every other instance using the same Redis. `instance_id` tells its cache entries apart.
    pub fn with_redis(
        config: GatewayConfig,
        redis: Arc<RedisState>,
        instance_id: &str,
    ) -> Result<Self, GatewayError> {
        let _probe = redis.spawn_health_probe();
        let store: Arc<dyn StateStore> = Arc::new(RedisStore::new(redis.clone()));
        Self::build(config, store, None, Some((redis, instance_id.to_owned())))
    }

    fn build(
        config: GatewayConfig,
        store: Arc<dyn StateStore>,
        cache: Option<Arc<dyn ResponseCache>>,
        shared: Option<(Arc<RedisState>, String)>,
    ) -> Result<Self, GatewayError> {
        let clock = Clock::new();
        let content_safety = ContentSafety::new(&config.content_safety)
            .map_err(|e| GatewayError::InvalidRequest(format!("content safety settings: {e}")))?
            .map(Arc::new);
        let upstream = Arc::new(Upstream::new(
            config.backends,
            config.retry,
            config.breaker,
        )?);
        let cache = match (cache, config.cache) {
            (Some(cache), _) => Some(cache),
            (None, Some(settings)) => {
                let embedder =
                    build_embedder(&settings.embedder, &upstream, &config.embedding_model)?;
                let max_entries = settings.config.max_entries;
                let semantic = Arc::new(SemanticCache::new(embedder, settings.config, clock));
                Some(match shared {
                    Some((redis, origin)) => {
                        let shared = SharedCache::new(semantic, redis, origin, max_entries, clock);
                        let _sync = shared.spawn_sync();
                        shared as Arc<dyn ResponseCache>
                    }
                    None => semantic as Arc<dyn ResponseCache>,
                })
            }
            (None, None) => None,
        };
        Ok(Self {
            upstream,
            budget: Budget::new(store.clone(), config.budget, clock),
            store,
            cache,
            clock,
            chat_model: config.chat_model,
            embedding_model: config.embedding_model,
            max_tokens_cap: config.max_tokens_cap,
            usage_period: config.budget.usage_period,
            prices: config.prices,
            content_safety,
        })
    }

    pub fn is_configured(&self) -> bool {
        self.upstream.is_configured()
    }

    pub fn chat_model(&self) -> &str {
        &self.chat_model
    }

    pub fn state_store(&self) -> &'static str {
        self.store.kind()
    }

    /// Why shared state is degraded (e.g. Redis unreachable), if it is.
    pub fn degraded_reason(&self) -> Option<String> {
        self.store.degraded_reason()
    }

    pub fn tokens_per_minute(&self) -> u64 {
        self.budget.tokens_per_minute()
    }

    /// A non-streamed chat completion.
    pub async fn chat(
        &self,
        context: &CallContext,
        mut request: Map<String, Value>,
    ) -> Result<ChatOutcome, GatewayError> {
        let started = Instant::now();
        let model = self.admit_chat(&mut request, false)?;
        let result = self.chat_admitted(context, &model, request).await;
        let outcome = match &result {
            Ok(done) => done.cache.as_str(),
            Err(error) => error.code(),
        };
        metrics::call_duration(context, Operation::Chat, &model, outcome, started.elapsed());
        result
    }

    async fn chat_admitted(
        &self,
        context: &CallContext,
        model: &str,
        mut request: Map<String, Value>,
    ) -> Result<ChatOutcome, GatewayError> {
        // 2. governance
        let completion_budget =
            governance::govern_max_tokens(&mut request, self.max_tokens_cap, false);
        // 3. content safety on the prompt
        self.screen_prompt(context, &request).await?;
        // 4. budget
        let prompt_estimate = tokens::estimate_chat_prompt(model, &request);
        let reservation = self
            .budget
            .reserve(context, prompt_estimate + completion_budget)
            .await?;
        // 5. cache lookup
        let cache_status = match self.lookup(context, model, &request).await {
            Lookup::Hit(body) => {
                let remaining = reservation.settle(0).await;
                return Ok(ChatOutcome {
                    body,
                    model: model.to_owned(),
                    usage: Usage::default(),
                    cache: CacheStatus::Hit,
                    remaining_tokens: remaining,
                });
            }
            Lookup::Miss => CacheStatus::Miss,
            Lookup::Bypass => CacheStatus::Bypass,
        };
        // 6. upstream
        let body = serialize(&request)?;
        let answer = self
            .upstream
            .send(Operation::Chat, model, body, false, self.deadline())
            .await;
        let body = match answer {
            Ok(Answer::Full { body, .. }) => body,
            Ok(Answer::Stream { .. }) => {
                reservation.settle(0).await;
                return Err(GatewayError::UpstreamFailed {
                    summary: "the upstream streamed an answer that was asked for whole".to_owned(),
                });
            }
            Err(error) => {
                reservation.settle(0).await;
                return Err(error);
            }
        };
        let body: Value = match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(_) => {
                reservation.settle(0).await;
                return Err(GatewayError::UpstreamFailed {
                    summary: "the upstream's answer was not JSON".to_owned(),
                });
            }
        };
        // 7. reconcile
        let usage = Usage::from_body(&body).unwrap_or_else(|| {
            Usage::new(prompt_estimate, tokens::count(model, &answer_text(&body)))
        });
        let remaining = reservation.settle(usage.total_tokens).await;
        // 8. metrics and ledger
        self.account(context, Operation::Chat, model, usage).await;
        // 9. content safety on the answer
        if let Some(safety) = &self.content_safety {
            safety
                .check(
                    context,
                    Direction::Response,
                    &content_safety::answer_text(&body),
                )
                .await?;
        }
        // 10. cache store
        if (cache_status == CacheStatus::Miss || context.cache == CacheDirective::NoCache)
            && let Some(cache) = self.storable_cache(context)
        {
            cache
                .store(context, Operation::Chat, model, &request, &body)
                .await;
        }
        Ok(ChatOutcome {
            body,
            model: model.to_owned(),
            usage,
            cache: cache_status,
            remaining_tokens: remaining,
        })
    }

    /// A streamed chat completion. Usage is reconciled when the stream ends.
    pub async fn chat_stream(
        &self,
        context: &CallContext,
        mut request: Map<String, Value>,
    ) -> Result<ChatStream, GatewayError> {
        let started = Instant::now();
        let model = self.admit_chat(&mut request, true)?;
        let completion_budget =
            governance::govern_max_tokens(&mut request, self.max_tokens_cap, true);
        self.screen_prompt(context, &request).await?;
        let prompt_estimate = tokens::estimate_chat_prompt(&model, &request);
        let reservation = self
            .budget
            .reserve(context, prompt_estimate + completion_budget)
            .await?;
        let client_wants_usage = request
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);

        let cache_status = match self.lookup(context, &model, &request).await {
            Lookup::Hit(body) => {
                let remaining = reservation.settle(0).await;
                let (sender, events) = mpsc::channel(8);
                let chunks = completion_as_chunks(&body, client_wants_usage);
                tokio::spawn(async move {
                    for chunk in chunks {
                        if sender.send(Ok(StreamEvent::Chunk(chunk))).await.is_err() {
                            return;
                        }
                    }
                    let _ = sender
                        .send(Ok(StreamEvent::Done {
                            usage: Usage::default(),
                        }))
                        .await;
                });
                return Ok(ChatStream {
                    model,
                    cache: CacheStatus::Hit,
                    remaining_tokens: remaining,
                    events,
                });
            }
            Lookup::Miss => CacheStatus::Miss,
            Lookup::Bypass => CacheStatus::Bypass,
        };

        // Always ask for usage so the reservation can be reconciled exactly; the usage chunk is
        // passed on only if the client asked for it too.
        request.insert(
            "stream_options".to_owned(),
            serde_json::json!({"include_usage": true}),
        );
        let body = serialize(&request)?;
        let response = match self
            .upstream
            .send(Operation::Chat, &model, body, true, self.deadline())
            .await
        {
            Ok(Answer::Stream { response, .. }) => response,
            Ok(Answer::Full { .. }) => {
                reservation.settle(0).await;
                return Err(GatewayError::UpstreamFailed {
                    summary: "the upstream answered a stream request whole".to_owned(),
                });
            }
            Err(error) => {
                reservation.settle(0).await;
                return Err(error);
            }
        };

        let remaining_tokens = reservation.remaining_after(reservation.reserved());
        let (sender, events) = mpsc::channel(32);
        let relay = StreamRelay {
            context: context.clone(),
            model: model.clone(),
            prompt_estimate,
            client_wants_usage,
            idle_timeout: self.upstream.stream_idle_timeout(),
            store_in_cache: (cache_status == CacheStatus::Miss
                || context.cache == CacheDirective::NoCache)
                .then(|| self.storable_cache(context))
                .flatten()
                .map(|cache| (cache, request)),
            content_safety: self.content_safety.clone(),
            started,
        };
        let accounting = Accounting {
            store: self.store.clone(),
            clock: self.clock,
            usage_period: self.usage_period,
        };
        tokio::spawn(relay.run(response, reservation, accounting, sender));
        Ok(ChatStream {
            model,
            cache: cache_status,
            remaining_tokens,
            events,
        })
    }

    /// Embeddings, with the budget, metrics and ledger (no cache).
    pub async fn embeddings(
        &self,
        context: &CallContext,
        mut request: Map<String, Value>,
    ) -> Result<EmbeddingsOutcome, GatewayError> {
        let started = Instant::now();
        if !self.is_configured() {
            return Err(GatewayError::NotConfigured);
        }
        match request.get("input") {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::Array(items)) if !items.is_empty() => {}
            _ => {
                return Err(GatewayError::InvalidRequest(
                    "`input` must be a non-empty string or array".to_owned(),
                ));
            }
        }
        let model = resolve_model(&mut request, &self.embedding_model)?;
        if let Some(safety) = &self.content_safety {
            safety
                .check(
                    context,
                    Direction::Prompt,
                    &content_safety::embedding_input_text(&request),
                )
                .await?;
        }
        let estimate = tokens::estimate_embedding_input(&model, &request);
        let reservation = self.budget.reserve(context, estimate).await?;
        let result = self
            .upstream
            .send(
                Operation::Embeddings,
                &model,
                serialize(&request)?,
                false,
                self.deadline(),
            )
            .await;
        let body = match result {
            Ok(Answer::Full { body, .. }) => serde_json::from_slice::<Value>(&body).ok(),
            Ok(Answer::Stream { .. }) => None,
            Err(error) => {
                reservation.settle(0).await;
                metrics::call_duration(
                    context,
                    Operation::Embeddings,
                    &model,
                    error.code(),
                    started.elapsed(),
                );
                return Err(error);
            }
        };
        let Some(body) = body else {
            reservation.settle(0).await;
            return Err(GatewayError::UpstreamFailed {
                summary: "the upstream's answer was not JSON".to_owned(),
            });
        };
        let usage = Usage::from_body(&body).unwrap_or_else(|| Usage::new(estimate, 0));
        let remaining = reservation.settle(usage.total_tokens).await;
        self.account(context, Operation::Embeddings, &model, usage)
            .await;
        metrics::call_duration(
            context,
            Operation::Embeddings,
            &model,
            "ok",
            started.elapsed(),
        );
        Ok(EmbeddingsOutcome {
            body,
            model,
            usage,
            remaining_tokens: remaining,
        })
    }

    /// The chargeback report for the current period; `only` limits it to one subscription.
    pub async fn usage_report(&self, only: Option<&str>) -> Result<UsageReport, GatewayError> {
        let bounds = self.usage_period.bounds(self.clock.now_ms());
        let mut records = self
            .store
            .usage(bounds.0)
            .await
            .map_err(|e| GatewayError::Store(e.to_string()))?;
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

    /// Step 1: validation and model resolution for chat calls.
    fn admit_chat(
        &self,
        request: &mut Map<String, Value>,
        streaming: bool,
    ) -> Result<String, GatewayError> {
        if !self.is_configured() {
            return Err(GatewayError::NotConfigured);
        }
        validate_messages(request)?;
        if streaming {
            request.insert("stream".to_owned(), Value::Bool(true));
        } else {
            request.remove("stream");
            request.remove("stream_options");
        }
        resolve_model(request, &self.chat_model)
    }

    async fn lookup(
        &self,
        context: &CallContext,
        model: &str,
        request: &Map<String, Value>,
    ) -> Lookup {
        let status = match (&self.cache, context.cache) {
            (None, _) | (_, CacheDirective::NoCache | CacheDirective::NoStore) => Lookup::Bypass,
            (Some(cache), CacheDirective::Use) if !cache.available() => Lookup::Bypass,
            (Some(cache), CacheDirective::Use) => {
                match cache.lookup(context, Operation::Chat, model, request).await {
                    Some(body) => Lookup::Hit(body),
                    None => Lookup::Miss,
                }
            }
        };
        let label = match &status {
            Lookup::Hit(_) => "hit",
            Lookup::Miss => "miss",
            Lookup::Bypass => "bypass",
        };
        metrics::cache_status(context, Operation::Chat, label);
        status
    }

    /// Step 3: content safety on a chat prompt, before anything is reserved or sent.
    async fn screen_prompt(
        &self,
        context: &CallContext,
        request: &Map<String, Value>,
    ) -> Result<(), GatewayError> {
        match &self.content_safety {
            Some(safety) => {
                safety
                    .check(
                        context,
                        Direction::Prompt,
                        &content_safety::prompt_text(request),
                    )
                    .await
            }
            None => Ok(()),
        }
    }

    fn storable_cache(&self, context: &CallContext) -> Option<Arc<dyn ResponseCache>> {
        match context.cache {
            CacheDirective::NoStore => None,
            CacheDirective::Use | CacheDirective::NoCache => {
                self.cache.clone().filter(|cache| cache.available())
            }
        }
    }

    async fn account(
        &self,
        context: &CallContext,
        operation: Operation,
        model: &str,
        usage: Usage,
    ) {
        Accounting {
            store: self.store.clone(),
            clock: self.clock,
            usage_period: self.usage_period,
        }
        .record(context, operation, model, usage)
        .await;
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.upstream.call_deadline()
    }
}

enum Lookup {
    Hit(Value),
    Miss,
    Bypass,
}

/// The embedder the cache settings ask for.
pub fn build_embedder(
    choice: &EmbedderChoice,
    upstream: &Arc<Upstream>,
    embedding_model: &str,
) -> Result<Arc<dyn Embedder>, GatewayError> {
    match choice {
        EmbedderChoice::Builtin => Ok(Arc::new(BuiltinEmbedder)),
        EmbedderChoice::Static => crate::semantic::StaticEmbedder::new()
            .map(|e| Arc::new(e) as Arc<dyn Embedder>)
            .map_err(|e| {
                GatewayError::InvalidRequest(format!("cannot load the static model: {e}"))
            }),
        EmbedderChoice::Upstream => Ok(Arc::new(UpstreamEmbedder::new(
            upstream.clone(),
            embedding_model.to_owned(),
        ))),
        #[cfg(feature = "minilm")]
        EmbedderChoice::MiniLm { model_dir } => {
            crate::semantic::minilm::MiniLmEmbedder::load(model_dir)
                .map(|e| Arc::new(e) as Arc<dyn Embedder>)
                .map_err(|e| {
                    GatewayError::InvalidRequest(format!("cannot load the MiniLM model: {e}"))
                })
        }
        #[cfg(not(feature = "minilm"))]
        EmbedderChoice::MiniLm { .. } => Err(GatewayError::InvalidRequest(
            "CACHE_EMBEDDER=minilm needs tollgate built with `--features minilm`".to_owned(),
        )),
    }
}

/// Step 7, shared by whole and streamed calls: metrics and the usage ledger.
struct Accounting {
    store: Arc<dyn StateStore>,
    clock: Clock,
    usage_period: crate::config::QuotaPeriod,
}

impl Accounting {
    async fn record(&self, context: &CallContext, operation: Operation, model: &str, usage: Usage) {
        metrics::tokens(
            context,
            operation,
            model,
            usage.prompt_tokens,
            usage.completion_tokens,
        );
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

/// Relays one upstream stream to its consumer, then settles, accounts and caches.
struct StreamRelay {
    context: CallContext,
    model: String,
    prompt_estimate: u64,
    client_wants_usage: bool,
    idle_timeout: Duration,
    store_in_cache: Option<(Arc<dyn ResponseCache>, Map<String, Value>)>,
    content_safety: Option<Arc<ContentSafety>>,
    started: Instant,
}

impl StreamRelay {
    async fn run(
        self,
        mut response: reqwest::Response,
        reservation: Reservation,
        accounting: Accounting,
        sender: mpsc::Sender<Result<StreamEvent, GatewayError>>,
    ) {
        let mut parser = SseParser::default();
        let mut assembled = AssembledAnswer::default();
        let mut reported: Option<Usage> = None;
        let mut failure: Option<GatewayError> = None;
        let mut finished = false;
        let mut consumer_gone = false;

        'read: while !finished {
            let bytes = match tokio::time::timeout(self.idle_timeout, response.chunk()).await {
                Ok(Ok(Some(bytes))) => bytes,
                Ok(Ok(None)) => break,
                Ok(Err(_)) => {
                    failure = Some(GatewayError::UpstreamFailed {
                        summary: "the upstream stream broke off".to_owned(),
                    });
                    break;
                }
                Err(_) => {
                    failure = Some(GatewayError::Timeout {
                        deadline: self.idle_timeout,
                    });
                    break;
                }
            };
            parser.push(&bytes);
            while let Some(data) = parser.next_data() {
                if data.trim() == "[DONE]" {
                    finished = true;
                    break;
                }
                let Ok(chunk) = serde_json::from_str::<Value>(&data) else {
                    tracing::debug!("skipping a stream event that is not JSON");
                    continue;
                };
                if let Some(usage) = Usage::from_body(&chunk) {
                    reported = Some(usage);
                }
                assembled.absorb(&chunk);
                let usage_only = chunk
                    .get("choices")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty);
                if usage_only && !self.client_wants_usage {
                    continue;
                }
                if sender.send(Ok(StreamEvent::Chunk(chunk))).await.is_err() {
                    consumer_gone = true;
                    break 'read;
                }
            }
        }
        // Dropping the response here closes the upstream connection if it is still open.
        drop(response);
        if !finished && failure.is_none() && !consumer_gone && assembled.finish_reason.is_none() {
            failure = Some(GatewayError::UpstreamFailed {
                summary: "the upstream stream ended before it finished".to_owned(),
            });
        }

        let usage = reported.unwrap_or_else(|| {
            Usage::new(
                self.prompt_estimate,
                tokens::count(&self.model, &assembled.text()),
            )
        });
        reservation.settle(usage.total_tokens).await;
        accounting
            .record(&self.context, Operation::Chat, &self.model, usage)
            .await;
        // The chunks have gone out already; a refused answer still must not end as a success
        // (nor be cached), so the client is told in place of the normal end.
        if failure.is_none()
            && !consumer_gone
            && let Some(safety) = &self.content_safety
            && let Err(blocked) = safety
                .check(&self.context, Direction::Response, &assembled.text())
                .await
        {
            failure = Some(blocked);
        }
        let outcome = failure.as_ref().map_or("ok", GatewayError::code);
        metrics::call_duration(
            &self.context,
            Operation::Chat,
            &self.model,
            outcome,
            self.started.elapsed(),
        );
        if let Some(error) = failure {
            let _ = sender.send(Err(error)).await;
            return;
        }
        if consumer_gone {
            return;
        }
        if let Some((cache, request)) = &self.store_in_cache {
            let body = assembled.into_completion(&self.model, usage);
            cache
                .store(&self.context, Operation::Chat, &self.model, request, &body)
                .await;
        }
        let _ = sender.send(Ok(StreamEvent::Done { usage })).await;
    }
}

/// A whole completion replayed as stream chunks (for a cache hit on a stream request).
pub fn completion_as_chunks(body: &Value, include_usage: bool) -> Vec<Value> {
    let id = body
        .get("id")
        .cloned()
        .unwrap_or(Value::from("chatcmpl-cached"));
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let created = body.get("created").cloned().unwrap_or(Value::from(0));
    let chunk = |choices: Value| serde_json::json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices});
    let message = body
        .pointer("/choices/0/message")
        .cloned()
        .unwrap_or_default();
    let finish_reason = body
        .pointer("/choices/0/finish_reason")
        .cloned()
        .unwrap_or(Value::from("stop"));
    let mut delta = serde_json::json!({"role": "assistant"});
    if let Some(content) = message.get("content").filter(|c| c.is_string()) {
        delta["content"] = content.clone();
    }
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        delta["tool_calls"] = calls
            .iter()
            .enumerate()
            .map(|(index, call)| {
                let mut call = call.clone();
                call["index"] = Value::from(index);
                call
            })
            .collect();
    }
    let mut chunks = vec![
        chunk(serde_json::json!([{"index": 0, "delta": delta, "finish_reason": null}])),
        chunk(serde_json::json!([{"index": 0, "delta": {}, "finish_reason": finish_reason}])),
    ];
    if include_usage {
        let mut usage_chunk = chunk(serde_json::json!([]));
        usage_chunk["usage"] = serde_json::to_value(Usage::default()).unwrap_or_default();
        chunks.push(usage_chunk);
    }
    chunks
}

fn validate_messages(request: &Map<String, Value>) -> Result<(), GatewayError> {
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| GatewayError::InvalidRequest("`messages` must be an array".to_owned()))?;
    if messages.is_empty() {
        return Err(GatewayError::InvalidRequest(
            "`messages` must not be empty".to_owned(),
        ));
    }
    for (index, message) in messages.iter().enumerate() {
        if message.get("role").and_then(Value::as_str).is_none() {
            return Err(GatewayError::InvalidRequest(format!(
                "messages[{index}] needs a string `role`"
            )));
        }
    }
    Ok(())
}

fn resolve_model(request: &mut Map<String, Value>, default: &str) -> Result<String, GatewayError> {
    match request.get("model") {
        None | Some(Value::Null) => {
            request.insert("model".to_owned(), Value::from(default));
            Ok(default.to_owned())
        }
        Some(Value::String(model)) if !model.trim().is_empty() && model.len() <= 256 => {
            Ok(model.clone())
        }
        Some(_) => Err(GatewayError::InvalidRequest(
            "`model` must be a non-empty string".to_owned(),
        )),
    }
}

fn serialize(request: &Map<String, Value>) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(request)
        .map(Bytes::from)
        .map_err(|e| GatewayError::InvalidRequest(format!("request cannot be serialized: {e}")))
}

/// The text of an answer's first choice, for counting tokens when the upstream reports none.
fn answer_text(body: &Value) -> String {
    let mut text = String::new();
    if let Some(message) = body.pointer("/choices/0/message") {
        tokens::collect_message_text(message, &mut text);
    }
    text
}
