//! What one cache entry really costs: the resident memory the process grows by per entry,
//! next to what the index counts for it (`Entry::approximate_bytes`, which `CACHE_MAX_MB`
//! budgets), for short and long answers and for a prompt long enough to be kept as a hash.
//!
//! `cargo bench -p gateway-client --bench cache_memory`
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark: setup failures should stop it, and its report goes to stdout"
)]

use std::sync::Arc;

use futures::executor::block_on;
use gateway_client::{
    Api, CallContext,
    clock::Clock,
    semantic::{BuiltinEmbedder, CacheConfig, SemanticCache},
};
use serde_json::{Map, Value, json};

const ENTRIES: usize = 20_000;

fn request(question: &str) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for App Service operators."},
            {"role": "user", "content": question},
        ],
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

fn response(index: usize, answer: &str) -> Value {
    json!({
        "id": format!("chatcmpl-mem{index}"),
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": format!("{answer} (entry {index})")},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 40, "completion_tokens": 30, "total_tokens": 70},
    })
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}

/// What one fill leaves allocated: kept until the end, so no later fill reuses its memory
/// (which would hide that fill's growth).
type Kept = (SemanticCache, Vec<(Map<String, Value>, Value)>);

/// Fills a fresh cache with `ENTRIES` entries; returns (RSS bytes per entry, counted bytes per
/// entry) and what it allocated.
fn fill(question: impl Fn(usize) -> String, answer: &str) -> (f64, f64, Kept) {
    let cache = SemanticCache::new(
        Arc::new(BuiltinEmbedder),
        CacheConfig {
            max_entries: usize::MAX,
            max_bytes: usize::MAX,
            max_prompt_bytes: 1 << 20,
            ..CacheConfig::default()
        },
        Clock::new(),
    );
    let context = CallContext::for_subscription("bench", Api::OpenAi);
    // Requests and answers are made first, so only the cache's own growth is measured.
    let made: Vec<(Map<String, Value>, Value)> = (0..ENTRIES)
        .map(|i| (request(&question(i)), response(i, answer)))
        .collect();
    let before = rss_kb();
    for (request, response) in &made {
        let prompt = cache.prompt(&context, "gpt-4o-mini", request).unwrap();
        block_on(cache.keep(prompt, response));
    }
    let grown = rss_kb().saturating_sub(before) * 1024;
    let n = cache.len().max(1) as f64;
    (grown as f64 / n, cache.bytes() as f64 / n, (cache, made))
}

fn main() {
    let words = [
        "restart", "scale", "deploy", "rotate", "monitor", "backup", "restore", "migrate",
    ];
    let things = [
        "web app",
        "database",
        "cache",
        "queue",
        "gateway",
        "function",
        "slot",
        "certificate",
    ];
    let short_question = |i: usize| {
        format!(
            "How do I {} the {} number {i} in production?",
            words[i % words.len()],
            things[(i / words.len()) % things.len()]
        )
    };
    let short_answer =
        "Open the portal, select the resource, apply the change, then verify it in the logs.";
    let long_answer =
        "Check the settings, apply the change, then verify it in the logs. ".repeat(30);
    let long_question =
        |i: usize| format!("{} Now, what about item {i}?", "Context line. ".repeat(700));
    let mut kept: Vec<Kept> = Vec::new();
    for (label, question, answer) in [
        (
            "short prompt, short answer",
            &short_question as &dyn Fn(usize) -> String,
            short_answer,
        ),
        (
            "short prompt, 2 KB answer",
            &short_question,
            long_answer.as_str(),
        ),
        (
            "10 KB prompt (kept as a hash), short answer",
            &long_question,
            short_answer,
        ),
    ] {
        let (rss, counted, filled) = fill(question, answer);
        println!(
            "{label:<45} RSS {rss:>6.0} bytes per entry; counted {counted:>6.0} bytes per entry ({} entries)",
            filled.0.len()
        );
        kept.push(filled);
    }
}
