//! Text the tokenizer cannot take whole: tiktoken-rs panics on a run of about a million spaces
//! (its regex engine's error, unwrapped), which cut the client's connection without an answer.
//! Every route that counts tokens answers such a request, and bills it.

use serde_json::{Value, json};
use tests::{
    gateway::{post_json, start_keyed, usage_report},
    start_mock,
};

const KEY: &str = "key-long-spaces";

fn spaces() -> String {
    format!("Say hi.{}Thanks.", " ".repeat(1_000_000))
}

#[tokio::test]
async fn a_million_spaces_are_answered_on_every_counting_route() {
    let mock = start_mock().await;
    let server = start_keyed(
        &mock.base_url(),
        &format!("spaces={KEY}"),
        // A million spaces are tens of thousands of tokens: above the default budget.
        &[
            "--admin-key",
            "admin-spaces",
            "--tokens-per-minute",
            "100000000",
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let text = spaces();
    let requests: [(&str, Value); 5] = [
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": text}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": text}], "stream": true}),
        ),
        ("/v1/responses", json!({"input": text})),
        (
            "/v1/messages",
            json!({"model": "gpt-4o-mini", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}),
        ),
        ("/v1/embeddings", json!({"input": text})),
    ];
    for (path, body) in &requests {
        let response = post_json(&client, &server, path, Some(KEY), body).await;
        let status = response.status();
        // The whole body arrives: a panic would have cut it.
        let answer = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "{path}: {}", &answer[..answer.len().min(300)]);
        assert!(!answer.is_empty(), "{path}");
    }
    let report = usage_report(&client, &server, "admin-spaces").await;
    let billed: u64 = report["subscriptions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["name"] == "spaces")
        .filter_map(|row| row["total_tokens"].as_u64())
        .sum();
    assert!(billed > 0, "{report}");
}
