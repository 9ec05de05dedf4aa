//! The plain-HTTP client against a hand-written HTTP/1.1 server on loopback, which decides
//! exactly when it answers, splits its body and closes connections.
#![allow(clippy::unwrap_used)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use bytes::Bytes;
use http::HeaderMap;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

use super::*;

/// How the test server treats each connection after answering.
#[derive(Clone, Copy)]
enum After {
    KeepAlive,
    Close,
}

/// A test server: its URL, how many connections it accepted, and a message each time it has
/// closed one.
struct Server {
    url: String,
    accepted: Arc<AtomicUsize>,
    closed: mpsc::UnboundedReceiver<()>,
}

/// A server answering every request on a connection with `answer`.
async fn server(answer: &'static [&'static [u8]], after: After) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let (closing, closed) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let closing = closing.clone();
            tokio::spawn(async move {
                serve(stream, answer, after).await;
                let _ = closing.send(());
            });
        }
    });
    Server {
        url: format!("http://{address}/v1"),
        accepted,
        closed,
    }
}

async fn serve(mut stream: TcpStream, answer: &'static [&'static [u8]], after: After) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let Ok(read) = stream.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
        }
        received.extend_from_slice(&buffer[..read]);
        // Each test request has a short body sent with its head: answer once the body is in.
        let Some(end) = find(&received, b"\r\n\r\n") else {
            continue;
        };
        if received.len() < end + 4 + body_length(&received[..end]) {
            continue;
        }
        received.clear();
        for piece in answer {
            if stream.write_all(piece).await.is_err() {
                return;
            }
            stream.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        if let After::Close = after {
            return;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn body_length(head: &[u8]) -> usize {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    head.lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

const OK: &[&[u8]] = &[b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"ok\":true}"];

async fn post(pool: &Arc<Pool>) -> Result<Response, SendError> {
    let path = PathAndQuery::from_static("/v1/chat/completions");
    pool.post(
        path,
        HeaderMap::new(),
        Bytes::from_static(b"{\"model\":\"m\"}"),
    )
    .await
}

#[tokio::test]
async fn a_connection_is_reused_once_its_answer_is_read() {
    let server = server(OK, After::KeepAlive).await;
    let pool = Pool::for_url(&server.url).unwrap();
    for _ in 0..3 {
        let response = post(&pool).await.unwrap();
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.bytes().await.unwrap(), "{\"ok\":true}");
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.idle_connections(), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_replaced() {
    let mut server = server(OK, After::Close).await;
    let pool = Pool::for_url(&server.url).unwrap();
    for _ in 0..3 {
        let body = post(&pool).await.unwrap().bytes().await.unwrap();
        assert_eq!(body, "{\"ok\":true}");
        // The connection went back to the pool; the server has closed its end since.
        assert_eq!(pool.idle_connections(), 1);
        server.closed.recv().await.unwrap();
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_chunked_stream_arrives_piece_by_piece_and_whole() {
    const STREAM: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n",
        b"7\r\ndata: 1\r\n",
        b"7\r\ndata: 2\r\n",
        b"0\r\n\r\n",
    ];
    let server = server(STREAM, After::KeepAlive).await;
    let pool = Pool::for_url(&server.url).unwrap();
    let mut response = post(&pool).await.unwrap();
    let mut pieces = Vec::new();
    while let Some(piece) = response.chunk().await.unwrap() {
        pieces.push(piece);
    }
    assert_eq!(pieces.concat(), b"data: 1data: 2");
    assert_eq!(pool.idle_connections(), 1);
    let whole = post(&pool).await.unwrap().bytes().await.unwrap();
    assert_eq!(whole, "data: 1data: 2");
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_answer_dropped_before_its_end_takes_its_connection_with_it() {
    const SLOW: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        b"7\r\ndata: 1\r\n",
    ];
    let server = server(SLOW, After::KeepAlive).await;
    let pool = Pool::for_url(&server.url).unwrap();
    let mut response = post(&pool).await.unwrap();
    assert_eq!(response.chunk().await.unwrap().unwrap(), "data: 1");
    drop(response);
    assert_eq!(pool.idle_connections(), 0);
    let mut response = post(&pool).await.unwrap();
    assert_eq!(response.chunk().await.unwrap().unwrap(), "data: 1");
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_not_an_end() {
    const CUT: &[&[u8]] = &[b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"partial\""];
    let server = server(CUT, After::Close).await;
    let pool = Pool::for_url(&server.url).unwrap();
    let response = post(&pool).await.unwrap();
    assert!(response.bytes().await.is_err());
    assert_eq!(pool.idle_connections(), 0);
}

#[tokio::test]
async fn an_upstream_that_hangs_up_without_answering_is_a_transport_error() {
    let server = server(&[], After::Close).await;
    let pool = Pool::for_url(&server.url).unwrap();
    assert_eq!(post(&pool).await.err(), Some(SendError::Transport));
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let pool = Pool::for_url(&format!("http://{address}")).unwrap();
    assert_eq!(post(&pool).await.err(), Some(SendError::Connect));
}

#[tokio::test]
async fn the_request_carries_host_path_headers_and_body() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let pool = Pool::for_url(&format!("http://{address}/v1")).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_static("secret"));
    let sending = pool.post(
        PathAndQuery::from_static("/v1/chat/completions?x=1"),
        headers,
        Bytes::from_static(b"{}"),
    );
    let receiving = async {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = vec![0u8; 4096];
        let read = stream.read(&mut received).await.unwrap();
        stream.write_all(OK[0]).await.unwrap();
        String::from_utf8_lossy(&received[..read]).into_owned()
    };
    let (sent, received) = tokio::join!(sending, receiving);
    assert_eq!(sent.unwrap().status, StatusCode::OK);
    assert!(received.starts_with("POST /v1/chat/completions?x=1 HTTP/1.1\r\n"));
    let head = received.to_ascii_lowercase();
    assert!(head.contains(&format!("host: {address}\r\n")));
    assert!(head.contains("x-api-key: secret\r\n"));
    assert!(head.contains("content-length: 2\r\n"));
    assert!(received.ends_with("\r\n\r\n{}"));
}

#[test]
fn only_plain_http_urls_get_a_pool() {
    assert!(Pool::for_url("http://127.0.0.1:8080/v1").is_some());
    assert!(Pool::for_url("http://[::1]:8080").is_some_and(|pool| pool.host == "::1"));
    assert!(Pool::for_url("http://llm.internal/v1").is_some_and(|pool| pool.port == 80));
    assert!(Pool::for_url("https://api.openai.com/v1").is_none());
    assert!(Pool::for_url("not a url").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_connection_goes_back_to_the_thread_that_used_it_and_is_shared_when_another_has_none() {
    let server = server(OK, After::KeepAlive).await;
    let pool = Pool::for_url(&server.url).unwrap();
    // Two threads, each running a runtime of its own for the whole test, as connection
    // threads do: the first calls, then the second, then the first again.
    let (first_turn, first_waits) = mpsc::unbounded_channel();
    let (second_turn, second_waits) = mpsc::unbounded_channel();
    let (done, finished) = std::sync::mpsc::channel::<(&str, usize)>();
    let first = thread_calling(pool.clone(), "first", first_waits, done.clone());
    let second = thread_calling(pool.clone(), "second", second_waits, done);
    let mut turns = Vec::new();
    for turn in [&first_turn, &second_turn, &first_turn] {
        turn.send(()).unwrap();
        turns.push(tokio::task::block_in_place(|| finished.recv()).unwrap());
    }
    drop((first_turn, second_turn));
    first.join().unwrap();
    second.join().unwrap();
    // Each thread found the one connection in its own list after its call: the second took
    // it from the first's (it had none), and the first from the second's in turn, each moving
    // it to its own runtime.
    assert_eq!(turns, [("first", 1), ("second", 1), ("first", 1)]);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
}

/// A thread with a runtime of its own that makes one call through `pool` each time it is given
/// a turn, and reports how many connections then idle in its own list. The runtime runs
/// between turns too, as a connection thread's does: its sockets are read by no other.
fn thread_calling(
    pool: Arc<Pool>,
    name: &'static str,
    mut turns: mpsc::UnboundedReceiver<()>,
    done: std::sync::mpsc::Sender<(&'static str, usize)>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        current_thread_runtime().block_on(async {
            while turns.recv().await.is_some() {
                let body = post(&pool).await.unwrap().bytes().await.unwrap();
                assert_eq!(body, "{\"ok\":true}");
                let own = own_idle_list();
                done.send((name, pool.idle[own].lock().len())).unwrap();
            }
        });
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_connection_taken_from_another_thread_no_longer_needs_that_threads_runtime() {
    let server = server(OK, After::KeepAlive).await;
    let pool = Pool::for_url(&server.url).unwrap();
    // The first thread makes a call on a runtime of its own, then stops running it: nothing
    // reads the sockets registered there any more.
    let (called, first_called) = std::sync::mpsc::channel();
    let (finish, finished) = std::sync::mpsc::channel::<()>();
    let first = std::thread::spawn({
        let pool = pool.clone();
        move || {
            let runtime = current_thread_runtime();
            runtime.block_on(async { post(&pool).await.unwrap().bytes().await.unwrap() });
            called.send(()).unwrap();
            finished.recv().unwrap_or(());
        }
    });
    tokio::task::block_in_place(|| first_called.recv()).unwrap();
    // The second takes the first's idle connection: an exchange on it must not wait for the
    // first's runtime to report the socket readable. The deadline only bounds a failure.
    let second = std::thread::spawn(move || {
        current_thread_runtime().block_on(async {
            let call = async { post(&pool).await.unwrap().bytes().await.unwrap() };
            tokio::time::timeout(Duration::from_secs(10), call).await
        })
    });
    let answered = tokio::task::block_in_place(|| second.join()).unwrap();
    finish.send(()).unwrap();
    first.join().unwrap();
    assert_eq!(answered.unwrap(), "{\"ok\":true}");
    assert_eq!(
        server.accepted.load(Ordering::SeqCst),
        1,
        "the connection was reused"
    );
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_connection_left_by_a_runtime_that_has_ended_is_replaced() {
    let server = server(OK, After::KeepAlive).await;
    let pool = Pool::for_url(&server.url).unwrap();
    std::thread::spawn({
        let pool = pool.clone();
        move || {
            current_thread_runtime()
                .block_on(async { post(&pool).await.unwrap().bytes().await.unwrap() })
        }
    })
    .join()
    .unwrap();
    // That thread and its runtime are gone; its connection idles in its list.
    let body = post(&pool).await.unwrap().bytes().await.unwrap();
    assert_eq!(body, "{\"ok\":true}");
    // An ended runtime reports its sockets gone: the connection is closed, not moved.
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}
