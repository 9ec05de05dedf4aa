//! The semantic cache: answers reused for the same question asked again, or asked differently.
//!
//! A lookup, in order:
//! 1. the prompt: the recent conversation window (user and assistant text, tool calls and tool
//!    results; system messages only if configured), and the partition: subscription (unless
//!    shared), model, and every request parameter that can change the answer (tools,
//!    temperature, response format…);
//! 2. a normalized exact match, which is always a hit;
//! 3. otherwise candidates from the inverted index, ranked by embedding similarity, kept above
//!    the threshold;
//! 4. verification: the first candidate that asks the same thing (same numbers, names,
//!    negation, direction, and content words) is served.
//!
//! Only complete answers are stored: never errors, truncated (`length`) or refused answers.

mod embed;
mod index;
#[cfg(feature = "minilm")]
pub mod minilm;
pub mod static_model;
pub mod text;
pub mod verify;

use std::{fmt::Write as _, sync::Arc, time::Duration};

use async_trait::async_trait;
use parking_lot::RwLock;
use serde_json::{Map, Value};

pub use embed::{
    BUILTIN_THRESHOLD, BuiltinEmbedder, EmbedError, Embedder, Embedding, UpstreamEmbedder,
};
pub use index::{Entry, Index};
pub use static_model::{STATIC_THRESHOLD, StaticEmbedder, StaticModel};

use crate::{
    cache::ResponseCache,
    clock::Clock,
    context::{CallContext, Operation},
};
use embed::fnv1a;
use text::{Kind, Token, tokenize};

/// The most similar candidates that verification examines per lookup.
const VERIFIED_CANDIDATES: usize = 4;

/// Request fields that do not change the answer (so they don't split the cache).
///
/// Output limits are among them: only complete answers are stored (never `length`), and an
/// answer that ended on its own is the same answer under any larger limit.
const IGNORED_FIELDS: &[&str] = &[
    "messages",
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "max_tokens",
    "max_completion_tokens",
];

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Minimum similarity for a candidate; `None` uses the embedder's tuned default.
    pub threshold: Option<f32>,
    pub ttl: Duration,
    /// Entries kept in all, across partitions; the oldest go first.
    pub max_entries: usize,
    /// Embed system messages too (ignored by default).
    pub include_system: bool,
    /// How many recent messages make up the prompt.
    pub window_messages: usize,
    /// One cache for every subscription instead of one each.
    pub shared_across_subscriptions: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            threshold: None,
            ttl: Duration::from_secs(3600),
            max_entries: 20_000,
            include_system: false,
            window_messages: 8,
            shared_across_subscriptions: false,
        }
    }
}

/// A prompt, analysed once for both lookup and store.
pub struct Prompt {
    pub partition: u64,
    pub text: String,
    pub tokens: Vec<Token>,
    pub exact: u64,
    pub keys: Vec<u64>,
}

pub struct SemanticCache {
    embedder: Arc<dyn Embedder>,
    threshold: f32,
    config: CacheConfig,
    index: RwLock<Index>,
    clock: Clock,
    inserts: std::sync::atomic::AtomicU64,
}

impl SemanticCache {
    pub fn new(embedder: Arc<dyn Embedder>, config: CacheConfig, clock: Clock) -> Self {
        let threshold = config
            .threshold
            .unwrap_or_else(|| embedder.default_threshold());
        Self {
            embedder,
            threshold,
            index: RwLock::new(Index::new(config.max_entries)),
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

    /// The prompt and partition of a chat request, or `None` if it can't be cached (no user
    /// message in the window).
    pub fn prompt(
        &self,
        context: &CallContext,
        model: &str,
        request: &Map<String, Value>,
    ) -> Option<Prompt> {
        let messages = request.get("messages")?.as_array()?;
        let kept: Vec<&Value> = messages
            .iter()
            .filter(|m| {
                self.config.include_system
                    || !matches!(
                        m.get("role").and_then(Value::as_str),
                        Some("system" | "developer")
                    )
            })
            .collect();
        let window = &kept[kept
            .len()
            .saturating_sub(self.config.window_messages.max(1))..];
        if !window
            .iter()
            .any(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        {
            return None;
        }
        let mut text = String::new();
        let mut roles = String::new();
        for message in window {
            let role = message.get("role").and_then(Value::as_str).unwrap_or("");
            roles.push_str(role);
            roles.push('|');
            if !text.is_empty() {
                text.push('\n');
            }
            crate::tokens::collect_message_text_without_role(message, &mut text);
        }
        let tokens = tokenize(&text);
        let normalized = normalized(&tokens);
        let subscription = if self.config.shared_across_subscriptions {
            "*"
        } else {
            &context.subscription
        };
        let mut parameters = String::new();
        for (key, value) in request {
            if !IGNORED_FIELDS.contains(&key.as_str()) {
                let _ = write!(parameters, "{key}=");
                canonical_json(value, &mut parameters);
                parameters.push(';');
            }
        }
        let partition = fnv1a(&[
            subscription.as_bytes(),
            model.as_bytes(),
            parameters.as_bytes(),
        ]);
        let exact = fnv1a(&[roles.as_bytes(), normalized.as_bytes()]);
        let mut keys: Vec<u64> = tokens
            .iter()
            .filter(|t| t.kind != Kind::Light)
            .map(|t| fnv1a(&[t.canonical.as_bytes()]))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Some(Prompt {
            partition,
            text,
            tokens,
            exact,
            keys,
        })
    }

    /// Finds an answer for `prompt`: exact, or similar and verified.
    pub async fn find(&self, prompt: &Prompt) -> Option<Arc<Value>> {
        let now = self.clock.now_ms();
        if let Some(entry) = self.index.read().exact(prompt.partition, prompt.exact, now) {
            return Some(entry.response.clone());
        }
        let embedding = match self.embedder.embed(&prompt.text, &prompt.tokens).await {
            Ok(embedding) => embedding,
            Err(error) => {
                tracing::warn!(%error, "cache lookup skipped: embedding failed");
                return None;
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
        // Verification re-reads each candidate's prompt; the few most similar are enough.
        for (similarity, entry) in scored.into_iter().take(VERIFIED_CANDIDATES) {
            match verify::verify_tokens(&prompt.tokens, &tokenize(&entry.prompt)) {
                Ok(()) => {
                    tracing::debug!(similarity, "semantic cache hit");
                    return Some(entry.response.clone());
                }
                Err(reason) => {
                    metrics::counter!("gateway_cache_verification_refusals_total", "reason" => refusal_label(reason))
                        .increment(1);
                }
            }
        }
        None
    }

    /// Keeps `response` for `prompt` if it is a complete answer.
    pub async fn keep(&self, prompt: Prompt, response: &Value) {
        if !is_storable(response) {
            return;
        }
        let embedding = match self.embedder.embed(&prompt.text, &prompt.tokens).await {
            Ok(embedding) => embedding,
            Err(error) => {
                tracing::warn!(%error, "answer not cached: embedding failed");
                return;
            }
        };
        let now = self.clock.now_ms();
        let entry = Entry {
            prompt: Arc::from(prompt.text),
            exact: prompt.exact,
            embedding,
            keys: prompt.keys,
            response: Arc::new(response.clone()),
            expires_ms: now + u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX),
        };
        let mut index = self.index.write();
        index.insert(prompt.partition, entry);
        let inserts = self
            .inserts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if inserts.is_multiple_of(1024) {
            index.sweep(now);
        }
        metrics::gauge!("gateway_cache_entries").set(index.len() as f64);
    }

    /// Inserts an entry made elsewhere (another instance, through shared state).
    pub fn insert_entry(&self, partition: u64, entry: Entry) {
        let mut index = self.index.write();
        index.insert(partition, entry);
        metrics::gauge!("gateway_cache_entries").set(index.len() as f64);
    }

    /// Builds an entry for `prompt` without storing it (for shared state to carry).
    pub async fn entry_for(&self, prompt: &Prompt, response: &Value) -> Option<Entry> {
        if !is_storable(response) {
            return None;
        }
        let embedding = self
            .embedder
            .embed(&prompt.text, &prompt.tokens)
            .await
            .ok()?;
        Some(Entry {
            prompt: Arc::from(prompt.text.as_str()),
            exact: prompt.exact,
            embedding,
            keys: prompt.keys.clone(),
            response: Arc::new(response.clone()),
            expires_ms: self.clock.now_ms()
                + u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX),
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
    ) -> Option<Value> {
        if operation != Operation::Chat {
            return None;
        }
        let prompt = self.prompt(context, model, request)?;
        self.find(&prompt).await.map(|v| (*v).clone())
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

fn normalized(tokens: &[Token]) -> String {
    let mut out = String::new();
    for token in tokens {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&token.surface);
    }
    out
}

/// JSON with object keys sorted, so equal parameters always hash alike.
fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for key in keys {
                let _ = write!(out, "{key:?}:");
                if let Some(inner) = map.get(key) {
                    canonical_json(inner, out);
                }
                out.push(',');
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                canonical_json(item, out);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn refusal_label(reason: verify::Refusal) -> &'static str {
    match reason {
        verify::Refusal::Numbers => "numbers",
        verify::Refusal::Negation => "negation",
        verify::Refusal::Entities => "entities",
        verify::Refusal::Substitution => "substitution",
        verify::Refusal::Direction => "direction",
        verify::Refusal::TooDifferent => "too_different",
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
            let verdict = verify::verify_tokens(&b.tokens, &a.tokens);
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
