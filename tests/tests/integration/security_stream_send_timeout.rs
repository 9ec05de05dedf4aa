//! A streaming client that stops reading does not hold the upstream open for ever: once it
//! takes no chunk for `STREAM_SEND_TIMEOUT_SECONDS` it is sent nothing more; the upstream is
//! read on only to bill it, until it ends or the call's deadline (`UPSTREAM_TIMEOUT_SECONDS`)
//! passes, then closed and the usage booked (security review, finding 4).

use std::time::{Duration, Instant};

use mock_upstream::Reply;
use serde_json::json;
use tests::{gateway::usage_report, start_mock, start_with_model};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// Connects with a small receive buffer, sends `body` as a streamed chat request, and reads
/// only the response headers; the caller then holds the socket without reading.
async fn request_then_stop_reading(addr: std::net::SocketAddr, body: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\napi-key: k-slow\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the server closed before its headers");
        head.extend_from_slice(&buffer[..read]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

#[tokio::test]
async fn a_client_that_stops_reading_releases_the_upstream_and_is_billed() {
    let mock = start_mock().await;
    let server = start_with_model(
        &mock.base_url(),
        &[
            "--subscription-keys",
            "slow=k-slow",
            "--admin-key",
            "admin",
            "--semantic-cache",
            "off",
            "--stream-send-timeout-seconds",
            "1",
            // Room for far more than the socket buffers hold, so the relay blocks on the
            // client, not on the completion limit.
            "--max-stream-tokens-cap",
            "50000000",
            "--tokens-per-minute",
            "100000000",
            // An endless upstream is read on after the client stalls, up to this deadline.
            "--upstream-timeout-seconds",
            "3",
        ],
    )
    .await;
    mock.push(Reply::flood(" word", 50_000_000));
    let body = json!({
        "stream": true,
        "max_tokens": 50_000_000,
        "messages": [{"role": "user", "content": "Talk forever"}]
    })
    .to_string();
    let client_socket = request_then_stop_reading(server.addr, &body).await;
    let stopped_reading = Instant::now();

    tokio::time::timeout(Duration::from_secs(15), mock.dropped_streams_reach(1))
        .await
        .expect("the upstream was still open long after the send timeout");
    let closed_after = stopped_reading.elapsed();
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed after {closed_after:?}: before the client was given its timeout"
    );

    // The tokens relayed before the client stalled are booked.
    let client = tests::http_client();
    let booked = async {
        loop {
            let report = usage_report(&client, &server, "admin").await;
            let completion = report["subscriptions"]
                .as_array()
                .and_then(|rows| rows.iter().find(|row| row["name"] == "slow"))
                .and_then(|row| row["completion_tokens"].as_u64())
                .unwrap_or(0);
            if completion > 0 {
                return completion;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let completion = tokio::time::timeout(Duration::from_secs(5), booked)
        .await
        .expect("the stalled stream's usage was never booked");
    assert!(completion > 100, "{completion} booked");
    drop(client_socket);
}
