//! Token budgets on the gateway: refusal before any upstream call, per-key budgets and the
//! refilling bucket, reconciling to real usage (streams too), no overshoot under concurrency in
//! strict mode, the expected reservation's concurrency and its overshoot bound, and
//! `Retry-After` in each configured format.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime},
};

use gateway_client::{Api, CallContext, Gateway, GatewayError, MemoryStore, StreamEvent};
use mcp_server::Settings;
use mock_upstream::{MockOptions, MockUpstream, Reply};
use serde_json::{Map, Value, json};
use tests::{
    TestServer,
    gateway::{
        assert_remaining, chat_body, concurrent_chats, header, header_u64, minute_headroom,
        post_chat, post_embeddings, start_keyed, streamed_chat_body, usage_report,
    },
    start_mock,
};

/// A refusal must leave this much of the minute, so the calls before it share one window.
const HEADROOM: Duration = Duration::from_secs(3);

/// A server in front of `mock` with a small budget and key `k-{name}` for subscription `name`
/// (and `k-{name}-other` for `{name}-other`).
async fn server(
    mock: &MockUpstream,
    name: &str,
    tokens_per_minute: u64,
    extra: &[&str],
) -> TestServer {
    let keys = format!("{name}=k-{name},{name}-other=k-{name}-other");
    let tpm = tokens_per_minute.to_string();
    let mut flags = vec!["--tokens-per-minute", &tpm, "--max-tokens-cap", "100"];
    flags.extend_from_slice(extra);
    start_keyed(&mock.base_url(), &keys, &flags).await
}

/// Spends most of a 300-token minute (a 200-token answer), then makes the call that no longer
/// fits; returns that refusal.
async fn refusal(format: &str, name: &str) -> reqwest::Response {
    let mock = start_mock().await;
    let server = server(&mock, name, 300, &["--retry-after-format", format]).await;
    let client = tests::http_client();
    let key = format!("k-{name}");
    minute_headroom(HEADROOM).await;
    mock.push(Reply::text("fine").with_usage(100, 100));
    let first = post_chat(&client, &server, Some(&key), &chat_body("hi")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header_u64(&first, "x-ratelimit-remaining-tokens"), 100);
    let refused = post_chat(&client, &server, Some(&key), &chat_body("hi")).await;
    // Refused before any upstream call.
    assert_eq!(mock.chat_requests().len(), 1);
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "x-ratelimit-remaining-tokens"), Some("0"));
    refused
}

async fn refusal_envelope(response: reqwest::Response) -> String {
    let retry_after = header(&response, "retry-after").unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token_budget_exceeded");
    assert!(body["error"]["message"].as_str().unwrap().contains("300"));
    retry_after
}

#[tokio::test]
async fn the_budget_refuses_before_any_upstream_call() {
    let response = refusal("seconds", "budget-refuse").await;
    let retry_after = refusal_envelope(response).await;
    // 300 tokens a minute refill five a second: the ~10 tokens the call lacks take seconds,
    // not the rest of a minute.
    let seconds: u64 = retry_after.parse().unwrap();
    assert!((1..=10).contains(&seconds), "{seconds}");
}

#[tokio::test]
async fn each_subscription_has_a_budget_of_its_own() {
    let mock = start_mock().await;
    let server = server(&mock, "budget-keys", 300, &[]).await;
    let client = tests::http_client();
    minute_headroom(HEADROOM).await;
    mock.push(Reply::text("fine").with_usage(100, 100));
    mock.push(Reply::text("fine").with_usage(100, 100));
    let spend = post_chat(&client, &server, Some("k-budget-keys"), &chat_body("hi")).await;
    assert_eq!(spend.status(), 200);
    let refused = post_chat(&client, &server, Some("k-budget-keys"), &chat_body("hi")).await;
    assert_eq!(refused.status(), 429);
    // The other subscription's minute is untouched.
    let other = post_chat(
        &client,
        &server,
        Some("k-budget-keys-other"),
        &chat_body("hi"),
    )
    .await;
    assert_eq!(other.status(), 200);
    assert_eq!(header_u64(&other, "x-ratelimit-remaining-tokens"), 100);
    assert_eq!(mock.chat_requests().len(), 2);
}

#[tokio::test]
async fn retry_after_as_an_http_date() {
    let retry_after = refusal_envelope(refusal("http-date", "budget-date").await).await;
    let at = httpdate::parse_http_date(&retry_after).unwrap();
    let now = SystemTime::now();
    assert!(
        at > now - Duration::from_secs(1) && at <= now + Duration::from_secs(11),
        "{retry_after}"
    );
}

#[tokio::test]
async fn retry_after_as_an_iso8601_timestamp() {
    let retry_after = refusal_envelope(refusal("iso8601", "budget-iso").await).await;
    // 2026-11-24T23:00:07Z: a whole-second UTC timestamp.
    assert_eq!(retry_after.len(), 20, "{retry_after}");
    assert_eq!(retry_after.as_bytes()[10], b'T', "{retry_after}");
    assert!(retry_after.ends_with('Z'), "{retry_after}");
}

#[tokio::test]
async fn a_call_bigger_than_the_whole_budget_is_refused_outright() {
    let mock = start_mock().await;
    let server = server(&mock, "budget-huge", 300, &[]).await;
    let client = tests::http_client();
    // Streams are not capped, so this one asks for more than a minute's budget.
    let mut body = streamed_chat_body("hi");
    body["max_tokens"] = json!(5000);
    let response = post_chat(&client, &server, Some("k-budget-huge"), &body).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_exceeds_budget");
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn usage_is_reconciled_to_what_the_upstream_reports() {
    let mock = start_mock().await;
    let server = server(&mock, "budget-reconcile", 1000, &["--admin-key", "admin"]).await;
    let client = tests::http_client();
    let key = Some("k-budget-reconcile");
    let began = std::time::Instant::now();

    // Reserved: the prompt plus an expected completion; used: 7 + 3.
    mock.push(Reply::text("ok").with_usage(7, 3));
    let first = post_chat(&client, &server, key, &chat_body("hi")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header_u64(&first, "x-tokens-consumed"), 10);
    assert_eq!(header_u64(&first, "x-ratelimit-remaining-tokens"), 990);

    // A stream is reconciled when it ends, to the usage of its last chunk.
    mock.push(Reply::stream(["Hel", "lo"]).with_usage(11, 4));
    let response = post_chat(&client, &server, key, &streamed_chat_body("hi")).await;
    assert_eq!(response.status(), 200);
    // At its start, the stream holds its reservation.
    assert!(header_u64(&response, "x-ratelimit-remaining-tokens") < 990);
    let text = response.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    let report = usage_report(&client, &server, "admin").await;
    let row = report["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == "budget-reconcile")
        .cloned()
        .unwrap();
    assert_eq!(row["prompt_tokens"], 7 + 11);
    assert_eq!(row["completion_tokens"], 3 + 4);

    // The next reservation sees both calls at their real size.
    mock.push(Reply::text("ok").with_usage(1, 1));
    let third = post_chat(&client, &server, key, &chat_body("hi")).await;
    assert_eq!(third.status(), 200);
    assert_remaining(
        header_u64(&third, "x-ratelimit-remaining-tokens"),
        1000 - 10 - 15 - 2,
        1000,
        began,
    );
}

#[tokio::test]
async fn fifty_concurrent_calls_never_overshoot_a_strict_budget() {
    // Slow enough that the calls overlap.
    let mock = MockUpstream::start(MockOptions {
        latency: Duration::from_millis(100),
        ..MockOptions::default()
    })
    .await
    .unwrap();
    let limit = 1000;
    let server = server(
        &mock,
        "budget-burst",
        limit,
        &["--budget-reservation", "strict"],
    )
    .await;
    let client = tests::http_client();
    minute_headroom(HEADROOM).await;
    // Each answer uses exactly its 100-token completion budget.
    for _ in 0..50 {
        mock.push(Reply::text("ok").with_usage(10, 100));
    }
    let calls = (0..50).map(|_| {
        let client = client.clone();
        let server = &server;
        async move {
            let response =
                post_chat(&client, server, Some("k-budget-burst"), &chat_body("hi")).await;
            let status = response.status().as_u16();
            let consumed =
                header(&response, "x-tokens-consumed").map(|v| v.parse::<u64>().unwrap());
            let code = if status == 200 {
                None
            } else {
                let body: Value = response.json().await.unwrap();
                body["error"]["code"].as_str().map(str::to_owned)
            };
            (status, consumed, code)
        }
    });
    let results = futures::future::join_all(calls).await;
    let admitted: Vec<u64> = results
        .iter()
        .filter(|(status, ..)| *status == 200)
        .map(|(_, consumed, _)| consumed.unwrap())
        .collect();
    for (status, _, code) in &results {
        assert!(
            *status == 200 || (*status == 429 && code.as_deref() == Some("token_budget_exceeded")),
            "{status} {code:?}"
        );
    }
    // One reservation: the prompt ("user hi" and framing, under 20 tokens) plus the 100 cap.
    let one_reservation = 120;
    let spent: u64 = admitted.iter().sum();
    assert!(!admitted.is_empty());
    assert!(admitted.len() < 50, "the budget admitted every call");
    assert!(
        spent <= limit + one_reservation,
        "{} calls spent {spent} tokens of {limit}",
        admitted.len()
    );
    // Refused calls never reached the upstream.
    assert_eq!(mock.chat_requests().len(), admitted.len());
}

/// A mock whose answers take long enough for concurrent calls to overlap, with `answers`
/// queued, each using `completion` tokens.
async fn slow_mock(answers: usize, completion: u64) -> MockUpstream {
    let mock = MockUpstream::start(MockOptions {
        latency: Duration::from_millis(300),
        ..MockOptions::default()
    })
    .await
    .unwrap();
    for _ in 0..answers {
        mock.push(Reply::text("ok").with_usage(12, completion));
    }
    mock
}

/// The reproduction: 40 concurrent short calls under the default 50,000 tokens a minute
/// and the default 2,000-token cap, where strict reservations fit only 25 at once.
#[tokio::test]
async fn forty_concurrent_short_calls_fit_where_strict_reservations_refuse() {
    let mock = slow_mock(80, 8).await;
    let expected = start_keyed(&mock.base_url(), "short=k-short", &[]).await;
    let results = concurrent_chats(&[&expected], "k-short", 40).await;
    assert!(
        results.iter().all(|(status, _)| *status == 200),
        "{results:?}"
    );
    assert_eq!(results.iter().map(|(_, used)| used).sum::<u64>(), 40 * 20);

    let strict = start_keyed(
        &mock.base_url(),
        "short=k-short",
        &["--budget-reservation", "strict"],
    )
    .await;
    let results = concurrent_chats(&[&strict], "k-short", 40).await;
    let refused = results.iter().filter(|(status, _)| *status == 429).count();
    assert!(refused >= 10, "strict mode refused only {refused}");
}

/// With more overshoot allowed, concurrency goes far beyond TOKENS_PER_MINUTE ÷ max_tokens.
#[tokio::test]
async fn a_larger_allowance_admits_concurrency_far_above_the_strict_limit() {
    let mock = slow_mock(100, 8).await;
    let server = start_keyed(
        &mock.base_url(),
        "many=k-many",
        &["--budget-overshoot-percent", "400"],
    )
    .await;
    // Learned first: this subscription's answers are short.
    concurrent_chats(&[&server], "k-many", 1).await;
    let results = concurrent_chats(&[&server], "k-many", 99).await;
    let admitted = results.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(admitted, 99, "{results:?}");
}

/// Answers that turn long all at once overshoot by no more than the allowance, and the
/// subscription pays it back by waiting.
#[tokio::test]
async fn a_burst_of_long_answers_is_held_to_the_overshoot_bound() {
    let (tpm, cap) = (5_000u64, 200u64);
    let mock = slow_mock(3, 5).await;
    for _ in 0..80 {
        mock.push(Reply::text("long").with_usage(12, cap));
    }
    let server = start_keyed(
        &mock.base_url(),
        "long=k-long",
        &["--tokens-per-minute", "5000", "--max-tokens-cap", "200"],
    )
    .await;
    // Three short answers are learned first.
    for _ in 0..3 {
        let results = concurrent_chats(&[&server], "k-long", 1).await;
        assert_eq!(results[0].0, 200);
    }
    let results = concurrent_chats(&[&server], "k-long", 80).await;
    let admitted: Vec<u64> = results
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, used)| *used)
        .collect();
    let spent: u64 = admitted.iter().sum::<u64>() + 3 * 17;
    // Bound: a minute's tokens, plus the 100% allowance, plus one call's prompt error.
    assert!(spent <= tpm * 2 + 50, "spent {spent}");
    assert!(admitted.len() < 80, "nothing was held back");
    // The debt is paid back: the next call waits.
    let next = concurrent_chats(&[&server], "k-long", 1).await;
    assert_eq!(next[0].0, 429, "{next:?}");
}

// ---------------------------------------------------------------------------------------------
// The gateway driven directly, with tokio's clock paused, for what depends on the minute.

fn gateway(mock: &MockUpstream, tokens_per_minute: u64) -> Gateway {
    let settings = Settings::from_args([
        "--openai-base-url",
        &mock.base_url(),
        "--tokens-per-minute",
        &tokens_per_minute.to_string(),
        "--max-tokens-cap",
        "100",
        "--semantic-cache",
        "off",
    ])
    .unwrap();
    Gateway::new(
        settings.gateway_config(),
        Arc::new(MemoryStore::new()),
        None,
    )
    .unwrap()
}

fn request(text: &str) -> Map<String, Value> {
    chat_body(text).as_object().unwrap().clone()
}

/// Runs `io` (calls over real loopback sockets) with the paused clock held still.
///
/// A paused clock jumps to the next timer whenever the runtime has nothing to run, which would
/// fire the gateway's timeouts while it waits on a socket. A running blocking task stops those
/// jumps (see `tokio::time::pause`), so time moves only when the test advances it.
async fn real_io<F: Future>(io: F) -> F::Output {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = tokio::task::spawn_blocking(move || {
        let _ = released.recv();
    });
    let output = io.await;
    drop(release);
    holder.await.unwrap();
    output
}

#[tokio::test(start_paused = true)]
async fn budgets_are_per_key_and_refill() {
    let mock = start_mock().await;
    let gateway = gateway(&mock, 300);
    let alice = CallContext::for_subscription("alice", Api::OpenAi);
    let bob = CallContext::for_subscription("bob", Api::OpenAi);
    for _ in 0..3 {
        mock.push(Reply::text("ok").with_usage(100, 100));
    }

    let first = real_io(gateway.chat(&alice, request("hi"))).await.unwrap();
    assert_eq!(first.remaining_tokens, 100);
    let refused = real_io(gateway.chat(&alice, request("hi")))
        .await
        .unwrap_err();
    let GatewayError::BudgetExceeded { retry_after, limit } = refused else {
        panic!("expected a budget refusal, got {refused:?}");
    };
    assert_eq!(limit, 300);
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60));
    assert_eq!(mock.chat_requests().len(), 1);

    // Bob's budget is his own.
    let bob_call = real_io(gateway.chat(&bob, request("hi"))).await.unwrap();
    assert_eq!(bob_call.remaining_tokens, 100);

    // Just before Retry-After, still refused; at it, admitted.
    tokio::time::advance(retry_after - Duration::from_millis(250)).await;
    let early = real_io(gateway.chat(&alice, request("hi"))).await;
    assert!(matches!(early, Err(GatewayError::BudgetExceeded { .. })));
    tokio::time::advance(Duration::from_millis(250)).await;
    let again = real_io(gateway.chat(&alice, request("hi"))).await.unwrap();
    assert_eq!(again.usage.total_tokens, 200);
    assert_eq!(mock.chat_requests().len(), 3);
    // That call ran past what it reserved, into debt; two minutes later all has drained.
    tokio::time::advance(Duration::from_secs(120)).await;
    mock.push(Reply::text("ok").with_usage(1, 1));
    let whole = real_io(gateway.chat(&alice, request("hi"))).await.unwrap();
    assert_eq!(whole.remaining_tokens, 298);
}

#[tokio::test(start_paused = true)]
async fn streams_and_whole_calls_reconcile_exactly() {
    let mock = start_mock().await;
    let gateway = gateway(&mock, 1000);
    let carol = CallContext::for_subscription("carol", Api::OpenAi);

    mock.push(Reply::text("ok").with_usage(7, 3));
    let whole = real_io(gateway.chat(&carol, request("hi"))).await.unwrap();
    assert_eq!(whole.usage.total_tokens, 10);
    assert_eq!(whole.remaining_tokens, 990);

    mock.push(Reply::stream(["a", "b", "c"]).with_usage(20, 30));
    let events = real_io(async {
        use futures::StreamExt;
        let stream = gateway.chat_stream(&carol, request("hi")).await.unwrap();
        // While it runs, the stream holds its reservation.
        assert!(stream.remaining_tokens < 990);
        stream.collect::<Vec<_>>().await
    })
    .await;
    let Some(Ok(StreamEvent::Done { usage })) = events.last() else {
        panic!("the stream did not end well: {events:?}");
    };
    assert_eq!(usage.total_tokens, 50);

    mock.push(Reply::text("ok").with_usage(1, 1));
    let after = real_io(gateway.chat(&carol, request("hi"))).await.unwrap();
    assert_eq!(after.remaining_tokens, 1000 - 10 - 50 - 2);
}

#[tokio::test]
async fn budgets_count_embeddings_too() {
    let mock = start_mock().await;
    let server = server(&mock, "budget-embed", 1000, &[]).await;
    let client = tests::http_client();
    minute_headroom(HEADROOM).await;
    mock.push_embeddings(Reply::text("unused").with_usage(40, 0));
    let response = post_embeddings(
        &client,
        &server,
        Some("k-budget-embed"),
        &json!({"input": "semantic caching"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header_u64(&response, "x-tokens-consumed"), 40);
    assert_eq!(header_u64(&response, "x-ratelimit-remaining-tokens"), 960);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"][0]["object"], "embedding");
}

/// Once long answers are what a subscription gets, they are reserved in full: a burst is held to
/// the budget as in strict mode.
#[tokio::test(start_paused = true)]
async fn learned_long_answers_are_reserved_in_full() {
    let mock = start_mock().await;
    let gateway = gateway(&mock, 1000);
    let dave = CallContext::for_subscription("dave", Api::OpenAi);
    for _ in 0..20 {
        mock.push(Reply::text("long").with_usage(10, 100));
    }
    let first = real_io(gateway.chat(&dave, request("hi"))).await.unwrap();
    assert_eq!(first.usage.total_tokens, 110);
    let burst = (0..19).map(|_| gateway.chat(&dave, request("hi")));
    let results = real_io(futures::future::join_all(burst)).await;
    let spent: u64 = results
        .iter()
        .filter_map(|result| result.as_ref().ok())
        .map(|outcome| outcome.usage.total_tokens)
        .sum();
    // Each call reserved its whole 100-token cap: only the prompt counts can be off.
    assert!(spent + 110 <= 1000 + 20, "spent {spent}");
    assert!(results.iter().any(Result::is_err));
}
