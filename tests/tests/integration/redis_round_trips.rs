//! What a call costs in Redis round trips (a command, script or pipeline is one), counted by
//! the connection itself. The figures are pinned here and used by the capacity model in
//! docs/redis.md: a change that adds a round trip to the hot path fails this test.

use std::time::Duration;

use futures::StreamExt;
use gateway_client::{
    Api, CallContext, Gateway, StreamEvent, pipeline,
    shared::{RedisState, SharedCache},
};
use mcp_server::Settings;
use serde_json::{Map, Value, json};
use tests::{
    TestServer, UPSTREAM_KEY, post_mcp,
    redis::{Monitor, RedisServer, eventually, health},
    rpc, start_mock,
};

fn request(text: &str, stream: bool) -> Map<String, Value> {
    let body = json!({"model": "gpt-4o-mini", "stream": stream,
        "messages": [{"role": "user", "content": text}]});
    body.as_object().cloned().unwrap()
}

/// Round trips of one `step`, as the calls' counter saw them.
async fn counted<F: Future<Output = ()>>(redis: &RedisState, step: F) -> u64 {
    let before = redis.round_trips();
    step.await;
    redis.round_trips() - before
}

#[tokio::test]
async fn round_trips_per_gateway_call_and_per_cache_store() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mock = start_mock().await;
    let base = mock.base_url();
    let settings =
        Settings::from_args(["--openai-base-url", &base, "--openai-api-key", UPSTREAM_KEY])
            .unwrap();
    let config = settings.gateway_config();
    let redis = RedisState::connect(&server.url()).unwrap();
    let parts = pipeline::shared_parts(&config, redis.clone(), "round-trips").unwrap();
    let gateway = Gateway::from_parts(config, parts).unwrap();
    let context = CallContext::for_subscription("round-trips", Api::OpenAi);

    // The first call loads the scripts (EVALSHA, SCRIPT LOAD, EVALSHA); then steady state.
    gateway
        .chat(&context, request("warm up", false))
        .await
        .unwrap();

    let miss = counted(&redis, async {
        let outcome = gateway
            .chat(&context, request("A new question", false))
            .await
            .unwrap();
        assert_eq!(outcome.cache.as_str(), "miss");
    })
    .await;
    let hit = counted(&redis, async {
        let outcome = gateway
            .chat(&context, request("A new question", false))
            .await
            .unwrap();
        assert_eq!(outcome.cache.as_str(), "hit");
    })
    .await;
    let streamed_miss = counted(&redis, async {
        let mut stream = gateway
            .chat_stream(&context, request("Another question, streamed", true))
            .await
            .unwrap();
        while let Some(event) = stream.next().await {
            if let StreamEvent::Done { .. } = event.unwrap() {
                break;
            }
        }
    })
    .await;
    let store = counted(&redis, async {
        let cache = SharedCache::new(
            std::sync::Arc::new(
                pipeline::semantic_cache(&settings.gateway_config())
                    .unwrap()
                    .unwrap(),
            ),
            redis.clone(),
            "store-only".to_owned(),
            1000,
            gateway_client::clock::Clock::new(),
        );
        use gateway_client::ResponseCache as _;
        let answer = json!({"choices": [{"index": 0, "message":
            {"role": "assistant", "content": "Stored."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}});
        cache
            .store(
                &context,
                gateway_client::Operation::Chat,
                "gpt-4o-mini",
                &request("Store me", false),
                &answer,
            )
            .await;
    })
    .await;
    let cache_off = {
        let settings = Settings::from_args([
            "--openai-base-url",
            &base,
            "--openai-api-key",
            UPSTREAM_KEY,
            "--semantic-cache",
            "off",
        ])
        .unwrap();
        let config = settings.gateway_config();
        let parts = pipeline::shared_parts(&config, redis.clone(), "no-cache").unwrap();
        let uncached = Gateway::from_parts(config, parts).unwrap();
        counted(&redis, async {
            uncached
                .chat(&context, request("No cache here", false))
                .await
                .unwrap();
        })
        .await
    };
    println!(
        "redis round trips: miss {miss}, exact hit {hit}, streamed miss {streamed_miss}, \
         cache store {store}, cache off {cache_off}"
    );
    // Reserve, reconcile, ledger.
    assert_eq!(cache_off, 3);
    // Miss: reserve, exact-key lookup, reconcile, ledger, then the store's SET and XADD.
    assert_eq!(miss, 6);
    assert_eq!(streamed_miss, 6);
    assert_eq!(store, 2);
    // A hit found in this instance's index: the reservation and its release only.
    assert_eq!(hit, 2);
    // The probe and the stream follower count apart, never against a call.
    assert!(redis.background_round_trips() > 0);
}

#[tokio::test]
async fn mcp_calls_make_no_redis_round_trips() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let server = TestServer::start(&["--redis-url", &url]).await;
    let client = tests::http_client();
    let ready = eventually(Duration::from_secs(3), || async {
        health(&client, &server).await["status"] == "healthy"
    })
    .await;
    assert!(ready);
    // Watched on the Redis side: no command of the calls' own. Background work is left out:
    // the probe's PINGs, the stream follower's XREADs, and the dashboard figures each instance
    // publishes every few seconds under its `{tollgate:stats}` keys.
    let monitor = Monitor::start(redis.port);
    for id in 0..20 {
        let body = rpc(
            id,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "hi"}}),
        );
        let response = post_mcp(&client, &server, &body, &[]).await;
        assert_eq!(response.status(), 200);
    }
    let calls_own: Vec<String> = monitor
        .seen(Duration::from_millis(300))
        .into_iter()
        .filter(|line| {
            // MULTI/EXEC only bracket a transaction: its commands show up on their own lines.
            let background = [
                "\"PING\"",
                "\"XREAD\"",
                "\"ping\"",
                "\"xread\"",
                "\"MULTI\"",
                "\"EXEC\"",
            ]
            .iter()
            .any(|command| line.contains(command));
            !background && !line.contains("{tollgate:stats}")
        })
        .collect();
    println!("redis commands for 20 MCP calls: {calls_own:?}");
    assert!(calls_own.is_empty(), "{calls_own:#?}");
    // The counts are in /metrics too (process-wide: every instance in this test binary).
    let text = tests::gateway::scrape(&client, &server).await;
    let probes = tests::gateway::metric(
        &text,
        "tollgate_redis_round_trips_total",
        &[("path", "background")],
    );
    assert!(probes.unwrap_or(0.0) > 0.0, "{text}");
}
