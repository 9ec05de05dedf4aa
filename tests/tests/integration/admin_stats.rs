//! `GET /admin/stats`: who may read it, and that its figures are what known traffic did, the
//! same as `/metrics` and `/admin/usage` say, on one instance and across two on Redis.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{
    TestServer,
    gateway::{
        chat_body, header, metric, minute_headroom, post_chat, scrape, streamed_chat_body,
        usage_report,
    },
    meta_2026, post_mcp,
    redis::RedisServer,
    rpc, start_mock, start_with_model,
};

const ADMIN: &str = "stats-admin";

async fn get_stats(
    client: &reqwest::Client,
    server: &TestServer,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = client.get(server.url("/admin/stats"));
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    request.send().await.unwrap()
}

async fn stats(client: &reqwest::Client, server: &TestServer) -> Value {
    let response = get_stats(client, server, Some(ADMIN)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    response.json().await.unwrap()
}

/// A `tools/call` of `echo` with `key`.
async fn echo(client: &reqwest::Client, server: &TestServer, key: &str, id: u64) {
    let mut params = json!({"name": "echo", "arguments": {"message": "hi"}});
    params["_meta"] = meta_2026();
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
        ("api-key", key),
    ];
    let response = post_mcp(client, server, &rpc(id, "tools/call", params), &headers).await;
    assert_eq!(response.status(), 200);
}

/// Asks `text` as `key`; the cache status and the tokens the answer reports.
async fn ask(
    client: &reqwest::Client,
    server: &TestServer,
    key: &str,
    text: &str,
) -> (String, u64) {
    let response = post_chat(client, server, Some(key), &chat_body(text)).await;
    assert_eq!(response.status(), 200);
    let status = header(&response, "x-llm-cache-status").unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    (status, body["usage"]["total_tokens"].as_u64().unwrap())
}

fn envelope_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap()
}

#[tokio::test]
async fn only_the_admin_key_reads_the_stats() {
    let mock = start_mock().await;
    let keyed = start_with_model(
        &mock.base_url(),
        &["--subscription-keys", "stats-auth=k1", "--admin-key", ADMIN],
    )
    .await;
    let client = tests::http_client();
    let missing = get_stats(&client, &keyed, None).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(
        envelope_code(&missing.json().await.unwrap()),
        "missing_subscription_key"
    );
    let subscription = get_stats(&client, &keyed, Some("k1")).await;
    assert_eq!(subscription.status(), 403);
    assert_eq!(
        envelope_code(&subscription.json().await.unwrap()),
        "forbidden"
    );
    assert_eq!(get_stats(&client, &keyed, Some(ADMIN)).await.status(), 200);
    // The page itself needs no key: it asks for the admin key.
    let page = client.get(keyed.url("/dashboard")).send().await.unwrap();
    assert_eq!(page.status(), 200);

    // Without ADMIN_KEY nobody reads them, not even on an open server.
    let open = start_with_model(&mock.base_url(), &[]).await;
    let refused = get_stats(&client, &open, Some("anything")).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ADMIN_KEY")
    );
    assert_eq!(get_stats(&client, &open, None).await.status(), 401);
}

#[tokio::test]
async fn the_stats_agree_with_metrics_and_usage_after_known_traffic() {
    let mock = start_mock().await;
    let server = start_with_model(
        &mock.base_url(),
        &[
            "--subscription-keys",
            "stats-alpha=ka,stats-beta=kb",
            "--admin-key",
            ADMIN,
            "--instance-id",
            "stats-one",
            "--tokens-per-minute",
            "50000",
        ],
    )
    .await;
    let client = tests::http_client();
    minute_headroom(Duration::from_secs(20)).await;
    let traffic = [
        ("ka", "What is a deployment slot?"),
        ("ka", "What is a deployment slot?"),
        ("ka", "How do blue-green deployments work?"),
        ("kb", "What does a circuit breaker do?"),
        ("kb", "What does a circuit breaker do?"),
        ("kb", "What does a circuit breaker do?"),
    ];
    let (mut hits, mut misses, mut saved) = (0, 0, 0);
    for (key, text) in traffic {
        match ask(&client, &server, key, text).await {
            (status, tokens) if status == "hit" => {
                hits += 1;
                saved += tokens;
            }
            (status, _) => {
                assert_eq!(status, "miss");
                misses += 1;
            }
        }
    }
    assert_eq!((hits, misses), (3, 3));
    echo(&client, &server, "ka", 1).await;
    echo(&client, &server, "kb", 2).await;
    let unknown = post_chat(&client, &server, Some("not-a-key"), &chat_body("hi")).await;
    assert_eq!(unknown.status(), 401);

    let stats = stats(&client, &server).await;
    let metrics = scrape(&client, &server).await;
    let usage = usage_report(&client, &server, ADMIN).await;

    assert_eq!(stats["instance_id"], "stats-one");
    assert_eq!(stats["source"], "memory");
    assert_eq!(stats["instances"][0]["instance_id"], "stats-one");
    let cache = &stats["cache"];
    assert_eq!(cache["total_hits"], hits);
    assert_eq!(cache["total_misses"], misses);
    assert_eq!(cache["total_tokens_saved"], saved);
    assert_eq!(cache["hit_ratio"], 0.5);
    let series_sum = |series: &Value| {
        series
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(series_sum(&cache["hits"]), hits);
    assert_eq!(cache["hits"].as_array().unwrap().len(), 60);
    for status in ["hit", "miss"] {
        let from_metrics: f64 = ["stats-alpha", "stats-beta"]
            .iter()
            .map(|s| {
                metric(
                    &metrics,
                    "gateway_cache_requests_total",
                    &[("status", status), ("subscription", s)],
                )
                .unwrap_or(0.0)
            })
            .sum();
        let from_stats = &cache[if status == "hit" {
            "total_hits"
        } else {
            "total_misses"
        }];
        assert_eq!(from_metrics, from_stats.as_f64().unwrap(), "{status}");
    }

    for name in ["stats-alpha", "stats-beta"] {
        let tokens = stats["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["subscription"] == name)
            .unwrap();
        let row = usage["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap();
        let input = tokens["total_input"].as_u64().unwrap();
        let output = tokens["total_output"].as_u64().unwrap();
        assert!(input > 0 && output > 0, "{tokens}");
        assert_eq!(row["prompt_tokens"].as_u64().unwrap(), input, "{name}");
        assert_eq!(row["completion_tokens"].as_u64().unwrap(), output, "{name}");
        for (kind, figure) in [("input", input), ("output", output)] {
            let labels = [("subscription", name), ("gen_ai_token_type", kind)];
            let summed = metric(&metrics, "gen_ai_client_token_usage_sum", &labels).unwrap();
            assert_eq!(summed, figure as f64, "{name} {kind}");
        }
        let budget = stats["budget"]["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["subscription"] == name)
            .unwrap();
        assert_eq!(budget["used"].as_u64().unwrap(), input + output);
        assert_eq!(
            budget["remaining"].as_u64().unwrap(),
            50_000 - input - output
        );
        let quota = stats["quota"]["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap();
        assert_eq!(quota, row);
    }

    let backends = stats["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 1, "{backends:?}");
    assert_eq!(
        backends[0]["total_calls"].as_u64().unwrap(),
        mock.chat_requests().len() as u64
    );
    assert_eq!(backends[0]["total_errors"], 0);
    assert_eq!(backends[0]["breaker"], "closed");
    assert!(backends[0]["p95_ms_hour"].as_u64().is_some());

    let tools = stats["mcp"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(
        (tools[0]["tool"].as_str(), tools[0]["total"].as_u64()),
        (Some("echo"), Some(2))
    );
    let mcp_echo: f64 = ["stats-alpha", "stats-beta"]
        .iter()
        .map(|s| {
            metric(
                &metrics,
                "mcp_requests_total",
                &[("tool", "echo"), ("subscription", s)],
            )
            .unwrap_or(0.0)
        })
        .sum();
    assert_eq!(mcp_echo, 2.0);
    assert_eq!(stats["refusals"]["totals"]["auth"], 1);
    assert_eq!(stats["refusals"]["totals"]["budget"], 0);
}

#[tokio::test]
async fn refusals_are_counted_by_reason() {
    let mock = start_mock().await;
    let server = start_with_model(
        &mock.base_url(),
        &[
            "--subscription-keys",
            "stats-refused=kr",
            "--admin-key",
            ADMIN,
            "--tokens-per-minute",
            "100",
            "--mcp-rate-limit",
            "1/60",
        ],
    )
    .await;
    let client = tests::http_client();
    // Larger than the whole minute's budget (streams are not capped): refused outright.
    let mut big = streamed_chat_body("hello");
    big["max_tokens"] = json!(5_000);
    assert_eq!(
        post_chat(&client, &server, Some("kr"), &big).await.status(),
        422
    );
    echo(&client, &server, "kr", 1).await;
    let mut params = json!({"name": "echo", "arguments": {"message": "again"}});
    params["_meta"] = meta_2026();
    let limited = post_mcp(
        &client,
        &server,
        &rpc(2, "tools/call", params),
        &[("mcp-protocol-version", "2026-07-28"), ("api-key", "kr")],
    )
    .await;
    assert_eq!(limited.status(), 429);
    let stats = stats(&client, &server).await;
    let totals = &stats["refusals"]["totals"];
    assert_eq!(
        (totals["budget"].as_u64(), totals["rate_limit"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(stats["mcp"]["total_rate_limited"], 1);
    assert_eq!(stats["mcp"]["tools"][0]["total"], 1);
}

#[tokio::test]
async fn two_instances_on_redis_report_together() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = start_mock().await;
    let url = redis.url();
    let base = mock.base_url();
    let start = |id: &'static str| {
        let flags = [
            "--redis-url",
            url.as_str(),
            "--openai-base-url",
            base.as_str(),
            "--instance-id",
            id,
            "--admin-key",
            ADMIN,
            "--subscription-keys",
            "stats-shared=ks",
        ];
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        async move {
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            TestServer::start(&flags).await
        }
    };
    let a = start("stats-redis-a").await;
    let b = start("stats-redis-b").await;
    let client = tests::http_client();
    assert_eq!(
        ask(&client, &a, "ks", "What is a token bucket?").await.0,
        "miss"
    );
    assert_eq!(
        ask(&client, &a, "ks", "What is a token bucket?").await.0,
        "hit"
    );
    assert_eq!(
        ask(&client, &b, "ks", "What is a leaky bucket?").await.0,
        "miss"
    );
    echo(&client, &b, "ks", 1).await;

    // B's own read publishes its figures at once; A then reads both.
    let from_b = stats(&client, &b).await;
    assert_eq!(from_b["source"], "redis");
    let from_a = stats(&client, &a).await;
    assert_eq!(from_a["source"], "redis");
    let ids: Vec<&str> = from_a["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["stats-redis-a", "stats-redis-b"]);
    assert!(
        from_a["instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["seconds_ago"].as_u64().unwrap() < 15)
    );
    assert_eq!(from_a["cache"]["total_hits"], 1);
    assert_eq!(from_a["cache"]["total_misses"], 2);
    assert_eq!(from_a["mcp"]["tools"][0]["total"], 1);
    let tokens = &from_a["tokens"][0];
    assert_eq!(tokens["subscription"], "stats-shared");
    // The ledger is shared too: the merged token figures are the period's usage.
    let usage = usage_report(&client, &a, ADMIN).await;
    assert_eq!(
        usage["subscriptions"][0]["prompt_tokens"],
        tokens["total_input"]
    );
    let calls: u64 = from_a["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["total_calls"].as_u64().unwrap())
        .sum();
    assert_eq!(calls, mock.chat_requests().len() as u64);

    // Agent sessions live in the same Redis: one started on B is live as A sees it.
    assert_eq!(from_a["agent_sessions_live"], 0);
    let turn = client
        .post(b.url("/agent/chat"))
        .header("api-key", "ks")
        .json(&serde_json::json!({"message": "Say hello."}))
        .send()
        .await
        .unwrap();
    assert_eq!(turn.status(), 200);
    assert_eq!(stats(&client, &a).await["agent_sessions_live"], 1);
}
