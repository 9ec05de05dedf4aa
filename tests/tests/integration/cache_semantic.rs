//! The semantic cache through the real gateway pipeline: partitions, what is never cached,
//! streamed hits, and the client's opt-outs. The labelled sets' figures and floors are in
//! `cache_eval_sets`.

use std::{sync::Arc, time::Duration};

use gateway_client::{
    Api, CallContext,
    clock::Clock,
    semantic::{BuiltinEmbedder, CacheConfig, SemanticCache},
};
use mock_upstream::Reply;
use serde_json::{Value, json};
use tests::{
    TestServer,
    gateway::{
        chat_body, content_type, header, post_chat, sse_data, streamed_chat_body, streamed_text,
    },
    raw_completion, start_with_mock,
};

async fn ask(client: &reqwest::Client, server: &TestServer, body: &Value) -> (String, Value) {
    let response = post_chat(client, server, None, body).await;
    assert_eq!(response.status(), 200);
    let status = header(&response, "x-llm-cache-status").unwrap().to_owned();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn subscriptions_do_not_see_each_others_answers() {
    let (mock, server) = start_with_mock(&["--subscription-keys", "team-a=ka,team-b=kb"]).await;
    let client = tests::http_client();
    let body = chat_body("What is a deployment slot?");
    let a = post_chat(&client, &server, Some("ka"), &body).await;
    assert_eq!(header(&a, "x-llm-cache-status"), Some("miss"));
    let b = post_chat(&client, &server, Some("kb"), &body).await;
    assert_eq!(header(&b, "x-llm-cache-status"), Some("miss"));
    let a_again = post_chat(&client, &server, Some("ka"), &body).await;
    assert_eq!(header(&a_again, "x-llm-cache-status"), Some("hit"));
    assert_eq!(mock.chat_requests().len(), 2);
}

#[tokio::test]
async fn a_shared_cache_serves_every_subscription() {
    let (_mock, server) = start_with_mock(&[
        "--subscription-keys",
        "team-a=ka,team-b=kb",
        "--cache-shared",
    ])
    .await;
    let client = tests::http_client();
    let body = chat_body("What is a deployment slot?");
    post_chat(&client, &server, Some("ka"), &body).await;
    let b = post_chat(&client, &server, Some("kb"), &body).await;
    assert_eq!(header(&b, "x-llm-cache-status"), Some("hit"));
}

#[tokio::test]
async fn parameters_that_change_the_answer_partition_the_cache() {
    let (_mock, server) = start_with_mock(&[]).await;
    let client = tests::http_client();
    let mut cold = chat_body("Name a color.");
    cold["temperature"] = json!(0.0);
    let mut hot = cold.clone();
    hot["temperature"] = json!(1.5);
    assert_eq!(ask(&client, &server, &cold).await.0, "miss");
    assert_eq!(ask(&client, &server, &hot).await.0, "miss");
    assert_eq!(ask(&client, &server, &cold).await.0, "hit");
    let mut other_model = cold.clone();
    other_model["model"] = json!("gpt-4o");
    assert_eq!(ask(&client, &server, &other_model).await.0, "miss");
}

#[tokio::test]
async fn errors_and_truncated_answers_are_never_cached() {
    let (mock, server) = start_with_mock(&["--upstream-attempts", "1"]).await;
    let client = tests::http_client();
    let not_cached = |prompt: &'static str, answer: Reply, what: &'static str| {
        mock.push(answer);
        let (client, server) = (&client, &server);
        async move {
            let body = chat_body(prompt);
            assert_eq!(ask(client, server, &body).await.0, "miss");
            assert_eq!(
                ask(client, server, &body).await.0,
                "miss",
                "{what} is not served"
            );
        }
    };
    let truncated = json!({"role": "assistant", "content": "Roses are"});
    not_cached(
        "Write a very long poem.",
        raw_completion(truncated, "length", 5, 2000),
        "a truncated answer",
    )
    .await;
    let refusal =
        json!({"role": "assistant", "content": null, "refusal": "I can't help with that."});
    not_cached(
        "Tell me something you refuse to say.",
        raw_completion(refusal, "stop", 5, 5),
        "a refusal",
    )
    .await;
    let empty = json!({"role": "assistant", "content": "  "});
    not_cached(
        "Say nothing at all.",
        raw_completion(empty, "stop", 5, 0),
        "an empty answer",
    )
    .await;

    let failing = chat_body("Will this fail?");
    mock.push(Reply::status(500));
    let response = post_chat(&client, &server, None, &failing).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        ask(&client, &server, &failing).await.0,
        "miss",
        "an error is not cached"
    );
}

#[tokio::test]
async fn a_streamed_request_is_served_from_a_hit_as_a_valid_stream() {
    let (mock, server) = start_with_mock(&[]).await;
    let client = tests::http_client();
    mock.push(Reply::text("Slots let you swap builds without downtime."));
    let (_, whole) = ask(&client, &server, &chat_body("What is a deployment slot?")).await;
    let calls = mock.chat_requests().len();

    let mut body = streamed_chat_body("What's a deployment slot?");
    body["stream_options"] = json!({"include_usage": true});
    let response = post_chat(&client, &server, None, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-llm-cache-status"), Some("hit"));
    assert!(content_type(&response).starts_with("text/event-stream"));
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
    }
    assert_eq!(
        streamed_text(&events),
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(
        mock.chat_requests().len(),
        calls,
        "a hit never calls the upstream"
    );
}

#[tokio::test]
async fn a_streamed_answer_is_cached_for_later_calls() {
    let (mock, server) = start_with_mock(&[]).await;
    let client = tests::http_client();
    mock.push(Reply::stream(["Scale ", "out ", "to add instances."]));
    let stream = streamed_chat_body("How do I scale out?");
    let response = post_chat(&client, &server, None, &stream).await;
    assert_eq!(header(&response, "x-llm-cache-status"), Some("miss"));
    let _ = response.text().await.unwrap();
    let (status, answer) = ask(&client, &server, &chat_body("How do I scale out?")).await;
    assert_eq!(status, "hit");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Scale out to add instances."
    );
}

#[tokio::test]
async fn no_cache_and_no_store_are_honored() {
    let (mock, server) = start_with_mock(&[]).await;
    let client = tests::http_client();
    let body = chat_body("What is semantic caching?");
    let send = |directive: &'static str| {
        client
            .post(server.url("/v1/chat/completions"))
            .header("cache-control", directive)
            .json(&body)
            .send()
    };
    // no-store: not looked up, not stored.
    let response = send("no-store").await.unwrap();
    assert_eq!(header(&response, "x-llm-cache-status"), Some("bypass"));
    assert_eq!(ask(&client, &server, &body).await.0, "miss");
    // Now cached; no-cache skips the lookup (the upstream is called) but still stores.
    let calls = mock.chat_requests().len();
    let response = send("no-cache").await.unwrap();
    assert_eq!(header(&response, "x-llm-cache-status"), Some("bypass"));
    assert_eq!(mock.chat_requests().len(), calls + 1);
    assert_eq!(ask(&client, &server, &body).await.0, "hit");
}

#[tokio::test]
async fn the_cache_can_be_turned_off() {
    let (_mock, server) = start_with_mock(&["--semantic-cache", "off"]).await;
    let client = tests::http_client();
    let body = chat_body("What is semantic caching?");
    assert_eq!(ask(&client, &server, &body).await.0, "bypass");
    assert_eq!(ask(&client, &server, &body).await.0, "bypass");
}

#[tokio::test(start_paused = true)]
async fn entries_expire_after_their_ttl() {
    let cache = SemanticCache::new(
        Arc::new(BuiltinEmbedder),
        CacheConfig {
            ttl: Duration::from_secs(60),
            ..CacheConfig::default()
        },
        Clock::new(),
    );
    let context = CallContext::for_subscription("ttl", Api::OpenAi);
    let request = chat_body("What is a token budget?");
    let request = request.as_object().unwrap();
    let answer = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "A cap."}, "finish_reason": "stop"}]});
    cache
        .keep(cache.prompt(&context, "m", request).unwrap(), &answer)
        .await;
    let paraphrase = chat_body("Please explain what a token budget is.");
    let paraphrase = paraphrase.as_object().unwrap();
    let served = |prompt| {
        let prompt = cache.prompt(&context, "m", prompt).unwrap();
        let cache = &cache;
        async move { cache.find(&prompt).await.is_some() }
    };
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(served(request).await);
    assert!(served(paraphrase).await);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(!served(request).await);
    assert!(!served(paraphrase).await);
}
