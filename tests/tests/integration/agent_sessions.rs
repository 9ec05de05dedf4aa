//! Agent sessions: `session_id` on `/agent/chat` and `/agent/chat/stream`, the turns kept in
//! the state store (memory, or Redis across instances), `GET`/`DELETE /agent/sessions/{id}`
//! and the listing; ownership (404 for anyone else), concurrent turns, compaction within the
//! context budget, expiry, and bad ids.

use std::time::{Duration, Instant};

use agent::session::{RedisSessions, conformance};
use gateway_client::shared::RedisState;
use mock_upstream::{MockUpstream, Reply};
use serde_json::{Value, json};
use tests::{
    TestServer,
    agent::{SseEvent, chat, client, json_body, sse_events},
    gateway::post_json,
    redis::RedisServer,
    start_mock, start_with_model,
};

const KEYS: &str = "team-a=key-a,team-b=key-b";

async fn server(mock: &MockUpstream, extra: &[&str]) -> TestServer {
    let mut flags = vec!["--semantic-cache", "off", "--subscription-keys", KEYS];
    flags.extend_from_slice(extra);
    start_with_model(&mock.base_url(), &flags).await
}

/// One turn on `/agent/chat` that must succeed; returns its answer.
async fn turn(server: &TestServer, key: &str, body: Value) -> Value {
    let (status, answer) = chat(&client(), server, Some(key), &body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

fn session_of(answer: &Value) -> String {
    let id = answer["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no session_id: {answer}"));
    assert_eq!(id.len(), 32, "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{id}"
    );
    id.to_owned()
}

async fn get(server: &TestServer, key: &str, path: &str) -> (u16, Value) {
    let response = client()
        .get(server.url(path))
        .header("api-key", key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, json_body(response).await)
}

async fn delete(server: &TestServer, key: &str, id: &str) -> reqwest::Response {
    client()
        .delete(server.url(&format!("/agent/sessions/{id}")))
        .header("api-key", key)
        .send()
        .await
        .unwrap()
}

/// The user and assistant texts of the last chat request the model saw.
fn last_conversation(mock: &MockUpstream) -> Vec<(String, String)> {
    let requests = mock.chat_requests();
    let last = requests.last().expect("the model was called");
    last.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let content = m["content"].as_str().unwrap_or_default().to_owned();
            (m["role"].as_str().unwrap_or_default().to_owned(), content)
        })
        .collect()
}

fn has(conversation: &[(String, String)], role: &str, content: &str) -> bool {
    conversation.iter().any(|(r, c)| r == role && c == content)
}

fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn a_conversation_continues_and_the_model_sees_the_earlier_turns() {
    let mock = start_mock().await;
    let server = server(&mock, &["--instance-id", "inst-one"]).await;
    mock.push(Reply::text(
        "Deployment slots are live apps with their own host names.",
    ));
    let first = turn(
        &server,
        "key-a",
        json!({"message": "What are deployment slots?"}),
    )
    .await;
    let id = session_of(&first);
    // The first turn of a new session has no earlier turns to send.
    assert_eq!(last_conversation(&mock).len(), 2);

    mock.push(Reply::text("You swap a slot into production."));
    let second = turn(
        &server,
        "key-a",
        json!({"message": "And how do I use one?", "session_id": id}),
    )
    .await;
    assert_eq!(second["session_id"], id.as_str());
    let seen = last_conversation(&mock);
    assert!(has(&seen, "user", "What are deployment slots?"), "{seen:?}");
    assert!(
        has(
            &seen,
            "assistant",
            "Deployment slots are live apps with their own host names."
        ),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().unwrap(),
        &("user".to_owned(), "And how do I use one?".to_owned())
    );

    let (status, session) = get(&server, "key-a", &format!("/agent/sessions/{id}")).await;
    assert_eq!(status, 200, "{session}");
    let turns = session["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(
        (turns[0]["seq"].as_u64(), turns[1]["seq"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(turns[1]["message"], "And how do I use one?");
    assert_eq!(turns[1]["reply"], "You swap a slot into production.");
    assert_eq!(turns[1]["instance_id"], "inst-one");
    assert!(turns[1]["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert!(turns[0]["completed_at_ms"].as_u64() <= turns[1]["started_at_ms"].as_u64());
    assert!(session["expires_at_ms"].as_u64() > session["updated_at_ms"].as_u64());
}

#[tokio::test]
async fn tool_calls_are_kept_with_long_results_cut() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    let long = "Semantic caching stores answers. ".repeat(200);
    let arguments = json!({"message": long}).to_string();
    mock.push(Reply::tool_call("echo", arguments));
    mock.push(Reply::text("Echoed."));
    let answer = turn(&server, "key-a", json!({"message": "Echo this long text."})).await;
    let id = session_of(&answer);
    let (_, session) = get(&server, "key-a", &format!("/agent/sessions/{id}")).await;
    let call = &session["turns"][0]["tool_calls"][0];
    assert_eq!(call["name"], "echo");
    assert_eq!(call["is_error"], false);
    assert_eq!(call["result_truncated"], true, "{call}");
    let kept = call["result"].as_str().unwrap();
    assert!(kept.chars().count() <= agent::session::STORED_TOOL_TEXT_CHARS + 1);
    assert!(kept.ends_with('…'));
}

#[tokio::test]
async fn sessions_are_invisible_to_other_subscriptions() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    mock.push(Reply::text("Private answer."));
    let id = session_of(&turn(&server, "key-a", json!({"message": "My question"})).await);
    let path = format!("/agent/sessions/{id}");

    let (status, body) = get(&server, "key-b", &path).await;
    assert_error(status, &body, 404, "session_not_found");
    let response = delete(&server, "key-b", &id).await;
    let status = response.status().as_u16();
    assert_error(status, &json_body(response).await, 404, "session_not_found");
    let (status, body) = chat(
        &client(),
        &server,
        Some("key-b"),
        &json!({"message": "hi", "session_id": id}),
    )
    .await;
    assert_error(status, &body, 404, "session_not_found");
    let (status, listing) = get(&server, "key-b", "/agent/sessions").await;
    assert_eq!(status, 200);
    assert_eq!(listing["sessions"], json!([]));

    // Untouched for its owner.
    let (status, session) = get(&server, "key-a", &path).await;
    assert_eq!(
        (status, session["turns"].as_array().unwrap().len()),
        (200, 1)
    );
    // The model was never called for team-b's attempt.
    assert_eq!(mock.chat_requests().len(), 1);
}

#[tokio::test]
async fn bad_session_ids_get_clear_json_errors() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    let unknown = "0123456789abcdef0123456789abcdef";
    let cases = [
        (json!("a".repeat(33)), 400, "invalid_session_id"),
        (json!("a".repeat(5000)), 400, "invalid_session_id"),
        (
            json!("ZZZZ456789abcdef0123456789abcdef"),
            400,
            "invalid_session_id",
        ),
        (
            json!("0123456789abcdef0123456789abcde/"),
            400,
            "invalid_session_id",
        ),
        (json!(12345), 400, "invalid_request"),
        (json!(unknown), 404, "session_not_found"),
    ];
    for route in ["/agent/chat", "/agent/chat/stream"] {
        for (id, expected, code) in &cases {
            let body = json!({"message": "hi", "session_id": id});
            let response = post_json(&client(), &server, route, Some("key-a"), &body).await;
            let status = response.status().as_u16();
            assert_error(status, &json_body(response).await, *expected, code);
        }
    }
    let both = json!({"message": "hi", "session_id": unknown,
                      "history": [{"role": "user", "content": "before"}]});
    let (status, body) = chat(&client(), &server, Some("key-a"), &both).await;
    assert_error(status, &body, 400, "invalid_request");

    for (path, code) in [
        ("/agent/sessions/not-an-id".to_owned(), "invalid_session_id"),
        (
            format!("/agent/sessions/{}", "f".repeat(300)),
            "invalid_session_id",
        ),
        ("/agent/sessions?limit=0".to_owned(), "invalid_request"),
        ("/agent/sessions?limit=101".to_owned(), "invalid_request"),
        ("/agent/sessions?limit=many".to_owned(), "invalid_request"),
        (
            "/agent/sessions?cursor=%7Bx%7D".to_owned(),
            "invalid_request",
        ),
    ] {
        let (status, body) = get(&server, "key-a", &path).await;
        assert_error(status, &body, 400, code);
    }
    let (status, body) = get(&server, "key-a", &format!("/agent/sessions/{unknown}")).await;
    assert_error(status, &body, 404, "session_not_found");
    assert!(
        mock.chat_requests().is_empty(),
        "no bad request reached the model"
    );
}

#[tokio::test]
async fn a_deleted_session_is_forgotten() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    mock.push(Reply::text("Kept for now."));
    let id = session_of(&turn(&server, "key-a", json!({"message": "Remember this"})).await);
    let response = delete(&server, "key-a", &id).await;
    assert_eq!(response.status().as_u16(), 204);
    let (status, body) = get(&server, "key-a", &format!("/agent/sessions/{id}")).await;
    assert_error(status, &body, 404, "session_not_found");
    let (status, body) = chat(
        &client(),
        &server,
        Some("key-a"),
        &json!({"message": "hi", "session_id": id}),
    )
    .await;
    assert_error(status, &body, 404, "session_not_found");
    assert_eq!(delete(&server, "key-a", &id).await.status().as_u16(), 404);
    let (_, listing) = get(&server, "key-a", "/agent/sessions").await;
    assert_eq!(listing["sessions"], json!([]));
}

#[tokio::test]
async fn a_subscription_lists_its_own_sessions_page_by_page() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        mock.push(Reply::text(format!("Answer {n}.")));
        ids.push(session_of(
            &turn(&server, "key-a", json!({"message": format!("Q {n}")})).await,
        ));
    }
    mock.push(Reply::text("Someone else's."));
    turn(&server, "key-b", json!({"message": "Other"})).await;
    ids.sort();

    let (status, first) = get(&server, "key-a", "/agent/sessions?limit=2").await;
    assert_eq!(status, 200, "{first}");
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = get(
        &server,
        "key-a",
        &format!("/agent/sessions?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(second["next_cursor"], Value::Null);
    let listed: Vec<&str> = first["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["sessions"].as_array().unwrap())
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);
}

#[tokio::test]
async fn concurrent_turns_on_one_session_are_both_kept_in_completion_order() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    mock.push(Reply::text("Opening answer."));
    let id = session_of(&turn(&server, "key-a", json!({"message": "Opening question"})).await);

    // The first turn's model call is slow, the second's fast: the second finishes first.
    mock.push(Reply::text("Slow answer.").delayed(Duration::from_millis(700)));
    mock.push(Reply::text("Fast answer."));
    let slow_server = server.url("");
    let slow_id = id.clone();
    let slow = tokio::spawn(async move {
        let response = client()
            .post(format!("{slow_server}/agent/chat"))
            .header("api-key", "key-a")
            .json(&json!({"message": "Slow question", "session_id": slow_id}))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), json_body(response).await)
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.chat_requests().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the slow turn never reached the model"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    turn(
        &server,
        "key-a",
        json!({"message": "Fast question", "session_id": id}),
    )
    .await;
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, 200, "{body}");

    let (_, session) = get(&server, "key-a", &format!("/agent/sessions/{id}")).await;
    let kept: Vec<(u64, &str)> = session["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["seq"].as_u64().unwrap(), t["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kept,
        [
            (1, "Opening question"),
            (2, "Fast question"),
            (3, "Slow question")
        ]
    );
    // Both started from the session as it was: each saw the opening turn, neither the other.
    for request in &mock.chat_requests()[1..] {
        let text = request.body["messages"].to_string();
        assert!(text.contains("Opening question"), "{text}");
        assert!(
            !(text.contains("Slow question") && text.contains("Fast question")),
            "{text}"
        );
    }
}

#[tokio::test]
async fn streamed_turns_announce_their_session_first_and_continue_it() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    let stream = |body: Value| {
        let server = &server;
        async move {
            let response = post_json(
                &client(),
                server,
                "/agent/chat/stream",
                Some("key-a"),
                &body,
            )
            .await;
            assert_eq!(response.status().as_u16(), 200);
            sse_events(&response.text().await.unwrap())
        }
    };
    mock.push(Reply::stream(["Slots are ", "separate apps."]));
    let events: Vec<SseEvent> = stream(json!({"message": "What is a slot?"})).await;
    assert_eq!(events[0].name, "session", "{events:?}");
    let id = session_of(&events[0].data);
    let done = events.last().unwrap();
    assert_eq!(
        (done.name.as_str(), &done.data["session_id"]),
        ("done", &json!(id))
    );

    mock.push(Reply::stream(["Swap ", "them."]));
    let events = stream(json!({"message": "How do I use it?", "session_id": id})).await;
    assert_eq!(events[0].data["session_id"], id.as_str());
    assert_eq!(events.last().unwrap().name, "done");
    assert!(has(
        &last_conversation(&mock),
        "assistant",
        "Slots are separate apps."
    ));
    let (_, session) = get(&server, "key-a", &format!("/agent/sessions/{id}")).await;
    let replies: Vec<&str> = session["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reply"].as_str().unwrap())
        .collect();
    assert_eq!(replies, ["Slots are separate apps.", "Swap them."]);
}

#[tokio::test]
async fn a_long_session_is_compacted_within_its_token_budget() {
    const BUDGET: u64 = 200;
    let mock = start_mock().await;
    let budget = BUDGET.to_string();
    let server = server(&mock, &["--agent-session-max-context-tokens", &budget]).await;
    let mut id: Option<String> = None;
    for n in 0..8 {
        mock.push(Reply::text(format!(
            "Answer {n}: the budget of team {n} counts prompt and completion tokens per minute, \
             and a cache hit costs nothing at all."
        )));
        let mut body = json!({"message": format!(
            "Question {n}: how are the tokens of team {n} counted when the gateway answers \
             from its semantic cache?"
        )});
        if let Some(id) = &id {
            body["session_id"] = json!(id);
        }
        id = Some(session_of(&turn(&server, "key-a", body).await));
    }
    let requests = mock.chat_requests();
    let last = &requests.last().unwrap().body;
    // The conversation: everything but the system instructions (and the tools, not counted).
    let conversation: Vec<Value> = last["messages"].as_array().unwrap()[1..].to_vec();
    let counted = gateway_client::tokens::estimate_chat_prompt(
        "gpt-4o-mini",
        json!({"messages": conversation}).as_object().unwrap(),
    );
    // The estimate adds 3 tokens for the reply to come, which is not part of the prompt.
    assert!(counted - 3 <= BUDGET, "{counted} tokens sent");
    let summary = conversation[0]["content"].as_str().unwrap();
    assert_eq!(conversation[0]["role"], "system");
    assert!(
        summary.starts_with(agent::session::context::SUMMARY_PREFIX),
        "{summary}"
    );
    assert!(
        summary.len() > agent::session::context::SUMMARY_PREFIX.len() + 20,
        "{summary}"
    );
    let text = json!(conversation).to_string();
    assert!(
        !text.contains("\"Question 0:"),
        "the oldest turn is compacted, not replayed"
    );
    assert!(
        text.contains("Answer 6:"),
        "the newest turn is replayed whole"
    );
    // Everything is still kept; only what the model is sent is bounded.
    let id = id.unwrap();
    let (_, session) = get(&server, "key-a", &format!("/agent/sessions/{id}")).await;
    assert_eq!(session["turns"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn the_stored_history_is_capped() {
    let mock = start_mock().await;
    let server = server(&mock, &["--agent-session-max-turns", "2"]).await;
    let mut body = json!({"message": "Q 0"});
    for n in 0..4 {
        mock.push(Reply::text(format!("A {n}.")));
        let id = session_of(&turn(&server, "key-a", body.clone()).await);
        body = json!({"message": format!("Q {}", n + 1), "session_id": id});
    }
    let id = body["session_id"].as_str().unwrap();
    let (_, session) = get(&server, "key-a", &format!("/agent/sessions/{id}")).await;
    let seqs: Vec<u64> = session["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        (seqs, session["turns_dropped"].as_u64()),
        (vec![3, 4], Some(2))
    );
}

async fn redis_instance(
    redis: &RedisServer,
    mock: &MockUpstream,
    id: &str,
    extra: &[&str],
) -> TestServer {
    let url = redis.url();
    let mut flags = vec!["--redis-url", url.as_str(), "--instance-id", id];
    flags.extend_from_slice(extra);
    server(mock, &flags).await
}

#[tokio::test]
async fn the_redis_session_store_passes_the_conformance_suite() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let store = RedisSessions::new(RedisState::connect(&redis.url()).unwrap());
    conformance::run_all(&store, "conformance-").await;
}

#[tokio::test]
async fn a_conversation_continues_on_a_second_instance_through_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = start_mock().await;
    let first = redis_instance(&redis, &mock, "inst-a", &[]).await;
    let second = redis_instance(&redis, &mock, "inst-b", &[]).await;
    mock.push(Reply::text("The gateway keeps budgets in Redis."));
    let id = session_of(
        &turn(
            &first,
            "key-a",
            json!({"message": "Where are budgets kept?"}),
        )
        .await,
    );
    mock.push(Reply::text("Yes, on every instance."));
    let answer = turn(
        &second,
        "key-a",
        json!({"message": "Shared?", "session_id": id}),
    )
    .await;
    assert_eq!(answer["instance_id"], "inst-b");
    let seen = last_conversation(&mock);
    assert!(has(&seen, "user", "Where are budgets kept?"), "{seen:?}");
    assert!(
        has(&seen, "assistant", "The gateway keeps budgets in Redis."),
        "{seen:?}"
    );

    let (_, session) = get(&first, "key-a", &format!("/agent/sessions/{id}")).await;
    let served: Vec<&str> = session["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["instance_id"].as_str().unwrap())
        .collect();
    assert_eq!(served, ["inst-a", "inst-b"]);
    let (status, body) = get(&second, "key-b", &format!("/agent/sessions/{id}")).await;
    assert_error(status, &body, 404, "session_not_found");
    let (_, listing) = get(&second, "key-a", "/agent/sessions").await;
    assert_eq!(listing["sessions"][0]["session_id"], id.as_str());
    // Forgotten on one instance, gone on the other.
    assert_eq!(delete(&second, "key-a", &id).await.status().as_u16(), 204);
    let (status, body) = get(&first, "key-a", &format!("/agent/sessions/{id}")).await;
    assert_error(status, &body, 404, "session_not_found");
}

#[tokio::test]
async fn concurrent_turns_on_two_instances_lose_nothing() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = start_mock().await;
    let servers = [
        redis_instance(&redis, &mock, "inst-a", &[]).await,
        redis_instance(&redis, &mock, "inst-b", &[]).await,
    ];
    mock.push(Reply::text("Start."));
    let id = session_of(&turn(&servers[0], "key-a", json!({"message": "Start"})).await);
    for n in 0..6 {
        mock.push(Reply::text(format!("Reply {n}.")));
    }
    let turns = (0..6).map(|n| {
        turn(
            &servers[n % 2],
            "key-a",
            json!({"message": format!("Turn {n}"), "session_id": id}),
        )
    });
    futures::future::join_all(turns).await;
    let (_, session) = get(&servers[1], "key-a", &format!("/agent/sessions/{id}")).await;
    let turns = session["turns"].as_array().unwrap();
    let seqs: Vec<u64> = turns.iter().map(|t| t["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<u64>>());
    let mut messages: Vec<&str> = turns[1..]
        .iter()
        .map(|t| t["message"].as_str().unwrap())
        .collect();
    messages.sort_unstable();
    assert_eq!(
        messages,
        ["Turn 0", "Turn 1", "Turn 2", "Turn 3", "Turn 4", "Turn 5"]
    );
}

#[tokio::test]
async fn a_redis_session_expires_after_its_ttl() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = start_mock().await;
    let server = redis_instance(
        &redis,
        &mock,
        "inst-a",
        &["--agent-session-ttl-seconds", "1"],
    )
    .await;
    mock.push(Reply::text("Short-lived."));
    let id = session_of(&turn(&server, "key-a", json!({"message": "Hello"})).await);
    let path = format!("/agent/sessions/{id}");
    assert_eq!(get(&server, "key-a", &path).await.0, 200);
    // Redis's own expiry, on the real clock: bounded wait, no fixed sleep.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = get(&server, "key-a", &path).await;
        if status == 404 {
            assert_error(status, &body, 404, "session_not_found");
            break;
        }
        assert!(Instant::now() < deadline, "the session outlived its TTL");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = chat(
        &client(),
        &server,
        Some("key-a"),
        &json!({"message": "hi", "session_id": id}),
    )
    .await;
    assert_error(status, &body, 404, "session_not_found");
}

#[tokio::test]
async fn the_model_can_write_the_summary_and_its_call_is_metered() {
    let mock = start_mock().await;
    let flags = [
        "--agent-session-max-context-tokens",
        "100",
        "--agent-session-summarizer",
        "model",
    ];
    let server = server(&mock, &flags).await;
    // Well over the whole budget on its own.
    mock.push(Reply::text(
        "Each team has its own budget of tokens per minute, counted on prompt and completion \
         tokens alike, and a cache hit is free because no model call is made for it at all. \
         A team that runs out waits for the next minute, and the gateway says how long in \
         its Retry-After header; a monthly quota, when one is set, is counted the same way \
         and refuses with a 403 until the month ends.",
    ));
    let question = "How are the tokens of each team counted by the gateway when several \
                    teams share one deployment and some answers come from the cache?";
    let id = session_of(&turn(&server, "key-a", json!({"message": question})).await);

    // The earlier turn no longer fits: first the summary call, then the turn's own.
    mock.push(Reply::text("Budgets are per team.").with_usage(1000, 5));
    mock.push(Reply::text("Nothing else.").with_usage(10, 3));
    let answer = turn(
        &server,
        "key-a",
        json!({"message": "And then?", "session_id": id}),
    )
    .await;
    assert_eq!(answer["usage"]["prompt_tokens"], 1010, "{answer}");

    let requests = mock.chat_requests();
    assert_eq!(requests.len(), 3);
    let summary_call = &requests[1].body;
    let instructions = summary_call["messages"][0]["content"].as_str().unwrap();
    assert!(
        instructions.starts_with("Summarize the conversation"),
        "{instructions}"
    );
    assert!(
        summary_call["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains(question)
    );
    assert_eq!(summary_call["max_tokens"], 25, "a quarter of the budget");
    assert!(summary_call.get("tools").is_none());
    let seen = last_conversation(&mock);
    let expected = format!(
        "{}Budgets are per team.",
        agent::session::context::SUMMARY_PREFIX
    );
    assert!(has(&seen, "system", &expected), "{seen:?}");
    assert!(
        !has(&seen, "user", question),
        "the compacted turn is not replayed"
    );

    // The summary is kept with the session, and the next turn reuses it: no new summary call.
    let (_, session) = get(&server, "key-a", &format!("/agent/sessions/{id}")).await;
    assert_eq!(session["summary"]["through_seq"], 1, "{session}");
    assert_eq!(session["summary"]["text"], "Budgets are per team.");
    mock.push(Reply::text("Still per team."));
    turn(
        &server,
        "key-a",
        json!({"message": "Sure?", "session_id": id}),
    )
    .await;
    assert_eq!(mock.chat_requests().len(), 4);
    let seen = last_conversation(&mock);
    assert!(has(&seen, "system", &expected), "{seen:?}");
    assert!(has(&seen, "assistant", "Nothing else."), "{seen:?}");
}

#[tokio::test]
async fn live_sessions_are_a_gauge_without_labels() {
    let mock = start_mock().await;
    let server = server(&mock, &[]).await;
    mock.push(Reply::text("Counted."));
    turn(&server, "key-a", json!({"message": "Count me"})).await;
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|line| line.starts_with("agent_sessions_live"))
        .unwrap_or_else(|| panic!("no agent_sessions_live gauge:\n{metrics}"));
    assert!(
        line.starts_with("agent_sessions_live "),
        "no labels: {line}"
    );
    assert!(
        !metrics.contains("session_id"),
        "no session id in any label"
    );
}
