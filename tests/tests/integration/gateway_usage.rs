//! What the gateway reports: the Prometheus series of tokens, refusals and upstream trouble, and
//! the `/admin/usage` chargeback report, each matching the calls made.
//!
//! The Prometheus registry is shared by every test in this process, so each test uses
//! subscription names (and mock upstreams, whose ports label backends) of its own.

use mock_upstream::{MockUpstream, Reply};
use serde_json::{Value, json};
use tests::{
    TestServer,
    gateway::{
        chat_body, metric, minute_headroom, post_chat, post_embeddings, scrape, start_keyed,
        streamed_chat_body,
    },
    start_mock,
};

/// A server for these subscription keys, with an admin key and a price for the mock's models.
async fn server(mock: &MockUpstream, keys: &str, extra: &[&str]) -> TestServer {
    let mut flags = vec![
        "--admin-key",
        "admin-secret",
        "--model-prices",
        "gpt-4o-mini=1000/2000,text-embedding-3-small=500/0",
    ];
    flags.extend_from_slice(extra);
    start_keyed(&mock.base_url(), keys, &flags).await
}

async fn usage(
    client: &reqwest::Client,
    server: &TestServer,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = client.get(server.url("/admin/usage"));
    if let Some(key) = key {
        request = request.header("ocp-apim-subscription-key", key);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn token_series_match_the_calls_made() {
    let mock = start_mock().await;
    let server = server(&mock, "tokens-a=ka,tokens-b=kb", &[]).await;
    let client = tests::http_client();
    mock.push(Reply::text("one").with_usage(100, 50));
    mock.push(Reply::stream(["tw", "o"]).with_usage(30, 20));
    mock.push(Reply::text("three").with_usage(10, 5));
    mock.push_embeddings(Reply::text("unused").with_usage(12, 0));

    assert_eq!(
        post_chat(&client, &server, Some("ka"), &chat_body("hi"))
            .await
            .status(),
        200
    );
    let response = post_chat(&client, &server, Some("ka"), &streamed_chat_body("hi")).await;
    assert!(response.text().await.unwrap().contains("[DONE]"));
    assert_eq!(
        post_chat(&client, &server, Some("kb"), &chat_body("hi"))
            .await
            .status(),
        200
    );
    let embeddings =
        post_embeddings(&client, &server, Some("kb"), &json!({"input": "hello"})).await;
    assert_eq!(embeddings.status(), 200);

    let metrics = scrape(&client, &server).await;
    let tokens = |subscription: &str, kind: &str, operation: &str| {
        metric(
            &metrics,
            "gen_ai_client_token_usage_sum",
            &[
                ("subscription", subscription),
                ("gen_ai_token_type", kind),
                ("gen_ai_operation_name", operation),
            ],
        )
    };
    assert_eq!(tokens("tokens-a", "input", "chat"), Some(130.0));
    assert_eq!(tokens("tokens-a", "output", "chat"), Some(70.0));
    assert_eq!(tokens("tokens-b", "input", "chat"), Some(10.0));
    assert_eq!(tokens("tokens-b", "output", "chat"), Some(5.0));
    assert_eq!(tokens("tokens-b", "input", "embeddings"), Some(12.0));
    assert_eq!(tokens("tokens-b", "output", "embeddings"), None);
    assert_eq!(
        metric(
            &metrics,
            "gen_ai_client_token_usage_count",
            &[
                ("subscription", "tokens-a"),
                ("gen_ai_token_type", "input"),
                ("gen_ai_request_model", "gpt-4o-mini"),
                ("api", "openai"),
            ],
        ),
        Some(2.0)
    );
    // Durations are recorded per call, labelled by outcome.
    assert_eq!(
        metric(
            &metrics,
            "gen_ai_client_operation_duration_seconds_count",
            &[
                ("subscription", "tokens-a"),
                ("gen_ai_operation_name", "chat")
            ],
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn the_usage_report_prices_each_subscription() {
    let mock = start_mock().await;
    let server = server(&mock, "report-a=ra,report-b=rb", &[]).await;
    let client = tests::http_client();
    mock.push(Reply::text("one").with_usage(100, 50));
    mock.push(Reply::text("two").with_usage(30, 20));
    mock.push(Reply::text("three").with_usage(10, 5));
    for key in ["ra", "ra", "rb"] {
        let response = post_chat(&client, &server, Some(key), &chat_body("hi")).await;
        assert_eq!(response.status(), 200);
    }

    let response = usage(&client, &server, Some("admin-secret")).await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert!(report["period_start"].as_str().unwrap() < report["period_end"].as_str().unwrap());
    let rows = report["subscriptions"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report}");
    // 1000 and 2000 USD per million tokens: 130 × 0.001 + 70 × 0.002.
    assert_eq!(rows[0]["name"], "report-a");
    assert_eq!(
        (
            &rows[0]["prompt_tokens"],
            &rows[0]["completion_tokens"],
            &rows[0]["total_tokens"]
        ),
        (&json!(130), &json!(70), &json!(200))
    );
    assert!((rows[0]["cost_usd"].as_f64().unwrap() - 0.27).abs() < 1e-9);
    assert_eq!(rows[1]["name"], "report-b");
    assert_eq!(rows[1]["total_tokens"], 15);
    assert!((rows[1]["cost_usd"].as_f64().unwrap() - 0.02).abs() < 1e-9);

    // A subscription key sees its own row only.
    let own: Value = usage(&client, &server, Some("rb"))
        .await
        .json()
        .await
        .unwrap();
    let own_rows = own["subscriptions"].as_array().unwrap();
    assert_eq!(own_rows.len(), 1);
    assert_eq!(own_rows[0]["name"], "report-b");
    assert_eq!(own_rows[0]["prompt_tokens"], 10);

    // No key, or a wrong one, sees nothing.
    let missing = usage(&client, &server, None).await;
    assert_eq!(missing.status(), 401);
    let wrong = usage(&client, &server, Some("admin-secre")).await;
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_subscription_key");
}

#[tokio::test]
async fn refusals_and_upstream_trouble_are_counted() {
    let mock = start_mock().await;
    let server = server(
        &mock,
        "trouble-a=ta",
        &[
            "--tokens-per-minute",
            "300",
            "--max-tokens-cap",
            "100",
            "--upstream-backoff-ms",
            "10",
        ],
    )
    .await;
    let client = tests::http_client();
    minute_headroom(std::time::Duration::from_secs(3)).await;
    // A 500, then a retry that spends most of the minute's budget.
    mock.push(Reply::status(500));
    mock.push(Reply::text("ok").with_usage(100, 100));
    let first = post_chat(&client, &server, Some("ta"), &chat_body("hi")).await;
    assert_eq!(first.status(), 200);
    for _ in 0..2 {
        let refused = post_chat(&client, &server, Some("ta"), &chat_body("hi")).await;
        assert_eq!(refused.status(), 429);
    }
    let mut too_big = streamed_chat_body("hi");
    too_big["max_tokens"] = json!(1000);
    let refused = post_chat(&client, &server, Some("ta"), &too_big).await;
    assert_eq!(refused.status(), 422);

    let metrics = scrape(&client, &server).await;
    let refusals = |limit: &str| {
        metric(
            &metrics,
            "gateway_budget_refusals_total",
            &[("subscription", "trouble-a"), ("limit", limit)],
        )
    };
    assert_eq!(refusals("tokens_per_minute"), Some(2.0));
    assert_eq!(refusals("exceeds_budget"), Some(1.0));
    let backend = mock.addr().to_string();
    assert_eq!(
        metric(
            &metrics,
            "gateway_upstream_errors_total",
            &[("backend", &backend), ("status", "500")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "gateway_upstream_retries_total",
            &[("backend", &backend)]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "gateway_circuit_state", &[("backend", &backend)]),
        Some(0.0)
    );
}
