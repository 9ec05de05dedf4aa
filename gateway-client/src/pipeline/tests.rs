//! The pipeline over a fake model API: no sockets, paused time.

#![allow(clippy::unwrap_used)]

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{Gateway, GatewayParts, StreamEvent};
use crate::{
    cache::{CacheLookup, CacheStatus, ResponseCache},
    clock::Clock,
    config::{
        BreakerConfig, BudgetConfig, ContentSafetyConfig, GatewayConfig, Prices, RetryConfig,
    },
    context::{Api, CallContext, Operation},
    error::GatewayError,
    model_api::{ByteStream, ModelApi},
    store::MemoryStore,
};

const BUDGET: u64 = 1_000;

/// Answers each call with the next canned answer; with none left, never answers.
#[derive(Default)]
struct FakeApi {
    answers: Mutex<VecDeque<Result<Vec<Bytes>, GatewayError>>>,
    /// Streams that never end: their chunks, then silence.
    endless: Mutex<VecDeque<Vec<Bytes>>>,
    calls: AtomicUsize,
}

impl FakeApi {
    fn answering(answers: impl IntoIterator<Item = Result<Vec<Bytes>, GatewayError>>) -> Self {
        Self {
            answers: Mutex::new(answers.into_iter().collect()),
            ..Self::default()
        }
    }

    async fn next(&self) -> Result<Vec<Bytes>, GatewayError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self.answers.lock().pop_front();
        match answer {
            Some(answer) => answer,
            None => std::future::pending().await,
        }
    }
}

#[async_trait]
impl ModelApi for FakeApi {
    async fn whole(
        &self,
        _operation: Operation,
        _model: &str,
        _body: Bytes,
        _deadline: Instant,
    ) -> Result<Bytes, GatewayError> {
        Ok(self.next().await?.concat().into())
    }

    async fn stream(
        &self,
        _operation: Operation,
        _model: &str,
        _body: Bytes,
        _deadline: Instant,
    ) -> Result<ByteStream, GatewayError> {
        let endless = self.endless.lock().pop_front();
        if let Some(chunks) = endless {
            let silence = futures::stream::pending();
            return Ok(Box::pin(
                futures::stream::iter(chunks.into_iter().map(Ok)).chain(silence),
            ));
        }
        let chunks = self.next().await?;
        Ok(Box::pin(futures::stream::iter(chunks.into_iter().map(Ok))))
    }

    fn is_configured(&self) -> bool {
        true
    }

    fn check_model(&self, _model: &str) -> Result<(), GatewayError> {
        Ok(())
    }
}

/// A cache that has an answer for everything.
struct AlwaysHit(Value);

#[async_trait]
impl ResponseCache for AlwaysHit {
    async fn lookup(
        &self,
        _context: &CallContext,
        _operation: Operation,
        _model: &str,
        _request: &Map<String, Value>,
    ) -> CacheLookup {
        CacheLookup::Hit(self.0.clone())
    }

    async fn store(
        &self,
        _context: &CallContext,
        _operation: Operation,
        _model: &str,
        _request: &Map<String, Value>,
        _response: &Value,
    ) {
    }
}

fn config() -> GatewayConfig {
    GatewayConfig {
        backends: Vec::new(),
        messages_backends: Vec::new(),
        chat_model: "gpt-4o-mini".to_owned(),
        embedding_model: "text-embedding-3-small".to_owned(),
        budget: BudgetConfig::per_minute(BUDGET),
        max_tokens_cap: 100,
        max_stream_tokens_cap: 100,
        stream_send_timeout: Duration::from_secs(10),
        retry: RetryConfig::default(),
        breaker: BreakerConfig::default(),
        prices: Prices::default(),
        content_safety: ContentSafetyConfig::default(),
        cache: None,
        entra: None,
        direct_plain_http: true,
    }
}

fn gateway(api: Arc<FakeApi>, cache: Option<Arc<dyn ResponseCache>>) -> Gateway {
    // The start of a minute, so the budget window does not turn over mid-test.
    let clock = Clock::starting_at(1_795_563_000_000);
    let parts = GatewayParts {
        model_api: api,
        messages_api: None,
        store: Arc::new(MemoryStore::new()),
        cache,
        clock,
        content_safety: None,
        credential: None,
        stats: Arc::new(crate::stats::Stats::new(clock)),
        stats_board: None,
    };
    Gateway::from_parts(config(), parts).unwrap()
}

fn context() -> CallContext {
    CallContext::for_subscription("alice", Api::OpenAi)
}

fn request(max_tokens: u64) -> Map<String, Value> {
    json!({"messages": [{"role": "user", "content": "hello"}], "max_tokens": max_tokens})
        .as_object()
        .unwrap()
        .clone()
}

fn completion() -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    })
}

fn whole(body: &Value) -> Result<Vec<Bytes>, GatewayError> {
    Ok(vec![Bytes::from(body.to_string())])
}

/// Whether the whole budget is free: a reservation of all of it passes.
async fn budget_is_free(gateway: &Gateway) -> bool {
    match gateway.budget.reserve(&context(), BUDGET).await {
        Ok(reservation) => {
            reservation.settle(0).await;
            true
        }
        Err(_) => false,
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_admission_sends_nothing() {
    let api = Arc::new(FakeApi::answering([whole(&completion())]));
    let gateway = gateway(api.clone(), None);
    let mut greedy = request(100);
    greedy.insert("n".to_owned(), json!(20));
    let refused = gateway.chat(&context(), greedy).await.unwrap_err();
    assert!(
        matches!(refused, GatewayError::ExceedsBudget { limit: BUDGET, .. }),
        "{refused:?}"
    );
    assert_eq!(api.calls.load(Ordering::SeqCst), 0);
    assert!(budget_is_free(&gateway).await);
}

#[tokio::test(start_paused = true)]
async fn a_whole_answer_is_settled_to_its_usage() {
    let api = Arc::new(FakeApi::answering([whole(&completion())]));
    let gateway = gateway(api, None);
    let outcome = gateway.chat(&context(), request(100)).await.unwrap();
    assert_eq!(outcome.usage.total_tokens, 15);
    assert_eq!(outcome.remaining_tokens, BUDGET - 15);
    assert_eq!(outcome.cache, CacheStatus::Bypass);
    assert!(!budget_is_free(&gateway).await);
}

#[tokio::test(start_paused = true)]
async fn a_whole_answer_keeps_the_upstream_bytes_it_was_parsed_from() {
    // Spacing and key order that serialising the parsed body again would not reproduce.
    let sent = Bytes::from(format!(
        "{{\"z\": 1,\n \"usage\": {}}}",
        completion()["usage"]
    ));
    let api = Arc::new(FakeApi::answering([Ok(vec![sent.clone()])]));
    let gateway = gateway(api, None);
    let outcome = gateway.chat(&context(), request(100)).await.unwrap();
    assert_eq!(outcome.answer.upstream_bytes(), Some(&sent));
    assert_eq!(outcome.answer.tree()["z"], 1);
    assert_eq!(outcome.usage.total_tokens, 15);
}

#[tokio::test(start_paused = true)]
async fn a_cache_hit_releases_the_reservation() {
    let api = Arc::new(FakeApi::default());
    let gateway = gateway(api.clone(), Some(Arc::new(AlwaysHit(completion()))));
    let outcome = gateway.chat(&context(), request(100)).await.unwrap();
    assert_eq!(outcome.cache, CacheStatus::Hit);
    assert_eq!(outcome.remaining_tokens, BUDGET);
    assert_eq!(
        outcome.answer.upstream_bytes(),
        None,
        "a cached answer has no upstream bytes"
    );
    assert_eq!(api.calls.load(Ordering::SeqCst), 0);
    assert!(budget_is_free(&gateway).await);
}

#[tokio::test(start_paused = true)]
async fn an_upstream_error_releases_the_reservation() {
    let failed = GatewayError::UpstreamFailed {
        summary: "down".to_owned(),
    };
    let api = Arc::new(FakeApi::answering([Err(failed.clone()), Err(failed)]));
    let gateway = gateway(api, None);
    let error = gateway.chat(&context(), request(100)).await.unwrap_err();
    assert_eq!(error.code(), "upstream_failed");
    assert!(budget_is_free(&gateway).await);
    let error = gateway.chat_stream(&context(), request(100)).await.err();
    assert_eq!(error.map(|e| e.code()), Some("upstream_failed"));
    assert!(budget_is_free(&gateway).await);
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_is_not_json_releases_the_reservation() {
    let api = Arc::new(FakeApi::answering([Ok(vec![Bytes::from_static(
        b"<html>",
    )])]));
    let gateway = gateway(api, None);
    let error = gateway.chat(&context(), request(100)).await.unwrap_err();
    assert_eq!(error.code(), "upstream_failed");
    assert!(budget_is_free(&gateway).await);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_guard_releases_its_reservation() {
    let gateway = gateway(Arc::new(FakeApi::default()), None);
    let reservation = gateway.budget.reserve(&context(), BUDGET).await.unwrap();
    let admitted = super::admission::Admitted::new(reservation);
    assert!(!budget_is_free(&gateway).await);
    drop(admitted);
    // The release runs in a task of its own.
    tokio::task::yield_now().await;
    assert!(budget_is_free(&gateway).await);
}

#[tokio::test(start_paused = true)]
async fn a_call_abandoned_while_sent_stays_charged() {
    // No answer ever comes; the caller gives up while the model API has the call.
    let api = Arc::new(FakeApi::default());
    let gateway = gateway(api.clone(), None);
    let abandoned = tokio::time::timeout(
        Duration::from_secs(1),
        gateway.chat(&context(), request(100)),
    )
    .await;
    assert!(abandoned.is_err());
    assert_eq!(api.calls.load(Ordering::SeqCst), 1);
    tokio::task::yield_now().await;
    assert!(!budget_is_free(&gateway).await);
}

#[tokio::test(start_paused = true)]
async fn a_stream_is_relayed_and_settled() {
    let chunk = |content: &str, finish: Value| json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]});
    let usage = json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}});
    let events = [chunk("hi", Value::Null), chunk("", json!("stop")), usage]
        .iter()
        .map(|c| Bytes::from(format!("data: {c}\n\n")))
        .chain([Bytes::from_static(b"data: [DONE]\n\n")])
        .collect();
    let gateway = gateway(Arc::new(FakeApi::answering([Ok(events)])), None);
    let stream = gateway.chat_stream(&context(), request(100)).await.unwrap();
    let events: Vec<_> = stream.collect().await;
    assert_eq!(events.len(), 3, "two chunks, then the end: {events:?}");
    let Some(Ok(StreamEvent::Done { usage })) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(usage.total_tokens, 12);
    let remaining = gateway.budget.reserve(&context(), BUDGET - 12).await;
    assert!(remaining.is_ok(), "settled to 12 tokens");
}

#[tokio::test(start_paused = true)]
async fn messages_calls_go_to_their_own_model_api() {
    let chat = Arc::new(FakeApi::answering([whole(&completion())]));
    let messages = Arc::new(FakeApi::answering([whole(&completion())]));
    let parts = GatewayParts {
        model_api: chat.clone(),
        messages_api: Some(messages.clone()),
        store: Arc::new(MemoryStore::new()),
        cache: None,
        clock: Clock::starting_at(1_795_563_000_000),
        content_safety: None,
        credential: None,
        stats: Arc::new(crate::stats::Stats::new(Clock::starting_at(
            1_795_563_000_000,
        ))),
        stats_board: None,
    };
    let gateway = Gateway::from_parts(config(), parts).unwrap();
    assert!(gateway.messages_native());
    let anthropic = CallContext::for_subscription("alice", Api::Anthropic);
    gateway.chat(&anthropic, request(100)).await.unwrap();
    assert_eq!(messages.calls.load(Ordering::SeqCst), 1);
    assert_eq!(chat.calls.load(Ordering::SeqCst), 0);
    gateway.chat(&context(), request(100)).await.unwrap();
    assert_eq!(chat.calls.load(Ordering::SeqCst), 1);
}

/// The tokens spent this minute: the largest reservation that still passes is the rest.
async fn spent(gateway: &Gateway) -> u64 {
    let (mut low, mut high) = (0, BUDGET);
    while low < high {
        let tokens = (low + high).div_ceil(2);
        match gateway.budget.reserve(&context(), tokens).await {
            Ok(reservation) => {
                reservation.settle(0).await;
                low = tokens;
            }
            Err(_) => high = tokens - 1,
        }
    }
    BUDGET - low
}

/// A cache whose every lookup finds a similar answer that verification could not confirm.
struct Unconfirmed(Value);

#[async_trait]
impl ResponseCache for Unconfirmed {
    async fn lookup(
        &self,
        _context: &CallContext,
        _operation: Operation,
        _model: &str,
        _request: &Map<String, Value>,
    ) -> CacheLookup {
        CacheLookup::Unconfirmed(crate::cache::Unconfirmed {
            query: "How do I delete a branch in git?".to_owned(),
            cached: "How do I remove a branch in git?".to_owned(),
            answer: self.0.clone(),
        })
    }

    async fn store(
        &self,
        _context: &CallContext,
        _operation: Operation,
        _model: &str,
        _request: &Map<String, Value>,
        _response: &Value,
    ) {
    }
}

/// The judge's one-token answer, with the usage an upstream reports.
fn verdict(word: &str) -> Result<Vec<Bytes>, GatewayError> {
    whole(&json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": word}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 60, "completion_tokens": 1, "total_tokens": 61},
    }))
}

fn cached_answer() -> Value {
    let mut answer = completion();
    answer["id"] = json!("chatcmpl-cached");
    answer
}

#[tokio::test(start_paused = true)]
async fn a_judged_yes_serves_the_cached_answer_and_charges_the_judgement() {
    let api = Arc::new(FakeApi::answering([verdict("yes")]));
    let gateway = gateway(api.clone(), Some(Arc::new(Unconfirmed(cached_answer()))));
    let outcome = gateway.chat(&context(), request(100)).await.unwrap();
    assert_eq!(outcome.cache, CacheStatus::Hit);
    assert_eq!(outcome.answer.tree()["id"], "chatcmpl-cached");
    assert_eq!(api.calls.load(Ordering::SeqCst), 1, "only the judgement");
    assert_eq!(spent(&gateway).await, 61);
}

#[tokio::test(start_paused = true)]
async fn a_judged_no_asks_the_model_and_charges_both_calls() {
    let api = Arc::new(FakeApi::answering([verdict("no"), whole(&completion())]));
    let gateway = gateway(api.clone(), Some(Arc::new(Unconfirmed(cached_answer()))));
    let outcome = gateway.chat(&context(), request(100)).await.unwrap();
    assert_eq!(outcome.cache, CacheStatus::Miss);
    assert_eq!(outcome.answer.tree()["id"], "chatcmpl-1");
    assert_eq!(api.calls.load(Ordering::SeqCst), 2);
    assert_eq!(spent(&gateway).await, 61 + 15);
}

#[tokio::test(start_paused = true)]
async fn a_failed_judgement_is_a_free_miss() {
    let failed = GatewayError::UpstreamFailed {
        summary: "down".to_owned(),
    };
    let api = Arc::new(FakeApi::answering([Err(failed), whole(&completion())]));
    let gateway = gateway(api.clone(), Some(Arc::new(Unconfirmed(cached_answer()))));
    let outcome = gateway.chat(&context(), request(100)).await.unwrap();
    assert_eq!(outcome.cache, CacheStatus::Miss);
    assert_eq!(api.calls.load(Ordering::SeqCst), 2);
    assert_eq!(spent(&gateway).await, 15);
}

#[tokio::test(start_paused = true)]
async fn a_judged_yes_replays_as_a_stream() {
    let api = Arc::new(FakeApi::answering([verdict(" Yes")]));
    let gateway = gateway(api.clone(), Some(Arc::new(Unconfirmed(cached_answer()))));
    let stream = gateway.chat_stream(&context(), request(100)).await.unwrap();
    assert_eq!(stream.cache, CacheStatus::Hit);
    let events: Vec<_> = stream.collect().await;
    assert!(
        matches!(events.last(), Some(Ok(StreamEvent::Done { .. }))),
        "{events:?}"
    );
    assert_eq!(api.calls.load(Ordering::SeqCst), 1);
}

fn text_chunk(content: &str) -> Bytes {
    let chunk = json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]});
    Bytes::from(format!("data: {chunk}\n\n"))
}

/// The tokens the ledger holds for alice, once the relay task has got there.
async fn ledger_total(gateway: &Gateway) -> u64 {
    for _ in 0..1_000 {
        let report = gateway.usage_report(Some("alice")).await.unwrap();
        if let Some(row) = report.subscriptions.first() {
            return row.prompt_tokens + row.completion_tokens;
        }
        // A paused clock: this moves time on only as far as the relay's next timer.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    0
}

#[tokio::test(start_paused = true)]
async fn a_stream_whose_consumer_left_is_read_to_its_end_and_charged_in_full() {
    // More chunks than the relay's channel holds, so the consumer's leaving is noticed.
    let mut events: Vec<Bytes> = (0..80).map(|_| text_chunk("word")).collect();
    let usage = json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 81, "total_tokens": 90}});
    events.push(Bytes::from(format!("data: {usage}\n\n")));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let gateway = gateway(Arc::new(FakeApi::answering([Ok(events)])), None);
    let mut stream = gateway.chat_stream(&context(), request(100)).await.unwrap();
    assert!(matches!(
        stream.next().await,
        Some(Ok(StreamEvent::Chunk(_)))
    ));
    drop(stream);
    assert_eq!(ledger_total(&gateway).await, 90, "the upstream's own usage");
    // Settled to the 90 tokens used (and never released as unused).
    assert!(!budget_is_free(&gateway).await);
    let left = gateway.budget.reserve(&context(), BUDGET - 90).await;
    assert!(left.is_ok(), "settled to the 90 tokens used");
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_outlasts_the_deadline_after_its_consumer_left_is_charged_what_was_seen() {
    let api = Arc::new(FakeApi::default());
    api.endless
        .lock()
        .push_back((0..60).map(|_| text_chunk("word")).collect());
    let gateway = gateway(api, None);
    let mut stream = gateway.chat_stream(&context(), request(100)).await.unwrap();
    assert!(matches!(
        stream.next().await,
        Some(Ok(StreamEvent::Chunk(_)))
    ));
    drop(stream);
    // The paused clock runs on to the call's deadline while the upstream says nothing more.
    let charged = ledger_total(&gateway).await;
    let prompt = crate::tokens::estimate_chat_prompt("gpt-4o-mini", &request(100));
    assert_eq!(charged, prompt + 60, "the prompt and the sixty words seen");
}
