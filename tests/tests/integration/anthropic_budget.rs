//! Budgets on `/v1/messages` as on chat completions: many concurrent calls never spend past the
//! per-minute budget (plus at most one reservation), refused calls never reach the upstream, and
//! what is charged is the upstream's usage.

use std::time::Duration;

use mock_upstream::{MockOptions, MockUpstream, Reply};
use serde_json::{Value, json};
use tests::{gateway, http_client};

#[tokio::test]
async fn concurrent_messages_never_overshoot_the_budget() {
    // Slow enough that the calls overlap.
    let mock = MockUpstream::start(MockOptions {
        latency: Duration::from_millis(100),
        ..MockOptions::default()
    })
    .await
    .unwrap();
    let limit = 1000;
    let server = gateway::start_keyed(
        &mock.base_url(),
        "messages-burst=k-burst",
        &[
            "--tokens-per-minute",
            "1000",
            "--max-tokens-cap",
            "100",
            "--admin-key",
            "burst-admin",
            // The strict bound: every call reserves its whole allowance.
            "--budget-reservation",
            "strict",
        ],
    )
    .await;
    let client = http_client();
    gateway::minute_headroom(Duration::from_secs(3)).await;
    // Each answer uses exactly its 100-token completion budget.
    for _ in 0..40 {
        mock.push(Reply::text("ok").with_usage(10, 100));
    }
    let body = json!({"model": "claude-test", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]});
    let calls = (0..40).map(|_| {
        let (client, server, body) = (client.clone(), &server, &body);
        async move {
            let response = client
                .post(server.url("/v1/messages"))
                .header("x-api-key", "k-burst")
                .json(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let consumed =
                gateway::header(&response, "x-tokens-consumed").map(|v| v.parse::<u64>().unwrap());
            let body: Value = response.json().await.unwrap();
            (status, consumed, body)
        }
    });
    let results = futures::future::join_all(calls).await;
    let mut admitted = Vec::new();
    for (status, consumed, body) in &results {
        match status {
            200 => admitted.push(consumed.unwrap()),
            429 => assert_eq!(body["error"]["type"], "rate_limit_error", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    // One reservation: the prompt (under 20 tokens) plus the 100 cap.
    let one_reservation = 120;
    let spent: u64 = admitted.iter().sum();
    assert!(
        !admitted.is_empty() && admitted.len() < 40,
        "{} admitted",
        admitted.len()
    );
    assert!(
        spent <= limit + one_reservation,
        "{} calls spent {spent} of {limit}",
        admitted.len()
    );
    assert!(admitted.iter().all(|consumed| *consumed == 110));
    assert_eq!(mock.chat_requests().len(), admitted.len());
    let report = gateway::usage_report(&client, &server, "burst-admin").await;
    assert_eq!(
        report["subscriptions"][0]["total_tokens"].as_u64().unwrap(),
        spent
    );
}
