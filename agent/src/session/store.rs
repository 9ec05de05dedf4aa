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
pub(crate) fn page_of(
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
}

#[derive(Debug, Default)]
struct Sessions {
    entries: HashMap<String, Entry>,
    /// (expires, id): expired sessions are dropped from the front.
    by_expiry: BTreeSet<(u64, String)>,
    by_owner: HashMap<String, BTreeSet<String>>,
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
}

/// Sessions in this process, at most [`MEMORY_MAX_SESSIONS`] of them.
#[derive(Debug)]
pub struct MemorySessions {
    sessions: Mutex<Sessions>,
    max_sessions: usize,
}

impl Default for MemorySessions {
    fn default() -> Self {
        Self::with_capacity(MEMORY_MAX_SESSIONS)
    }
}

impl MemorySessions {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding at most `max_sessions` (at least one).
    pub fn with_capacity(max_sessions: usize) -> Self {
        Self {
            sessions: Mutex::new(Sessions::default()),
            max_sessions: max_sessions.max(1),
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
        while sessions.entries.len() >= self.max_sessions {
            let Some((_, oldest)) = sessions.by_expiry.first().cloned() else {
                break;
            };
            sessions.remove(&oldest);
        }
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
        let new_expiry = entry.expires_ms;
        sessions.set_expiry(id, old_expiry, new_expiry);
        Ok(Some(seq))
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
