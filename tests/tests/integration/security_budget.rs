//! No call spends more than the budget had left plus its own reservation (security review,
//! finding 2): every limit field is governed, streams have a ceiling enforced while they run,
//! `n` multiplies the reservation, and every choice of an answer is counted. The servers here
//! reserve strictly (`BUDGET_RESERVATION=strict`), where that bound is exact; the expected
//! reservation's bound is in `gateway_budget`.

use std::time::{Duration, Instant};

use gateway_client::tokens;
use mock_upstream::{MockUpstream, Reply};
use serde_json::{Value, json};
use tests::{
    TestServer,
    gateway::{
        assert_remaining, chat_body, header, header_u64, minute_headroom, post_chat, sse_data,
        start_keyed, streamed_chat_body, usage_report,
    },
    redis::RedisServer,
    start_mock,
};

const HEADROOM: Duration = Duration::from_secs(5);
/// Far more than any limit here: the 60,000 tokens of the review's reproduction.
const FLOOD: usize = 60_000;

/// The usage row of `name`: (prompt, completion) tokens.
async fn booked(client: &reqwest::Client, server: &TestServer, name: &str) -> (u64, u64) {
    let report = usage_report(client, server, "admin").await;
    report["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == name)
        .map_or((0, 0), |row| {
            (
                row["prompt_tokens"].as_u64().unwrap(),
                row["completion_tokens"].as_u64().unwrap(),
            )
        })
}

/// Streams `body` to the end; returns the data events and the remaining-tokens header, which a
/// stream reports at its start, after its reservation.
async fn stream(
    client: &reqwest::Client,
    server: &TestServer,
    key: &str,
    body: &Value,
) -> (Vec<String>, u64) {
    let response = post_chat(client, server, Some(key), body).await;
    assert_eq!(response.status(), 200);
    let remaining = header_u64(&response, "x-ratelimit-remaining-tokens");
    (sse_data(&response.text().await.unwrap()), remaining)
}

/// The completion tokens the client received (each flood delta is one token).
fn delivered_tokens(events: &[String]) -> u64 {
    events
        .iter()
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter(|chunk| chunk.pointer("/choices/0/delta/content") == Some(&json!(" word")))
        .count() as u64
}

fn ended_over_limit(events: &[String]) -> bool {
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    last["error"]["code"] == "completion_limit_exceeded"
        && !events.iter().any(|data| data == "[DONE]")
}

/// A runaway upstream stream (no `max_tokens` asked for) is cut off near the default limit,
/// the upstream connection is closed, and only what was produced is booked: never more than
/// the minute had left plus this call's reservation.
async fn runaway_stream_is_cut_off(server: &TestServer, mock: &MockUpstream, name: &str) {
    let client = tests::http_client();
    let key = format!("k-{name}");
    minute_headroom(HEADROOM).await;
    let began = Instant::now();
    mock.push(Reply::flood(" word", FLOOD));
    let (events, remaining) = stream(&client, server, &key, &streamed_chat_body("hi")).await;
    let left_before = 5_000;
    let reserved = left_before - remaining;
    assert!((2_000..2_100).contains(&reserved), "reserved {reserved}");
    assert!(ended_over_limit(&events), "{:?}", events.last());
    let delivered = delivered_tokens(&events);
    assert!(
        (1_900..=2_100).contains(&delivered),
        "{delivered} delivered"
    );
    // The upstream was told the limit, and its connection was closed when it ran past it.
    assert_eq!(mock.chat_requests()[0].body["max_tokens"], 2000);
    tokio::time::timeout(Duration::from_secs(10), mock.dropped_streams_reach(1))
        .await
        .expect("the upstream stream was not closed");

    let (prompt, completion) = booked(&client, server, name).await;
    assert!((2_000..=2_100).contains(&completion), "{completion} booked");
    assert!(
        prompt + completion <= left_before + reserved,
        "spent {} with {left_before} left and {reserved} reserved",
        prompt + completion
    );
    // What is left of the minute is what the call really spent, not 60,000 tokens' worth.
    mock.push(Reply::text("ok").with_usage(1, 1));
    let next = post_chat(&client, server, Some(&key), &chat_body("hi")).await;
    assert_eq!(next.status(), 200);
    assert_remaining(
        header_u64(&next, "x-ratelimit-remaining-tokens"),
        left_before - prompt - completion - 2,
        5_000,
        began,
    );
}

#[tokio::test]
async fn a_runaway_stream_is_cut_off_near_its_limit_and_booked_as_such() {
    let mock = start_mock().await;
    let name = "runaway";
    let server = start_keyed(
        &mock.base_url(),
        "runaway=k-runaway",
        &[
            "--tokens-per-minute",
            "5000",
            "--budget-reservation",
            "strict",
            "--token-quota",
            "20000",
            "--admin-key",
            "admin",
        ],
    )
    .await;
    runaway_stream_is_cut_off(&server, &mock, name).await;
}

#[tokio::test]
async fn a_runaway_stream_is_cut_off_on_redis_too() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = start_mock().await;
    let url = redis.url();
    let server = start_keyed(
        &mock.base_url(),
        "runaway-redis=k-runaway-redis",
        &[
            "--redis-url",
            &url,
            "--tokens-per-minute",
            "5000",
            "--budget-reservation",
            "strict",
            "--token-quota",
            "20000",
            "--admin-key",
            "admin",
        ],
    )
    .await;
    runaway_stream_is_cut_off(&server, &mock, "runaway-redis").await;
}

#[tokio::test]
async fn a_stream_asking_for_more_than_its_cap_is_capped_and_held_to_it() {
    let mock = start_mock().await;
    let server = start_keyed(
        &mock.base_url(),
        "long=k-long",
        &["--max-stream-tokens-cap", "3000", "--admin-key", "admin"],
    )
    .await;
    let client = tests::http_client();
    mock.push(Reply::flood(" word", FLOOD));
    let mut body = streamed_chat_body("hi");
    body["max_completion_tokens"] = json!(100_000);
    let (events, _) = stream(&client, &server, "k-long", &body).await;
    assert_eq!(mock.chat_requests()[0].body["max_completion_tokens"], 3000);
    assert!(ended_over_limit(&events));
    let delivered = delivered_tokens(&events);
    assert!(
        (2_900..=3_150).contains(&delivered),
        "{delivered} delivered"
    );
    let (_, completion) = booked(&client, &server, "long").await;
    assert!((3_000..=3_150).contains(&completion), "{completion} booked");

    // A stream that keeps to its limit ends normally.
    mock.push(Reply::flood(" word", 50));
    let mut body = streamed_chat_body("hi");
    body["max_tokens"] = json!(50);
    let (events, _) = stream(&client, &server, "k-long", &body).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(delivered_tokens(&events), 50);
}

#[tokio::test]
async fn conflicting_limit_fields_are_refused_and_agreeing_ones_capped() {
    let mock = start_mock().await;
    let server = start_keyed(&mock.base_url(), "limits=k-limits", &[]).await;
    let client = tests::http_client();
    for (streamed, conflicting) in [
        (
            false,
            json!({"max_completion_tokens": 10, "max_tokens": 40000}),
        ),
        (true, json!({"max_tokens": 10, "max_output_tokens": 40000})),
        (false, json!({"max_tokens": -1})),
        (false, json!({"max_tokens": "lots"})),
    ] {
        let mut body = chat_body("hi");
        for (field, value) in conflicting.as_object().unwrap() {
            body[field] = value.clone();
        }
        body["stream"] = json!(streamed);
        let response = post_chat(&client, &server, Some("k-limits"), &body).await;
        assert_eq!(response.status(), 400, "{conflicting}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_request");
    }
    assert!(
        mock.chat_requests().is_empty(),
        "nothing reached the upstream"
    );

    let mut agreeing = chat_body("hi");
    agreeing["max_tokens"] = json!(40000);
    agreeing["max_completion_tokens"] = json!(40000);
    let response = post_chat(&client, &server, Some("k-limits"), &agreeing).await;
    assert_eq!(response.status(), 200);
    let sent = &mock.chat_requests()[0].body;
    assert_eq!(
        (&sent["max_tokens"], &sent["max_completion_tokens"]),
        (&json!(2000), &json!(2000))
    );
}

#[tokio::test]
async fn several_answers_reserve_for_each() {
    let mock = start_mock().await;
    let server = start_keyed(
        &mock.base_url(),
        "choices=k-choices,single=k-single",
        &[
            "--tokens-per-minute",
            "1000",
            "--max-tokens-cap",
            "100",
            "--budget-reservation",
            "strict",
        ],
    )
    .await;
    let client = tests::http_client();
    minute_headroom(HEADROOM).await;
    let streamed = |n: u64| {
        let mut body = streamed_chat_body("hi");
        body["n"] = json!(n);
        body
    };
    let (_, one) = stream(&client, &server, "k-single", &streamed(1)).await;
    let (_, three) = stream(&client, &server, "k-choices", &streamed(3)).await;
    // Same prompt, so the difference is two more answers of up to 100 tokens each.
    assert_eq!(one - three, 200, "n=1 left {one}, n=3 left {three}");

    // Ten answers of up to 100 tokens can never fit a 1,000-token minute.
    let mut ten = chat_body("hi");
    ten["n"] = json!(10);
    let response = post_chat(&client, &server, Some("k-choices"), &ten).await;
    assert_eq!(response.status(), 422);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "request_exceeds_budget");
    for bad in [json!(0), json!(129), json!(2.5)] {
        let mut body = chat_body("hi");
        body["n"] = bad.clone();
        let response = post_chat(&client, &server, Some("k-choices"), &body).await;
        assert_eq!(response.status(), 400, "n={bad}");
    }
    assert_eq!(mock.chat_requests().len(), 2);
}

/// Two interleaved choices, each ending on its own, with no usage from the upstream.
fn two_choice_stream() -> Reply {
    let chunk = |index: u64, delta: Value, finish: Value| {
        json!({"id": "chatcmpl-n2", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
               "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    Reply::RawSse(vec![
        chunk(
            0,
            json!({"role": "assistant", "content": "Red apples"}),
            Value::Null,
        ),
        chunk(
            1,
            json!({"role": "assistant", "content": "Blue skies over"}),
            Value::Null,
        ),
        chunk(1, json!({"content": " the quiet harbour"}), Value::Null),
        chunk(0, json!({}), json!("stop")),
        chunk(1, json!({}), json!("stop")),
        "[DONE]".to_owned(),
    ])
}

#[tokio::test]
async fn every_choice_of_a_stream_is_relayed_and_counted_and_none_is_cached() {
    let mock = start_mock().await;
    let server = tests::start_with_model(
        &mock.base_url(),
        &["--subscription-keys", "n2=k-n2", "--admin-key", "admin"],
    )
    .await;
    let client = tests::http_client();
    let mut body = streamed_chat_body("Describe two colours");
    body["n"] = json!(2);
    for round in 0..2 {
        mock.push(two_choice_stream());
        let response = post_chat(&client, &server, Some("k-n2"), &body).await;
        assert_eq!(header(&response, "x-llm-cache-status"), Some("bypass"));
        let events = sse_data(&response.text().await.unwrap());
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{events:?}"
        );
        let indexes: Vec<u64> = events
            .iter()
            .filter_map(|data| serde_json::from_str::<Value>(data).ok())
            .filter_map(|chunk| chunk.pointer("/choices/0/index").and_then(Value::as_u64))
            .collect();
        assert_eq!(indexes, [0, 1, 1, 0, 1]);
        assert_eq!(mock.chat_requests().len(), round + 1, "n>1 is never a hit");
    }
    let each = tokens::count("gpt-4o-mini", "Red apples")
        + tokens::count("gpt-4o-mini", "Blue skies over the quiet harbour");
    let (_, completion) = booked(&client, &server, "n2").await;
    assert!(
        completion >= 2 * each,
        "{completion} booked for two calls of {each}"
    );
}

#[tokio::test]
async fn every_choice_of_a_whole_answer_is_counted_without_usage() {
    let mock = start_mock().await;
    let server = start_keyed(&mock.base_url(), "n2w=k-n2w", &[]).await;
    let client = tests::http_client();
    let long = "A rather long second answer that uses many more tokens than the first one does.";
    mock.push(Reply::raw_json(json!({
        "id": "chatcmpl-n2w", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Short."}, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": long}, "finish_reason": "stop"}
        ]
    })));
    let mut body = chat_body("hi");
    body["n"] = json!(2);
    let response = post_chat(&client, &server, Some("k-n2w"), &body).await;
    assert_eq!(response.status(), 200);
    let consumed = header_u64(&response, "x-tokens-consumed");
    assert!(
        consumed > tokens::count("gpt-4o-mini", long),
        "{consumed} consumed"
    );
}
