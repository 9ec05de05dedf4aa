//! Where conversations are kept: the [`SessionStore`] trait, and [`MemorySessions`] in this
//! process. `RedisSessions` (`redis.rs`) shares them between instances; both pass
//! [`super::conformance`].
//!
//! A store keeps each turn as an opaque payload (the session layer's JSON) under a sequence
//! number it assigns when the turn is appended, so turns are ordered by completion and two
//! concurrent appends never lose each other. Times are passed in (`now_ms`), as the budget
//! store's are, so the same checks run against real Redis and a paused clock.

use std::collections::{BTreeSet, HashMap, VecDeque};

use async_trait::async_trait;
use parking_lot::Mutex;

/// The most sessions one in-process store holds; past it, the one closest to expiry goes.
pub const MEMORY_MAX_SESSIONS: usize = 100_000;
/// The most turn bytes one in-process store holds, all sessions together; past it, sessions
/// closest to expiry go (every stateless `/agent/chat` call starts a session, so a busy
/// instance must not grow without bound).
pub const MEMORY_MAX_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionStoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// What a session may hold: its newest turns, within both caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    pub max_turns: u64,
    /// Bytes of turn payloads; the newest turn is kept even when it alone is over.
    pub max_bytes: u64,
}

/// One stored turn: its place in the session and the session layer's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTurn {
    pub seq: u64,
    pub payload: String,
}

/// The compacted start of a conversation: a summary of every turn up to `through_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSummary {
    pub through_seq: u64,
    pub text: String,
}

/// A live session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub created_ms: u64,
    pub updated_ms: u64,
    pub expires_ms: u64,
    /// Turns dropped by the history caps (the oldest ones).
    pub dropped_turns: u64,
    /// Oldest first.
    pub turns: Vec<StoredTurn>,
    pub summary: Option<StoredSummary>,
}

/// One line of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionListing {
    pub id: String,
    pub expires_ms: u64,
}

/// A page of an owner's sessions, ordered by id; `next_cursor` is the last id when more follow.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionPage {
    pub sessions: Vec<SessionListing>,
    pub next_cursor: Option<String>,
}

/// A session is live while `now_ms < expires_ms`. Every method that names a session takes its
/// owner: a session of another owner behaves exactly as one that does not exist.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// `memory` or `redis`.
    fn kind(&self) -> &'static str;

    /// Creates an empty session living until `now_ms + ttl_ms`; false if the id is taken.
    async fn create(
        &self,
        id: &str,
        owner: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<bool, SessionStoreError>;

    /// The live session `id` of `owner`, if there is one.
    async fn load(
        &self,
        id: &str,
        owner: &str,
        now_ms: u64,
    ) -> Result<Option<StoredSession>, SessionStoreError>;

    /// Atomically appends a turn under the next sequence number, drops the oldest turns past
    /// `limits`, and refreshes the lifetime to `now_ms + ttl_ms`. `None` when the session is
    /// gone (expired, deleted, or not `owner`'s): the turn is not kept.
    async fn append(
        &self,
        id: &str,
        owner: &str,
        payload: &str,
        now_ms: u64,
        ttl_ms: u64,
        limits: HistoryLimits,
    ) -> Result<Option<u64>, SessionStoreError>;

    /// Keeps `summary` as the session's summary unless it already has one through a later (or
    /// the same) turn; false when not kept. Does not extend the session's life.
    async fn set_summary(
        &self,
        id: &str,
        owner: &str,
        summary: &StoredSummary,
        now_ms: u64,
    ) -> Result<bool, SessionStoreError>;

    /// Forgets the session; false when there was no live session of `owner` to forget.
    async fn delete(&self, id: &str, owner: &str, now_ms: u64) -> Result<bool, SessionStoreError>;

    /// `owner`'s live sessions with ids after `after`, at most `limit`.
    async fn list(
        &self,
        owner: &str,
        now_ms: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<SessionPage, SessionStoreError>;

    /// How many sessions are live, across owners (and instances, for a shared store).
    async fn live_count(&self, now_ms: u64) -> Result<u64, SessionStoreError>;
}

/// A page out of ids already in order.
fn page_of(
    ids: impl Iterator<Item = SessionListing>,
    after: Option<&str>,
    limit: usize,
) -> SessionPage {
    let mut sessions: Vec<SessionListing> = ids
        .filter(|listing| after.is_none_or(|after| listing.id.as_str() > after))
        .take(limit.saturating_add(1))
        .collect();
    let next_cursor = if sessions.len() > limit {
        sessions.truncate(limit);
        sessions.last().map(|listing| listing.id.clone())
    } else {
        None
    };
    SessionPage {
        sessions,
        next_cursor,
    }
}

#[derive(Debug)]
struct Entry {
    owner: String,
    created_ms: u64,
    updated_ms: u64,
    expires_ms: u64,
    next_seq: u64,
    dropped: u64,
    bytes: u64,
    turns: VecDeque<StoredTurn>,
    summary: Option<StoredSummary>,
}

#[derive(Debug, Default)]
struct Sessions {
    entries: HashMap<String, Entry>,
    /// (expires, id): expired sessions are dropped from the front.
    by_expiry: BTreeSet<(u64, String)>,
    by_owner: HashMap<String, BTreeSet<String>>,
    /// Turn bytes of every session.
    bytes: u64,
}

impl Sessions {
    fn prune(&mut self, now_ms: u64) {
        while let Some((expires, id)) = self.by_expiry.first().cloned() {
            if expires > now_ms {
                break;
            }
            self.remove(&id);
        }
    }

    fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        self.bytes -= entry.bytes;
        self.by_expiry.remove(&(entry.expires_ms, id.to_owned()));
        if let Some(ids) = self.by_owner.get_mut(&entry.owner) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_owner.remove(&entry.owner);
            }
        }
        Some(entry)
    }

    /// The live entry `id` of `owner`.
    fn live(&mut self, id: &str, owner: &str, now_ms: u64) -> Option<&mut Entry> {
        self.prune(now_ms);
        self.entries
            .get_mut(id)
            .filter(|entry| entry.owner == owner && entry.expires_ms > now_ms)
    }

    fn set_expiry(&mut self, id: &str, old: u64, new: u64) {
        self.by_expiry.remove(&(old, id.to_owned()));
        self.by_expiry.insert((new, id.to_owned()));
    }

    /// Drops the sessions closest to expiry, other than `keep`, until at most `max_sessions`
    /// remain and their turns take at most `max_bytes`.
    fn evict(&mut self, keep: &str, max_sessions: usize, max_bytes: u64) {
        while self.entries.len() > max_sessions || self.bytes > max_bytes {
            let victim = self
                .by_expiry
                .iter()
                .find(|(_, id)| id != keep)
                .map(|(_, id)| id.clone());
            match victim {
                Some(id) => {
                    self.remove(&id);
                }
                None => break,
            }
        }
    }
}

/// Sessions in this process, at most [`MEMORY_MAX_SESSIONS`] of them.
#[derive(Debug)]
pub struct MemorySessions {
    sessions: Mutex<Sessions>,
    max_sessions: usize,
    max_bytes: u64,
}

impl Default for MemorySessions {
    fn default() -> Self {
        Self::with_capacity(MEMORY_MAX_SESSIONS, MEMORY_MAX_BYTES)
    }
}

impl MemorySessions {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding at most `max_sessions` (at least one) and `max_bytes` of turns (the
    /// session a turn was just added to is kept even when it alone is over).
    pub fn with_capacity(max_sessions: usize, max_bytes: u64) -> Self {
        Self {
            sessions: Mutex::new(Sessions::default()),
            max_sessions: max_sessions.max(1),
            max_bytes,
        }
    }
}

#[async_trait]
impl SessionStore for MemorySessions {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn create(
        &self,
        id: &str,
        owner: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<bool, SessionStoreError> {
        let mut sessions = self.sessions.lock();
        sessions.prune(now_ms);
        if sessions.entries.contains_key(id) {
            return Ok(false);
        }
        sessions.evict(id, self.max_sessions.saturating_sub(1), self.max_bytes);
        let expires_ms = now_ms.saturating_add(ttl_ms);
        sessions.entries.insert(
            id.to_owned(),
            Entry {
                owner: owner.to_owned(),
                created_ms: now_ms,
                updated_ms: now_ms,
                expires_ms,
                next_seq: 1,
                dropped: 0,
                bytes: 0,
                turns: VecDeque::new(),
                summary: None,
            },
        );
        sessions.by_expiry.insert((expires_ms, id.to_owned()));
        sessions
            .by_owner
            .entry(owner.to_owned())
            .or_default()
            .insert(id.to_owned());
        Ok(true)
    }

    async fn load(
        &self,
        id: &str,
        owner: &str,
        now_ms: u64,
    ) -> Result<Option<StoredSession>, SessionStoreError> {
        let mut sessions = self.sessions.lock();
        Ok(sessions.live(id, owner, now_ms).map(|entry| StoredSession {
            created_ms: entry.created_ms,
            updated_ms: entry.updated_ms,
            expires_ms: entry.expires_ms,
            dropped_turns: entry.dropped,
            turns: entry.turns.iter().cloned().collect(),
            summary: entry.summary.clone(),
        }))
    }

    async fn append(
        &self,
        id: &str,
        owner: &str,
        payload: &str,
        now_ms: u64,
        ttl_ms: u64,
        limits: HistoryLimits,
    ) -> Result<Option<u64>, SessionStoreError> {
        let mut sessions = self.sessions.lock();
        let Some(entry) = sessions.live(id, owner, now_ms) else {
            return Ok(None);
        };
        let seq = entry.next_seq;
        let bytes_before = entry.bytes;
        entry.next_seq += 1;
        entry.bytes += payload.len() as u64;
        entry.turns.push_back(StoredTurn {
            seq,
            payload: payload.to_owned(),
        });
        while entry.turns.len() > 1
            && (entry.turns.len() as u64 > limits.max_turns || entry.bytes > limits.max_bytes)
        {
            if let Some(dropped) = entry.turns.pop_front() {
                entry.bytes -= dropped.payload.len() as u64;
                entry.dropped += 1;
            }
        }
        let old_expiry = entry.expires_ms;
        entry.updated_ms = now_ms;
        entry.expires_ms = now_ms.saturating_add(ttl_ms).max(old_expiry);
        let (new_expiry, bytes_after) = (entry.expires_ms, entry.bytes);
        sessions.bytes = sessions.bytes - bytes_before + bytes_after;
        sessions.set_expiry(id, old_expiry, new_expiry);
        sessions.evict(id, self.max_sessions, self.max_bytes);
        Ok(Some(seq))
    }

    async fn set_summary(
        &self,
        id: &str,
        owner: &str,
        summary: &StoredSummary,
        now_ms: u64,
    ) -> Result<bool, SessionStoreError> {
        let mut sessions = self.sessions.lock();
        let Some(entry) = sessions.live(id, owner, now_ms) else {
            return Ok(false);
        };
        if entry
            .summary
            .as_ref()
            .is_some_and(|kept| kept.through_seq >= summary.through_seq)
        {
            return Ok(false);
        }
        entry.summary = Some(summary.clone());
        Ok(true)
    }

    async fn delete(&self, id: &str, owner: &str, now_ms: u64) -> Result<bool, SessionStoreError> {
        let mut sessions = self.sessions.lock();
        if sessions.live(id, owner, now_ms).is_none() {
            return Ok(false);
        }
        Ok(sessions.remove(id).is_some())
    }

    async fn list(
        &self,
        owner: &str,
        now_ms: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<SessionPage, SessionStoreError> {
        let mut sessions = self.sessions.lock();
        sessions.prune(now_ms);
        let Some(ids) = sessions.by_owner.get(owner) else {
            return Ok(SessionPage::default());
        };
        let listings = ids.iter().filter_map(|id| {
            sessions.entries.get(id).map(|entry| SessionListing {
                id: id.clone(),
                expires_ms: entry.expires_ms,
            })
        });
        Ok(page_of(listings, after, limit))
    }

    async fn live_count(&self, now_ms: u64) -> Result<u64, SessionStoreError> {
        let mut sessions = self.sessions.lock();
        sessions.prune(now_ms);
        Ok(sessions.entries.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const LIMITS: HistoryLimits = HistoryLimits {
        max_turns: 100,
        max_bytes: 1 << 20,
    };

    #[tokio::test]
    async fn a_full_memory_store_lets_the_sessions_closest_to_expiry_go() {
        let store = MemorySessions::with_capacity(3, 250);
        for (n, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
            store.create(id, "o", n as u64, 1_000).await.unwrap();
        }
        assert_eq!(store.live_count(10).await.unwrap(), 3, "the session cap");
        assert!(store.load("a", "o", 10).await.unwrap().is_none());
        // 100 bytes each into b, c, d: past 250 bytes, the session closest to expiry goes,
        // never the one just written.
        for (now, id) in [(20, "d"), (21, "c"), (22, "b")] {
            store
                .append(id, "o", &"x".repeat(100), now, 1_000, LIMITS)
                .await
                .unwrap();
        }
        assert!(store.load("d", "o", 30).await.unwrap().is_none());
        assert_eq!(
            store.load("b", "o", 30).await.unwrap().unwrap().turns.len(),
            1
        );
        assert_eq!(store.live_count(30).await.unwrap(), 2);
        // One session alone over the cap is kept.
        store
            .append("b", "o", &"y".repeat(300), 40, 1_000, LIMITS)
            .await
            .unwrap();
        assert_eq!(store.live_count(50).await.unwrap(), 1);
        assert!(store.load("b", "o", 50).await.unwrap().is_some());
    }
}
