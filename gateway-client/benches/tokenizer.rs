//! Counting tokens with the gateway's own encoder against tiktoken-rs's `CoreBPE`, on the same
//! text: this README, whole.
//!
//! `cargo bench -p gateway-client --bench tokenizer`
#![allow(
    clippy::unwrap_used,
    reason = "a benchmark: setup failures should stop it"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gateway_client::tokens::tokenizer_for;

const TEXT: &str = include_str!("../../README.md");

fn bench(c: &mut Criterion) {
    for (model, reference) in [
        ("gpt-4o-mini", tiktoken_rs::o200k_base_singleton()),
        ("gpt-4", tiktoken_rs::cl100k_base_singleton()),
    ] {
        let ours = tokenizer_for(model);
        assert_eq!(
            ours.count(TEXT),
            reference.encode_ordinary(TEXT).len() as u64
        );
        let mut group = c.benchmark_group(format!("count the README ({model})"));
        group.bench_function("tiktoken-rs encode_ordinary", |b| {
            b.iter(|| black_box(reference.encode_ordinary(black_box(TEXT)).len()))
        });
        group.bench_function("tollgate count", |b| {
            b.iter(|| black_box(ours.count(black_box(TEXT))))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
