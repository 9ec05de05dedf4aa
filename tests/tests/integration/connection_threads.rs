//! Served as the binary serves them, on connection threads of their own
//! (`ConnectionThreads`): requests on many connections at once are answered and billed, and the
//! connection timeouts hold there (`security_connections` drains a request in flight on them).
//!
//! Real sockets and real timeouts of a second or two, as in `security_connections`.

use std::time::Duration;

use futures::future::join_all;
use tests::{TestServer, gateway::chat_body, raw, start_mock};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

const GIVE_UP: Duration = Duration::from_secs(10);
const THREADS: usize = 2;

async fn start_on_threads(base_url: &str, flags: &[&str]) -> TestServer {
    let mut all = vec!["--openai-base-url", base_url, "--semantic-cache", "off"];
    all.extend_from_slice(flags);
    TestServer::start_on_threads(&all, THREADS).await
}

/// Reads answers from a keep-alive connection until `count` whole ones have come.
async fn read_answers(stream: &mut TcpStream, count: usize) -> Vec<raw::RawResponse> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut answers = Vec::new();
    while answers.len() < count {
        if let Some(length) = whole_answer_length(&bytes) {
            let answer: Vec<u8> = bytes.drain(..length).collect();
            answers.push(raw::parse(&String::from_utf8_lossy(&answer)));
            continue;
        }
        match tokio::time::timeout(GIVE_UP, stream.read(&mut chunk)).await {
            Ok(Ok(read)) if read > 0 => bytes.extend_from_slice(&chunk[..read]),
            other => panic!(
                "no whole answer: {other:?} after {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    answers
}

/// The length of the first whole answer (head and `content-length` body) in `bytes`, if any.
fn whole_answer_length(bytes: &[u8]) -> Option<usize> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    (bytes.len() >= head_end + length).then_some(head_end + length)
}

#[tokio::test]
async fn calls_on_many_connections_at_once_are_all_answered_and_billed() {
    let mock = start_mock().await;
    let flags = [
        "--subscription-keys",
        "threads=key-t",
        "--admin-key",
        "admin-secret",
    ];
    let server = start_on_threads(&mock.base_url(), &flags).await;
    let body = chat_body("hello").to_string();
    let headers = [("ocp-apim-subscription-key", "key-t")];
    let request = raw::request("POST", "/v1/chat/completions", &headers, &body)
        .replace("Connection: close\r\n", "");
    // Eight connections kept alive, three calls each, sent back to back on every connection.
    let connections = (0..8).map(|_| {
        let request = request.clone();
        async move {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            stream
                .write_all(request.repeat(3).as_bytes())
                .await
                .unwrap();
            read_answers(&mut stream, 3).await
        }
    });
    let answers: Vec<_> = join_all(connections).await.into_iter().flatten().collect();
    assert_eq!(answers.len(), 24);
    let mut tokens = 0;
    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.body);
        tokens += answer.json()["usage"]["total_tokens"].as_u64().unwrap();
    }
    assert_eq!(mock.chat_requests().len(), 24);
    let usage = reqwest::Client::new()
        .get(server.url("/admin/usage"))
        .header("ocp-apim-subscription-key", "admin-secret")
        .send()
        .await
        .unwrap();
    let usage: serde_json::Value = usage.json().await.unwrap();
    assert_eq!(usage["subscriptions"][0]["name"], "threads", "{usage}");
    assert_eq!(usage["subscriptions"][0]["total_tokens"], tokens, "{usage}");
}

#[tokio::test]
async fn idle_and_header_timeouts_hold_on_the_connection_threads() {
    let mock = start_mock().await;
    let server = start_on_threads(
        &mock.base_url(),
        &[
            "--header-read-timeout-seconds",
            "1",
            "--idle-timeout-seconds",
            "2",
        ],
    )
    .await;
    let started = Instant::now();
    // Two silent connections, one per thread, and one whose head never ends.
    let mut silent = [
        TcpStream::connect(server.addr).await.unwrap(),
        TcpStream::connect(server.addr).await.unwrap(),
    ];
    let mut trickled = TcpStream::connect(server.addr).await.unwrap();
    trickled
        .write_all(b"GET /health HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut sink = [0u8; 1024];
    let cut = tokio::time::timeout(GIVE_UP, trickled.read(&mut sink)).await;
    assert!(cut.is_ok(), "a trickled header kept the connection open");
    let cut_after = started.elapsed();
    assert!(
        cut_after >= Duration::from_millis(900) && cut_after < Duration::from_millis(1900),
        "header cut after {cut_after:?}"
    );
    for stream in &mut silent {
        let closed = tokio::time::timeout(GIVE_UP, stream.read(&mut sink)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "idle connection: {closed:?}"
        );
    }
    let closed_after = started.elapsed();
    assert!(
        closed_after >= Duration::from_millis(1900) && closed_after < Duration::from_secs(4),
        "idle connections closed after {closed_after:?}"
    );
}
