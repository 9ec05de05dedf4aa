//! Several instances on one Redis: one budget, one cache, one ledger; and what happens when
//! Redis goes away and comes back.

use std::time::{Duration, Instant};

use gateway_client::{shared::RedisState, shared::RedisStore, store::conformance};
use mock_upstream::{MockOptions, MockUpstream, Reply};
use serde_json::Value;
use tests::{
    TestServer,
    gateway::{chat_body, concurrent_chats, header, minute_headroom, post_chat, usage_report},
    redis::{RedisServer, eventually},
    start_mock,
};

async fn instance(
    redis: &RedisServer,
    mock: &MockUpstream,
    id: &str,
    extra: &[&str],
) -> TestServer {
    let url = redis.url();
    let base = mock.base_url();
    let mut flags = vec![
        "--redis-url",
        url.as_str(),
        "--openai-base-url",
        base.as_str(),
        "--instance-id",
        id,
        "--admin-key",
        "admin",
    ];
    flags.extend_from_slice(extra);
    TestServer::start(&flags).await
}

#[tokio::test]
async fn the_redis_store_passes_the_store_conformance_suite() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let state = RedisState::connect(&redis.url()).unwrap();
    let store = RedisStore::new(state);
    conformance::run_all(&store, "conformance-").await;
}

#[tokio::test]
async fn one_budget_across_two_instances_never_overshoots() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = start_mock().await;
    let flags = [
        "--tokens-per-minute",
        "2000",
        "--max-tokens-cap",
        "100",
        "--budget-reservation",
        "strict",
        "--semantic-cache",
        "off",
        "--subscription-keys",
        "shared=k",
    ];
    let a = instance(&redis, &mock, "budget-a", &flags).await;
    let b = instance(&redis, &mock, "budget-b", &flags).await;
    minute_headroom(Duration::from_secs(15)).await;
    let client = tests::http_client();
    let calls = (0..40).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        let client = client.clone();
        async move {
            let body = chat_body(&format!("Question number {i}: what is a token budget?"));
            let response = post_chat(&client, server, Some("k"), &body).await;
            let status = response.status().as_u16();
            let consumed =
                header(&response, "x-tokens-consumed").and_then(|v| v.parse::<u64>().ok());
            (status, consumed.unwrap_or(0))
        }
    });
    let results = futures::future::join_all(calls).await;
    let admitted: Vec<u64> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, c)| *c)
        .collect();
    let refused = results.iter().filter(|(s, _)| *s == 429).count();
    assert_eq!(admitted.len() + refused, 40, "{results:?}");
    assert!(refused > 0, "the shared budget must refuse some calls");
    // One reservation here is at most the prompt (~20 tokens) plus the 100-token cap.
    let consumed: u64 = admitted.iter().sum();
    assert!(
        consumed <= 2000 + 130,
        "admitted {consumed} tokens against a 2000 budget"
    );
    // Both instances admitted calls: the budget really is one.
    let upstream_calls = mock.chat_requests().len();
    assert_eq!(upstream_calls, admitted.len());
}

/// Expected reservations across two instances: short answers are admitted far beyond what
/// strict reservations allow, and a burst of long ones is held to the shared overshoot bound.
#[tokio::test]
async fn expected_reservations_hold_across_two_instances() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = MockUpstream::start(MockOptions {
        latency: Duration::from_millis(300),
        ..MockOptions::default()
    })
    .await
    .unwrap();
    // 5,000 tokens a minute and a 200-token cap: 23 strict reservations at most.
    let flags = [
        "--tokens-per-minute",
        "5000",
        "--max-tokens-cap",
        "200",
        "--semantic-cache",
        "off",
        "--subscription-keys",
        "shared=k",
    ];
    let a = instance(&redis, &mock, "expected-a", &flags).await;
    let b = instance(&redis, &mock, "expected-b", &flags).await;
    for _ in 0..42 {
        mock.push(Reply::text("ok").with_usage(12, 5));
    }
    // Each instance learns that answers are short.
    for server in [&a, &b] {
        assert_eq!(concurrent_chats(&[server], "k", 1).await[0].0, 200);
    }
    let short = concurrent_chats(&[&a, &b], "k", 40).await;
    assert!(short.iter().all(|(status, _)| *status == 200), "{short:?}");

    for _ in 0..80 {
        mock.push(Reply::text("long").with_usage(12, 200));
    }
    let long = concurrent_chats(&[&a, &b], "k", 80).await;
    let admitted: Vec<u64> = long
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, used)| *used)
        .collect();
    let spent: u64 = admitted.iter().sum::<u64>() + 42 * 17;
    // One bucket and one allowance for both: a minute's tokens plus 100% at most, give or take
    // what refilled meanwhile (83 tokens a second).
    assert!(spent <= 2 * 5_000 + 300, "spent {spent}");
    assert!(admitted.len() < 80, "nothing was held back");
}

#[tokio::test]
async fn a_cache_entry_made_on_one_instance_hits_on_the_other() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = start_mock().await;
    let a = instance(&redis, &mock, "cache-a", &[]).await;
    let b = instance(&redis, &mock, "cache-b", &[]).await;
    let client = tests::http_client();

    // An exact repeat hits on the other instance at once.
    let exact = chat_body("What is a deployment slot?");
    let first = post_chat(&client, &a, None, &exact).await;
    assert_eq!(header(&first, "x-llm-cache-status"), Some("miss"));
    let second = post_chat(&client, &b, None, &exact).await;
    assert_eq!(header(&second, "x-llm-cache-status"), Some("hit"));

    // A paraphrase hits once the entry has reached the other instance's index (≤ 1 s).
    let original = post_chat(
        &client,
        &a,
        None,
        &chat_body("Explain what a token budget is."),
    )
    .await;
    assert_eq!(header(&original, "x-llm-cache-status"), Some("miss"));
    let calls = mock.chat_requests().len();
    let paraphrase = chat_body("Please explain what a token budget is.");
    let hit = eventually(Duration::from_secs(2), || {
        let client = client.clone();
        let paraphrase = paraphrase.clone();
        let b = &b;
        async move {
            let response = post_chat(&client, b, Some("x"), &paraphrase).await;
            header(&response, "x-llm-cache-status") == Some("hit")
        }
    })
    .await;
    assert!(hit, "the paraphrase never hit on instance B");
    // Misses on B before the entry arrived are answered (and cached) by B itself; at least
    // the hit did not call the upstream.
    assert!(mock.chat_requests().len() <= calls + 20);
}

#[tokio::test]
async fn both_instances_report_the_same_usage() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = start_mock().await;
    let flags = [
        "--subscription-keys",
        "team-u=ku",
        "--semantic-cache",
        "off",
    ];
    let a = instance(&redis, &mock, "usage-a", &flags).await;
    let b = instance(&redis, &mock, "usage-b", &flags).await;
    let client = tests::http_client();
    let mut consumed = 0;
    for (i, server) in [&a, &b, &a].into_iter().enumerate() {
        let response = post_chat(
            &client,
            server,
            Some("ku"),
            &chat_body(&format!("usage {i}")),
        )
        .await;
        assert_eq!(response.status(), 200);
        consumed += header(&response, "x-tokens-consumed")
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    let from_a = usage_report(&client, &a, "admin").await["subscriptions"].clone();
    let from_b = usage_report(&client, &b, "admin").await["subscriptions"].clone();
    assert_eq!(from_a, from_b);
    let row = from_a
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "team-u")
        .unwrap();
    assert_eq!(row["total_tokens"].as_u64().unwrap(), consumed);
    assert!(consumed > 0);
}

#[tokio::test]
async fn serving_survives_redis_going_away_and_recovers_when_it_returns() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let mock = start_mock().await;
    let server = instance(&redis, &mock, "survivor", &[]).await;
    let client = tests::http_client();
    let health = |client: reqwest::Client| {
        let url = server.url("/health");
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(health(client.clone()).await["status"], "healthy");

    redis.kill();
    // Calls keep being served, quickly, with the cache bypassed.
    let started = Instant::now();
    let response = post_chat(&client, &server, None, &chat_body("Is anyone there?")).await;
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a dead Redis must not stall calls"
    );
    let degraded = eventually(Duration::from_secs(3), || {
        let client = client.clone();
        async { health(client).await["status"] == "degraded" }
    })
    .await;
    assert!(degraded, "/health never reported degraded");
    let body = health(client.clone()).await;
    assert!(body["reason"].as_str().unwrap().contains("redis"), "{body}");
    let response = post_chat(&client, &server, None, &chat_body("Still there?")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-llm-cache-status"), Some("bypass"));

    redis.restart();
    let recovered = eventually(Duration::from_secs(5), || {
        let client = client.clone();
        async { health(client).await["status"] == "healthy" }
    })
    .await;
    assert!(recovered, "/health never recovered");
    let body = chat_body("Back again?");
    let first = post_chat(&client, &server, None, &body).await;
    assert_eq!(header(&first, "x-llm-cache-status"), Some("miss"));
    let second = post_chat(&client, &server, None, &body).await;
    assert_eq!(header(&second, "x-llm-cache-status"), Some("hit"));
}
