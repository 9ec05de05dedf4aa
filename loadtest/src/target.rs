//! What a run drives: the route, the request body for a prompt, and how an answer is read.
//!
//! - `agent`: `POST /agent/chat` with `{"message": prompt}`; the answer's `cache: {hits, misses}`
//!   and `instance_id` are counted.
//! - `gateway`: `POST /v1/chat/completions` with one user message; the `x-llm-cache-status`
//!   header (`hit`, `miss`; `bypass` counts as neither) is counted, and the instance comes from
//!   an instance header if the deployment adds one.
//! - `mcp`: `POST /mcp` with a stateless 2026-07-28 `tools/call` of `echo` (protocol version
//!   and client info in `_meta`, no `initialize`); the result's `structuredContent.instance_id`
//!   is counted, and a JSON-RPC error or `isError: true` is a failure.

use std::fmt;

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use crate::stats::{Failure, Outcome};

/// The gateway's cache status header.
pub const CACHE_STATUS_HEADER: &str = "x-llm-cache-status";
/// Headers that may name the serving instance on the gateway route, checked in order.
pub const INSTANCE_HEADERS: &[&str] = &["x-instance-id", "x-ms-instance-id", "x-served-by"];
/// The MCP protocol revision the `mcp` target speaks.
pub const MCP_PROTOCOL_VERSION: &str = "2026-07-28";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// `POST /agent/chat`: one agent turn per request.
    Agent,
    /// `POST /v1/chat/completions`: one model call through the gateway per request.
    Gateway,
    /// `POST /mcp`: one `tools/call` of `echo` per request.
    Mcp,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Gateway => "gateway",
            Self::Mcp => "mcp",
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Self::Agent => "/agent/chat",
            Self::Gateway => "/v1/chat/completions",
            Self::Mcp => "/mcp",
        }
    }

    /// The full URL for `base_url` (with or without a trailing slash).
    pub fn url(self, base_url: &str) -> String {
        format!("{}{}", base_url.trim_end_matches('/'), self.path())
    }

    /// Extra headers this target sends besides `content-type: application/json`.
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Agent | Self::Gateway => &[],
            Self::Mcp => &[
                ("accept", "application/json, text/event-stream"),
                ("mcp-protocol-version", MCP_PROTOCOL_VERSION),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
            ],
        }
    }

    /// The JSON request body for `prompt`.
    pub fn body(self, prompt: &str) -> Bytes {
        let body = match self {
            Self::Agent => json!({ "message": prompt }),
            Self::Gateway => json!({ "messages": [{ "role": "user", "content": prompt }] }),
            Self::Mcp => json!({
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {
                    "name": "echo",
                    "arguments": { "message": prompt },
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": MCP_PROTOCOL_VERSION,
                        "io.modelcontextprotocol/clientInfo": { "name": "tollgate-loadtest", "version": env!("CARGO_PKG_VERSION") },
                        "io.modelcontextprotocol/clientCapabilities": {}
                    }
                }
            }),
        };
        Bytes::from(body.to_string())
    }

    /// Reads one answer: failure, cache counts and serving instance.
    pub fn interpret(self, status: u16, headers: &HeaderMap, body: &[u8]) -> Outcome {
        if !(200..300).contains(&status) {
            return Outcome::failed(Failure::Status(status));
        }
        match self {
            Self::Agent => agent_outcome(body),
            Self::Gateway => gateway_outcome(headers),
            Self::Mcp => mcp_outcome(body),
        }
    }
}

#[derive(Deserialize)]
struct AgentReply {
    instance_id: Option<String>,
    cache: Option<AgentCache>,
}

#[derive(Deserialize)]
struct AgentCache {
    #[serde(default)]
    hits: u64,
    #[serde(default)]
    misses: u64,
}

fn agent_outcome(body: &[u8]) -> Outcome {
    match serde_json::from_slice::<AgentReply>(body) {
        Ok(reply) => {
            let (cache_hits, cache_misses) = reply
                .cache
                .map_or((0, 0), |cache| (cache.hits, cache.misses));
            Outcome {
                failure: None,
                cache_hits,
                cache_misses,
                instance: reply.instance_id,
            }
        }
        Err(_) => Outcome::failed(Failure::InvalidBody),
    }
}

fn gateway_outcome(headers: &HeaderMap) -> Outcome {
    let status = headers
        .get(CACHE_STATUS_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim);
    let instance = INSTANCE_HEADERS
        .iter()
        .find_map(|name| headers.get(*name)?.to_str().ok())
        .map(str::to_owned);
    Outcome {
        failure: None,
        cache_hits: u64::from(status.is_some_and(|s| s.eq_ignore_ascii_case("hit"))),
        cache_misses: u64::from(status.is_some_and(|s| s.eq_ignore_ascii_case("miss"))),
        instance,
    }
}

#[derive(Deserialize)]
struct RpcReply {
    result: Option<ToolResult>,
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolResult {
    #[serde(default)]
    is_error: bool,
    structured_content: Option<Structured>,
}

#[derive(Deserialize)]
struct Structured {
    instance_id: Option<String>,
}

fn mcp_outcome(body: &[u8]) -> Outcome {
    match serde_json::from_slice::<RpcReply>(body) {
        Ok(RpcReply {
            result: Some(result),
            error: None,
        }) if !result.is_error => Outcome {
            instance: result.structured_content.and_then(|s| s.instance_id),
            ..Outcome::default()
        },
        Ok(_) => Outcome::failed(Failure::RpcError),
        Err(_) => Outcome::failed(Failure::InvalidBody),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::Value;

    #[test]
    fn urls_join_without_double_slashes() {
        assert_eq!(
            Target::Agent.url("http://127.0.0.1:8000/"),
            "http://127.0.0.1:8000/agent/chat"
        );
        assert_eq!(
            Target::Gateway.url("http://h"),
            "http://h/v1/chat/completions"
        );
        assert_eq!(Target::Mcp.url("http://h"), "http://h/mcp");
    }

    #[test]
    fn bodies_carry_the_prompt() -> serde_json::Result<()> {
        let agent: Value = serde_json::from_slice(&Target::Agent.body("hi \"there\""))?;
        assert_eq!(agent, json!({"message": "hi \"there\""}));
        let gateway: Value = serde_json::from_slice(&Target::Gateway.body("hi"))?;
        assert_eq!(
            gateway["messages"][0],
            json!({"role": "user", "content": "hi"})
        );
        let mcp: Value = serde_json::from_slice(&Target::Mcp.body("hi"))?;
        assert_eq!(mcp["method"], "tools/call");
        assert_eq!(mcp["params"]["arguments"]["message"], "hi");
        assert_eq!(
            mcp["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            MCP_PROTOCOL_VERSION
        );
        Ok(())
    }

    #[test]
    fn agent_answers_report_cache_and_instance() {
        let body =
            br#"{"reply":"x","tool_calls":[],"instance_id":"i-1","cache":{"hits":1,"misses":1}}"#;
        let outcome = Target::Agent.interpret(200, &HeaderMap::new(), body);
        assert_eq!(
            outcome,
            Outcome {
                failure: None,
                cache_hits: 1,
                cache_misses: 1,
                instance: Some("i-1".into()),
            }
        );
        assert_eq!(
            Target::Agent
                .interpret(200, &HeaderMap::new(), b"<html>")
                .failure,
            Some(Failure::InvalidBody)
        );
        assert_eq!(
            Target::Agent
                .interpret(429, &HeaderMap::new(), b"{}")
                .failure,
            Some(Failure::Status(429))
        );
    }

    #[test]
    fn gateway_answers_report_the_cache_header() {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_STATUS_HEADER, HeaderValue::from_static("hit"));
        let hit = Target::Gateway.interpret(200, &headers, b"{}");
        assert_eq!((hit.cache_hits, hit.cache_misses), (1, 0));
        assert_eq!(hit.instance, None);
        headers.insert(CACHE_STATUS_HEADER, HeaderValue::from_static("miss"));
        headers.insert("x-instance-id", HeaderValue::from_static("web-0"));
        let miss = Target::Gateway.interpret(200, &headers, b"{}");
        assert_eq!((miss.cache_hits, miss.cache_misses), (0, 1));
        assert_eq!(miss.instance.as_deref(), Some("web-0"));
        headers.insert(CACHE_STATUS_HEADER, HeaderValue::from_static("bypass"));
        let bypass = Target::Gateway.interpret(200, &headers, b"{}");
        assert_eq!((bypass.cache_hits, bypass.cache_misses), (0, 0));
    }

    #[test]
    fn mcp_answers_must_be_real_tool_results() {
        let ok = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"structuredContent":{"message":"hi","instance_id":"i-2"}}}"#;
        let outcome = Target::Mcp.interpret(200, &HeaderMap::new(), ok);
        assert_eq!(outcome.failure, None);
        assert_eq!(outcome.instance.as_deref(), Some("i-2"));
        let error = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}"#;
        assert_eq!(
            Target::Mcp.interpret(200, &HeaderMap::new(), error).failure,
            Some(Failure::RpcError)
        );
        let tool_error = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#;
        assert_eq!(
            Target::Mcp
                .interpret(200, &HeaderMap::new(), tool_error)
                .failure,
            Some(Failure::RpcError)
        );
    }
}
