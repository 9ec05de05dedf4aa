//! Token counting with the model's real tokenizer (tiktoken: o200k or cl100k by model).
//!
//! Used before a call to size its reservation, and after a stream that reported no usage.

use std::{cell::RefCell, sync::Arc};

use serde_json::{Map, Value};
use text_analysis::{FnvHashMap, fnv1a_parts};
mod bpe;

pub use bpe::Rank;

/// OpenAI's chat format adds a few tokens per message and per reply (role markers, separators).
const TOKENS_PER_MESSAGE: u64 = 3;
const TOKENS_PER_REPLY: u64 = 3;

/// The tokenizer for `model`: o200k for the GPT-4o/4.1/5 and o-series families, else cl100k.
///
/// Each vocabulary's tokens are compiled in (see [`bpe`]); its table of ranks, about 1.3 MB
/// for o200k, is built on first use, so an instance that makes no model calls, an MCP-only
/// one, never carries it.
pub fn tokenizer_for(model: &str) -> Tokenizer {
    let kind = if is_o200k(model) {
        bpe::Kind::O200k
    } else {
        bpe::Kind::Cl100k
    };
    Tokenizer {
        vocabulary: bpe::vocabulary(kind),
    }
}

/// A model's tokenizer, safe on any text a client can send.
///
/// Its ids are tiktoken's (`encode_ordinary`), from the compact encoder of [`bpe`]. The split
/// regex (fancy-regex, tiktoken's) fails (`StackOverflow`) on a run of about a million
/// whitespace characters, which a 4 MiB request body can hold; tiktoken-rs would panic, and
/// cut the client's connection without an answer. The text is therefore tokenized in
/// pieces whose whitespace runs are at most [`MAX_WHITESPACE_RUN`] characters long. A long run
/// cut in two may count a token more than whole; nothing else changes.
#[derive(Clone, Copy)]
pub struct Tokenizer {
    vocabulary: &'static bpe::Vocabulary,
}

/// The longest whitespace run handed to the tokenizer at once; fancy-regex fails near a million.
const MAX_WHITESPACE_RUN: usize = 16 * 1024;

impl Tokenizer {
    /// The tokens of `text`.
    pub fn count(self, text: &str) -> u64 {
        pieces(text)
            .map(|piece| self.vocabulary.count(piece) as u64)
            .sum()
    }

    /// The token ids of `text`.
    pub fn encode(self, text: &str) -> Vec<Rank> {
        let mut ids = Vec::new();
        for piece in pieces(text) {
            self.vocabulary.encode_into(piece, &mut ids);
        }
        ids
    }

    /// The text of `ids`; `None` when they end inside a character.
    pub fn decode(self, ids: &[Rank]) -> Option<String> {
        self.vocabulary.decode(ids)
    }

    /// Identifies the vocabulary, for memo keys.
    fn id(self) -> usize {
        std::ptr::from_ref(self.vocabulary) as usize
    }
}

/// `text` in consecutive pieces with no whitespace run longer than [`MAX_WHITESPACE_RUN`].
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (piece, tail) = rest.split_at(long_run_cut(rest));
        rest = tail;
        Some(piece)
    })
}

/// Where a whitespace run of `text` first grows past [`MAX_WHITESPACE_RUN`], else its end.
/// Never 0, so [`pieces`] always moves on.
fn long_run_cut(text: &str) -> usize {
    if text.len() <= MAX_WHITESPACE_RUN {
        return text.len();
    }
    let mut run = 0;
    for (at, c) in text.char_indices() {
        if !c.is_whitespace() {
            run = 0;
        } else if run == MAX_WHITESPACE_RUN {
            return at;
        } else {
            run += 1;
        }
    }
    text.len()
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

/// Builds the tokenizers `models` use now, rather than on their first call (a few milliseconds
/// each); returns their names.
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
            let _ = tokenizer_for(model).count("warm up");
            names.push(name);
        }
    }
    names
}

pub fn count(model: &str, text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tokenizer_for(model).count(text)
}

/// Requests with more text than this are counted on the blocking pool. Counting runs upwards
/// of 15 MB/s on ordinary text and at 2.5 MB/s on the slowest (one word of megabytes), and a
/// connection thread counting a large prompt would hold up its other connections meanwhile.
pub const COUNT_INLINE_MAX_BYTES: usize = 64 * 1024;

/// `count(model, request)`, run on the blocking pool when the request holds more than
/// [`COUNT_INLINE_MAX_BYTES`] of text. The request is handed back whole either way; should the
/// pool refuse the work (the runtime is shutting down), the count is the text's byte length,
/// which no tokenizer exceeds.
pub async fn count_off_thread(
    request: &mut Map<String, Value>,
    model: &str,
    count: fn(&str, &Map<String, Value>) -> u64,
) -> u64 {
    let bytes = text_bytes(request);
    if bytes <= COUNT_INLINE_MAX_BYTES {
        return count(model, request);
    }
    let model = model.to_owned();
    let shared = Arc::new(std::mem::take(request));
    let for_pool = Arc::clone(&shared);
    let counted = tokio::task::spawn_blocking(move || count(&model, &for_pool)).await;
    // The pool's closure, and its reference, are gone once the task is joined.
    *request = Arc::try_unwrap(shared).unwrap_or_else(|shared| Map::clone(&shared));
    counted.unwrap_or(bytes as u64)
}

/// Bytes of every string in `request`, keys included.
fn text_bytes(request: &Map<String, Value>) -> usize {
    fn of(value: &Value) -> usize {
        match value {
            Value::String(text) => text.len(),
            Value::Array(items) => items.iter().map(of).sum(),
            Value::Object(fields) => fields.iter().map(|(key, v)| key.len() + of(v)).sum(),
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
    }
    request.iter().map(|(key, v)| key.len() + of(v)).sum()
}

/// Estimated prompt tokens of a chat request: message text, tool-call arguments, names, and the
/// tool definitions offered. Each message is counted on its own, through the memo of
/// [`remembered_count`].
pub fn estimate_chat_prompt(model: &str, request: &Map<String, Value>) -> u64 {
    let tokenizer = tokenizer_for(model);
    let mut total = TOKENS_PER_REPLY;
    let mut text = String::new();
    if let Some(messages) = request.get("messages").and_then(Value::as_array) {
        for message in messages {
            text.clear();
            collect_message_text(message, &mut text);
            total += TOKENS_PER_MESSAGE + remembered_count(tokenizer, &text);
        }
    }
    if let Some(tools) = request.get("tools").filter(|t| !t.is_null()) {
        total += remembered_count(tokenizer, &tools.to_string());
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
fn remembered_count(tokenizer: Tokenizer, text: &str) -> u64 {
    thread_local! {
        static COUNTS: RefCell<CountMemo> = RefCell::new(CountMemo::default());
    }
    COUNTS.with_borrow_mut(|memo| memo.count(tokenizer, text))
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
    fn count(&mut self, tokenizer: Tokenizer, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        let key = fnv1a_parts(&[&tokenizer.id().to_le_bytes(), text.as_bytes()]);
        if let Some(&count) = self.counts.get(&key) {
            return u64::from(count);
        }
        let count = tokenizer.count(text);
        if self.counts.len() >= MEMO_ENTRIES {
            self.counts.clear();
        }
        self.counts
            .insert(key, u32::try_from(count).unwrap_or(u32::MAX));
        count
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
        let id = |model| tokenizer_for(model).id();
        assert_eq!(id("gpt-4o-mini"), id("o3-mini"));
        assert_ne!(id("gpt-4o-mini"), id("gpt-3.5-turbo"));
        // Model names are matched case-insensitively.
        assert_eq!(id("GPT-4o-Mini"), id("gpt-4o-mini"));
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
        let o200k = tokenizer_for("gpt-4o-mini");
        let text = "You are a helpful assistant who answers in one short sentence.";
        let exact = tiktoken_rs::o200k_base_singleton()
            .encode_ordinary(text)
            .len() as u64;
        assert_eq!(memo.count(o200k, text), exact);
        assert_eq!(memo.count(o200k, text), exact, "the remembered count");
        // The same text under the other vocabulary is another entry.
        let cl100k = tokenizer_for("gpt-3.5-turbo");
        assert_eq!(
            memo.count(cl100k, text),
            tiktoken_rs::cl100k_base_singleton()
                .encode_ordinary(text)
                .len() as u64
        );
        assert_eq!(memo.count(o200k, ""), 0);
    }

    #[test]
    fn the_memo_stays_bounded() {
        let mut memo = CountMemo::default();
        let tokenizer = tokenizer_for("gpt-4o-mini");
        for n in 0..(MEMO_ENTRIES * 2 + 1) {
            memo.count(tokenizer, &format!("message number {n}"));
            assert!(memo.counts.len() <= MEMO_ENTRIES, "{}", memo.counts.len());
        }
        let seven = "message number 7";
        assert_eq!(memo.count(tokenizer, seven), tokenizer.count(seven));
    }

    #[test]
    fn pieces_bound_whitespace_runs_and_lose_nothing() {
        let long = format!(
            "a{}b\n{}c",
            " ".repeat(MAX_WHITESPACE_RUN * 2 + 5),
            "\t\u{3000}".repeat(MAX_WHITESPACE_RUN)
        );
        let cut: Vec<&str> = pieces(&long).collect();
        assert_eq!(cut.concat(), long);
        assert!(cut.len() >= 4, "{}", cut.len());
        for piece in &cut {
            let mut run = 0;
            for c in piece.chars() {
                run = if c.is_whitespace() { run + 1 } else { 0 };
                assert!(run <= MAX_WHITESPACE_RUN, "{run}");
            }
        }
        // Short texts, and long ones without long runs, go whole.
        assert_eq!(pieces("a b").collect::<Vec<_>>(), ["a b"]);
        let words = "word ".repeat(MAX_WHITESPACE_RUN);
        assert_eq!(pieces(&words).count(), 1);
        assert_eq!(pieces("").count(), 0);
    }

    #[test]
    fn any_text_is_counted_without_a_panic() {
        // tiktoken-rs alone panics on a million spaces (fancy-regex's `StackOverflow`).
        for unit in [" ", "\t", "\u{3000}", " \n"] {
            let text = unit.repeat(1_000_000);
            assert!(tokenizer_for("gpt-4o-mini").count(&text) > 0, "{unit:?}");
        }
        let spaces = " ".repeat(1_000_000);
        assert!(tokenizer_for("gpt-3.5-turbo").count(&spaces) > 0);
        let tokenizer = tokenizer_for("gpt-4o-mini");
        assert_eq!(
            tokenizer.encode(&spaces).len() as u64,
            tokenizer.count(&spaces)
        );
        // Where the whole text is tokenizable, cutting a long run costs a token or two at most.
        let text = format!("Hello{}world", " ".repeat(MAX_WHITESPACE_RUN * 3));
        let whole = tiktoken_rs::o200k_base_singleton()
            .encode_ordinary(&text)
            .len() as u64;
        let counted = tokenizer_for("gpt-4o").count(&text);
        assert!(counted.abs_diff(whole) <= 3, "{counted} vs {whole}");
    }

    #[test]
    fn decoding_gives_the_text_back_or_nothing_mid_character() {
        let tokenizer = tokenizer_for("gpt-4o-mini");
        let text = "Ünïcödé text, with words.";
        let ids = tokenizer.encode(text);
        assert_eq!(tokenizer.decode(&ids).as_deref(), Some(text));
        assert_eq!(tokenizer.decode(&[]).as_deref(), Some(""));
    }

    /// Counts as [`estimate_chat_prompt`] does, noting the thread it ran on.
    fn counted_where(model: &str, request: &Map<String, Value>) -> u64 {
        *LAST_COUNTED_ON.lock() = Some(std::thread::current().id());
        estimate_chat_prompt(model, request)
    }
    static LAST_COUNTED_ON: parking_lot::Mutex<Option<std::thread::ThreadId>> =
        parking_lot::Mutex::new(None);

    #[tokio::test]
    async fn large_requests_are_counted_on_the_blocking_pool_and_handed_back() {
        let here = std::thread::current().id();
        let text = "word ".repeat(COUNT_INLINE_MAX_BYTES / 4);
        let mut request = json!({"messages": [{"role": "user", "content": text}]})
            .as_object()
            .cloned()
            .unwrap();
        let inline = estimate_chat_prompt("gpt-4o-mini", &request);
        let counted = count_off_thread(&mut request, "gpt-4o-mini", counted_where).await;
        assert_eq!(counted, inline);
        assert_ne!(*LAST_COUNTED_ON.lock(), Some(here));
        assert_eq!(request["messages"][0]["content"], text.as_str());

        // A small one is counted where it is.
        let mut small = json!({"messages": [{"role": "user", "content": "a few words"}]})
            .as_object()
            .cloned()
            .unwrap();
        count_off_thread(&mut small, "gpt-4o-mini", counted_where).await;
        assert_eq!(*LAST_COUNTED_ON.lock(), Some(here));
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
