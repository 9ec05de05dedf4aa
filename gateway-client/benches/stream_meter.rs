//! What counting a stream's completion tokens costs per chunk, next to what the relay already
//! spends parsing that chunk.
//!
//! `cargo bench -p gateway-client --bench stream_meter`
#![allow(
    clippy::unwrap_used,
    reason = "a benchmark: setup failures should stop it"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gateway_client::policy::governance::{CompletionLimit, StreamMeter};
use serde_json::Value;

/// A typical OpenAI content chunk: one token of text.
const CHUNK: &str = r#"{"id":"chatcmpl-AbC123","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":" tokens"},"logprobs":null,"finish_reason":null}]}"#;

/// A tool-call arguments chunk of a few tokens.
const TOOL_CHUNK: &str = r#"{"id":"chatcmpl-AbC123","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"topic\": \"sem"}}]},"logprobs":null,"finish_reason":null}]}"#;

fn bench(c: &mut Criterion) {
    let limit = CompletionLimit {
        per_choice: u64::MAX / 2,
        choices: 1,
    };
    let chunk: Value = serde_json::from_str(CHUNK).unwrap();
    let tool_chunk: Value = serde_json::from_str(TOOL_CHUNK).unwrap();
    // Build the tokenizer once, outside the timings (it is built on first use per process).
    let mut meter = StreamMeter::new("gpt-4o-mini", limit);
    meter.absorb(&chunk);
    c.bench_function("parse one chunk (what the relay already does)", |b| {
        b.iter(|| black_box(serde_json::from_str::<Value>(black_box(CHUNK)).unwrap()))
    });
    c.bench_function("meter one content chunk", |b| {
        b.iter(|| black_box(meter.absorb(black_box(&chunk))))
    });
    c.bench_function("meter one tool-call chunk", |b| {
        b.iter(|| black_box(meter.absorb(black_box(&tool_chunk))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
