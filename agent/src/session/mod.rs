//! Conversations the agent keeps itself, in the state store, so any instance continues any
//! session.
//!
//! Layout:
//! - [`store`]: the [`SessionStore`] trait and [`MemorySessions`]; `redis.rs`:
//!   [`RedisSessions`]; `conformance`: the checks both pass.
//! - [`context`]: what of a session is sent to the model, within
//!   `AGENT_SESSION_MAX_CONTEXT_TOKENS`, older turns compacted into a summary.
//! - [`Sessions`] (here): ids, ownership, the stored turn's shape, and the views the routes
//!   return.
//!
//! Order: turns are numbered when they are appended, that is in the order they finish. Two
//! turns running at once on one session both start from the history as it was when they
//! began (neither sees the other), and both are kept.
//!
//! Privacy: a session is its owner's (the subscription, or later the token subject); for anyone
//! else it does not exist. Nothing of a session's content is logged; the id is a span field.

#[cfg(any(test, feature = "session-conformance"))]
pub mod conformance;
pub mod context;
mod redis;
pub mod store;

use std::{sync::Arc, time::Duration};

use gateway_client::clock::Clock;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use redis::RedisSessions;
pub use store::{HistoryLimits, MemorySessions, SessionStore, SessionStoreError, StoredSummary};

use crate::{AgentError, ToolCallRecord, TurnResult};

/// A session id: 32 lowercase hex digits, 128 random bits.
pub const SESSION_ID_CHARS: usize = 32;
/// Characters of a tool call's result (or arguments) kept in a stored turn.
pub const STORED_TOOL_TEXT_CHARS: usize = 2_000;
/// Sessions one listing page holds by default, and at most.
pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;

/// How the older turns of a long session are compacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summarizer {
    /// The built-in extractive summarizer (the `summarize` tool's): no model call, no tokens.
    Extractive,
    /// The model, through the gateway: metered like any call, budgeted like any call.
    Model,
}

#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// Lifetime after the last turn.
    pub ttl: Duration,
    pub limits: HistoryLimits,
    /// Tokens of conversation (summary, earlier turns, the new message) sent to the model.
    pub max_context_tokens: u64,
    pub summarizer: Summarizer,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3600),
            limits: HistoryLimits {
                max_turns: 50,
                max_bytes: 256 * 1024,
            },
            max_context_tokens: 4_000,
            summarizer: Summarizer::Extractive,
        }
    }
}

/// A new random session id.
pub fn new_session_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Checks a session id given by a client; the message says what a good one looks like.
pub fn check_session_id(id: &str) -> Result<(), AgentError> {
    let shape = format!(
        "a session id is {SESSION_ID_CHARS} lowercase hexadecimal characters, as returned in \
         `session_id`"
    );
    if id.len() != SESSION_ID_CHARS {
        return Err(AgentError::InvalidSessionId(format!(
            "`session_id` has {} characters: {shape}",
            id.chars().count()
        )));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(AgentError::InvalidSessionId(format!(
            "`session_id` has characters outside 0-9 and a-f: {shape}"
        )));
    }
    Ok(())
}

/// One tool call as a session keeps it: long arguments and results are cut.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredToolCall {
    pub name: String,
    pub arguments: Value,
    pub result: Value,
    /// The result was longer than [`STORED_TOOL_TEXT_CHARS`] and is kept cut, as text.
    #[serde(default)]
    pub result_truncated: bool,
    pub routed_via: String,
    pub duration_ms: f64,
    pub is_error: bool,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TurnUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// One turn as a session keeps it: what was asked, answered and done, by whom, when, at what
/// cost. `seq` is the store's number for it (not stored inside the payload).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionTurn {
    #[serde(default, skip_deserializing)]
    pub seq: u64,
    pub message: String,
    pub reply: String,
    pub tool_calls: Vec<StoredToolCall>,
    pub usage: TurnUsage,
    pub model: String,
    pub instance_id: String,
    pub started_at_ms: u64,
    pub completed_at_ms: u64,
}

/// A session as `GET /agent/sessions/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub session_id: String,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub expires_at_ms: u64,
    /// The oldest turns dropped by the history caps.
    pub turns_dropped: u64,
    /// The summary older turns are sent to the model as, once the session outgrew
    /// `AGENT_SESSION_MAX_CONTEXT_TOKENS`.
    pub summary: Option<SummaryView>,
    pub turns: Vec<SessionTurn>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SummaryView {
    /// The summary covers every turn up to this `seq`.
    pub through_seq: u64,
    pub text: String,
}

/// One page of `GET /agent/sessions`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionList {
    pub sessions: Vec<SessionSummary>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub session_id: String,
    pub expires_at_ms: u64,
}

/// The session a turn runs in: its id, the turns before this one and their summary.
#[derive(Debug, Clone)]
pub struct OpenSession {
    /// `None` when the store could not make a new session: the turn runs without memory.
    pub id: Option<String>,
    pub turns: Vec<SessionTurn>,
    pub summary: Option<StoredSummary>,
}

/// Sessions over a store: ids, owners, times, and the turn's stored shape.
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    settings: SessionSettings,
    instance_id: Arc<str>,
    clock: Clock,
}

impl Sessions {
    pub fn new(store: Arc<dyn SessionStore>, settings: SessionSettings, instance_id: &str) -> Self {
        Self {
            store,
            settings,
            instance_id: Arc::from(instance_id),
            clock: Clock::new(),
        }
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    pub fn store_kind(&self) -> &'static str {
        self.store.kind()
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.settings.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// The session named by `requested`, or a new one. A named session that is unknown,
    /// expired or another owner's is `SessionNotFound`.
    pub async fn open(
        &self,
        owner: &str,
        requested: Option<&str>,
    ) -> Result<OpenSession, AgentError> {
        if let Some(id) = requested {
            check_session_id(id)?;
            let stored = self
                .store
                .load(id, owner, self.now_ms())
                .await
                .map_err(store_error)?
                .ok_or(AgentError::SessionNotFound)?;
            return Ok(OpenSession {
                id: Some(id.to_owned()),
                turns: read_turns(stored.turns),
                summary: stored.summary,
            });
        }
        let id = new_session_id();
        match self
            .store
            .create(&id, owner, self.now_ms(), self.ttl_ms())
            .await
        {
            Ok(true) => Ok(OpenSession {
                id: Some(id),
                turns: Vec::new(),
                summary: None,
            }),
            // A 128-bit collision, or a store that is down: the turn still runs, unremembered.
            Ok(false) | Err(_) => {
                tracing::warn!("could not create an agent session; the turn runs without one");
                Ok(OpenSession {
                    id: None,
                    turns: Vec::new(),
                    summary: None,
                })
            }
        }
    }

    /// Keeps a finished turn in its session. A session that expired or was deleted during the
    /// turn keeps nothing.
    pub async fn record(
        &self,
        owner: &str,
        id: &str,
        message: &str,
        result: &TurnResult,
        started_at_ms: u64,
    ) -> Result<(), AgentError> {
        let now = self.now_ms();
        let turn = SessionTurn {
            seq: 0,
            message: message.to_owned(),
            reply: result.reply.clone(),
            tool_calls: result.tool_calls.iter().map(stored_tool_call).collect(),
            usage: TurnUsage {
                prompt_tokens: result.usage.prompt_tokens,
                completion_tokens: result.usage.completion_tokens,
                total_tokens: result.usage.total_tokens,
            },
            model: result.model.clone(),
            instance_id: self.instance_id.to_string(),
            started_at_ms,
            completed_at_ms: now,
        };
        let payload = serde_json::to_string(&turn)
            .map_err(|e| AgentError::SessionStore(format!("a turn could not be encoded: {e}")))?;
        let appended = self
            .store
            .append(
                id,
                owner,
                &payload,
                now,
                self.ttl_ms(),
                self.settings.limits,
            )
            .await
            .map_err(store_error)?;
        if appended.is_none() {
            tracing::info!("an agent session ended during its turn; the turn was not kept");
        }
        Ok(())
    }

    /// Keeps a new summary of the session's older turns, so later turns reuse it. A failure
    /// only costs the next turn a new summary.
    pub async fn keep_summary(&self, owner: &str, id: &str, summary: &StoredSummary) {
        if let Err(error) = self
            .store
            .set_summary(id, owner, summary, self.now_ms())
            .await
        {
            tracing::warn!(%error, "a session summary could not be kept");
        }
    }

    pub async fn view(&self, owner: &str, id: &str) -> Result<SessionView, AgentError> {
        check_session_id(id)?;
        let stored = self
            .store
            .load(id, owner, self.now_ms())
            .await
            .map_err(store_error)?
            .ok_or(AgentError::SessionNotFound)?;
        Ok(SessionView {
            session_id: id.to_owned(),
            created_at_ms: stored.created_ms,
            updated_at_ms: stored.updated_ms,
            expires_at_ms: stored.expires_ms,
            turns_dropped: stored.dropped_turns,
            summary: stored.summary.map(|summary| SummaryView {
                through_seq: summary.through_seq,
                text: summary.text,
            }),
            turns: read_turns(stored.turns),
        })
    }

    pub async fn delete(&self, owner: &str, id: &str) -> Result<(), AgentError> {
        check_session_id(id)?;
        let deleted = self
            .store
            .delete(id, owner, self.now_ms())
            .await
            .map_err(store_error)?;
        if deleted {
            Ok(())
        } else {
            Err(AgentError::SessionNotFound)
        }
    }

    /// A page of `owner`'s live sessions, after `cursor` (a session id), `limit` at most.
    pub async fn list(
        &self,
        owner: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<SessionList, AgentError> {
        if let Some(cursor) = cursor {
            check_session_id(cursor).map_err(|_| {
                AgentError::InvalidRequest(
                    "`cursor` must be the `next_cursor` of the previous page".to_owned(),
                )
            })?;
        }
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(AgentError::InvalidRequest(format!(
                "`limit` must be from 1 to {MAX_PAGE_SIZE}"
            )));
        }
        let page = self
            .store
            .list(owner, self.now_ms(), cursor, limit)
            .await
            .map_err(store_error)?;
        Ok(SessionList {
            sessions: page
                .sessions
                .into_iter()
                .map(|listing| SessionSummary {
                    session_id: listing.id,
                    expires_at_ms: listing.expires_ms,
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Live sessions across owners (and instances, on Redis): for the dashboard and /metrics.
    pub async fn live_count(&self) -> Result<u64, AgentError> {
        self.store
            .live_count(self.now_ms())
            .await
            .map_err(store_error)
    }
}

fn store_error(error: SessionStoreError) -> AgentError {
    tracing::warn!(%error, "agent session store failed");
    AgentError::SessionStore(error.to_string())
}

/// Stored turns, oldest first; a payload that does not read (written by another version) is
/// skipped rather than failing the whole session.
fn read_turns(stored: Vec<store::StoredTurn>) -> Vec<SessionTurn> {
    stored
        .into_iter()
        .filter_map(
            |stored| match serde_json::from_str::<SessionTurn>(&stored.payload) {
                Ok(mut turn) => {
                    turn.seq = stored.seq;
                    Some(turn)
                }
                Err(_) => {
                    tracing::warn!("skipping a stored session turn that does not read");
                    None
                }
            },
        )
        .collect()
}

fn stored_tool_call(record: &ToolCallRecord) -> StoredToolCall {
    let (result, result_truncated) = cut_value(&record.result);
    StoredToolCall {
        name: record.name.clone(),
        arguments: cut_value(&record.arguments).0,
        result,
        result_truncated,
        routed_via: record.routed_via.to_owned(),
        duration_ms: record.duration_ms,
        is_error: record.is_error,
    }
}

/// A value whose JSON is over [`STORED_TOOL_TEXT_CHARS`] becomes the start of that JSON, as
/// text ending in `…`; true when it was cut.
fn cut_value(value: &Value) -> (Value, bool) {
    let text = value.to_string();
    match text.char_indices().nth(STORED_TOOL_TEXT_CHARS) {
        None => (value.clone(), false),
        Some((end, _)) => (Value::String(format!("{}…", &text[..end])), true),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn memory_sessions_conform() {
        conformance::run_all(&MemorySessions::new(), "").await;
    }

    #[test]
    fn new_ids_are_128_random_bits_in_the_accepted_shape() {
        let (a, b) = (new_session_id(), new_session_id());
        assert_ne!(a, b);
        check_session_id(&a).unwrap();
        for bad in [
            "",
            "abc",
            &"a".repeat(33),
            &"A".repeat(32),
            &format!("{}g", "a".repeat(31)),
        ] {
            assert!(
                matches!(check_session_id(bad), Err(AgentError::InvalidSessionId(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn long_tool_results_are_cut_and_marked() {
        let long = Value::String("é".repeat(STORED_TOOL_TEXT_CHARS * 2));
        let (cut, truncated) = cut_value(&long);
        assert!(truncated);
        assert_eq!(
            cut.as_str().unwrap().chars().count(),
            STORED_TOOL_TEXT_CHARS + 1
        );
        let short = serde_json::json!({"summary": "short"});
        assert_eq!(cut_value(&short), (short.clone(), false));
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_expire_with_paused_time_and_use_refreshes_them() {
        let settings = SessionSettings {
            ttl: Duration::from_secs(60),
            ..SessionSettings::default()
        };
        let sessions = Sessions::new(Arc::new(MemorySessions::new()), settings, "i-1");
        let id = sessions.open("team", None).await.unwrap().id.unwrap();
        let result = TurnResult {
            reply: "hello".to_owned(),
            tool_calls: Vec::new(),
            model: "gpt-4o-mini".to_owned(),
            usage: gateway_client::Usage::default(),
            cache: crate::CacheCounts::default(),
            session_id: Some(id.clone()),
        };
        tokio::time::advance(Duration::from_secs(45)).await;
        sessions
            .record("team", &id, "hi", &result, 0)
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(45)).await;
        let view = sessions.view("team", &id).await.unwrap();
        assert_eq!(view.turns.len(), 1);
        assert_eq!(view.turns[0].instance_id, "i-1");
        tokio::time::advance(Duration::from_secs(16)).await;
        assert!(matches!(
            sessions.view("team", &id).await,
            Err(AgentError::SessionNotFound)
        ));
        assert!(matches!(
            sessions.open("team", Some(&id)).await,
            Err(AgentError::SessionNotFound)
        ));
    }
}
