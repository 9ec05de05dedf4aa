//! The verifier on one candidate: analysing a prompt of about twenty words, and verifying two
//! analysed prompts: a paraphrase that passes and a near-miss refused late, at alignment (ten
//! words a side, a hundred pairs to weigh), and a typical ten-word question.
//!
//! `cargo bench -p gateway-client --bench verifier`
#![allow(
    clippy::unwrap_used,
    reason = "a benchmark: setup failures should stop it"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gateway_client::semantic::{analysis, verify};

const CACHED: &str = "How do I rotate the API key for my project without breaking the \
    services that still use the old key in production?";
const PARAPHRASE: &str = "How can I rotate the API key for my project without breaking \
    services that still use the old key in production?";
const NEAR_MISS: &str = "How do I rotate the API key for my project without breaking the \
    services that still use the new key in production?";

const TYPICAL_CACHED: &str = "How do I rotate the API key for my project?";
const TYPICAL_QUERY: &str = "How can I rotate the API key for my project?";

fn verifier(c: &mut Criterion) {
    analysis::warm();
    c.bench_function("analyze_20_words", |b| {
        b.iter(|| analysis::analyze(black_box(CACHED)))
    });
    let cached = analysis::analyze(CACHED);
    for (name, query) in [
        ("verify_paraphrase", PARAPHRASE),
        ("verify_near_miss", NEAR_MISS),
    ] {
        let query = analysis::analyze(query);
        c.bench_function(name, |b| {
            b.iter(|| verify::verify(black_box(&query), black_box(&cached), None))
        });
    }
    let (typical_cached, typical_query) = (
        analysis::analyze(TYPICAL_CACHED),
        analysis::analyze(TYPICAL_QUERY),
    );
    c.bench_function("verify_typical", |b| {
        b.iter(|| verify::verify(black_box(&typical_query), black_box(&typical_cached), None))
    });
    c.bench_function("analyze_both_and_verify", |b| {
        b.iter(|| verify::verify_text(black_box(PARAPHRASE), black_box(CACHED), None))
    });
}

criterion_group!(benches, verifier);
criterion_main!(benches);
