//! The HTTP face of /mcp: methods, junk bodies, and a raw stateless 2026-07-28 call.

use serde_json::{Value, json};
use tests::{TestServer, call_echo_2026, gateway::content_type, post_mcp, rpc};

#[tokio::test]
async fn get_and_delete_are_405_with_the_json_envelope() {
    let server = TestServer::start(&[]).await;
    let client = tests::http_client();
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let response = client
            .request(method.clone(), server.mcp_url())
            .header("accept", "application/json, text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed", "{method}");
    }
}

#[tokio::test]
async fn a_stateless_2026_request_needs_no_session() {
    let server = TestServer::start(&["--instance-id", "raw-2026"]).await;
    let client = tests::http_client();
    let response = call_echo_2026(&client, &server, 7, "hi").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("mcp-session-id").is_none());
    assert!(content_type(&response).starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], 7);
    assert_eq!(body["result"]["structuredContent"]["message"], "hi");
    assert_eq!(
        body["result"]["structuredContent"]["instance_id"],
        "raw-2026"
    );
}

#[tokio::test]
async fn junk_bodies_never_yield_a_5xx() {
    let server = TestServer::start(&["--mcp-rate-limit", "100000/1"]).await;
    let client = tests::http_client();
    // A small deterministic generator: structured junk, truncated JSON, wrong types, binary.
    let mut seeds: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"[1,2,3]".to_vec(),
        b"\"tools/call\"".to_vec(),
        br#"{"jsonrpc":"2.0"}"#.to_vec(),
        br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":[1]}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":42}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","method":"notifications/unknown"}"#.to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\u{0}\"}".as_bytes().to_vec(),
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let template = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#;
    for _ in 0..200 {
        let mut body = template.to_vec();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state as usize) % body.len();
            body[at] = (state >> 32) as u8;
        }
        seeds.push(body);
    }
    for body in seeds {
        let response = client
            .post(server.mcp_url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            !status.is_server_error(),
            "{status} for body {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    // And the server still answers.
    let response = post_mcp(&client, &server, &rpc(1, "ping", json!({})), &[]).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_the_envelope() {
    let server = TestServer::start(&["--max-request-body-bytes", "1024"]).await;
    let client = tests::http_client();
    let message = "x".repeat(4096);
    let body = rpc(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": message}}),
    );
    let response = post_mcp(&client, &server, &body, &[]).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn a_body_that_never_arrives_is_cut_off_with_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = TestServer::start(&["--request-timeout-seconds", "1"]).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // Promises 100 bytes, sends 10, then waits: a slow (or malicious) client.
    stream
        .write_all(
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Accept: application/json, text/event-stream\r\nMcp-Protocol-Version: 2025-11-25\r\n\
              Content-Length: 100\r\n\r\n{\"jsonrpc\"",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read_answer = async {
        let mut chunk = [0u8; 1024];
        while !String::from_utf8_lossy(&answer).contains("request_timeout") {
            let read = stream.read(&mut chunk).await.unwrap();
            if read == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..read]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read_answer)
        .await
        .expect("the server answered before the client gave up");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    assert!(answer.contains("REQUEST_TIMEOUT_SECONDS"), "{answer}");
}
