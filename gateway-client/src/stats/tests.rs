//! The stats rings with paused time: minutes roll over, the hour is forgotten, memory is fixed.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;

/// 2026-01-01T00:00:00Z: a known minute boundary.
const START_MS: u64 = 1_767_225_600_000;

fn stats() -> Stats {
    Stats::new(Clock::starting_at(START_MS))
}

fn last(series: &[u64]) -> u64 {
    series[MINUTES - 1]
}

#[tokio::test(start_paused = true)]
async fn counts_move_to_the_previous_minute_when_the_minute_turns() {
    let stats = stats();
    stats.cache(CacheStatus::Hit, 40);
    stats.cache(CacheStatus::Hit, 2);
    stats.cache(CacheStatus::Miss, 0);
    stats.tokens("team-a", 10, 5);
    tokio::time::advance(Duration::from_secs(59)).await;
    stats.cache(CacheStatus::Miss, 0);
    let first = stats.snapshot();
    assert_eq!(first.end_minute, START_MS / 60_000);
    assert_eq!(last(&first.cache.hits), 2);
    assert_eq!(last(&first.cache.misses), 2);
    assert_eq!(last(&first.cache.tokens_saved), 42);

    tokio::time::advance(Duration::from_secs(1)).await;
    stats.cache(CacheStatus::Bypass, 0);
    stats.tokens("team-a", 1, 1);
    let second = stats.snapshot();
    assert_eq!(second.end_minute, first.end_minute + 1);
    assert_eq!(second.cache.hits[MINUTES - 2], 2);
    assert_eq!(last(&second.cache.hits), 0);
    assert_eq!(last(&second.cache.bypasses), 1);
    let tokens = &second.tokens[0];
    assert_eq!(tokens.subscription, "team-a");
    assert_eq!((tokens.input[MINUTES - 2], last(&tokens.input)), (10, 1));
}

#[tokio::test(start_paused = true)]
async fn an_hour_later_the_old_minutes_are_gone() {
    let stats = stats();
    stats.upstream("primary", Duration::from_millis(30), false);
    stats.mcp_call("lookup_fact");
    stats.agent_turn();
    tokio::time::advance(Duration::from_secs(59 * 60)).await;
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.backends[0].calls[0], 1);
    assert_eq!(snapshot.tools[0].calls[0], 1);
    assert_eq!(snapshot.agent_turns[0], 1);
    tokio::time::advance(Duration::from_secs(60)).await;
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.agent_turns.iter().sum::<u64>(), 0);
    // A label with nothing left in the hour drops out of the snapshot.
    assert!(snapshot.backends.is_empty() && snapshot.tools.is_empty());
}

#[tokio::test(start_paused = true)]
async fn memory_is_bounded_whatever_the_labels() {
    let stats = stats();
    for n in 0..10_000 {
        stats.tokens(&format!("subscription-{n}"), 1, 0);
        stats.upstream(
            &format!("backend-{n}"),
            Duration::from_millis(1),
            n % 2 == 0,
        );
        stats.mcp_call(&format!("tool-{n}"));
    }
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.tokens.len(), SUBSCRIPTIONS + 1);
    assert_eq!(snapshot.backends.len(), BACKENDS + 1);
    assert_eq!(snapshot.tools.len(), TOOLS + 1);
    assert!(snapshot.tokens.iter().all(|t| t.input.len() == MINUTES));
    let other = snapshot.tokens.last().unwrap();
    assert_eq!(other.subscription, ring::OTHER);
    // Every series is an hour long, however long the instance ran.
    assert_eq!(snapshot.cache.hits.len(), MINUTES);
    assert_eq!(
        snapshot.backends[0].latency_buckets.len(),
        ring::LATENCY_BUCKETS
    );
}

#[tokio::test(start_paused = true)]
async fn refusals_are_counted_by_reason() {
    let stats = stats();
    stats.refused_by(&GatewayError::QuotaExhausted {
        resets_in: Duration::from_secs(1),
    });
    stats.refused_by(&GatewayError::BudgetExceeded {
        retry_after: Duration::from_secs(1),
        limit: 1,
    });
    stats.refused_by(&GatewayError::UpstreamFailed {
        summary: String::new(),
    });
    stats.refused(Refusal::Auth);
    stats.mcp_rate_limited();
    let refusals = stats.snapshot().refusals;
    let lasts = [
        last(&refusals.budget),
        last(&refusals.quota),
        last(&refusals.rate_limit),
        last(&refusals.content),
        last(&refusals.auth),
    ];
    assert_eq!(lasts, [1, 1, 1, 0, 1]);
}

#[tokio::test(start_paused = true)]
async fn snapshots_of_different_minutes_merge_minute_by_minute() {
    let a = stats();
    let b = stats();
    a.cache(CacheStatus::Hit, 3);
    a.tokens("team-a", 5, 5);
    b.cache(CacheStatus::Hit, 1);
    b.tokens("team-b", 7, 0);
    let early_b = b.snapshot();
    tokio::time::advance(Duration::from_secs(60)).await;
    a.cache(CacheStatus::Miss, 0);
    let mut merged = StatsSnapshot::empty(a.minute());
    merged.merge(&a.snapshot());
    merged.merge(&early_b);
    assert_eq!(merged.cache.hits[MINUTES - 2], 2);
    assert_eq!(last(&merged.cache.misses), 1);
    assert_eq!(merged.cache.tokens_saved.iter().sum::<u64>(), 4);
    let names: Vec<&str> = merged
        .tokens
        .iter()
        .map(|t| t.subscription.as_str())
        .collect();
    assert_eq!(names, ["team-a", "team-b"]);
    assert_eq!(merged.tokens[1].input[MINUTES - 2], 7);
    // The round trip through JSON (how instances publish) keeps everything.
    let json = serde_json::to_string(&merged).unwrap();
    assert_eq!(
        serde_json::from_str::<StatsSnapshot>(&json).unwrap(),
        merged
    );
}
