//! Shared harness for tollgate's integration tests (one test file per concern in `tests/`).
//!
//! [`TestServer::start`] binds `127.0.0.1:0` and serves the real app on it; the listener is bound
//! before the server task starts, so a test can connect at once with no readiness wait.
//! [`gateway`] has the helpers of the gateway tests, [`agent`] those of the agent tests.

pub mod agent;
pub mod gateway;
pub mod redis;

use std::net::SocketAddr;

use mcp_server::Settings;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

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
        let settings = match Settings::from_args(flags.iter().copied()) {
            Ok(settings) => settings,
            Err(error) => panic!("test settings do not parse: {error}"),
        };
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(error) => panic!("cannot bind a loopback port: {error}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(error) => panic!("bound listener has no address: {error}"),
        };
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(mcp_server::serve(listener, settings, async move {
            let _ = stop.await;
        }));
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
