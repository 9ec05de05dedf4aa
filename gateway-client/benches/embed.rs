//! Embedding one prompt: the static model (sentence embedding, tokenization, word vectors) and,
//! for comparison, the built-in hashed-feature embedder.
//!
//! `cargo bench -p gateway-client --bench embed`
//!
//! The prompts are typical chat questions of about 15 words; a longer one (a conversation window
//! of 8 messages, ~150 words) shows how the cost grows. The first use of the static model builds
//! its token table; that one-time cost is printed before the benchmarks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark: setup failures should stop it, and its report goes to stdout"
)]

use std::{hint::black_box, time::Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use gateway_client::semantic::{BuiltinEmbedder, StaticModel, text::tokenize};

/// 15 words each.
const PROMPTS: [&str; 4] = [
    "How can I configure the logging level for the payment service in production before tomorrow?",
    "What is the difference between a process and a thread in modern operating systems today?",
    "Please translate this short paragraph about my summer holiday in Italy into Spanish for me.",
    "Why does my web application return a timeout error after the latest deployment on Azure?",
];

fn conversation() -> String {
    PROMPTS
        .iter()
        .cycle()
        .take(8)
        .map(|p| format!("{p} Thanks, and could you also explain it briefly?"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn bench(c: &mut Criterion) {
    let started = Instant::now();
    let model = StaticModel::get().expect("the embedded model loads");
    println!(
        "static model: first use (token table) took {:?}",
        started.elapsed()
    );
    let long = conversation();

    let mut group = c.benchmark_group("embed");
    group.bench_function("static/sentence_15_words", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(model.sentence_embedding(black_box(PROMPTS[i % PROMPTS.len()])))
        });
    });
    group.bench_function("static/sentence_150_words", |b| {
        b.iter(|| black_box(model.sentence_embedding(black_box(&long))));
    });
    group.bench_function("static/tokenize_15_words", |b| {
        b.iter(|| black_box(model.tokenize(black_box(PROMPTS[0]))));
    });
    group.bench_function("static/word_vectors_15_words", |b| {
        b.iter(|| black_box(model.word_vectors(black_box(PROMPTS[0]))));
    });
    group.bench_function("builtin/analyse_and_embed_15_words", |b| {
        b.iter(|| {
            black_box(BuiltinEmbedder::embed_tokens(&tokenize(black_box(
                PROMPTS[0],
            ))))
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
