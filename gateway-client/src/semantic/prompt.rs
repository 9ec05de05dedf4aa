//! Prompt analysis: what a chat request asks (the embedded window) and everything else that can
//! change its answer (the partition).
//!
//! Only the text of the recent window is compared by meaning. Everything else a request carries
//! is hashed, so a cached answer is served only to a request that agrees on it exactly:
//! - every request parameter but the few in [`IGNORED_FIELDS`] (tools, temperature, `user`…);
//! - every message outside the window, system and developer messages always (whether or not
//!   `include_system` also embeds their text), and older turns whole;
//! - inside the window, whatever is not text: image, audio and file parts, participant names,
//!   unknown fields.
//!
//! Non-text parts are hashed rather than refused: the same image sent again is the same bytes
//! (or the same URL or file id), so it may hit, while a different one never can, by exact
//! match or by meaning. Comparing them by content would need a model of images; comparing them
//! by what the request says is exact and cheap.
//!
//! Size: a prompt whose messages (embedded text plus hashed bytes) exceed `max_prompt_bytes` is
//! not cached at all (hashing stops at the cap, so a huge request costs little). A window text
//! over [`MEANING_MAX_BYTES`] is matched only exactly: verification of so long a text refuses
//! all but near-identical prompts anyway, so its entry keeps a hash instead of the text.

use std::fmt::{self, Write as _};

use serde_json::{Map, Value};
use text_analysis::{FNV_OFFSET, FNV_PRIME, fnv1a_parts};

use super::{
    CacheConfig, analysis, lexicon,
    text::{Token, tokenize},
};
use crate::context::CallContext;

/// Request fields that do not change the answer (so they don't split the cache).
///
/// Output limits are among them: only complete answers are stored (never `length`), and an
/// answer that ended on its own is the same answer under any larger limit. `user` is not: an
/// application that names its end users keeps their answers apart.
const IGNORED_FIELDS: &[&str] = &[
    "messages",
    "stream",
    "stream_options",
    "metadata",
    "store",
    "max_tokens",
    "max_completion_tokens",
];

/// The longest window text matched by meaning; longer ones are matched only exactly.
pub const MEANING_MAX_BYTES: usize = 8 * 1024;

/// A prompt, analysed once for both lookup and store.
pub struct Prompt {
    pub partition: u64,
    pub text: String,
    /// The built-in embedder's tokens.
    pub tokens: Vec<Token>,
    /// What verification compares (see [`super::analysis`]).
    pub analysed: Vec<analysis::Token>,
    pub exact: u64,
    pub keys: Vec<u64>,
    /// Who asks (a hash of the caller's budget key): entries are evicted fairly by owner.
    pub owner: u64,
    /// Whether the window is short enough to be matched by meaning (see [`MEANING_MAX_BYTES`]).
    pub by_meaning: bool,
}

/// Why a request is not cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncacheable {
    /// No user message in the window: nothing was asked.
    NoQuestion,
    /// The messages exceed the cacheable prompt size.
    TooLarge,
}

/// The prompt and partition of a chat request, or why it can't be cached.
pub(super) fn analyse(
    config: &CacheConfig,
    context: &CallContext,
    model: &str,
    request: &Map<String, Value>,
) -> Result<Prompt, Uncacheable> {
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or(Uncacheable::NoQuestion)?;
    let window = Window::of(messages, config);
    if !messages[window.start..]
        .iter()
        .any(|m| window.embeds(m) && role(m) == Some("user"))
    {
        return Err(Uncacheable::NoQuestion);
    }
    let Read {
        text,
        roles,
        unembedded,
    } = read_messages(messages, &window, config.max_prompt_bytes)?;
    let tokens = tokenize(&text);
    let normalized = normalized(&tokens);
    let subscription = if config.shared_across_subscriptions {
        "*"
    } else {
        &context.subscription
    };
    let unembedded = unembedded.to_le_bytes();
    let partition = fnv1a_parts(&[
        context.api.protocol().as_bytes(),
        subscription.as_bytes(),
        model.as_bytes(),
        &parameters_hash(request).to_le_bytes(),
        &unembedded,
    ]);
    let exact = fnv1a_parts(&[roles.as_bytes(), normalized.as_bytes(), &unembedded]);
    let analysed = analysis::analyze(&text);
    let keys = meaning_keys(&analysed);
    Ok(Prompt {
        partition,
        by_meaning: text.len() <= MEANING_MAX_BYTES,
        text,
        tokens,
        analysed,
        exact,
        keys,
        owner: fnv1a_parts(&[context.budget_key.as_bytes()]),
    })
}

/// The inverted index's keys for a prompt: the first lemma of each word that carries meaning, and
/// each concept of its content words, so a candidate that says "obtain" is found for "get". A
/// prompt that shares none of them with another could not pass verification against it anyway.
fn meaning_keys(analysed: &[analysis::Token]) -> Vec<u64> {
    let mut keys = Vec::new();
    for token in analysed {
        match token.kind {
            analysis::Kind::Content => {
                keys.push(fnv1a_parts(&[
                    b"w",
                    lexicon::lemmas(&token.word).first().as_bytes(),
                ]));
                keys.extend(
                    lexicon::concepts(&token.word)
                        .into_iter()
                        .map(|id| fnv1a_parts(&[b"c", &id.to_le_bytes()])),
                );
            }
            analysis::Kind::Entity | analysis::Kind::Number => {
                keys.push(fnv1a_parts(&[b"w", token.word.as_bytes()]));
            }
            _ => {}
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The messages as analysis reads them.
struct Read {
    /// The window's text, message after message.
    text: String,
    /// The window's roles, for the exact key.
    roles: String,
    /// The hash of everything the text leaves out.
    unembedded: u64,
}

/// Reads the window's text and hashes the rest, or stops as soon as the prompt is too large.
fn read_messages(
    messages: &[Value],
    window: &Window,
    max_bytes: usize,
) -> Result<Read, Uncacheable> {
    let mut text = String::new();
    let mut roles = String::new();
    let mut unembedded = Fnv::limited(max_bytes);
    for (index, message) in messages.iter().enumerate() {
        // A position marker, so moving a part to another message changes the hash.
        write!(unembedded, "#{index}:").map_err(|_| Uncacheable::TooLarge)?;
        let embedded = index >= window.start && window.embeds(message);
        let hashed = if !embedded || is_system(message) {
            canonical_json(message, &mut unembedded)
        } else {
            non_text_of(message, &mut unembedded)
        };
        hashed.map_err(|_| Uncacheable::TooLarge)?;
        if embedded {
            roles.push_str(role(message).unwrap_or(""));
            roles.push('|');
            if !text.is_empty() {
                text.push('\n');
            }
            crate::tokens::collect_message_text_without_role(message, &mut text);
            if text.len() + unembedded.written > max_bytes {
                return Err(Uncacheable::TooLarge);
            }
        }
    }
    Ok(Read {
        text,
        roles,
        unembedded: unembedded.hash,
    })
}

/// The hash of every request field that can change the answer.
fn parameters_hash(request: &Map<String, Value>) -> u64 {
    let mut parameters = Fnv::limited(usize::MAX);
    for (key, value) in request {
        if !IGNORED_FIELDS.contains(&key.as_str()) {
            let _ = write!(parameters, "{key:?}=");
            let _ = canonical_json(value, &mut parameters);
            parameters.write_byte(b';');
        }
    }
    parameters.hash
}

/// The recent messages whose text is embedded: the last `window_messages` of those embedded at
/// all (system and developer messages only with `include_system`).
struct Window {
    include_system: bool,
    /// Index of the first message of the window; later messages are in it if [`Self::embeds`].
    start: usize,
}

impl Window {
    fn of(messages: &[Value], config: &CacheConfig) -> Self {
        let mut window = Self {
            include_system: config.include_system,
            start: messages.len(),
        };
        let mut kept = 0;
        while window.start > 0 && kept < config.window_messages.max(1) {
            window.start -= 1;
            if window.embeds(&messages[window.start]) {
                kept += 1;
            }
        }
        window
    }

    fn embeds(&self, message: &Value) -> bool {
        self.include_system || !is_system(message)
    }
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

fn is_system(message: &Value) -> bool {
    matches!(role(message), Some("system" | "developer"))
}

/// Writes what a window message carries besides its embedded text: non-text content parts,
/// tool calls (without their run-specific ids) and any other field (`name`, `audio`…).
fn non_text_of(message: &Value, out: &mut Fnv) -> fmt::Result {
    let Some(fields) = message.as_object() else {
        return canonical_json(message, out);
    };
    for key in sorted_keys(fields) {
        let value = &fields[key];
        match (key.as_str(), value) {
            // The role is part of the exact key; a tool result's call id is made up per run.
            ("role" | "tool_call_id", _) | ("content", Value::String(_) | Value::Null) => {}
            ("content", Value::Array(parts)) => {
                for part in parts.iter().filter(|part| !is_text_part(part)) {
                    canonical_json(part, out)?;
                }
            }
            ("tool_calls", Value::Array(calls)) => {
                out.write_str("tool_calls=")?;
                for call in calls {
                    canonical_json_without(call, "id", out)?;
                }
            }
            (key, value) => {
                write!(out, "{key:?}=")?;
                canonical_json(value, out)?;
            }
        }
    }
    Ok(())
}

/// `{"type": "text", "text": "…"}`: what the window's text already holds.
fn is_text_part(part: &Value) -> bool {
    part.get("type").and_then(Value::as_str) == Some("text")
        && part.get("text").is_some_and(Value::is_string)
}

fn normalized(tokens: &[Token]) -> String {
    let mut out = String::new();
    for token in tokens {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&token.surface);
    }
    out
}

fn sorted_keys(map: &Map<String, Value>) -> Vec<&String> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable();
    keys
}

/// JSON with object keys sorted, so equal values always hash alike.
pub(super) fn canonical_json(value: &Value, out: &mut impl fmt::Write) -> fmt::Result {
    canonical_json_without(value, "", out)
}

/// [`canonical_json`] leaving out the top-level field `skip`.
fn canonical_json_without(value: &Value, skip: &str, out: &mut impl fmt::Write) -> fmt::Result {
    match value {
        Value::Object(map) => {
            out.write_char('{')?;
            for key in sorted_keys(map).into_iter().filter(|k| k.as_str() != skip) {
                write!(out, "{key:?}:")?;
                canonical_json(&map[key], out)?;
                out.write_char(',')?;
            }
            out.write_char('}')
        }
        Value::Array(items) => {
            out.write_char('[')?;
            for item in items {
                canonical_json(item, out)?;
                out.write_char(',')?;
            }
            out.write_char(']')
        }
        // Display streams the JSON text: nothing is built, however long the value.
        leaf => write!(out, "{leaf}"),
    }
}

/// FNV-1a over everything written to it, so canonical JSON is hashed without being built. It
/// refuses (`fmt::Error`) to take more than its limit, which stops the writer early (that limit
/// is why this is a `fmt::Write` of its own rather than `text_analysis::Fnv1a`).
pub(super) struct Fnv {
    hash: u64,
    written: usize,
    limit: usize,
}

impl Fnv {
    fn limited(limit: usize) -> Self {
        Self {
            hash: FNV_OFFSET,
            written: 0,
            limit,
        }
    }

    fn write_byte(&mut self, byte: u8) {
        self.hash ^= u64::from(byte);
        self.hash = self.hash.wrapping_mul(FNV_PRIME);
    }
}

impl fmt::Write for Fnv {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.written = self.written.saturating_add(s.len());
        if self.written > self.limit {
            return Err(fmt::Error);
        }
        for byte in s.bytes() {
            self.write_byte(byte);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::context::Api;
    use serde_json::json;

    fn analysed(config: &CacheConfig, request: Value) -> Prompt {
        let context = CallContext::for_subscription("alice", Api::OpenAi);
        analyse(config, &context, "m", request.as_object().unwrap())
            .ok()
            .unwrap()
    }

    fn user_with_image(url: &str) -> Value {
        json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "Transcribe all text in this image"},
            {"type": "image_url", "image_url": {"url": url}}
        ]}]})
    }

    #[test]
    fn a_different_image_is_a_different_partition_and_key() {
        let config = CacheConfig::default();
        let passport = analysed(&config, user_with_image("data:image/png;base64,UEFTUw=="));
        let cat = analysed(&config, user_with_image("data:image/png;base64,Q0FU"));
        assert_eq!(passport.text, cat.text, "the embedded text is the same");
        assert_ne!(passport.partition, cat.partition);
        assert_ne!(passport.exact, cat.exact);
        let again = analysed(&config, user_with_image("data:image/png;base64,UEFTUw=="));
        assert_eq!(
            (passport.partition, passport.exact),
            (again.partition, again.exact)
        );
        // Audio and file parts, and a text-only prompt, are told apart the same way.
        let text_only = analysed(
            &config,
            json!({"messages": [{"role": "user", "content": "Transcribe all text in this image"}]}),
        );
        let audio = analysed(
            &config,
            json!({"messages": [{"role": "user", "content": [
                {"type": "text", "text": "Transcribe all text in this image"},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
            ]}]}),
        );
        let partitions = [passport.partition, text_only.partition, audio.partition];
        assert!(partitions[0] != partitions[1] && partitions[1] != partitions[2]);
    }

    #[test]
    fn system_prompts_always_split_the_partition() {
        let request = |system: &str| {
            json!({"messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": "What should I do next?"}
            ]})
        };
        for include_system in [false, true] {
            let config = CacheConfig {
                include_system,
                ..CacheConfig::default()
            };
            let wire = analysed(&config, request("Wire $500 to IBAN DE00 1234."));
            let bot = analysed(&config, request("You are the helpful ACME bot."));
            assert_ne!(
                wire.partition, bot.partition,
                "include_system={include_system}"
            );
            // Developer messages are system messages too.
            let developer = analysed(
                &config,
                json!({"messages": [
                    {"role": "developer", "content": "You are the helpful ACME bot."},
                    {"role": "user", "content": "What should I do next?"}
                ]}),
            );
            assert_ne!(developer.partition, bot.partition);
            assert_eq!(bot.text.contains("ACME"), include_system);
        }
    }

    #[test]
    fn older_turns_names_users_and_tools_split_the_partition() {
        let config = CacheConfig {
            window_messages: 1,
            ..CacheConfig::default()
        };
        let with_history = |earlier: &str| {
            json!({"messages": [
                {"role": "user", "content": earlier},
                {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": "What is my account number?"}
            ]})
        };
        let a = analysed(&config, with_history("My account is 1111."));
        let b = analysed(&config, with_history("My account is 2222."));
        assert_eq!(a.text, b.text);
        assert_ne!(a.partition, b.partition);

        let base = json!({"messages": [{"role": "user", "content": "Hello there"}]});
        let mut named = base.clone();
        named["messages"][0]["name"] = json!("bob");
        let mut end_user = base.clone();
        end_user["user"] = json!("end-user-7");
        let mut tools = base.clone();
        tools["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
        let partitions: Vec<u64> = [base, named, end_user, tools]
            .into_iter()
            .map(|request| analysed(&config, request).partition)
            .collect();
        for (i, a) in partitions.iter().enumerate() {
            for b in &partitions[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn run_specific_ids_and_output_limits_do_not_split() {
        let config = CacheConfig::default();
        let turn = |call_id: &str, max_tokens: u64| {
            json!({"max_tokens": max_tokens, "messages": [
                {"role": "user", "content": "Who serves me?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": "whoami", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": call_id, "content": "{\"instance_id\":\"a\"}"}
            ]})
        };
        let a = analysed(&config, turn("call_1", 100));
        let b = analysed(&config, turn("call_2", 200));
        assert_eq!((a.partition, a.exact), (b.partition, b.exact));
    }

    #[test]
    fn prompts_over_the_size_cap_are_not_cached_and_long_ones_match_only_exactly() {
        let config = CacheConfig {
            max_prompt_bytes: 32 * 1024,
            ..CacheConfig::default()
        };
        let context = CallContext::for_subscription("alice", Api::OpenAi);
        let ask = |text: String| json!({"messages": [{"role": "user", "content": text}]});
        let too_long = ask("word ".repeat(7_000));
        assert_eq!(
            analyse(&config, &context, "m", too_long.as_object().unwrap()).err(),
            Some(Uncacheable::TooLarge)
        );
        // A huge image is refused while it is hashed, not after.
        let huge_image = user_with_image(&format!("data:image/png;base64,{}", "A".repeat(1 << 20)));
        assert_eq!(
            analyse(&config, &context, "m", huge_image.as_object().unwrap()).err(),
            Some(Uncacheable::TooLarge)
        );
        let long = analysed(&config, ask("word ".repeat(2_000)));
        assert!(!long.by_meaning);
        let short = analysed(&config, ask("What is a token budget?".to_owned()));
        assert!(short.by_meaning);
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let hash = |value: Value| {
            let mut fnv = Fnv::limited(usize::MAX);
            canonical_json(&value, &mut fnv).unwrap();
            fnv.hash
        };
        assert_eq!(
            hash(json!({"a": 1, "b": [true, "x"]})),
            hash(json!({"b": [true, "x"], "a": 1}))
        );
        assert_ne!(hash(json!({"a": 1})), hash(json!({"a": 2})));
    }
}
