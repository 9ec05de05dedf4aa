//! A three-master Redis Cluster formed by the test: the store passes its conformance suite on
//! it (every script's keys in one slot), and two tollgate instances, each given a different
//! seed node, share one budget, one cache and one usage report.

use std::time::Duration;

use gateway_client::{
    shared::{RedisOptions, RedisState, RedisStore},
    store::conformance,
};
use mock_upstream::MockUpstream;
use tests::{
    TestServer,
    gateway::{chat_body, header, minute_headroom, post_chat, usage_report},
    redis::{RedisCluster, eventually},
    start_mock,
};

async fn instance(seed: &str, mock: &MockUpstream, id: &str, extra: &[&str]) -> TestServer {
    let base = mock.base_url();
    let mut flags = vec![
        "--redis-url",
        seed,
        "--redis-cluster",
        "true",
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
async fn two_instances_on_a_three_master_cluster_share_budget_cache_and_usage() {
    let Some(cluster) = RedisCluster::start(3) else {
        return;
    };
    let mock = start_mock().await;

    // The store on the cluster, through all seeds: every operation slot-safe.
    let all_seeds: Vec<String> = (0..3).map(|n| cluster.seed(n)).collect();
    let state = RedisState::connect_with(RedisOptions {
        urls: all_seeds,
        cluster: true,
        ..RedisOptions::default()
    })
    .unwrap();
    conformance::run_all(&RedisStore::new(state), "cluster-").await;

    let flags = [
        "--tokens-per-minute",
        "2000",
        "--token-quota",
        "1000000",
        "--max-tokens-cap",
        "100",
        "--subscription-keys",
        "shared=k",
    ];
    let a = instance(&cluster.seed(0), &mock, "cluster-a", &flags).await;
    let b = instance(&cluster.seed(1), &mock, "cluster-b", &flags).await;
    let client = tests::http_client();

    // One cache: an exact repeat hits on the other instance at once, a paraphrase once the
    // entry has come through the stream.
    let exact = chat_body("What is a hash slot?");
    let first = post_chat(&client, &a, Some("k"), &exact).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-llm-cache-status"), Some("miss"));
    let second = post_chat(&client, &b, Some("k"), &exact).await;
    assert_eq!(header(&second, "x-llm-cache-status"), Some("hit"));
    let original = chat_body("Explain what a cluster shard is.");
    let made = post_chat(&client, &a, Some("k"), &original).await;
    assert_eq!(header(&made, "x-llm-cache-status"), Some("miss"));
    let paraphrase = chat_body("Please explain what a cluster shard is.");
    let hit = eventually(Duration::from_secs(3), || async {
        let response = post_chat(&client, &b, Some("k"), &paraphrase).await;
        header(&response, "x-llm-cache-status") == Some("hit")
    })
    .await;
    assert!(hit, "the paraphrase never hit on instance B");

    // One usage report.
    let from_a = usage_report(&client, &a, "admin").await["subscriptions"].clone();
    let from_b = usage_report(&client, &b, "admin").await["subscriptions"].clone();
    assert_eq!(from_a, from_b);
    assert!(from_a[0]["total_tokens"].as_u64().unwrap() > 0, "{from_a}");

    // One budget: 40 distinct calls over both instances against 2000 tokens a minute.
    minute_headroom(Duration::from_secs(15)).await;
    let calls = (0..40).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        let client = client.clone();
        async move {
            let body = chat_body(&format!("Cluster question {i}: how are budgets shared?"));
            let response = post_chat(&client, server, Some("k"), &body).await;
            let consumed = header(&response, "x-tokens-consumed")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            (response.status().as_u16(), consumed)
        }
    });
    let results = futures::future::join_all(calls).await;
    let refused = results.iter().filter(|(s, _)| *s == 429).count();
    let admitted: u64 = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, c)| c)
        .sum();
    assert_eq!(
        refused + results.iter().filter(|(s, _)| *s == 200).count(),
        40,
        "{results:?}"
    );
    assert!(refused > 0, "the shared budget must refuse some calls");
    assert!(
        admitted <= 2000 + 130,
        "admitted {admitted} tokens against 2000"
    );
}
