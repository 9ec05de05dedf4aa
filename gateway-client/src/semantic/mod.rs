//! The semantic cache: answers reused for the same question asked again, or asked differently.
//!
//! A lookup, in order:
//! 1. the prompt: the recent conversation window (user and assistant text, tool calls and tool
//!    results; system messages only if configured), and the partition: subscription (unless
//!    shared), model, every request parameter that can change the answer (tools, temperature,
//!    response format, `user`…), and a hash of everything the window's text leaves out (system
//!    and older messages, images and other non-text parts; see `prompt`);
//! 2. a normalized exact match, which is always a hit;
//! 3. otherwise candidates from the inverted index, ranked by embedding similarity, kept above
//!    the threshold;
//! 4. verification: the first candidate that asks the same thing is served: both prompts are
//!    analysed (`analysis`) and compared (`verify`): same numbers, names, negation, referents,
//!    question and direction, and content words that align through the lexicon (`lexicon`).
//!
//! Only complete answers are stored: never errors, truncated (`length`) or refused answers.
//! Memory is bounded by entries and by bytes, shared fairly between the callers that store
//! (see `index`), and prompts above a size cap are not cached at all (see `prompt`).

pub mod analysis;
mod embed;
pub mod eval;
mod index;
pub mod lexicon;
#[cfg(feature = "minilm")]
pub mod minilm;
mod prompt;
pub mod static_model;
pub mod text;
pub mod verify;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use parking_lot::RwLock;
use serde_json::{Map, Value};

pub use embed::{
    BUILTIN_THRESHOLD, BuiltinEmbedder, EmbedError, Embedder, Embedding, UpstreamEmbedder,
};
pub use index::{Entry, Index, Limits};
pub use prompt::{MEANING_MAX_BYTES, Prompt, Uncacheable};
pub use static_model::{STATIC_THRESHOLD, StaticEmbedder, StaticModel};

use crate::{
    cache::{CacheLookup, ResponseCache, Unconfirmed},
    clock::Clock,
    context::{CallContext, Operation},
};

/// The most similar candidates that verification examines per lookup.
const VERIFIED_CANDIDATES: usize = 4;

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Minimum similarity for a candidate; `None` uses the embedder's tuned default.
    pub threshold: Option<f32>,
    pub ttl: Duration,
    /// Entries kept in all, across partitions. Over it (or over `max_bytes`), the owner holding
    /// the most gives up its oldest entries.
    pub max_entries: usize,
    /// Bytes the entries may hold in all (answer, prompt text, embedding, postings…).
    pub max_bytes: usize,
    /// The largest prompt cached: embedded text plus hashed messages. Larger ones bypass.
    pub max_prompt_bytes: usize,
    /// Embed system messages too (ignored by default).
    pub include_system: bool,
    /// How many recent messages make up the prompt.
    pub window_messages: usize,
    /// One cache for every subscription instead of one each.
    pub shared_across_subscriptions: bool,
    /// The model-judged mode: a candidate refused only for words verification could not match
    /// is offered to the chat model for confirmation instead of being dropped.
    pub model_judged: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            threshold: None,
            ttl: Duration::from_secs(3600),
            max_entries: 20_000,
            max_bytes: 64 << 20,
            max_prompt_bytes: 32 << 10,
            include_system: false,
            window_messages: 8,
            shared_across_subscriptions: false,
            model_judged: false,
        }
    }
}

pub struct SemanticCache {
    embedder: Arc<dyn Embedder>,
    threshold: f32,
    config: CacheConfig,
    index: RwLock<Index>,
    clock: Clock,
    inserts: std::sync::atomic::AtomicU64,
}

/// Loads the verifier's tables (the lexicon, the closed-class words) now.
pub fn warm() {
    analysis::warm();
}

impl SemanticCache {
    pub fn new(embedder: Arc<dyn Embedder>, config: CacheConfig, clock: Clock) -> Self {
        let threshold = config
            .threshold
            .unwrap_or_else(|| embedder.default_threshold());
        // The verifier's tables load now, not on the first lookup.
        analysis::warm();
        Self {
            embedder,
            threshold,
            index: RwLock::new(Index::new(Limits {
                max_entries: config.max_entries,
                max_bytes: config.max_bytes,
            })),
            config,
            clock,
            inserts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    pub fn embedder_name(&self) -> &'static str {
        self.embedder.name()
    }

    pub fn len(&self) -> usize {
        self.index.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the entries hold (see [`Entry::approximate_bytes`]).
    pub fn bytes(&self) -> usize {
        self.index.read().bytes()
    }

    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The prompt and partition of a chat request, or `None` if it can't be cached.
    pub fn prompt(
        &self,
        context: &CallContext,
        model: &str,
        request: &Map<String, Value>,
    ) -> Option<Prompt> {
        self.analyse(context, model, request).ok()
    }

    /// The prompt and partition of a chat request, or why it can't be cached.
    pub fn analyse(
        &self,
        context: &CallContext,
        model: &str,
        request: &Map<String, Value>,
    ) -> Result<Prompt, Uncacheable> {
        prompt::analyse(&self.config, context, model, request)
    }

    /// Finds an answer for `prompt`: exact, or similar and verified.
    pub async fn find(&self, prompt: &Prompt) -> Option<Value> {
        match self.search(prompt).await {
            Found::Answer(text) => serde_json::from_str(&text).ok(),
            Found::Unconfirmed { .. } | Found::Nothing => None,
        }
    }

    /// What the cache holds for `prompt`: a verified answer, or in the model-judged mode an
    /// answer for the model to confirm, or nothing.
    pub async fn look(&self, prompt: &Prompt) -> CacheLookup {
        match self.search(prompt).await {
            Found::Answer(text) => serde_json::from_str(&text).ok().into(),
            Found::Unconfirmed { cached, answer } => match serde_json::from_str(&answer) {
                Ok(answer) => CacheLookup::Unconfirmed(Unconfirmed {
                    query: prompt.text.clone(),
                    cached: cached.to_string(),
                    answer,
                }),
                Err(_) => CacheLookup::Miss,
            },
            Found::Nothing => CacheLookup::Miss,
        }
    }

    /// The search itself, on answers kept as JSON text.
    async fn search(&self, prompt: &Prompt) -> Found {
        let now = self.clock.now_ms();
        if let Some(entry) = self.index.read().exact(prompt.partition, prompt.exact, now) {
            return Found::Answer(entry.response.clone());
        }
        if !prompt.by_meaning {
            return Found::Nothing;
        }
        let embedding = match self.embedder.embed(&prompt.text, &prompt.tokens).await {
            Ok(embedding) => embedding,
            Err(error) => {
                tracing::warn!(%error, "cache lookup skipped: embedding failed");
                return Found::Nothing;
            }
        };
        let index = self.index.read();
        let mut scored: Vec<(f32, &Entry)> = index
            .candidates(prompt.partition, &prompt.keys, now)
            .into_iter()
            .map(|entry| (embedding.similarity(&entry.embedding), entry))
            .filter(|(similarity, _)| *similarity >= self.threshold)
            .collect();
        scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let mut unconfirmed = None;
        // Verification re-reads each candidate's prompt; the few most similar are enough.
        for (similarity, entry) in scored.into_iter().take(VERIFIED_CANDIDATES) {
            let cached = analysis::analyze(&entry.prompt);
            match verify::verify(&prompt.analysed, &cached, self.embedder.word_vectors()) {
                Ok(()) => {
                    tracing::debug!(similarity, "semantic cache hit");
                    return Found::Answer(entry.response.clone());
                }
                Err(reason) => {
                    metrics::counter!("gateway_cache_verification_refusals_total", "reason" => refusal_label(reason))
                        .increment(1);
                    if self.config.model_judged
                        && unconfirmed.is_none()
                        && reason.is_unmatched_words()
                    {
                        unconfirmed = Some(Found::Unconfirmed {
                            cached: entry.prompt.clone(),
                            answer: entry.response.clone(),
                        });
                    }
                }
            }
        }
        unconfirmed.unwrap_or(Found::Nothing)
    }

    /// Why `cached` would not be served for `query` (for `cache-eval --show-errors`): their
    /// similarity against the threshold, then verification's refusal; `None` if it would be.
    pub async fn why_not(&self, query: &Prompt, cached: &Prompt) -> Option<String> {
        let (a, b) = (
            self.embedder.embed(&query.text, &query.tokens).await,
            self.embedder.embed(&cached.text, &cached.tokens).await,
        );
        let similarity = match (a, b) {
            (Ok(a), Ok(b)) => a.similarity(&b),
            (Err(error), _) | (_, Err(error)) => return Some(format!("embedding failed: {error}")),
        };
        if similarity < self.threshold {
            return Some(format!(
                "similarity {similarity:.3} below {:.3}",
                self.threshold
            ));
        }
        let verdict = verify::verify(
            &query.analysed,
            &cached.analysed,
            self.embedder.word_vectors(),
        );
        verdict.err().map(|reason| {
            format!(
                "similarity {similarity:.3}, refused: {}",
                refusal_label(reason)
            )
        })
    }

    /// Keeps `response` for `prompt` if it is a complete answer.
    pub async fn keep(&self, prompt: Prompt, response: &Value) {
        if let Some(entry) = self.entry_for(&prompt, response).await {
            self.insert_entry(prompt.partition, entry);
        }
    }

    /// Inserts an entry (made here, or elsewhere and carried through shared state).
    pub fn insert_entry(&self, partition: u64, entry: Entry) {
        let now = self.clock.now_ms();
        let mut index = self.index.write();
        index.insert(partition, entry, now);
        let inserts = self
            .inserts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if inserts.is_multiple_of(1024) {
            index.sweep(now);
        }
        metrics::gauge!("gateway_cache_entries").set(index.len() as f64);
        metrics::gauge!("gateway_cache_bytes").set(index.bytes() as f64);
    }

    /// Builds an entry for `prompt` without storing it (for shared state to carry). A prompt
    /// matched only exactly keeps no text, words or embedding: its hash is all it needs.
    pub async fn entry_for(&self, prompt: &Prompt, response: &Value) -> Option<Entry> {
        if !is_storable(response) {
            return None;
        }
        let (text, keys, embedding) = if prompt.by_meaning {
            match self.embedder.embed(&prompt.text, &prompt.tokens).await {
                Ok(embedding) => (prompt.text.as_str(), prompt.keys.clone(), embedding),
                Err(error) => {
                    tracing::warn!(%error, "answer not cached: embedding failed");
                    return None;
                }
            }
        } else {
            ("", Vec::new(), Embedding::Sparse(Vec::new()))
        };
        Some(Entry {
            prompt: Arc::from(text),
            exact: prompt.exact,
            embedding,
            keys,
            response: Arc::from(response.to_string()),
            expires_ms: self.clock.now_ms()
                + u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX),
            owner: prompt.owner,
        })
    }
}

#[async_trait]
impl ResponseCache for SemanticCache {
    async fn lookup(
        &self,
        context: &CallContext,
        operation: Operation,
        model: &str,
        request: &Map<String, Value>,
    ) -> CacheLookup {
        if operation != Operation::Chat {
            return CacheLookup::Bypass;
        }
        match self.analyse(context, model, request) {
            Ok(prompt) => self.look(&prompt).await,
            Err(why) => why.into(),
        }
    }

    async fn store(
        &self,
        context: &CallContext,
        operation: Operation,
        model: &str,
        request: &Map<String, Value>,
        response: &Value,
    ) {
        if operation != Operation::Chat {
            return;
        }
        if let Some(prompt) = self.prompt(context, model, request) {
            self.keep(prompt, response).await;
        }
    }
}

/// What a search found, answers still as the JSON text they are kept as.
enum Found {
    Answer(Arc<str>),
    /// The most similar candidate refused only for unmatched words (model-judged mode only).
    Unconfirmed {
        cached: Arc<str>,
        answer: Arc<str>,
    },
    Nothing,
}

/// Only whole, successful, non-empty answers: no errors, truncations, refusals, filtered
/// content, or answers that say nothing (an empty reply is a model failure, not an answer).
pub fn is_storable(response: &Value) -> bool {
    if response.get("error").is_some() {
        return false;
    }
    let Some(choices) = response.get("choices").and_then(Value::as_array) else {
        return false;
    };
    !choices.is_empty()
        && choices.iter().all(|choice| {
            let finish = choice.get("finish_reason").and_then(Value::as_str);
            let message = choice.get("message");
            let refused = message
                .and_then(|m| m.get("refusal"))
                .is_some_and(|r| !r.is_null());
            let says_something = message.is_some_and(|m| {
                m.get("content")
                    .and_then(Value::as_str)
                    .is_some_and(|c| !c.trim().is_empty())
                    || m.get("tool_calls")
                        .and_then(Value::as_array)
                        .is_some_and(|calls| !calls.is_empty())
                    || m.get("function_call").is_some_and(Value::is_object)
            });
            !refused
                && says_something
                && matches!(finish, Some("stop" | "tool_calls" | "function_call"))
        })
}

fn refusal_label(reason: verify::Refusal) -> &'static str {
    use verify::Refusal;
    match reason {
        Refusal::Conversion => "conversion",
        Refusal::Number => "number",
        Refusal::Negation => "negation",
        Refusal::Referent => "referent",
        Refusal::Degree => "degree",
        Refusal::Question => "question",
        Refusal::NumberRole => "number_role",
        Refusal::Entity => "entity",
        Refusal::Polarity => "polarity",
        Refusal::Possessive => "possessive",
        Refusal::Swap => "swap",
        Refusal::Direction => "direction",
        Refusal::Extra => "extra",
    }
}

#[cfg(test)]
mod dev_set {
    #![allow(clippy::unwrap_used, clippy::print_stdout)]
    use super::*;

    /// Prints each dev-set row's similarity and verdict; the pipeline-level figures are in the
    /// integration tests. Run with `--nocapture` when tuning.
    #[tokio::test]
    async fn dev_set_report() {
        let data = include_str!("../../../tests/data/cache-dev-set.tsv");
        let cache = SemanticCache::new(
            Arc::new(BuiltinEmbedder),
            CacheConfig::default(),
            Clock::new(),
        );
        let context = CallContext::for_subscription("dev", crate::context::Api::OpenAi);
        let mut wrong = 0;
        for line in data
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let cols: Vec<&str> = line.split('\t').collect();
            let (kind, cached, query, expect) = (cols[0], cols[1], cols[2], cols[3]);
            let request = |text: &str| {
                serde_json::json!({"messages": [{"role": "user", "content": text}]})
                    .as_object()
                    .unwrap()
                    .clone()
            };
            let a = cache.prompt(&context, "m", &request(cached)).unwrap();
            let b = cache.prompt(&context, "m", &request(query)).unwrap();
            let ea = BuiltinEmbedder::embed_tokens(&a.tokens);
            let eb = BuiltinEmbedder::embed_tokens(&b.tokens);
            let similarity = ea.similarity(&eb);
            let verdict = verify::verify_text(query, cached, None);
            let hit = a.exact == b.exact || (similarity >= cache.threshold() && verdict.is_ok());
            let ok = hit == (expect == "hit");
            if !ok {
                wrong += 1;
            }
            println!(
                "{} {kind:10} {similarity:.3} {verdict:?} | {cached} | {query}",
                if ok { "ok " } else { "BAD" }
            );
        }
        println!("wrong: {wrong}");
    }
}

#[cfg(test)]
mod limits {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::context::Api;

    fn request(text: &str) -> Map<String, Value> {
        serde_json::json!({"messages": [{"role": "user", "content": text}]})
            .as_object()
            .unwrap()
            .clone()
    }

    fn answer() -> Value {
        serde_json::json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Done."}, "finish_reason": "stop"}]})
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_make_room_before_anyone_loses_a_live_one() {
        let cache = SemanticCache::new(
            Arc::new(BuiltinEmbedder),
            CacheConfig {
                ttl: Duration::from_secs(60),
                max_entries: 3,
                shared_across_subscriptions: true,
                ..CacheConfig::default()
            },
            Clock::new(),
        );
        let carol = CallContext::for_subscription("carol", Api::OpenAi);
        let bob = CallContext::for_subscription("bob", Api::OpenAi);
        let keep = |context: &CallContext, text: &str| {
            let prompt = cache.prompt(context, "m", &request(text)).unwrap();
            let cache = &cache;
            async move { cache.keep(prompt, &answer()).await }
        };
        let served = |text: &str| {
            let prompt = cache.prompt(&bob, "m", &request(text)).unwrap();
            let cache = &cache;
            async move { cache.find(&prompt).await.is_some() }
        };
        keep(&carol, "Which port does the admin API use?").await;
        keep(&carol, "How large may a request body be?").await;
        tokio::time::advance(Duration::from_secs(30)).await;
        keep(&bob, "Where are the audit logs kept?").await;
        // Carol's entries have expired; bob's two new ones take their room, and his first one,
        // still live, stays.
        tokio::time::advance(Duration::from_secs(31)).await;
        keep(&bob, "Who rotates the signing keys?").await;
        keep(&bob, "When do the nightly backups run?").await;
        assert_eq!(cache.len(), 3);
        assert!(served("Where are the audit logs kept?").await);
        assert!(served("When do the nightly backups run?").await);
    }
}
