//! The cache's memory is bounded by entries and bytes, shared fairly between subscriptions, and
//! large prompts bypass it (security review, finding 6).

use mock_upstream::Reply;
use serde_json::{Value, json};
use tests::{
    TestServer,
    gateway::{chat_body, header, post_chat},
    start_with_mock,
};

const KEYS: &str = "alice=k-alice,bob=k-bob";

async fn cache_status(server: &TestServer, key: &str, body: &Value) -> String {
    let response = post_chat(&tests::http_client(), server, Some(key), body).await;
    assert_eq!(response.status(), 200);
    header(&response, "x-llm-cache-status").unwrap().to_owned()
}

/// A question no other numbered question is a paraphrase of (numbers must match to hit).
fn numbered(i: usize) -> Value {
    chat_body(&format!("What is stored in locker number {i}?"))
}

#[tokio::test]
async fn one_subscription_cannot_flush_another_by_entries() {
    let (mock, server) =
        start_with_mock(&["--subscription-keys", KEYS, "--cache-max-entries", "5"]).await;
    let alice = chat_body("Which port does the admin API listen on?");
    assert_eq!(cache_status(&server, "k-alice", &alice).await, "miss");
    for i in 0..12 {
        assert_eq!(cache_status(&server, "k-bob", &numbered(i)).await, "miss");
    }
    assert_eq!(cache_status(&server, "k-alice", &alice).await, "hit");
    // Bob paid with his own oldest entries, and keeps his newest.
    assert_eq!(cache_status(&server, "k-bob", &numbered(11)).await, "hit");
    assert_eq!(cache_status(&server, "k-bob", &numbered(0)).await, "miss");
    assert_eq!(mock.chat_requests().len(), 1 + 12 + 1);
}

#[tokio::test]
async fn one_subscription_cannot_flush_another_by_bytes() {
    let (mock, server) = start_with_mock(&[
        "--subscription-keys",
        KEYS,
        "--cache-max-mb",
        "1",
        "--tokens-per-minute",
        "100000000",
    ])
    .await;
    let alice = chat_body("Which port does the admin API listen on?");
    assert_eq!(cache_status(&server, "k-alice", &alice).await, "miss");
    // 200 answers of 8 KB are more than 1 MiB: bob's own oldest must go.
    let long_answer = "All of it. ".repeat(800);
    for i in 0..200 {
        mock.push(Reply::text(long_answer.clone()));
        assert_eq!(cache_status(&server, "k-bob", &numbered(i)).await, "miss");
    }
    assert_eq!(cache_status(&server, "k-alice", &alice).await, "hit");
    assert_eq!(cache_status(&server, "k-bob", &numbered(199)).await, "hit");
    assert_eq!(cache_status(&server, "k-bob", &numbered(0)).await, "miss");
}

#[tokio::test]
async fn prompts_over_the_size_cap_bypass_the_cache() {
    let (mock, server) = start_with_mock(&[
        "--subscription-keys",
        KEYS,
        "--cache-max-prompt-bytes",
        "1024",
    ])
    .await;
    let long = chat_body(&format!("Summarize this: {}", "lorem ipsum ".repeat(100)));
    assert_eq!(cache_status(&server, "k-alice", &long).await, "bypass");
    assert_eq!(cache_status(&server, "k-alice", &long).await, "bypass");
    let big_image = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", "A".repeat(4096))}}
    ]}]});
    assert_eq!(cache_status(&server, "k-alice", &big_image).await, "bypass");
    assert_eq!(
        mock.chat_requests().len(),
        3,
        "nothing above the cap was served"
    );
    let short = chat_body("What is a token budget?");
    assert_eq!(cache_status(&server, "k-alice", &short).await, "miss");
    assert_eq!(cache_status(&server, "k-alice", &short).await, "hit");
}
