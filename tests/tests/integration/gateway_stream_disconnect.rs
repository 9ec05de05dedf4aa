//! A streaming client that disconnects mid-stream is still billed what the upstream produced:
//! the gateway reads the upstream to its end and charges the usage it reports.

use std::time::Duration;

use mock_upstream::Reply;
use serde_json::json;
use tests::{
    gateway::{start_keyed, usage_report},
    start_mock,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpSocket,
};

/// Sends `body` as a streamed chat request on a socket with a small receive buffer, reads the
/// response headers and the first bytes after them, then closes the connection.
async fn start_streaming_then_leave(addr: std::net::SocketAddr, body: &str) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\napi-key: k-leaver\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    while !String::from_utf8_lossy(&received).contains("data: ") {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the server closed before the stream began");
        received.extend_from_slice(&buffer[..read]);
    }
    assert!(received.starts_with(b"HTTP/1.1 200"));
}

/// Megabytes of events: far more than the client's small socket buffer lets the server write
/// ahead, so the client leaves long before the end.
const CHUNKS: usize = 20_000;

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_is_billed_the_full_upstream_usage() {
    let mock = start_mock().await;
    let server = start_keyed(
        &mock.base_url(),
        "leaver=k-leaver",
        &[
            "--admin-key",
            "admin",
            "--tokens-per-minute",
            "10000000",
            "--max-stream-tokens-cap",
            "300000",
        ],
    )
    .await;
    mock.push(Reply::flood(" word", CHUNKS).with_usage(9, CHUNKS as u64));
    let body = json!({
        "stream": true,
        "max_tokens": 250_000,
        "messages": [{"role": "user", "content": "Talk for a long time"}]
    });
    start_streaming_then_leave(server.addr, &body.to_string()).await;

    let admin = tests::http_client();
    let billed = async {
        loop {
            let report = usage_report(&admin, &server, "admin").await;
            let row = report["subscriptions"]
                .as_array()
                .and_then(|rows| rows.iter().find(|row| row["name"] == "leaver").cloned());
            if let Some(row) = row {
                return (
                    row["prompt_tokens"].clone(),
                    row["completion_tokens"].clone(),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (prompt, completion) = tokio::time::timeout(Duration::from_secs(60), billed)
        .await
        .expect("the call was never billed");
    assert_eq!((prompt, completion), (json!(9), json!(CHUNKS)));
    // The upstream was read to its end, not dropped when the client left.
    assert_eq!(mock.dropped_streams(), 0);
}
