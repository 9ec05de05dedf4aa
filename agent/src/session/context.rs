//! What of a session is sent to the model: the conversation (a summary of older turns, the
//! newest turns whole, the new message) within `AGENT_SESSION_MAX_CONTEXT_TOKENS`, counted with
//! the model's tokenizer as the gateway counts a prompt. The system instructions and tool
//! definitions are the same every turn and are not part of it; nor are the current turn's own
//! tool rounds. Only messages and replies are replayed, not earlier tool calls: a reply
//! already says what its tools found.
//!
//! When the turns do not all fit, the older ones are compacted into one summary message of at
//! most a quarter of the budget and the newest are sent whole. The summary is kept with the
//! session and reused while the turns after it fit (see [`plan`]).

use gateway_client::{CacheDirective, CallContext, tokens};
use serde_json::{Map, Value, json};

use super::{SessionTurn, StoredSummary, Summarizer};
use crate::{Agent, AgentError, PreparedTurn, answer::AssistantTurn, turn::Trace};

/// Leads the summary message, so the model (and a reader of the recorded prompt) knows it.
pub const SUMMARY_PREFIX: &str = "Summary of the earlier conversation: ";
/// A summary takes at most budget / SUMMARY_SHARE tokens.
const SUMMARY_SHARE: u64 = 4;
/// OpenAI's chat format adds this per message (role markers, separators), as `tokens` counts.
const TOKENS_PER_MESSAGE: u64 = 3;

/// Tokens of one chat message as the gateway's prompt estimate counts it (`tokens::
/// estimate_chat_prompt`: the role, a space, the text and a line break per message), so a
/// conversation's messages add up to the gateway's own figure for them.
pub fn message_tokens(model: &str, role: &str, content: &str) -> u64 {
    TOKENS_PER_MESSAGE + tokens::count(model, &format!("{role} {content}\n"))
}

/// How a session's turns go to the model this turn.
#[derive(Debug, Default)]
pub struct ContextPlan {
    pub summary: SummaryPlan,
    /// Tokens the summary message may take.
    pub summary_budget: u64,
    /// The messages of the turns sent whole, oldest first.
    pub recent: Vec<Value>,
}

/// The summary part of a [`ContextPlan`].
#[derive(Debug, Default, PartialEq, Eq)]
pub enum SummaryPlan {
    /// Every turn is sent whole.
    #[default]
    None,
    /// The session's stored summary still covers what does not fit.
    Reuse(String),
    /// A new summary of everything through `through_seq`: the stored summary, if any, and
    /// the turns after it, as a transcript.
    Compute { through_seq: u64, source: String },
}

/// Splits a session into what is sent whole and what is summarized.
///
/// Once a session has a summary, the turns after it are sent whole while they fit; when they
/// no longer do, a new summary takes in all but the newest turns that fit in half the room, so
/// the next few turns reuse it instead of each paying for a new one.
pub fn plan(
    model: &str,
    turns: &[SessionTurn],
    summary: Option<&StoredSummary>,
    message: &str,
    budget: u64,
) -> ContextPlan {
    let available = budget.saturating_sub(message_tokens(model, "user", message));
    let covered = summary.map_or(0, |summary| summary.through_seq);
    let turns = &turns[turns.partition_point(|turn| turn.seq <= covered)..];
    let costs: Vec<u64> = turns.iter().map(|turn| turn_tokens(model, turn)).collect();
    let total: u64 = costs.iter().sum();
    if summary.is_none() && total <= available {
        return ContextPlan {
            recent: turn_messages(turns),
            ..ContextPlan::default()
        };
    }
    let summary_budget = (budget / SUMMARY_SHARE).min(available);
    let room = available - summary_budget;
    if let Some(summary) = summary.filter(|_| total <= room) {
        return ContextPlan {
            summary: SummaryPlan::Reuse(summary.text.clone()),
            summary_budget,
            recent: turn_messages(turns),
        };
    }
    let keep_from = newest_within(&costs, room / 2);
    let (older, recent) = turns.split_at(keep_from);
    let Some(last_older) = older.last() else {
        // Nothing new to compact (the newest turn alone is over half the room): the stored
        // summary, if any, still leads.
        return ContextPlan {
            summary: summary.map_or(SummaryPlan::None, |s| SummaryPlan::Reuse(s.text.clone())),
            summary_budget,
            recent: turn_messages(recent),
        };
    };
    let mut source = summary.map_or_else(String::new, |s| format!("{}\n", s.text));
    source.push_str(&transcript(older));
    ContextPlan {
        summary: SummaryPlan::Compute {
            through_seq: last_older.seq,
            source,
        },
        summary_budget,
        recent: turn_messages(recent),
    }
}

/// Where the newest turns whose costs add up to at most `room` begin.
fn newest_within(costs: &[u64], mut room: u64) -> usize {
    let mut keep_from = costs.len();
    for (index, cost) in costs.iter().enumerate().rev() {
        if *cost > room {
            break;
        }
        room -= cost;
        keep_from = index;
    }
    keep_from
}

/// `summary` cut so its message fits `budget`: the text the summary message carries.
pub fn fitted_summary(model: &str, summary: &str, budget: u64) -> String {
    let fixed = message_tokens(model, "system", SUMMARY_PREFIX);
    match budget.checked_sub(fixed) {
        Some(room) if room > 0 => fit(model, summary.trim(), room),
        _ => String::new(),
    }
}

/// The summary message for `summary`, cut so it fits `budget`; `None` when nothing fits.
pub fn summary_message(model: &str, summary: &str, budget: u64) -> Option<Value> {
    let text = fitted_summary(model, summary, budget);
    if text.is_empty() {
        return None;
    }
    Some(json!({"role": "system", "content": format!("{SUMMARY_PREFIX}{text}")}))
}

/// The built-in extractive summary of a transcript: as many of its most representative
/// sentences as fit `budget` (the summary message is cut to fit in any case).
pub fn extractive_summary(model: &str, transcript: &str, budget: u64) -> String {
    let mut best = String::new();
    for sentences in 1..=tools::summarize::MAX_SENTENCES_LIMIT {
        let summary = tools::summarize::extract(transcript, sentences).join(" ");
        if summary.len() == best.len()
            || message_tokens(model, "system", &format!("{SUMMARY_PREFIX}{summary}")) > budget
        {
            break;
        }
        best = summary;
    }
    if best.is_empty() {
        // Not even one sentence fits: the most representative one, to be cut.
        best = tools::summarize::extract(transcript, 1).join(" ");
    }
    best
}

/// The prompt asking the model for a summary of `transcript` in about `budget` tokens.
pub fn model_summary_request(transcript: &str, budget: u64) -> Vec<Value> {
    let words = budget * 3 / 4;
    vec![
        json!({"role": "system", "content": format!(
            "Summarize the conversation below for the assistant who continues it, in at most \
             {words} words: the user's questions, the facts established and anything still \
             open. Write plain prose, no preamble."
        )}),
        json!({"role": "user", "content": transcript}),
    ]
}

impl Agent {
    /// The session's part of the prompt: its earlier turns within the context budget, the
    /// older ones compacted into a summary message.
    pub(crate) async fn session_context(
        &self,
        context: &CallContext,
        turn: &PreparedTurn,
        trace: &mut Trace,
    ) -> Result<Vec<Value>, AgentError> {
        let session = &turn.session;
        if session.turns.is_empty() && session.summary.is_none() {
            return Ok(Vec::new());
        }
        let model = self.gateway.chat_model();
        let settings = self.sessions.settings();
        let plan = plan(
            model,
            &session.turns,
            session.summary.as_ref(),
            &turn.request.message,
            settings.max_context_tokens,
        );
        let budget = plan.summary_budget;
        let summary = match plan.summary {
            SummaryPlan::None => None,
            SummaryPlan::Reuse(text) => Some(text),
            SummaryPlan::Compute {
                through_seq,
                source,
            } => {
                let written = match settings.summarizer {
                    Summarizer::Extractive => extractive_summary(model, &source, budget),
                    Summarizer::Model => {
                        self.model_summary(context, &source, budget, trace).await?
                    }
                };
                let text = fitted_summary(model, &written, budget);
                if let Some(id) = &session.id {
                    let kept = StoredSummary {
                        through_seq,
                        text: text.clone(),
                    };
                    self.sessions
                        .keep_summary(&context.subscription, id, &kept)
                        .await;
                }
                Some(text)
            }
        };
        let mut messages = Vec::with_capacity(plan.recent.len() + 1);
        messages.extend(summary.and_then(|text| summary_message(model, &text, budget)));
        messages.extend(plan.recent);
        Ok(messages)
    }

    /// A summary written by the model: a gateway call like any other (budget, ledger), its
    /// usage counted in the turn's. Not cached: a summary is of one conversation only, and a
    /// similar transcript's would be the wrong one.
    async fn model_summary(
        &self,
        context: &CallContext,
        transcript: &str,
        budget: u64,
        trace: &mut Trace,
    ) -> Result<String, AgentError> {
        let mut request = Map::new();
        request.insert(
            "messages".to_owned(),
            Value::Array(model_summary_request(transcript, budget)),
        );
        request.insert("max_tokens".to_owned(), json!(budget));
        let mut context = context.clone();
        context.cache = CacheDirective::NoStore;
        let outcome = self.gateway.chat(&context, request).await?;
        trace.record_call(&outcome.model, outcome.usage, outcome.cache);
        Ok(AssistantTurn::from_completion(outcome.answer.tree()).content)
    }
}

fn turn_tokens(model: &str, turn: &SessionTurn) -> u64 {
    message_tokens(model, "user", &turn.message) + message_tokens(model, "assistant", &turn.reply)
}

fn turn_messages(turns: &[SessionTurn]) -> Vec<Value> {
    turns
        .iter()
        .flat_map(|turn| {
            [
                json!({"role": "user", "content": turn.message}),
                json!({"role": "assistant", "content": turn.reply}),
            ]
        })
        .collect()
}

/// The turns as prose the summarizers read: one sentence group per message.
fn transcript(turns: &[SessionTurn]) -> String {
    let mut text = String::new();
    for turn in turns {
        for (who, said) in [
            ("The user asked", &turn.message),
            ("The assistant answered", &turn.reply),
        ] {
            text.push_str(who);
            text.push_str(": ");
            text.push_str(said.trim());
            if !said.trim_end().ends_with(['.', '!', '?']) {
                text.push('.');
            }
            text.push('\n');
        }
    }
    text
}

/// The longest prefix of `text` (on a token boundary) of at most `max_tokens` tokens.
fn fit(model: &str, text: &str, max_tokens: u64) -> String {
    let tokenizer = tokens::tokenizer_for(model);
    let ids = tokenizer.encode(text);
    if ids.len() as u64 <= max_tokens {
        return text.to_owned();
    }
    let keep = usize::try_from(max_tokens).unwrap_or(usize::MAX);
    let mut cut = tokenizer.decode(&ids[..keep]).unwrap_or_default();
    // A cut through a multi-byte character decodes to nothing; drop tokens until it reads.
    let mut keep = keep;
    while cut.is_empty() && keep > 0 {
        keep -= 1;
        cut = tokenizer.decode(&ids[..keep]).unwrap_or_default();
    }
    cut
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::session::TurnUsage;

    const MODEL: &str = "gpt-4o-mini";

    fn turn(n: usize) -> SessionTurn {
        SessionTurn {
            seq: n as u64,
            message: format!(
                "Question {n}: how does the token budget of subscription {n} behave when the cache hits?"
            ),
            reply: format!(
                "Answer {n}: a cache hit costs no tokens, so the budget of subscription {n} is untouched. Served by instance i-1."
            ),
            tool_calls: Vec::new(),
            usage: TurnUsage::default(),
            model: MODEL.to_owned(),
            instance_id: "i-1".to_owned(),
            started_at_ms: 0,
            completed_at_ms: 0,
        }
    }

    fn tokens_of(messages: &[Value]) -> u64 {
        messages
            .iter()
            .map(|m| {
                message_tokens(
                    MODEL,
                    m["role"].as_str().unwrap(),
                    m["content"].as_str().unwrap(),
                )
            })
            .sum()
    }

    #[test]
    fn short_sessions_are_sent_whole() {
        let turns: Vec<SessionTurn> = (1..=3).map(turn).collect();
        let plan = plan(MODEL, &turns, None, "next?", 4_000);
        assert_eq!(plan.summary, SummaryPlan::None);
        assert_eq!(plan.recent.len(), 6);
    }

    /// What the plan sends: the summary message (computed extractively when asked for), the
    /// turns sent whole and the new message; and the summary to keep, if a new one was made.
    fn sent(
        turns: &[SessionTurn],
        kept: Option<&StoredSummary>,
        budget: u64,
    ) -> (Vec<Value>, Option<StoredSummary>) {
        let plan = plan(MODEL, turns, kept, "And now?", budget);
        let (text, new) = match plan.summary {
            SummaryPlan::None => (None, None),
            SummaryPlan::Reuse(text) => (Some(text), None),
            SummaryPlan::Compute {
                through_seq,
                source,
            } => {
                let written = extractive_summary(MODEL, &source, plan.summary_budget);
                let text = fitted_summary(MODEL, &written, plan.summary_budget);
                (
                    Some(text.clone()),
                    Some(StoredSummary { through_seq, text }),
                )
            }
        };
        let mut messages: Vec<Value> = text
            .and_then(|text| summary_message(MODEL, &text, plan.summary_budget))
            .into_iter()
            .collect();
        messages.extend(plan.recent);
        messages.push(json!({"role": "user", "content": "And now?"}));
        (messages, new)
    }

    #[test]
    fn long_sessions_keep_the_newest_turns_and_a_summary_within_the_budget() {
        let budget = 300;
        let turns: Vec<SessionTurn> = (1..=30).map(turn).collect();
        let (messages, new) = sent(&turns, None, budget);
        let new = new.unwrap();
        assert!(
            messages[0]["content"]
                .as_str()
                .unwrap()
                .starts_with(SUMMARY_PREFIX)
        );
        assert_eq!(messages[messages.len() - 2]["content"], turns[29].reply);
        assert!(
            tokens_of(&messages) <= budget,
            "{} > {budget}",
            tokens_of(&messages)
        );
        assert!(new.through_seq < 30 && !new.text.is_empty());

        // The next turn reuses the summary while the turns after it fit, then makes a new one.
        let mut kept = new;
        let mut recomputed = 0;
        for next in 31..=40 {
            let turns: Vec<SessionTurn> = (1..=next).map(turn).collect();
            let (messages, new) = sent(&turns, Some(&kept), budget);
            assert!(
                tokens_of(&messages) <= budget,
                "{} > {budget}",
                tokens_of(&messages)
            );
            assert!(
                messages[0]["content"]
                    .as_str()
                    .unwrap()
                    .starts_with(SUMMARY_PREFIX)
            );
            if let Some(new) = new {
                assert!(new.through_seq > kept.through_seq);
                kept = new;
                recomputed += 1;
            }
        }
        assert!(
            (1..10).contains(&recomputed),
            "summaries are reused: {recomputed} of 10"
        );
    }

    #[test]
    fn summaries_are_cut_to_fit() {
        let long = "word ".repeat(500);
        let message = summary_message(MODEL, &long, 60).unwrap();
        assert!(tokens_of(&[message]) <= 60);
        assert!(summary_message(MODEL, &long, 5).is_none());
    }
}
