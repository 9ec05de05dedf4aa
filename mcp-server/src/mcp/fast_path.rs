//! The fast path for the hottest MCP request: a plain stateless `tools/call`.
//!
//! rmcp answers every stateless request through a one-shot session: a serve task, a handler
//! task and a response task, with channels and cancellation tokens between them. That machinery
//! cost about two thirds of /mcp's CPU per echo call (benchmarks/README.md). A `tools/call` from
//! a client on a pre-2026 protocol version needs none of it: its answer is a pure function of its
//! body. This module answers exactly that shape itself and hands everything else, and anything it
//! is unsure of, to rmcp untouched.
//!
//! Two rules keep it honest:
//! - it serves a strict subset of the requests rmcp would answer with a 200: every header check
//!   rmcp makes is either repeated here or turned into a reason to decline;
//! - its answer is built and serialized with rmcp's own types from the same `call_tool` function
//!   the rmcp handler uses, so the bytes are rmcp's. `tests/integration/mcp_fast_path.rs` sends
//!   the same requests to a server with and without it and compares the answers.

use std::{borrow::Cow, sync::Arc};

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header, uri::Authority};
use rmcp::model::{JsonObject, RequestId, ServerJsonRpcMessage, ServerResult};
use serde::Deserialize;
use tools::Instance;

use super::handler::call_tool;
use crate::error::ApiError;

/// Protocol versions whose stateless `tools/call` rmcp serves without per-request negotiation.
/// 2026-07-28 requests carry per-request `_meta` and standard headers that rmcp validates: those
/// go to rmcp.
const PLAIN_PROTOCOL_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

const MCP_PROTOCOL_VERSION: &str = "mcp-protocol-version";

pub struct FastPath {
    instance: Arc<Instance>,
    /// The Host allowlist, parsed once, in the form rmcp compares it.
    allowed_hosts: Vec<AllowedHost>,
}

/// One Host allowlist entry: a host, and the one port it is limited to, if any.
struct AllowedHost {
    host: String,
    port: Option<u16>,
}

/// A `tools/call` with nothing but `jsonrpc`, `id`, `method` and `params` (`name`, `arguments`).
/// Anything more (`_meta`, a progress token, task or input fields) fails to parse and goes to rmcp.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainToolCall<'a> {
    #[serde(borrow)]
    jsonrpc: Cow<'a, str>,
    id: RequestId,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    params: PlainParams<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    arguments: Option<JsonObject>,
}

impl PlainToolCall<'_> {
    pub fn tool_name(&self) -> &str {
        &self.params.name
    }
}

impl FastPath {
    /// `allowed_hosts` is the list rmcp's service was configured with.
    pub fn new(instance: Arc<Instance>, allowed_hosts: &[String]) -> Self {
        Self {
            instance,
            allowed_hosts: allowed_hosts
                .iter()
                .filter_map(|entry| AllowedHost::parse(entry))
                .collect(),
        }
    }

    /// The call, if this POST is a plain stateless tool call; `None` for anything else, which is
    /// rmcp's to answer.
    pub fn plain_call<'a>(&self, headers: &HeaderMap, body: &'a [u8]) -> Option<PlainToolCall<'a>> {
        if !self.headers_are_plain(headers) {
            return None;
        }
        let call: PlainToolCall<'_> = serde_json::from_slice(body).ok()?;
        (call.jsonrpc == "2.0" && call.method == "tools/call").then_some(call)
    }

    /// Runs the call and answers it as rmcp would.
    pub fn answer(&self, call: PlainToolCall<'_>) -> Response {
        let message = match call_tool(&self.instance, &call.params.name, call.params.arguments) {
            Ok(result) => {
                // What rmcp's handler does for every peer older than 2026-07-28.
                let mut result = ServerResult::from(result);
                result.strip_result_type_for_legacy_peer();
                result.strip_non_object_output_for_legacy_peer();
                ServerJsonRpcMessage::response(result, call.id)
            }
            Err(error) => ServerJsonRpcMessage::error(error, Some(call.id)),
        };
        // As rmcp answers a stateless request in JSON mode: 200, whatever the JSON-RPC outcome.
        match serde_json::to_vec(&message) {
            Ok(json) => (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                json,
            )
                .into_response(),
            Err(error) => {
                ApiError::Internal(format!("serializing an MCP answer: {error}")).into_response()
            }
        }
    }

    /// Whether rmcp would pass this request's headers and then answer it statelessly, without
    /// per-request negotiation. Any doubt is a `false`.
    fn headers_are_plain(&self, headers: &HeaderMap) -> bool {
        // Browsers' Origin checks, sessions, resumption and the 2026 standard headers
        // (Mcp-Method, Mcp-Name, Mcp-Param-*) are rmcp's to judge.
        !headers.contains_key(header::ORIGIN)
            && !headers.contains_key("last-event-id")
            && headers
                .keys()
                .all(|name| !name.as_str().starts_with("mcp-") || name == MCP_PROTOCOL_VERSION)
            && headers
                .get(MCP_PROTOCOL_VERSION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|version| PLAIN_PROTOCOL_VERSIONS.contains(&version))
            && self.host_is_allowed(headers)
            && accepts_json_and_sse(headers)
            && is_json_content(headers)
    }

    /// rmcp's Host check: the host matches an entry, and so does the port if the entry names one.
    fn host_is_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(authority) = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .and_then(|host| Authority::try_from(host).ok())
        else {
            return false;
        };
        let host = normalize_host(authority.host());
        let port = authority.port_u16();
        self.allowed_hosts
            .iter()
            .any(|allowed| allowed.host == host && allowed.port.is_none_or(|p| Some(p) == port))
    }
}

impl AllowedHost {
    fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        if entry.is_empty() {
            return None;
        }
        Some(match Authority::try_from(entry) {
            Ok(authority) => Self {
                host: normalize_host(authority.host()),
                port: authority.port_u16(),
            },
            Err(_) => Self {
                host: normalize_host(entry),
                port: None,
            },
        })
    }
}

fn normalize_host(host: &str) -> String {
    host.trim_matches(['[', ']']).to_ascii_lowercase()
}

/// Both media types listed plainly. Parameters and quoting (`;q=0`, `"…"`) take rmcp's full
/// parser to judge, so they decline.
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        if value.contains([';', '"']) {
            return false;
        }
        for essence in value.split(',').map(str::trim) {
            json |= essence.eq_ignore_ascii_case("application/json");
            sse |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

fn is_json_content(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn fast_path() -> FastPath {
        FastPath::new(
            Arc::new(Instance::new(Some("t".into()), None, None, None)),
            &[
                "localhost".into(),
                "127.0.0.1".into(),
                "::1".into(),
                "api.example.com:8443".into(),
            ],
        )
    }

    fn plain_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8000"));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(MCP_PROTOCOL_VERSION, HeaderValue::from_static("2025-11-25"));
        headers
    }

    fn with(mut headers: HeaderMap, name: &'static str, value: &'static str) -> HeaderMap {
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    const ECHO: &[u8] = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#;

    #[test]
    fn plain_headers_pass_and_anything_unusual_declines() {
        let fast = fast_path();
        let passing = [
            plain_headers(),
            with(plain_headers(), "host", "[::1]:9"),
            with(plain_headers(), "host", "LOCALHOST"),
            with(plain_headers(), "host", "api.example.com:8443"),
            with(
                plain_headers(),
                "content-type",
                "application/json; charset=utf-8",
            ),
        ];
        for headers in &passing {
            assert!(fast.plain_call(headers, ECHO).is_some(), "{headers:?}");
        }

        let mut no_version = plain_headers();
        no_version.remove(MCP_PROTOCOL_VERSION);
        let mut no_host = plain_headers();
        no_host.remove(header::HOST);
        let declined = [
            no_version,
            no_host,
            with(plain_headers(), "host", "evil.example.com"),
            with(plain_headers(), "host", "api.example.com:8444"),
            with(plain_headers(), "host", "api.example.com"),
            with(plain_headers(), "host", "bad host"),
            with(plain_headers(), "origin", "http://localhost:3000"),
            with(plain_headers(), "mcp-session-id", "abc"),
            with(plain_headers(), "mcp-method", "tools/call"),
            with(plain_headers(), "mcp-param-message", "x"),
            with(plain_headers(), "last-event-id", "1"),
            with(plain_headers(), "mcp-protocol-version", "2026-07-28"),
            with(plain_headers(), "mcp-protocol-version", "1999-01-01"),
            with(plain_headers(), "accept", "application/json"),
            with(
                plain_headers(),
                "accept",
                "application/json, text/event-stream;q=0",
            ),
            with(plain_headers(), "content-type", "text/plain"),
        ];
        for headers in &declined {
            assert!(fast.plain_call(headers, ECHO).is_none(), "{headers:?}");
        }
    }

    #[test]
    fn only_plain_tool_calls_are_answered() {
        let fast = fast_path();
        let call = fast.plain_call(&plain_headers(), ECHO).unwrap();
        assert_eq!(call.tool_name(), "echo");
        let answer = fast.answer(call);
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
        let declined: &[&[u8]] = &[
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{},"_meta":{"progressToken":1}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"extra":1}"#,
            br#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#,
            br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo"}}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"echo"}}"#,
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}]"#,
            b"not json",
        ];
        for body in declined {
            assert!(
                fast.plain_call(&plain_headers(), body).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
