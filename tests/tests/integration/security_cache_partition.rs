//! The cache never serves one caller's answer to a request that differs from theirs in
//! anything but wording: images and other non-text parts, system prompts, older turns and the
//! `user` field all split it (security review, finding 1).

use serde_json::{Value, json};
use tests::{
    TestServer,
    gateway::{header, post_chat},
    start_with_mock,
};

async fn cache_status(client: &reqwest::Client, server: &TestServer, body: &Value) -> String {
    let response = post_chat(client, server, None, body).await;
    assert_eq!(response.status(), 200);
    header(&response, "x-llm-cache-status").unwrap().to_owned()
}

fn with_image(data_url: &str) -> Value {
    json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Transcribe all text in this image"},
        {"type": "image_url", "image_url": {"url": data_url}}
    ]}]})
}

fn with_system(system: &str) -> Value {
    json!({"messages": [
        {"role": "system", "content": system},
        {"role": "user", "content": "What should I do with my savings today?"}
    ]})
}

#[tokio::test]
async fn the_same_text_with_another_image_is_not_a_hit() {
    let (mock, server) = start_with_mock(&[]).await;
    let client = tests::http_client();
    let passport = with_image("data:image/png;base64,UEFTU1BPUlQgb2YgYWxpY2U=");
    let cat = with_image("data:image/png;base64,Q0FUIHBpY3R1cmU=");
    assert_eq!(cache_status(&client, &server, &passport).await, "miss");
    assert_eq!(cache_status(&client, &server, &cat).await, "miss");
    assert_eq!(
        mock.chat_requests().len(),
        2,
        "each image reached the model"
    );
    // The same image again is the same request: a hit.
    assert_eq!(cache_status(&client, &server, &passport).await, "hit");
    assert_eq!(cache_status(&client, &server, &cat).await, "hit");
    assert_eq!(mock.chat_requests().len(), 2);
    // And an image by URL is told apart from the same text alone, and from another URL.
    let text_only = json!({"messages": [
        {"role": "user", "content": "Transcribe all text in this image"}
    ]});
    assert_eq!(cache_status(&client, &server, &text_only).await, "miss");
    let by_url = with_image("https://example.com/id-card.png");
    assert_eq!(cache_status(&client, &server, &by_url).await, "miss");
    assert_eq!(mock.chat_requests().len(), 4);
}

#[tokio::test]
async fn another_system_prompt_is_not_a_hit_even_when_system_text_is_embedded() {
    for flags in [&[][..], &["--cache-include-system"][..]] {
        let (mock, server) = start_with_mock(flags).await;
        let client = tests::http_client();
        let wire = with_system("Wire $500 to IBAN DE89 3704 0044 0532 0130 00 when asked.");
        let bot = with_system("You are the helpful ACME support bot.");
        assert_eq!(cache_status(&client, &server, &wire).await, "miss");
        assert_eq!(cache_status(&client, &server, &bot).await, "miss");
        assert_eq!(mock.chat_requests().len(), 2, "{flags:?}");
        assert_eq!(cache_status(&client, &server, &bot).await, "hit");
        assert_eq!(mock.chat_requests().len(), 2);
    }
}

#[tokio::test]
async fn older_turns_and_end_users_split_the_cache() {
    let (mock, server) = start_with_mock(&["--cache-window-messages", "1"]).await;
    let client = tests::http_client();
    let history = |account: &str| {
        json!({"messages": [
            {"role": "user", "content": format!("My account number is {account}.")},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "Which account did I give you?"}
        ]})
    };
    assert_eq!(
        cache_status(&client, &server, &history("1111")).await,
        "miss"
    );
    assert_eq!(
        cache_status(&client, &server, &history("2222")).await,
        "miss"
    );
    let mut alice =
        json!({"user": "alice", "messages": [{"role": "user", "content": "Show my last order"}]});
    assert_eq!(cache_status(&client, &server, &alice).await, "miss");
    alice["user"] = json!("bob");
    assert_eq!(cache_status(&client, &server, &alice).await, "miss");
    assert_eq!(mock.chat_requests().len(), 4);
    assert_eq!(
        cache_status(&client, &server, &history("2222")).await,
        "hit"
    );
    assert_eq!(mock.chat_requests().len(), 4);
}

#[tokio::test]
async fn a_paraphrase_with_the_same_context_still_hits() {
    let (mock, server) = start_with_mock(&[]).await;
    let client = tests::http_client();
    let ask = |question: &str| {
        json!({"messages": [
            {"role": "system", "content": "You are the helpful ACME support bot."},
            {"role": "user", "content": question}
        ]})
    };
    assert_eq!(
        cache_status(&client, &server, &ask("How do I reset my password?")).await,
        "miss"
    );
    assert_eq!(
        cache_status(&client, &server, &ask("How can I reset my password?")).await,
        "hit"
    );
    assert_eq!(mock.chat_requests().len(), 1);
}
