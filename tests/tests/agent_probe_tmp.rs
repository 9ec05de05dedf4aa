#![allow(clippy::unwrap_used, clippy::expect_used)]
use loadtest::mock_upstream::{MockOptions, MockUpstream, Reply};
use tests::agent::{client, message, post, sse_events, start_with_model};

async fn run(replies: Vec<Reply>, flags: &[&str]) {
    let mock = MockUpstream::start(MockOptions::default()).await.unwrap();
    let server = start_with_model(&mock.base_url(), flags).await;
    mock.push_many(replies);
    let r = post(&client(), &server, "/agent/chat/stream", None, &message("hi")).await;
    let events = sse_events(&r.text().await.unwrap());
    let deltas: String = events.iter().filter(|e| e.name == "delta").map(|e| e.data["text"].as_str().unwrap()).collect();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    println!("{names:?}\ndeltas={deltas:?}\nreply={:?}\n", events.last().unwrap().data.get("reply"));
}

#[tokio::test]
async fn probe() {
    run(vec![Reply::ToolCalls { content: Some("Let me check.".into()), calls: vec![("whoami".into(), "{}".into())] }, Reply::text("Done.")], &[]).await;
    run(vec![Reply::stream(["\n\n", " Hello", " there. ", "\n"])], &[]).await;
    run(vec![Reply::tool_call("whoami", "{}"), Reply::tool_call("whoami", "{}")], &["--agent-max-iterations", "1"]).await;
}
