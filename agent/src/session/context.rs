//! What of a session is sent to the model: the conversation (a summary of older turns, the
//! newest turns whole, the new message) within `AGENT_SESSION_MAX_CONTEXT_TOKENS`, counted with
//! the model's tokenizer as the gateway counts a prompt. The system instructions and tool
//! definitions are the same every turn and are not part of it; nor are the current turn's own
//! tool rounds. Only messages and replies are replayed, not earlier tool calls: a reply
//! already says what its tools found.
//!
//! When the turns do not all fit, the newest that fit in three quarters of the budget are kept
//! whole and the older ones are compacted into one summary message, at most a quarter of it.

use gateway_client::{CallContext, tokens};
use serde_json::{Map, Value, json};

use super::{SessionTurn, Summarizer};
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
    /// The compacted turns as a transcript, oldest first; `None` when every turn fits.
    pub older: Option<String>,
    /// Tokens the summary message may take.
    pub summary_budget: u64,
    /// The messages of the turns kept whole, oldest first.
    pub recent: Vec<Value>,
}

/// Splits `turns` into the newest that fit whole and the older ones to compact.
pub fn plan(model: &str, turns: &[SessionTurn], message: &str, budget: u64) -> ContextPlan {
    let available = budget.saturating_sub(message_tokens(model, "user", message));
    let costs: Vec<u64> = turns.iter().map(|turn| turn_tokens(model, turn)).collect();
    if costs.iter().sum::<u64>() <= available {
        return ContextPlan {
            older: None,
            summary_budget: 0,
            recent: turn_messages(turns),
        };
    }
    let summary_budget = (budget / SUMMARY_SHARE).min(available);
    let mut room = available - summary_budget;
    let mut keep_from = turns.len();
    for (index, cost) in costs.iter().enumerate().rev() {
        if *cost > room {
            break;
        }
        room -= cost;
        keep_from = index;
    }
    let (older, recent) = turns.split_at(keep_from);
    ContextPlan {
        older: Some(transcript(older)),
        summary_budget,
        recent: turn_messages(recent),
    }
}

/// The summary message for `summary`, cut so it fits `budget`; `None` when nothing fits.
pub fn summary_message(model: &str, summary: &str, budget: u64) -> Option<Value> {
    let fixed = message_tokens(model, "system", SUMMARY_PREFIX);
    let room = budget.checked_sub(fixed).filter(|room| *room > 0)?;
    let text = fit(model, summary.trim(), room);
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
        if turn.session.turns.is_empty() {
            return Ok(Vec::new());
        }
        let model = self.gateway.chat_model();
        let settings = self.sessions.settings();
        let plan = plan(
            model,
            &turn.session.turns,
            &turn.request.message,
            settings.max_context_tokens,
        );
        let mut messages = Vec::with_capacity(plan.recent.len() + 1);
        if let Some(older) = &plan.older {
            let summary = match settings.summarizer {
                Summarizer::Extractive => extractive_summary(model, older, plan.summary_budget),
                Summarizer::Model => {
                    self.model_summary(context, older, plan.summary_budget, trace)
                        .await?
                }
            };
            messages.extend(summary_message(model, &summary, plan.summary_budget));
        }
        messages.extend(plan.recent);
        Ok(messages)
    }

    /// A summary written by the model: a gateway call like any other (budget, ledger, cache),
    /// its usage counted in the turn's.
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
        let outcome = self.gateway.chat(context, request).await?;
        trace.record_call(&outcome.model, outcome.usage, outcome.cache);
        Ok(AssistantTurn::from_completion(&outcome.body).content)
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
    let bpe = tokens::tokenizer_for(model);
    let ids = bpe.encode_ordinary(text);
    if ids.len() as u64 <= max_tokens {
        return text.to_owned();
    }
    let keep = usize::try_from(max_tokens).unwrap_or(usize::MAX);
    let mut cut = bpe.decode(&ids[..keep]).unwrap_or_default();
    // A cut through a multi-byte character decodes to nothing; drop tokens until it reads.
    let mut keep = keep;
    while cut.is_empty() && keep > 0 {
        keep -= 1;
        cut = bpe.decode(&ids[..keep]).unwrap_or_default();
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
        let plan = plan(MODEL, &turns, "next?", 4_000);
        assert!(plan.older.is_none());
        assert_eq!(plan.recent.len(), 6);
    }

    #[test]
    fn long_sessions_keep_the_newest_turns_and_a_summary_within_the_budget() {
        let turns: Vec<SessionTurn> = (1..=30).map(turn).collect();
        let budget = 300;
        let plan = plan(MODEL, &turns, "And now?", budget);
        let older = plan.older.clone().unwrap();
        assert!(older.contains("Question 1:"));
        assert!(!plan.recent.is_empty());
        assert_eq!(plan.recent.last().unwrap()["content"], turns[29].reply);
        let summary = extractive_summary(MODEL, &older, plan.summary_budget);
        let message = summary_message(MODEL, &summary, plan.summary_budget).unwrap();
        assert!(
            message["content"]
                .as_str()
                .unwrap()
                .starts_with(SUMMARY_PREFIX)
        );
        let mut sent = vec![message];
        sent.extend(plan.recent);
        sent.push(json!({"role": "user", "content": "And now?"}));
        assert!(
            tokens_of(&sent) <= budget,
            "{} > {budget}",
            tokens_of(&sent)
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
