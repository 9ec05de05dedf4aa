//! Token counting with the model's real tokenizer (tiktoken: o200k or cl100k by model).
//!
//! Used before a call to size its reservation, and after a stream that reported no usage.

use std::cell::RefCell;

use serde_json::{Map, Value};
use text_analysis::{FnvHashMap, fnv1a_parts};
use tiktoken_rs::CoreBPE;

/// OpenAI's chat format adds a few tokens per message and per reply (role markers, separators).
const TOKENS_PER_MESSAGE: u64 = 3;
const TOKENS_PER_REPLY: u64 = 3;

/// The tokenizer for `model`: o200k for the GPT-4o/4.1/5 and o-series families, else cl100k.
///
/// Each vocabulary is built on first use (o200k takes ~46 MB, cl100k ~25 MB), so an instance
/// that makes no model calls, an MCP-only one, never carries them.
pub fn tokenizer_for(model: &str) -> &'static CoreBPE {
    if is_o200k(model) {
        tiktoken_rs::o200k_base_singleton()
    } else {
        tiktoken_rs::cl100k_base_singleton()
    }
}

/// Whether `model` uses o200k; case-insensitive, without allocating (this runs on every call).
fn is_o200k(model: &str) -> bool {
    const O200K: [&str; 8] = [
        "gpt-4o",
        "gpt-4.1",
        "gpt-4.5",
        "gpt-5",
        "o1",
        "o3",
        "o4",
        "chatgpt-4o",
    ];
    O200K.iter().any(|family| {
        model
            .get(..family.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(family))
    })
}

/// Builds the tokenizers `models` use now, rather than on their first call (each takes tens of
/// milliseconds to build); returns their names.
pub fn warm(models: &[&str]) -> Vec<&'static str> {
    let mut names = Vec::new();
    for model in models {
        let name = if is_o200k(model) {
            "o200k_base"
        } else {
            "cl100k_base"
        };
        if !names.contains(&name) {
            // Encoding once also compiles what the tokenizer builds lazily on first use.
            let _ = tokenizer_for(model).encode_ordinary("warm up");
            names.push(name);
        }
    }
    names
}

pub fn count(model: &str, text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tokenizer_for(model).encode_ordinary(text).len() as u64
}

/// Estimated prompt tokens of a chat request: message text, tool-call arguments, names, and the
/// tool definitions offered. Each message is counted on its own, through [`COUNTS`].
pub fn estimate_chat_prompt(model: &str, request: &Map<String, Value>) -> u64 {
    let bpe = tokenizer_for(model);
    let mut total = TOKENS_PER_REPLY;
    let mut text = String::new();
    if let Some(messages) = request.get("messages").and_then(Value::as_array) {
        for message in messages {
            text.clear();
            collect_message_text(message, &mut text);
            total += TOKENS_PER_MESSAGE + remembered_count(bpe, &text);
        }
    }
    if let Some(tools) = request.get("tools").filter(|t| !t.is_null()) {
        total += remembered_count(bpe, &tools.to_string());
    }
    total
}

/// Token counts of texts counted recently. A chat or an agent sends its system prompt, tools and
/// history again on every call: each is tokenized once rather than once per turn, which makes a
/// conversation's counting cost linear in its length instead of quadratic.
///
/// One memo per thread: a connection lives on one thread, so its conversation finds its counts
/// there, and no lock's cache line moves between cores on every call. A text sent over
/// connections on several threads is counted at most once on each.
fn remembered_count(bpe: &'static CoreBPE, text: &str) -> u64 {
    thread_local! {
        static COUNTS: RefCell<CountMemo> = RefCell::new(CountMemo::default());
    }
    COUNTS.with_borrow_mut(|memo| memo.count(bpe, text))
}

/// Texts kept per thread before the memo starts afresh (about 16 bytes each).
const MEMO_ENTRIES: usize = 16_384;

/// Counts by a 64-bit hash of the tokenizer and the text. A collision would only misestimate a
/// reservation, which settlement corrects.
#[derive(Default)]
struct CountMemo {
    counts: FnvHashMap<u64, u32>,
}

impl CountMemo {
    fn count(&mut self, bpe: &'static CoreBPE, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        let tokenizer = (bpe as *const CoreBPE as usize).to_le_bytes();
        let key = fnv1a_parts(&[&tokenizer, text.as_bytes()]);
        if let Some(&count) = self.counts.get(&key) {
            return u64::from(count);
        }
        let count = bpe.encode_ordinary(text).len();
        if self.counts.len() >= MEMO_ENTRIES {
            self.counts.clear();
        }
        self.counts
            .insert(key, u32::try_from(count).unwrap_or(u32::MAX));
        count as u64
    }
}

/// Estimated tokens of an embeddings request's `input` (a string or an array of strings).
pub fn estimate_embedding_input(model: &str, request: &Map<String, Value>) -> u64 {
    match request.get("input") {
        Some(Value::String(text)) => count(model, text),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => count(model, text),
                // Pre-tokenized input: one token per id.
                Value::Array(ids) => ids.len() as u64,
                _ => 1,
            })
            .sum(),
        _ => 0,
    }
}

/// The message of every choice of a whole chat completion.
pub fn choice_messages(body: &Value) -> impl Iterator<Item = &Value> {
    body.get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|choice| choice.get("message"))
}

/// Appends the text of one chat message, led by its role: what the tokenizer counts.
pub fn collect_message_text(message: &Value, out: &mut String) {
    if let Some(role) = message.get("role").and_then(Value::as_str) {
        out.push_str(role);
        out.push(' ');
    }
    collect_message_text_without_role(message, out);
}

/// Appends a message's string content, text parts and tool-call names and arguments.
pub fn collect_message_text_without_role(message: &Value, out: &mut String) {
    match message.get("content") {
        Some(Value::String(content)) => out.push_str(content),
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(text) = part.get("text").and_then(Value::as_str) {
                    out.push_str(text);
                    out.push(' ');
                }
            }
        }
        _ => {}
    }
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for call in calls {
            if let Some(function) = call.get("function") {
                for field in ["name", "arguments"] {
                    if let Some(value) = function.get(field).and_then(Value::as_str) {
                        out.push(' ');
                        out.push_str(value);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn models_pick_their_tokenizer() {
        // "tokenization" splits differently in the two vocabularies; both are real counts.
        assert!(count("gpt-4o-mini", "Hello, world!") >= 3);
        assert_eq!(
            count("gpt-4o-mini", "Hello, world!"),
            count("gpt-4o", "Hello, world!")
        );
        assert!(std::ptr::eq(
            tokenizer_for("gpt-4o-mini"),
            tokenizer_for("o3-mini")
        ));
        assert!(!std::ptr::eq(
            tokenizer_for("gpt-4o-mini"),
            tokenizer_for("gpt-3.5-turbo")
        ));
        // Model names are matched case-insensitively.
        assert!(std::ptr::eq(
            tokenizer_for("GPT-4o-Mini"),
            tokenizer_for("gpt-4o-mini")
        ));
        assert!(!is_o200k("gpt-4"));
    }

    #[test]
    fn warming_names_each_tokenizer_once() {
        assert_eq!(
            warm(&["gpt-4o-mini", "gpt-4.1", "text-embedding-3-small"]),
            ["o200k_base", "cl100k_base"]
        );
        assert!(warm(&[]).is_empty());
    }

    #[test]
    fn remembered_counts_are_the_tokenizers_counts() {
        let mut memo = CountMemo::default();
        let bpe = tokenizer_for("gpt-4o-mini");
        let text = "You are a helpful assistant who answers in one short sentence.";
        let exact = bpe.encode_ordinary(text).len() as u64;
        assert_eq!(memo.count(bpe, text), exact);
        assert_eq!(memo.count(bpe, text), exact, "the remembered count");
        // The same text under the other vocabulary is another entry.
        let cl100k = tokenizer_for("gpt-3.5-turbo");
        assert_eq!(
            memo.count(cl100k, text),
            cl100k.encode_ordinary(text).len() as u64
        );
        assert_eq!(memo.count(bpe, ""), 0);
    }

    #[test]
    fn the_memo_stays_bounded() {
        let mut memo = CountMemo::default();
        let bpe = tokenizer_for("gpt-4o-mini");
        for n in 0..(MEMO_ENTRIES * 2 + 1) {
            memo.count(bpe, &format!("message number {n}"));
            assert!(memo.counts.len() <= MEMO_ENTRIES, "{}", memo.counts.len());
        }
        let seven = "message number 7";
        assert_eq!(
            memo.count(bpe, seven),
            bpe.encode_ordinary(seven).len() as u64
        );
    }

    #[test]
    fn chat_estimate_counts_messages_and_tools() {
        let bare = json!({"messages": [{"role": "user", "content": "What is a token budget?"}]});
        let bare = estimate_chat_prompt("gpt-4o-mini", bare.as_object().unwrap());
        assert!((8..40).contains(&bare), "{bare}");
        let with_tools = json!({
            "messages": [{"role": "user", "content": "What is a token budget?"}],
            "tools": [{"type": "function", "function": {"name": "lookup_fact", "parameters": {"type": "object"}}}]
        });
        assert!(estimate_chat_prompt("gpt-4o-mini", with_tools.as_object().unwrap()) > bare + 5);
    }

    #[test]
    fn embedding_input_is_counted_for_strings_and_lists() {
        let one = json!({"input": "semantic caching"});
        let many = json!({"input": ["semantic caching", "semantic caching"]});
        let one = estimate_embedding_input("text-embedding-3-small", one.as_object().unwrap());
        let many = estimate_embedding_input("text-embedding-3-small", many.as_object().unwrap());
        assert_eq!(many, 2 * one);
    }
}
