//! What recording one event in the dashboard's per-minute figures costs on the hot path, alone
//! and with both cores recording into the same counters.
//!
//! `cargo bench -p gateway-client --bench stats_record`

use std::{hint::black_box, sync::Arc, thread, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use gateway_client::{CacheStatus, Stats, clock::Clock};

fn bench(c: &mut Criterion) {
    let stats = Arc::new(Stats::new(Clock::new()));
    // Labels claimed once, as after a server's first calls.
    for tool in ["echo", "lookup_fact", "summarize", "search_docs"] {
        stats.mcp_call(tool);
    }
    for subscription in ["team-a", "team-b", "team-c"] {
        stats.tokens(subscription, 1, 1);
    }
    c.bench_function("one MCP tool call", |b| {
        b.iter(|| stats.mcp_call(black_box("search_docs")))
    });
    c.bench_function("one cache hit", |b| {
        b.iter(|| stats.cache(black_box(CacheStatus::Hit), black_box(40)))
    });
    c.bench_function("one settled call's tokens", |b| {
        b.iter(|| stats.tokens(black_box("team-c"), black_box(120), black_box(40)))
    });
    c.bench_function("one upstream attempt", |b| {
        b.iter(|| {
            stats.upstream(
                black_box("api.example:443"),
                Duration::from_millis(42),
                false,
            )
        })
    });
    c.bench_function(
        "one MCP tool call, another thread recording the same",
        |b| {
            let busy = Arc::new(std::sync::atomic::AtomicBool::new(true));
            let other = {
                let (stats, busy) = (stats.clone(), busy.clone());
                thread::spawn(move || {
                    while busy.load(std::sync::atomic::Ordering::Relaxed) {
                        stats.mcp_call("search_docs");
                    }
                })
            };
            b.iter(|| stats.mcp_call(black_box("search_docs")));
            busy.store(false, std::sync::atomic::Ordering::Relaxed);
            let _ = other.join();
        },
    );
    c.bench_function("snapshot of every series (per /admin/stats)", |b| {
        b.iter(|| black_box(stats.snapshot()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
