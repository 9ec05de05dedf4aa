//! Connections have limits: a trickled header is cut, a trickled body is refused, an idle socket
//! is closed, a client that stops reading is let go, one connection over MAX_CONNECTIONS gets a
//! 503 in the envelope, and shutdown still drains requests in flight.
//!
//! These run on real sockets with real timeouts of a second or two: tokio's paused clock would
//! jump while the test waits on the network.

use std::time::Duration;

use mock_upstream::Reply;
use tests::{TestServer, gateway::chat_body, raw, start_with_mock};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

/// Nothing here should take longer; on a server without the limits, the test fails here.
const GIVE_UP: Duration = Duration::from_secs(10);

const HEALTH: &str = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.addr).await.unwrap()
}

/// Reads one answer to a keep-alive request (head and `content-length` body).
async fn read_answer(stream: &mut TcpStream) -> raw::RawResponse {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let parsed = raw::parse(&text);
            let length: usize = parsed
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if body.len() >= length {
                assert!(!head.is_empty());
                return parsed;
            }
        }
        let read = tokio::time::timeout(GIVE_UP, stream.read(&mut chunk)).await;
        match read {
            Ok(Ok(0)) => panic!("closed mid-answer: {text:?}"),
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
            Ok(Err(error)) => panic!("read failed: {error}"),
            Err(_) => panic!("no answer within {GIVE_UP:?}"),
        }
    }
}

/// Waits for the server to close `stream` (EOF or reset), reading and dropping whatever comes;
/// how long that took.
async fn closed_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut sink = [0u8; 65_536];
    let closed = tokio::time::timeout(GIVE_UP, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open past {GIVE_UP:?}"
    );
    started.elapsed()
}

#[tokio::test]
async fn a_trickled_header_is_cut_at_the_header_timeout() {
    let server = TestServer::start(&[
        "--header-read-timeout-seconds",
        "1",
        "--idle-timeout-seconds",
        "30",
    ])
    .await;
    let mut stream = connect(&server).await;
    let (mut reader, mut writer) = stream.split();
    let started = Instant::now();
    let trickle = async {
        writer.write_all(b"GET /health HTTP/1.1\r\n").await?;
        for n in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            writer
                .write_all(format!("x-trickle-{n}: y\r\n").as_bytes())
                .await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let mut sink = [0u8; 1024];
    let closed = tokio::time::timeout(GIVE_UP, async {
        tokio::select! {
            _ = trickle => {},
            _ = reader.read(&mut sink) => {},
        }
    })
    .await;
    assert!(closed.is_ok(), "a trickled header kept the connection open");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "cut after {elapsed:?}"
    );
}

#[tokio::test]
async fn a_trickled_body_is_refused_at_the_request_timeout() {
    let (mock, server) = start_with_mock(&["--request-timeout-seconds", "1"]).await;
    for path in ["/v1/chat/completions", "/agent/chat"] {
        let mut stream = connect(&server).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n\
             content-length: 1000\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let (mut reader, mut writer) = stream.split();
        let trickle = async {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if writer.write_all(b" ").await.is_err() {
                    return;
                }
            }
        };
        let mut answer = Vec::new();
        let read = tokio::time::timeout(GIVE_UP, async {
            tokio::select! {
                _ = trickle => {},
                _ = reader.read_to_end(&mut answer) => {},
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "{path}: a trickled body held the request open"
        );
        let answer = raw::parse(&String::from_utf8_lossy(&answer));
        assert_eq!(answer.status, 408, "{path}: {}", answer.body);
        assert_eq!(answer.json()["error"]["code"], "request_timeout");
        assert!(started.elapsed() < Duration::from_secs(3), "{path}");
    }
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test]
async fn idle_connections_are_closed_at_the_idle_timeout_and_kept_until_then() {
    let server = TestServer::start(&[
        "--header-read-timeout-seconds",
        "1",
        "--idle-timeout-seconds",
        "2",
    ])
    .await;
    // A silent fresh connection.
    let mut silent = connect(&server).await;
    let waited = closed_after(&mut silent).await;
    assert!(
        waited >= Duration::from_millis(1900),
        "closed after {waited:?}"
    );

    // A kept-alive one outlives the header timeout while idle, then closes at the idle timeout.
    let mut stream = connect(&server).await;
    stream.write_all(HEALTH.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(HEALTH.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.status, 200);
    let waited = closed_after(&mut stream).await;
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn one_connection_over_the_limit_gets_a_503_in_the_envelope() {
    let server =
        TestServer::start(&["--max-connections", "2", "--retry-after-format", "seconds"]).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&server).await;
        stream.write_all(HEALTH.as_bytes()).await.unwrap();
        assert_eq!(read_answer(&mut stream).await.status, 200);
        held.push(stream);
    }

    let over = raw::exchange(server.addr, &raw::request("GET", "/health", &[], "")).await;
    assert_eq!(over.status, 503, "{}", over.body);
    assert_eq!(over.json()["error"]["code"], "server_busy");
    assert_eq!(over.header("connection"), Some("close"));
    assert_eq!(over.header("retry-after"), Some("1"));

    // A connection closed frees its place.
    drop(held.pop());
    let deadline = Instant::now() + GIVE_UP;
    loop {
        let answer = raw::exchange(server.addr, &raw::request("GET", "/health", &[], "")).await;
        if answer.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never freed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_let_go_at_the_idle_timeout() {
    let (mock, server) =
        start_with_mock(&["--idle-timeout-seconds", "1", "--semantic-cache", "off"]).await;
    // An answer far larger than the socket buffers between us.
    mock.push(Reply::text("z".repeat(16 * 1024 * 1024)).with_usage(5, 5));
    let body = chat_body("hi").to_string();
    let request = raw::request("POST", "/v1/chat/completions", &[], &body);
    let mut stream = connect(&server).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = 0usize;
    let mut sink = [0u8; 65_536];
    // Wait for the answer to start (a loaded machine may take seconds to produce 16 MiB), so
    // the stall below is the client's and not the server's.
    received += tokio::time::timeout(GIVE_UP, stream.read(&mut sink))
        .await
        .expect("the answer never started")
        .unwrap();
    // Then read nothing for a while: the server's writes block, and it gives up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let drained = tokio::time::timeout(GIVE_UP, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the server still holds the stalled connection"
    );
    assert!(
        received < 16 * 1024 * 1024,
        "the whole answer came ({received} bytes): the server never gave up"
    );
}

#[tokio::test]
async fn shutdown_drains_a_request_in_flight() {
    let (mock, server) = start_with_mock(&["--semantic-cache", "off"]).await;
    drains_a_request_in_flight(mock, server).await;
}

#[tokio::test]
async fn shutdown_drains_a_request_in_flight_on_connection_threads() {
    let mock = tests::start_mock().await;
    let flags = [
        "--openai-base-url",
        &mock.base_url(),
        "--semantic-cache",
        "off",
    ];
    let server = TestServer::start_on_threads(&flags, 2).await;
    drains_a_request_in_flight(mock, server).await;
}

async fn drains_a_request_in_flight(mock: mock_upstream::MockUpstream, server: TestServer) {
    mock.push(Reply::text("late but whole").delayed(Duration::from_millis(500)));
    let body = chat_body("hi").to_string();
    let request = raw::request("POST", "/v1/chat/completions", &[], &body);
    let addr = server.addr;
    let in_flight = tokio::spawn(async move { raw::exchange(addr, &request).await });
    // Shut down once the request has reached the model.
    let deadline = Instant::now() + GIVE_UP;
    while mock.chat_requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the request never reached the model"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::timeout(GIVE_UP, server.stop()).await.unwrap();
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("late but whole"));
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

#[tokio::test]
async fn shutdown_gives_up_on_requests_after_the_grace_period() {
    let (mock, server) =
        start_with_mock(&["--semantic-cache", "off", "--shutdown-grace-seconds", "1"]).await;
    mock.push(Reply::text("too late").delayed(Duration::from_secs(30)));
    let body = chat_body("hi").to_string();
    let request = raw::request("POST", "/v1/chat/completions", &[], &body);
    let addr = server.addr;
    let _in_flight = tokio::spawn(async move { raw::exchange(addr, &request).await });
    let deadline = Instant::now() + GIVE_UP;
    while mock.chat_requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the request never reached the model"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    tokio::time::timeout(GIVE_UP, server.stop()).await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}
