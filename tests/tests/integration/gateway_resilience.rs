//! Upstream failures: retries that honor `Retry-After`, no retry once a stream has started, no
//! retry of a request the upstream refused, failover to the next backend, and the circuit
//! breaker tripping and recovering.

use std::time::Duration;

use tokio::time::Instant;

use mock_upstream::{MockOptions, MockUpstream, Reply};
use serde_json::Value;
use tests::{
    TestServer,
    gateway::{
        chat_body, content_type, metric, post_chat, scrape, sse_data, streamed_chat_body,
        streamed_text,
    },
    start_mock, start_with_model,
};

/// A server in front of `base_urls` (comma-separated), with these extra flags. The semantic cache
/// (tested on its own) is off, so every call reaches an upstream.
async fn server(base_urls: &str, extra: &[&str]) -> TestServer {
    let mut flags = vec!["--upstream-backoff-ms", "10", "--semantic-cache", "off"];
    flags.extend_from_slice(extra);
    start_with_model(base_urls, &flags).await
}

fn answer(body: &Value) -> &str {
    body["choices"][0]["message"]["content"].as_str().unwrap()
}

// Paused time: the upstream's one-second Retry-After is waited on tokio's clock, so the test
// needs no real second and the wait it checks is exact.
#[tokio::test(start_paused = true)]
async fn retries_honor_the_upstreams_retry_after() {
    let mock = start_mock().await;
    let server = server(&mock.base_url(), &[]).await;
    let client = tests::http_client();
    mock.push(Reply::status(429).with_retry_after(1));
    mock.push(Reply::text("recovered"));

    let started = Instant::now();
    let response = post_chat(&client, &server, None, &chat_body("hi")).await;
    let took = started.elapsed();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(answer(&body), "recovered");
    assert_eq!(mock.chat_requests().len(), 2);
    // The upstream asked for a second; the 10 ms backoff alone would have been far shorter.
    assert!(took >= Duration::from_millis(950), "retried after {took:?}");

    let metrics = scrape(&client, &server).await;
    let backend = mock.addr().to_string();
    let labels = [("backend", backend.as_str())];
    assert_eq!(
        metric(&metrics, "gateway_upstream_retries_total", &labels),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "gateway_upstream_errors_total",
            &[("backend", &backend), ("status", "429")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let mock = start_mock().await;
    let server = server(&mock.base_url(), &["--upstream-attempts", "3"]).await;
    let client = tests::http_client();
    mock.push_many([
        Reply::status(500),
        Reply::status(503),
        Reply::text("third time"),
    ]);
    let response = post_chat(&client, &server, None, &chat_body("hi")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(answer(&body), "third time");
    assert_eq!(mock.chat_requests().len(), 3);
}

#[tokio::test]
async fn a_stream_that_broke_off_is_not_retried() {
    let mock = start_mock().await;
    let server = server(&mock.base_url(), &[]).await;
    let client = tests::http_client();
    mock.push(Reply::broken_stream(["one ", "two ", "three"], 2));
    mock.push(Reply::text("a retry would get this"));

    let response = post_chat(&client, &server, None, &streamed_chat_body("hi")).await;
    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(mock.chat_requests().len(), 1, "no retry once bytes went on");
    assert_eq!(streamed_text(&events), "one two ");
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_failed", "{last}");
    assert!(last["error"]["message"].as_str().is_some());
}

#[tokio::test]
async fn a_request_the_upstream_refused_is_not_retried() {
    let mock = start_mock().await;
    let server = server(&mock.base_url(), &["--upstream-attempts", "3"]).await;
    let client = tests::http_client();
    mock.push(Reply::status(400).with_message(
        "Invalid 'messages[0].content': string too long. Expected at most 10 characters.",
    ));
    let response = post_chat(&client, &server, None, &chat_body("hi")).await;
    assert_eq!(response.status(), 400);
    assert!(content_type(&response).starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_rejected");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("string too long"), "{message}");
    assert!(!message.contains("sk-upstream"));
    assert_eq!(mock.chat_requests().len(), 1);
}

#[tokio::test]
async fn every_backend_failing_is_a_502() {
    let failing = MockUpstream::start(MockOptions {
        fail_500_every: Some(1),
        ..MockOptions::default()
    })
    .await
    .unwrap();
    let server = server(&failing.base_url(), &["--upstream-attempts", "2"]).await;
    let client = tests::http_client();
    let response = post_chat(&client, &server, None, &chat_body("hi")).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_failed");
    assert_eq!(failing.chat_requests().len(), 2);
}

#[tokio::test]
async fn calls_fail_over_to_the_next_backend() {
    let first = MockUpstream::start(MockOptions {
        fail_500_every: Some(1),
        ..MockOptions::default()
    })
    .await
    .unwrap();
    let second = start_mock().await;
    second.push(Reply::text("from the second backend"));
    let pool = format!("{},{}", first.base_url(), second.base_url());
    let server = server(&pool, &["--upstream-attempts", "2"]).await;
    let client = tests::http_client();

    let response = post_chat(&client, &server, None, &chat_body("hi")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(answer(&body), "from the second backend");
    assert_eq!(first.chat_requests().len(), 2);
    assert_eq!(second.chat_requests().len(), 1);
    // The second backend got the same request, with the gateway's key.
    assert_eq!(
        second.chat_requests()[0].header("authorization"),
        Some("Bearer sk-upstream")
    );

    let metrics = scrape(&client, &server).await;
    let first_label = first.addr().to_string();
    assert_eq!(
        metric(
            &metrics,
            "gateway_upstream_failovers_total",
            &[("backend", &first_label)]
        ),
        Some(1.0)
    );
}

// Paused time: the breaker keeps tokio's clock, so its open second passes without a real one.
#[tokio::test(start_paused = true)]
async fn the_breaker_trips_then_probes_and_recovers() {
    let first = start_mock().await;
    let second = start_mock().await;
    // Two failures, then the first backend answers again (its default replies).
    first.push_many([Reply::status(500), Reply::status(500)]);
    let pool = format!("{},{}", first.base_url(), second.base_url());
    let server = server(
        &pool,
        &[
            "--upstream-attempts",
            "1",
            "--breaker-failures",
            "2",
            "--breaker-open-seconds",
            "1",
        ],
    )
    .await;
    let client = tests::http_client();
    let first_label = first.addr().to_string();
    let state = |metrics: &str| {
        metric(
            metrics,
            "gateway_circuit_state",
            &[("backend", first_label.as_str())],
        )
    };
    let call = || async {
        let response = post_chat(&client, &server, None, &chat_body("hi")).await;
        assert_eq!(response.status(), 200);
    };

    // Two failures on the first backend, each answered by the second: the breaker opens.
    call().await;
    call().await;
    assert_eq!(
        (first.chat_requests().len(), second.chat_requests().len()),
        (2, 2)
    );
    assert_eq!(state(&scrape(&client, &server).await), Some(2.0));

    // While open, the first backend is skipped.
    call().await;
    assert_eq!(
        (first.chat_requests().len(), second.chat_requests().len()),
        (2, 3)
    );

    // Once the open period is over, one probe goes to the first backend; it succeeds, the
    // breaker closes, and traffic stays there.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    call().await;
    assert_eq!(
        (first.chat_requests().len(), second.chat_requests().len()),
        (3, 3)
    );
    assert_eq!(state(&scrape(&client, &server).await), Some(0.0));
    call().await;
    assert_eq!(
        (first.chat_requests().len(), second.chat_requests().len()),
        (4, 3)
    );

    let metrics = scrape(&client, &server).await;
    assert_eq!(
        metric(
            &metrics,
            "gateway_upstream_errors_total",
            &[("backend", &first_label), ("status", "500")]
        ),
        Some(2.0)
    );
}
