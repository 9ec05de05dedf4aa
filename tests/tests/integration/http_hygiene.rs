//! HTTP hygiene: a body over MAX_REQUEST_BODY_BYTES gets a 413 the client can read (not a
//! connection reset), whether it announced its length or not; a JSON route sent another media
//! type gets 415 in the JSON envelope, and a body with no Content-Type is read as JSON.

use mock_upstream::Reply;
use serde_json::{Value, json};
use tests::{TestServer, start_mock, start_with_model};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Twelve megabytes: three times the default limit.
const OVERSIZED: usize = 12 * 1024 * 1024;

async fn server() -> (TestServer, mock_upstream::MockUpstream) {
    let mock = start_mock().await;
    let server = start_with_model(&mock.base_url(), &["--semantic-cache", "off"]).await;
    (server, mock)
}

fn oversized_chat_body() -> Vec<u8> {
    let padding = "x".repeat(OVERSIZED);
    json!({"messages": [{"role": "user", "content": padding}]})
        .to_string()
        .into_bytes()
}

async fn assert_payload_too_large(response: reqwest::Response) {
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
}

#[tokio::test]
async fn an_oversized_body_with_a_length_gets_a_readable_413() {
    let (server, mock) = server().await;
    let response = tests::http_client()
        .post(server.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(oversized_chat_body())
        .send()
        .await
        .expect("the 413 must be readable, not a reset connection");
    assert_payload_too_large(response).await;
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn an_oversized_chunked_body_gets_a_readable_413() {
    let (server, _mock) = server().await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = oversized_chat_body()
        .chunks(64 * 1024)
        .map(|chunk| Ok(chunk.to_vec()))
        .collect();
    let response = tests::http_client()
        .post(server.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("the 413 must be readable, not a reset connection");
    assert_payload_too_large(response).await;
}

/// A raw client that sends all of its body before reading anything still reads the 413.
#[tokio::test]
async fn a_client_that_sends_everything_first_still_reads_the_413() {
    let (server, _mock) = server().await;
    let body = oversized_chat_body();
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /v1/embeddings HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    let sending = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        writer.write_all(&body).await?;
        writer.shutdown().await
    });
    sending
        .await
        .unwrap()
        .expect("the server reset the connection while the body was sent");
    let mut answer = Vec::new();
    reader
        .read_to_end(&mut answer)
        .await
        .expect("the server reset the connection before the answer was read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
}

#[tokio::test]
async fn json_routes_refuse_other_media_types_with_415() {
    let (server, mock) = server().await;
    let client = tests::http_client();
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]}).to_string();
    for path in ["/v1/chat/completions", "/v1/embeddings", "/agent/chat"] {
        for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
            let response = client
                .post(server.url(path))
                .header("content-type", content_type)
                .body(chat.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 415, "{path} {content_type}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
        }
    }
    // The Responses and Anthropic routes refuse in their own error shapes.
    for (path, code) in [
        ("/v1/responses", "/error/code"),
        ("/v1/messages", "/error/type"),
        ("/v1/messages/count_tokens", "/error/type"),
    ] {
        let response = client
            .post(server.url(path))
            .header("content-type", "text/plain")
            .body(chat.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415, "{path}");
        let body: Value = response.json().await.unwrap();
        let expected = if path == "/v1/responses" {
            "unsupported_media_type"
        } else {
            "invalid_request_error"
        };
        assert_eq!(body.pointer(code), Some(&json!(expected)), "{path}: {body}");
    }
    assert!(mock.requests().is_empty());

    // JSON with parameters passes; so does a body with no Content-Type at all.
    for content_type in [Some("application/json; charset=utf-8"), None] {
        mock.push(Reply::text("ok").with_usage(3, 1));
        let mut request = client
            .post(server.url("/v1/chat/completions"))
            .body(chat.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{content_type:?}");
    }
}
