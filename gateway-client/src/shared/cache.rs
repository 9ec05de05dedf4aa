//! The semantic cache shared through Redis.
//!
//! Debian's Redis 7.0 has no vector search, so the similarity index stays in each process and
//! Redis carries the entries:
//! - every stored answer is written under an exact-match key (with the entry's TTL) and
//!   appended to a stream;
//! - a lookup that finds nothing locally asks Redis for the exact key, so an exact repeat hits
//!   on any instance at once;
//! - each instance follows the stream (loading it whole on start), so similar prompts answered
//!   elsewhere become candidates here within a second.
//!
//! While Redis is unreachable the cache is bypassed: answers can't be shared, and a local-only
//! cache would make instances disagree.
//!
//! The local limits hold for shared entries too: prompts over the size cap are never stored
//! (here or in Redis), entries read from Redis go through the same fair, byte-bounded index,
//! each carrying the owner that stored it, and the stream keeps `CACHE_MAX_ENTRIES` entries.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use redis::{AsyncCommands, streams::StreamReadOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::RedisState;
use crate::{
    cache::{CacheLookup, ResponseCache},
    clock::Clock,
    context::{CallContext, Operation},
    semantic::{Embedding, Entry, SemanticCache},
};

const STREAM: &str = "tollgate:cache:log";
/// How long a stream read blocks waiting for new entries.
const FOLLOW_BLOCK_MS: usize = 1000;

fn exact_key(partition: u64, exact: u64) -> String {
    format!("tollgate:cache:exact:{partition:016x}:{exact:016x}")
}

/// An entry as it travels through Redis.
#[derive(Serialize, Deserialize)]
struct WireEntry {
    partition: u64,
    exact: u64,
    prompt: String,
    embedding: WireEmbedding,
    keys: Vec<u64>,
    /// The answer as JSON (not as text: instances of any version read it alike).
    response: Value,
    expires_ms: u64,
    origin: String,
    /// Who stored it; entries from instances that did not say belong to no one in particular.
    #[serde(default)]
    owner: u64,
}

#[derive(Serialize, Deserialize)]
enum WireEmbedding {
    Sparse { ids: Vec<u32>, weights: Vec<f32> },
    Dense(Vec<f32>),
}

impl WireEntry {
    fn from_entry(partition: u64, entry: &Entry, origin: &str) -> Option<Self> {
        let embedding = match &entry.embedding {
            Embedding::Sparse(features) => WireEmbedding::Sparse {
                ids: features.iter().map(|(id, _)| *id).collect(),
                weights: features.iter().map(|(_, w)| *w).collect(),
            },
            Embedding::Dense(values) => WireEmbedding::Dense(values.clone()),
        };
        Some(Self {
            partition,
            exact: entry.exact,
            prompt: entry.prompt.to_string(),
            embedding,
            keys: entry.keys.clone(),
            response: serde_json::from_str(&entry.response).ok()?,
            expires_ms: entry.expires_ms,
            origin: origin.to_owned(),
            owner: entry.owner,
        })
    }

    fn into_entry(self) -> (u64, Entry) {
        let embedding = match self.embedding {
            WireEmbedding::Sparse { ids, weights } => {
                Embedding::Sparse(ids.into_iter().zip(weights).collect())
            }
            WireEmbedding::Dense(values) => Embedding::Dense(values),
        };
        (
            self.partition,
            Entry {
                prompt: Arc::from(self.prompt),
                exact: self.exact,
                embedding,
                keys: self.keys,
                response: Arc::from(self.response.to_string()),
                expires_ms: self.expires_ms,
                owner: self.owner,
            },
        )
    }
}

pub struct SharedCache {
    local: Arc<SemanticCache>,
    redis: Arc<RedisState>,
    /// This instance's id: entries it wrote are not read back from the stream.
    origin: String,
    max_log_entries: usize,
    clock: Clock,
}

impl SharedCache {
    pub fn new(
        local: Arc<SemanticCache>,
        redis: Arc<RedisState>,
        origin: String,
        max_log_entries: usize,
        clock: Clock,
    ) -> Arc<Self> {
        Arc::new(Self {
            local,
            redis,
            origin,
            max_log_entries,
            clock,
        })
    }

    /// Loads the shared entries, then follows new ones, until the cache is dropped.
    pub fn spawn_sync(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let cache = Arc::downgrade(self);
        let connection = self.redis.dedicated_connection();
        tokio::spawn(async move {
            let Ok(mut connection) = connection else {
                return;
            };
            let mut last_id = "0-0".to_owned();
            loop {
                let Some(cache) = cache.upgrade() else { return };
                let options = StreamReadOptions::default()
                    .block(FOLLOW_BLOCK_MS)
                    .count(500);
                let read = tokio::time::timeout(
                    Duration::from_millis(FOLLOW_BLOCK_MS as u64) + super::OPERATION_TIMEOUT * 4,
                    connection.xread_options::<_, _, redis::streams::StreamReadReply>(
                        &[STREAM],
                        &[last_id.as_str()],
                        &options,
                    ),
                )
                .await;
                match read {
                    Ok(Ok(reply)) => {
                        for stream in reply.keys {
                            for item in stream.ids {
                                last_id.clone_from(&item.id);
                                cache.absorb(item.get::<String>("e").as_deref());
                            }
                        }
                    }
                    Ok(Err(_)) | Err(_) => {
                        drop(cache);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        })
    }

    /// Adds an entry read from Redis, unless it is ours or stale.
    fn absorb(&self, raw: Option<&str>) {
        let Some(wire) = raw.and_then(|raw| serde_json::from_str::<WireEntry>(raw).ok()) else {
            return;
        };
        if wire.origin == self.origin
            || wire.expires_ms <= self.clock.now_ms()
            || wire.prompt.len() > self.local.config().max_prompt_bytes
        {
            return;
        }
        let (partition, entry) = wire.into_entry();
        self.local.insert_entry(partition, entry);
    }

    async fn publish(&self, partition: u64, entry: &Entry) {
        let ttl_ms = entry.expires_ms.saturating_sub(self.clock.now_ms()).max(1);
        let Some(Ok(payload)) = WireEntry::from_entry(partition, entry, &self.origin)
            .map(|w| serde_json::to_string(&w))
        else {
            return;
        };
        let key = exact_key(partition, entry.exact);
        let max_len = self.max_log_entries;
        let result = self
            .redis
            .run(|mut connection| async move {
                redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(&payload)
                    .arg("PX")
                    .arg(ttl_ms)
                    .ignore()
                    .cmd("XADD")
                    .arg(STREAM)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(max_len)
                    .arg("*")
                    .arg("e")
                    .arg(&payload)
                    .ignore()
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await;
        if let Err(error) = result {
            tracing::debug!(%error, "cache entry not shared");
        }
    }

    async fn fetch_exact(&self, partition: u64, exact: u64) -> Option<Value> {
        let key = exact_key(partition, exact);
        let raw: Option<String> = self
            .redis
            .run(|mut connection| async move { connection.get(&key).await })
            .await
            .ok()
            .flatten();
        let wire: WireEntry = serde_json::from_str(&raw?).ok()?;
        if wire.expires_ms <= self.clock.now_ms() {
            return None;
        }
        let response = wire.response.clone();
        let (partition, entry) = wire.into_entry();
        self.local.insert_entry(partition, entry);
        Some(response)
    }
}

#[async_trait]
impl ResponseCache for SharedCache {
    fn available(&self) -> bool {
        self.redis.is_healthy()
    }

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
        let prompt = match self.local.analyse(context, model, request) {
            Ok(prompt) => prompt,
            Err(why) => return why.into(),
        };
        let local = self.local.look(&prompt).await;
        if matches!(local, CacheLookup::Hit(_) | CacheLookup::Bypass) {
            return local;
        }
        // Another instance's exact answer beats a local one still to be confirmed.
        match self.fetch_exact(prompt.partition, prompt.exact).await {
            Some(answer) => CacheLookup::Hit(answer),
            None => local,
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
        let Some(prompt) = self.local.prompt(context, model, request) else {
            return;
        };
        let Some(entry) = self.local.entry_for(&prompt, response).await else {
            return;
        };
        self.local.insert_entry(prompt.partition, entry.clone());
        self.publish(prompt.partition, &entry).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn entries_keep_their_owner_and_answer_through_redis() {
        let entry = Entry {
            prompt: Arc::from("What is a token budget?"),
            exact: 7,
            embedding: Embedding::Sparse(vec![(1, 1.0)]),
            keys: vec![3],
            response: Arc::from(r#"{"choices":[{"index":0}]}"#),
            expires_ms: 99,
            owner: 42,
        };
        let wire = WireEntry::from_entry(5, &entry, "a").unwrap();
        let raw = serde_json::to_string(&wire).unwrap();
        let (partition, back) = serde_json::from_str::<WireEntry>(&raw)
            .unwrap()
            .into_entry();
        assert_eq!((partition, back.owner, back.exact), (5, 42, 7));
        assert_eq!(
            serde_json::from_str::<Value>(&back.response).unwrap(),
            serde_json::json!({"choices": [{"index": 0}]})
        );
        // An entry written by an instance that did not record owners still reads.
        let mut old: Value = serde_json::from_str(&raw).unwrap();
        old.as_object_mut().unwrap().remove("owner");
        let (_, old) = serde_json::from_value::<WireEntry>(old)
            .unwrap()
            .into_entry();
        assert_eq!(old.owner, 0);
    }
}
