//! Shared harness for tollgate's integration tests (one test file per concern in `tests/`).
//!
//! [`TestServer::start`] binds `127.0.0.1:0` and serves the real app on it; the listener is bound
//! before the server task starts, so a test can connect at once with no readiness wait.
//! [`start_with_mock`] and [`start_with_model`] put a server in front of a model upstream.
//! [`gateway`] has the helpers of the gateway tests, [`agent`] those of the agent tests, [`raw`]
//! HTTP/1.1 written by hand (odd paths, connection behaviour), [`azure`] stand-ins for the Azure
//! identity endpoints and Azure AI Content Safety, [`oauth`] a local OpenID Connect issuer and
//! the tokens it signs.

pub mod agent;
pub mod azure;
pub mod external;
pub mod gateway;
pub mod oauth;
pub mod observed;
pub mod raw;
pub mod redis;

use std::{future::Future, net::SocketAddr};

pub use gateway_client::tls::install_crypto_provider;
use mcp_server::{Settings, connections::ConnectionThreads};
use mock_upstream::{MockOptions, MockUpstream, Reply};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// The upstream key the test servers present to the model upstream.
pub const UPSTREAM_KEY: &str = "sk-upstream";

/// A listener on a free loopback port, and its address.
///
/// # Panics
/// When no loopback port can be bound: a broken test setup.
pub async fn bind_loopback() -> (TcpListener, SocketAddr) {
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(error) => panic!("cannot bind a loopback port: {error}"),
    };
    match listener.local_addr() {
        Ok(addr) => (listener, addr),
        Err(error) => panic!("bound listener has no address: {error}"),
    }
}

/// A plain HTTP client (reqwest is built without a default TLS crypto provider, so clients are
/// built after installing one).
///
/// # Panics
/// When reqwest cannot build a client: a broken test setup.
pub fn http_client() -> reqwest::Client {
    match gateway_client::tls::client_builder().build() {
        Ok(client) => client,
        Err(error) => panic!("cannot build an HTTP client: {error}"),
    }
}

/// Starts a mock model upstream with its default options.
///
/// # Panics
/// When the mock cannot start.
pub async fn start_mock() -> MockUpstream {
    match MockUpstream::start(MockOptions::default()).await {
        Ok(mock) => mock,
        Err(error) => panic!("the mock upstream does not start: {error}"),
    }
}

/// An upstream answer as a raw `chat.completion` body with this assistant `message`, finish
/// reason and usage: for the shapes [`Reply`]'s own builders do not make.
pub fn raw_completion(
    message: serde_json::Value,
    finish_reason: &str,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> Reply {
    Reply::raw_json(serde_json::json!({
        "id": "chatcmpl-raw",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    }))
}

/// Starts a server whose model is the OpenAI-compatible upstream at `base_url` (a mock, or
/// several comma-separated), presenting [`UPSTREAM_KEY`], with `flags` on top.
pub async fn start_with_model(base_url: &str, flags: &[&str]) -> TestServer {
    let mut all = vec![
        "--openai-base-url",
        base_url,
        "--openai-api-key",
        UPSTREAM_KEY,
    ];
    all.extend_from_slice(flags);
    TestServer::start(&all).await
}

/// A fresh default mock upstream and a server whose model it is, with `flags` on top.
pub async fn start_with_mock(flags: &[&str]) -> (MockUpstream, TestServer) {
    let mock = start_mock().await;
    let server = start_with_model(&mock.base_url(), flags).await;
    (mock, server)
}

/// The shutdown future a server task is given: it completes when the test server is stopped or
/// dropped.
pub type Stop = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A tollgate server on a loopback port, shut down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server with these flags (`["--subscription-keys", "a=1"]`) over the defaults.
    ///
    /// # Panics
    /// When the flags don't parse or no loopback port can be bound: a broken test setup.
    pub async fn start(flags: &[&str]) -> Self {
        Self::serve(flags, None).await
    }

    /// [`TestServer::start`] with connections served on `count` threads of their own, as the
    /// binary serves them.
    pub async fn start_on_threads(flags: &[&str], count: usize) -> Self {
        match ConnectionThreads::start(count) {
            Ok(threads) => Self::serve(flags, Some(threads)).await,
            Err(error) => panic!("the connection threads do not start: {error}"),
        }
    }

    async fn serve(flags: &[&str], threads: Option<ConnectionThreads>) -> Self {
        // Tests then build rmcp and OpenAI clients against the server: they need the provider.
        install_crypto_provider();
        let settings = match Settings::from_args(flags.iter().copied()) {
            Ok(settings) => settings,
            Err(error) => panic!("test settings do not parse: {error}"),
        };
        let (listener, addr) = bind_loopback().await;
        Self::spawn(addr, move |stop| {
            mcp_server::serve(listener, settings, stop, threads)
        })
    }

    /// Runs `serve` (given the future that completes on shutdown) in a task as the server at
    /// `addr`.
    pub fn spawn<F, S>(addr: SocketAddr, serve: S) -> Self
    where
        S: FnOnce(Stop) -> F,
        F: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(Box::pin(async move {
            let _ = stop.await;
        })));
        Self {
            addr,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn mcp_url(&self) -> String {
        self.url("/mcp")
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A JSON-RPC request body for a raw POST to /mcp.
pub fn rpc(id: u64, method: &str, params: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// `_meta` for a 2026-07-28 request, which carries the protocol version per request instead of
/// negotiating it with `initialize`.
pub fn meta_2026() -> serde_json::Value {
    serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "tollgate-tests", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// POSTs a stateless 2026-07-28 `tools/call` of `echo`: the version and client in `_meta`, the
/// method and tool also in headers, as such clients send them.
pub async fn call_echo_2026(
    client: &reqwest::Client,
    server: &TestServer,
    id: u64,
    message: &str,
) -> reqwest::Response {
    let mut params = serde_json::json!({"name": "echo", "arguments": {"message": message}});
    params["_meta"] = meta_2026();
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];
    post_mcp(client, server, &rpc(id, "tools/call", params), &headers).await
}

/// POSTs a JSON-RPC message to /mcp with the headers MCP clients send.
pub async fn post_mcp(
    client: &reqwest::Client,
    server: &TestServer,
    body: &serde_json::Value,
    extra_headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client
        .post(server.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(body);
    for (name, value) in extra_headers {
        request = request.header(*name, *value);
    }
    match request.send().await {
        Ok(response) => response,
        Err(error) => panic!("POST /mcp failed: {error}"),
    }
}
