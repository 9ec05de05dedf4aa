//! An `https://` upstream is spoken to over TLS. reqwest is built without a default crypto
//! provider (the tree compiles ring only), so this proves the provider is installed on the real
//! call path: the upstream receives a TLS ClientHello, and a failed handshake is an upstream
//! error in the envelope, not a panic. (No real TLS server is reachable from the tests.)

use serde_json::Value;
use tests::{
    bind_loopback,
    gateway::{chat_body, post_chat},
    start_with_model,
};
use tokio::io::AsyncReadExt as _;

/// TLS record type of a handshake message: a ClientHello's first byte.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// Handshake message type of a ClientHello, after the 5-byte record header.
const CLIENT_HELLO: u8 = 0x01;

#[tokio::test]
async fn an_https_upstream_gets_a_tls_client_hello_and_a_failed_handshake_is_a_502() {
    let (listener, addr) = bind_loopback().await;
    // Reads what the gateway sends first, then hangs up without answering the handshake.
    let upstream = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut first = [0u8; 6];
        socket.read_exact(&mut first).await.unwrap();
        first
    });
    let base_url = format!("https://{addr}/v1");
    let server = start_with_model(
        &base_url,
        &["--upstream-attempts", "1", "--semantic-cache", "off"],
    )
    .await;

    let response = post_chat(&tests::http_client(), &server, None, &chat_body("hi")).await;

    let first = upstream.await.unwrap();
    assert_eq!(first[0], TLS_HANDSHAKE_RECORD, "not TLS: {first:?}");
    assert_eq!(first[5], CLIENT_HELLO, "not a ClientHello: {first:?}");
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
}
