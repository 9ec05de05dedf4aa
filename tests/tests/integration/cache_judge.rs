//! The model-judged cache mode (`CACHE_JUDGE=model`) through the real pipeline: a similar answer
//! that verification could not confirm goes to the chat model as a one-token question, whose
//! verdict decides, and whose tokens are charged to the caller.

use mock_upstream::Reply;
use serde_json::Value;
use tests::{
    gateway::{chat_body, header, metric, post_chat, scrape, usage_report},
    start_with_mock,
};

const CACHED: &str = "How do I read a flame graph?";
/// Verification cannot match "interpret" to "read" alone: it needs the judge.
const REWORDED: &str = "How do I interpret a flame graph?";

/// The server's flags: `judge` sets `--cache-judge`, `None` leaves the default.
fn flags(judge: Option<&str>) -> Vec<&str> {
    let mut flags = vec!["--subscription-keys", "judged=kj", "--admin-key", "admin"];
    flags.extend(
        judge
            .map(|judge| ["--cache-judge", judge])
            .into_iter()
            .flatten(),
    );
    flags
}

/// Asks `prompt` as the `judged` subscription; returns the cache status and the reply text.
async fn ask(
    client: &reqwest::Client,
    server: &tests::TestServer,
    prompt: &str,
) -> (String, String) {
    let response = post_chat(client, server, Some("kj"), &chat_body(prompt)).await;
    assert_eq!(response.status(), 200);
    let status = header(&response, "x-llm-cache-status")
        .unwrap_or_default()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    let text = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, text)
}

fn judged_tokens(report: &Value) -> u64 {
    report["subscriptions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["name"] == "judged")
        .map(|row| row["total_tokens"].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test]
async fn a_yes_serves_the_cached_answer_for_one_metered_token() {
    let (mock, server) = start_with_mock(&flags(Some("model"))).await;
    let client = tests::http_client();
    mock.push(Reply::text("Run git branch -d NAME.").with_usage(20, 8));
    assert_eq!(ask(&client, &server, CACHED).await.0, "miss");
    mock.push(Reply::text("yes").with_usage(70, 1));
    let (status, text) = ask(&client, &server, REWORDED).await;
    assert_eq!(status, "hit");
    assert_eq!(text, "Run git branch -d NAME.");

    let requests = mock.chat_requests();
    assert_eq!(requests.len(), 2, "the first answer, then the judgement");
    let judgement = &requests[1].body;
    assert_eq!(judgement["max_tokens"], 1);
    let question = judgement["messages"][1]["content"].as_str().unwrap();
    assert!(
        question.contains(CACHED) && question.contains(REWORDED),
        "{question}"
    );

    let report = usage_report(&client, &server, "admin").await;
    assert_eq!(
        judged_tokens(&report),
        28 + 71,
        "the answer and the judgement"
    );
    let text = scrape(&client, &server).await;
    assert!(
        metric(
            &text,
            "gateway_cache_judgements_total",
            &[("verdict", "same")]
        )
        .is_some_and(|n| n >= 1.0)
    );
}

#[tokio::test]
async fn a_no_asks_the_model_for_a_fresh_answer() {
    let (mock, server) = start_with_mock(&flags(Some("model"))).await;
    let client = tests::http_client();
    mock.push(Reply::text("Run git branch -d NAME.").with_usage(20, 8));
    ask(&client, &server, CACHED).await;
    mock.push(Reply::text("no").with_usage(70, 1));
    mock.push(Reply::text("Use git branch -D NAME.").with_usage(20, 8));
    let (status, text) = ask(&client, &server, REWORDED).await;
    assert_eq!(status, "miss");
    assert_eq!(text, "Use git branch -D NAME.");
    assert_eq!(mock.chat_requests().len(), 3);
    let report = usage_report(&client, &server, "admin").await;
    assert_eq!(judged_tokens(&report), 28 + 71 + 28);
}

#[tokio::test]
async fn off_by_default_and_never_asked_about_a_hard_refusal() {
    let (mock, server) = start_with_mock(&flags(None)).await;
    let client = tests::http_client();
    ask(&client, &server, CACHED).await;
    assert_eq!(ask(&client, &server, REWORDED).await.0, "miss");
    assert_eq!(mock.chat_requests().len(), 2, "no judgement when off");

    // On, a changed referent is refused outright: the model is never asked about it.
    let (mock, server) = start_with_mock(&flags(Some("model"))).await;
    ask(&client, &server, "How do I remove my stale branch in git?").await;
    assert_eq!(
        ask(&client, &server, "How do I remove his stale branch in git?")
            .await
            .0,
        "miss"
    );
    assert_eq!(
        mock.chat_requests().len(),
        2,
        "no judgement on a referent change"
    );
}
