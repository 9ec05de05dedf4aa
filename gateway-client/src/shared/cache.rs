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

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use redis::{AsyncCommands, streams::StreamReadOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::RedisState;
use crate::{
    cache::ResponseCache,
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
    response: Value,
    expires_ms: u64,
    origin: String,
}

#[derive(Serialize, Deserialize)]
enum WireEmbedding {
    Sparse { ids: Vec<u32>, weights: Vec<f32> },
    Dense(Vec<f32>),
}

impl WireEntry {
    fn from_entry(partition: u64, entry: &Entry, origin: &str) -> Self {
        let embedding = match &entry.embedding {
            Embedding::Sparse(features) => WireEmbedding::Sparse {
                ids: features.iter().map(|(id, _)| *id).collect(),
                weights: features.iter().map(|(_, w)| *w).collect(),
            },
            Embedding::Dense(values) => WireEmbedding::Dense(values.clone()),
        };
        Self {
            partition,
            exact: entry.exact,
            prompt: entry.prompt.to_string(),
            embedding,
            keys: entry.keys.clone(),
            response: (*entry.response).clone(),
            expires_ms: entry.expires_ms,
            origin: origin.to_owned(),
        }
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
                response: Arc::new(self.response),
                expires_ms: self.expires_ms,
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
                    _ => {
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
        if wire.origin == self.origin || wire.expires_ms <= self.clock.now_ms() {
            return;
        }
        let (partition, entry) = wire.into_entry();
        self.local.insert_entry(partition, entry);
    }

    async fn publish(&self, partition: u64, entry: &Entry) {
        let ttl_ms = entry.expires_ms.saturating_sub(self.clock.now_ms()).max(1);
        let Ok(payload) =
            serde_json::to_string(&WireEntry::from_entry(partition, entry, &self.origin))
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

    async fn fetch_exact(&self, partition: u64, exact: u64) -> Option<Arc<Value>> {
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
        let (partition, entry) = wire.into_entry();
        let response = entry.response.clone();
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
    ) -> Option<Value> {
        if operation != Operation::Chat {
            return None;
        }
        let prompt = self.local.prompt(context, model, request)?;
        if let Some(found) = self.local.find(&prompt).await {
            return Some((*found).clone());
        }
        self.fetch_exact(prompt.partition, prompt.exact)
            .await
            .map(|found| (*found).clone())
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
