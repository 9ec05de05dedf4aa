//! The cache seam of the pipeline: a lookup before the upstream, a store after success.

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::{
    context::{CallContext, Operation},
    semantic::Uncacheable,
    tokens,
};

/// What the cache did for one call; reported as `x-llm-cache-status` and in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// The cache was not consulted (off, opted out, or not cacheable).
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// What a cache lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheLookup {
    Hit(Value),
    /// A similar answer that verification could not confirm, only for words it could not
    /// match: in the model-judged mode the chat model decides (see `pipeline::judge`).
    Unconfirmed(Unconfirmed),
    Miss,
    /// The request is not one the cache takes (too large, or not a chat call).
    Bypass,
}

/// A cached answer waiting for the model's confirmation, with both prompts' text.
#[derive(Debug, Clone, PartialEq)]
pub struct Unconfirmed {
    /// The new request's prompt, as the cache compares it.
    pub query: String,
    /// The prompt the cached answer was given for.
    pub cached: String,
    pub answer: Value,
}

/// The judge answers with one token.
pub const JUDGE_MAX_TOKENS: u64 = 1;

const JUDGE_INSTRUCTIONS: &str = "You check a cache of answers. Two requests are the same when \
one complete answer serves both exactly: same subject, same people or things, same numbers, same \
time, same direction. Answer only yes or no.";

impl Unconfirmed {
    /// The one-token question put to `model` about this candidate.
    pub fn judge_request(&self, model: &str) -> Map<String, Value> {
        let question = format!(
            "Request A:\n{}\n\nRequest B:\n{}\n\nDoes one answer serve both exactly? yes or no",
            self.cached, self.query
        );
        let request = json!({
            "model": model,
            "messages": [
                {"role": "system", "content": JUDGE_INSTRUCTIONS},
                {"role": "user", "content": question},
            ],
            "max_tokens": JUDGE_MAX_TOKENS,
            "temperature": 0,
        });
        match request {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// What judging this candidate costs at most: its request's tokens and the answer's one.
    pub fn judge_tokens(&self, model: &str) -> u64 {
        tokens::estimate_chat_prompt(model, &self.judge_request(model)) + JUDGE_MAX_TOKENS
    }
}

impl From<Option<Value>> for CacheLookup {
    fn from(found: Option<Value>) -> Self {
        found.map_or(Self::Miss, Self::Hit)
    }
}

impl From<Uncacheable> for CacheLookup {
    fn from(why: Uncacheable) -> Self {
        match why {
            // Nothing asked yet (no user message in the window): an ordinary miss.
            Uncacheable::NoQuestion => Self::Miss,
            Uncacheable::TooLarge => Self::Bypass,
        }
    }
}

/// A response cache for chat completions.
#[async_trait]
pub trait ResponseCache: Send + Sync + 'static {
    /// Whether the cache can be used right now (a shared cache whose store is unreachable
    /// can't); while it can't, calls bypass it.
    fn available(&self) -> bool {
        true
    }

    /// A cached answer to `request` (already governed, model resolved), if one may be served.
    async fn lookup(
        &self,
        context: &CallContext,
        operation: Operation,
        model: &str,
        request: &Map<String, Value>,
    ) -> CacheLookup;

    /// Offers a successful answer for later calls; the cache decides whether to keep it.
    async fn store(
        &self,
        context: &CallContext,
        operation: Operation,
        model: &str,
        request: &Map<String, Value>,
        response: &Value,
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Unconfirmed;

    #[test]
    fn a_judgement_asks_for_one_token_and_carries_both_prompts() {
        let candidate = Unconfirmed {
            query: "delete a file".to_owned(),
            cached: "remove a file".to_owned(),
            answer: json!({}),
        };
        let request = candidate.judge_request("gpt-4o-mini");
        assert_eq!(request["max_tokens"], 1);
        assert_eq!(request["model"], "gpt-4o-mini");
        let question = request["messages"][1]["content"]
            .as_str()
            .unwrap_or_default();
        assert!(question.contains("delete a file") && question.contains("remove a file"));
        let tokens = candidate.judge_tokens("gpt-4o-mini");
        assert!((40..120).contains(&tokens), "{tokens}");
    }
}
