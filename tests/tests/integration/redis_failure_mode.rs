//! REDIS_FAILURE_MODE: `closed` refuses model calls (503 `state_store_unavailable`, the model
//! never called) while shared budgets cannot be enforced, and serves again once Redis is back;
//! `open` serves throughout, with the cache bypassed.

use std::time::Duration;

use serde_json::Value;
use tests::{
    TestServer,
    gateway::{chat_body, header, post_chat},
    redis::{RedisServer, eventually, health},
    start_mock,
};

async fn instance(redis: &RedisServer, base: &str, mode: &str) -> TestServer {
    TestServer::start(&[
        "--redis-url",
        &redis.url(),
        "--redis-failure-mode",
        mode,
        "--openai-base-url",
        base,
    ])
    .await
}

#[tokio::test]
async fn closed_mode_refuses_model_calls_while_redis_is_down_then_recovers() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let mock = start_mock().await;
    let server = instance(&redis, &mock.base_url(), "closed").await;
    let client = tests::http_client();
    let ok = post_chat(&client, &server, None, &chat_body("Before the outage")).await;
    assert_eq!(ok.status(), 200);
    let upstream_calls = mock.chat_requests().len();

    redis.kill();
    for question in ["During the outage", "Still down?"] {
        let refused = post_chat(&client, &server, None, &chat_body(question)).await;
        assert_eq!(refused.status(), 503);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "state_store_unavailable", "{body}");
    }
    assert_eq!(
        mock.chat_requests().len(),
        upstream_calls,
        "the model was called"
    );

    redis.restart();
    let served = eventually(Duration::from_secs(5), || async {
        post_chat(&client, &server, None, &chat_body("After the outage"))
            .await
            .status()
            == 200
    })
    .await;
    assert!(served, "closed mode never served again");
    assert_eq!(health(&client, &server).await["status"], "healthy");
}

#[tokio::test]
async fn open_mode_serves_while_redis_is_down() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let mock = start_mock().await;
    let server = instance(&redis, &mock.base_url(), "open").await;
    let client = tests::http_client();
    redis.kill();
    for question in ["Anyone home?", "Still serving?"] {
        let response = post_chat(&client, &server, None, &chat_body(question)).await;
        assert_eq!(response.status(), 200);
    }
    let bypassed = eventually(Duration::from_secs(3), || async {
        let response = post_chat(&client, &server, None, &chat_body("Cache?")).await;
        header(&response, "x-llm-cache-status") == Some("bypass")
    })
    .await;
    assert!(bypassed, "the cache was not bypassed");
}
