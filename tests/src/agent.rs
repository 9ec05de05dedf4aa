//! Helpers for the agent tests: `/agent/chat` calls, the agent's named server-sent events, and a
//! peer that accepts connections but never answers. Servers in front of a mock model come from
//! [`crate::start_with_mock`]; plain POSTs use [`crate::gateway::post_json`].

use std::time::Duration;

use serde_json::Value;
use tokio::{net::TcpStream, task::JoinHandle};

use crate::{TestServer, bind_loopback, gateway::post_json};

/// No agent test should take anywhere near this long; a hang fails instead of blocking the suite.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A client that gives up on a hung request.
///
/// # Panics
/// When reqwest cannot build a client: a broken test setup.
pub fn client() -> reqwest::Client {
    match gateway_client::tls::client_builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(error) => panic!("cannot build an HTTP client: {error}"),
    }
}

/// A chat request body with just a message.
pub fn message(text: &str) -> Value {
    serde_json::json!({"message": text})
}

/// POSTs to `/agent/chat` and returns the status and the JSON body.
///
/// # Panics
/// When the request fails or the body is not JSON.
pub async fn chat(
    client: &reqwest::Client,
    server: &TestServer,
    key: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let response = post_json(client, server, "/agent/chat", key, body).await;
    let status = response.status().as_u16();
    (status, json_body(response).await)
}

/// The `tool_calls` of a turn summary.
///
/// # Panics
/// When the summary has no `tool_calls` array.
pub fn tool_calls(summary: &Value) -> &[Value] {
    match summary["tool_calls"].as_array() {
        Some(calls) => calls,
        None => panic!("the summary has no tool_calls array: {summary}"),
    }
}

/// True when every tool call of a turn summary succeeded and went by `routing`.
pub fn tools_succeeded_via(summary: &Value, routing: &str) -> bool {
    tool_calls(summary)
        .iter()
        .all(|call| call["is_error"] == false && call["routed_via"] == routing)
}

/// A response body as JSON.
///
/// # Panics
/// When the body cannot be read or is not JSON.
pub async fn json_body(response: reqwest::Response) -> Value {
    let text = match response.text().await {
        Ok(text) => text,
        Err(error) => panic!("cannot read the body: {error}"),
    };
    match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(error) => panic!("the body is not JSON ({error}): {text}"),
    }
}

/// One server-sent event: its `event:` name (`message` when absent) and its JSON data.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub name: String,
    pub data: Value,
}

/// The events of a server-sent events body, in order; comments (keep-alives) are skipped.
///
/// # Panics
/// When an event's data is not JSON.
pub fn sse_events(body: &str) -> Vec<SseEvent> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = Some(value.trim().to_owned());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            if data.is_empty() {
                return None;
            }
            let joined = data.join("\n");
            let data = match serde_json::from_str(&joined) {
                Ok(data) => data,
                Err(error) => panic!("event data is not JSON ({error}): {joined}"),
            };
            Some(SseEvent {
                name: name.unwrap_or_else(|| "message".to_owned()),
                data,
            })
        })
        .collect()
}

/// True for the canonical textual form of a UUID (8-4-4-4-12 hex digits).
pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A loopback peer that accepts TCP connections and never answers (nor closes) them: a hung
/// server. Stops when dropped.
pub struct SilentPeer {
    pub addr: std::net::SocketAddr,
    task: JoinHandle<()>,
}

impl SilentPeer {
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        let (listener, addr) = bind_loopback().await;
        let task = tokio::spawn(async move {
            let mut held: Vec<TcpStream> = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Self { addr, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_events_parse_in_order() {
        let body = "event: tool_call\ndata: {\"name\":\"whoami\"}\n\n: keep-alive\n\n\
                    event: delta\ndata: {\"text\":\"Hi\"}\n\ndata: {\"x\":1}\n\n";
        let events = sse_events(body);
        let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["tool_call", "delta", "message"]);
        assert_eq!(events[1].data["text"], "Hi");
    }

    #[test]
    fn uuids_are_recognised() {
        assert!(is_uuid("67e55044-10b1-426f-9247-bb680e5fe0c8"));
        assert!(!is_uuid("req-1"));
        assert!(!is_uuid("67e55044-10b1-426f-9247-bb680e5fe0cZ"));
    }
}
