//! The dashboard's figures shared through Redis: each instance keeps a short-lived key of its
//! own (refreshed every few seconds), and a sorted set of who published when lists the live
//! ones. Every key shares the `{tollgate:stats}` hash tag, so they sit in one cluster slot.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

use super::RedisState;
use crate::{
    stats::{InstanceStats, StatsBoard},
    store::StoreError,
};

/// How often a live instance publishes its figures.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(5);
/// How long published figures live: an instance missing three publications is gone.
pub const FIGURES_TTL: Duration = Duration::from_secs(15);

const INSTANCES_KEY: &str = "tollgate:{tollgate:stats}:instances";

fn figures_key(instance_id: &str) -> String {
    format!("tollgate:{{tollgate:stats}}:instance:{instance_id}")
}

pub struct RedisStatsBoard {
    redis: Arc<RedisState>,
    instance_id: String,
}

impl RedisStatsBoard {
    pub fn new(redis: Arc<RedisState>, instance_id: String) -> Self {
        Self { redis, instance_id }
    }
}

fn ttl_ms() -> u64 {
    u64::try_from(FIGURES_TTL.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl StatsBoard for RedisStatsBoard {
    async fn publish(&self, figures: &InstanceStats) -> Result<(), StoreError> {
        let json = serde_json::to_string(figures)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode the figures: {e}")))?;
        let key = figures_key(&self.instance_id);
        let seen = figures.seen_ms;
        self.redis
            .run(|mut connection| async move {
                redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(&key)
                    .arg(json)
                    .arg("PX")
                    .arg(ttl_ms())
                    .ignore()
                    .cmd("ZADD")
                    .arg(INSTANCES_KEY)
                    .arg(seen)
                    .arg(&self.instance_id)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(INSTANCES_KEY)
                    .arg(ttl_ms())
                    .ignore()
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await
    }

    async fn read(&self, now_ms: u64) -> Result<Vec<InstanceStats>, StoreError> {
        let oldest = now_ms.saturating_sub(ttl_ms());
        let (ids,): (Vec<String>,) = self
            .redis
            .run(|mut connection| async move {
                redis::pipe()
                    .atomic()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(INSTANCES_KEY)
                    .arg("-inf")
                    .arg(format!("({oldest}"))
                    .ignore()
                    .cmd("ZRANGE")
                    .arg(INSTANCES_KEY)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| figures_key(id)).collect();
        let values: Vec<Option<String>> = self
            .redis
            .run(|mut connection| async move {
                redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(values
            .into_iter()
            .flatten()
            .filter_map(|json| match serde_json::from_str::<InstanceStats>(&json) {
                Ok(figures) => Some(figures),
                Err(error) => {
                    tracing::warn!(%error, "ignoring unreadable figures published by an instance");
                    None
                }
            })
            .collect())
    }
}
