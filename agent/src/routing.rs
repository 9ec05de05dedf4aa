//! How the agent reaches its tools: in-process (the fast path) or through an MCP endpoint.
//!
//! MCP routing sends each call through the `/mcp` endpoint like any client, so the calls pass
//! the same keys, rate limits and metrics. A failure there (a 429, a protocol error, a dropped
//! connection) becomes a tool error the model sees; it never ends the turn.
//!
//! The caller's key goes only to this server's own `/mcp` ([`McpEndpoint::is_own`]); any other
//! endpoint gets the agent's own key or none. Error texts never show the endpoint's credentials:
//! its URL is shown without userinfo or query ([`UrlRedaction`]).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use reqwest::Url;
use rmcp::{
    ClientLifecycleMode, ClientServiceExt, RoleClient,
    model::{CallToolRequestParams, ClientConfig, ProtocolVersion, RequestMetaObject},
    service::{ClientInitializeError, RunningService},
    transport::{
        StreamableHttpClientTransport,
        streamable_http_client::{
            HttpStatusError, StreamableHttpClientTransportConfig, StreamableHttpError,
        },
    },
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;
use tools::Instance;

use tracing::instrument::WithSubscriber;

use crate::traced_http::TracedHttp;

type McpClient = RunningService<RoleClient, ClientConfig>;

/// Clients kept per key; more distinct keys than this and the oldest connections are dropped.
const MAX_CLIENTS: usize = 256;

/// What a tool call produced, as the model will see it.
#[derive(Debug, Clone)]
pub struct ToolOutcome {
    pub result: Value,
    pub is_error: bool,
}

impl ToolOutcome {
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            result: json!({"error": message.into()}),
            is_error: true,
        }
    }
}

/// Who the agent calls tools for: the caller's credential (sent back to this server's own
/// `/mcp` only) and the tools the caller's token has no scope for (MCP_TOOL_SCOPES), refused
/// here whatever the routing, so the agent never calls a tool its caller could not.
#[derive(Debug, Clone, Default)]
pub struct ToolCaller {
    pub key: Option<SecretString>,
    /// `(tool, scope it needs)`.
    pub denied: Vec<(String, String)>,
}

impl ToolCaller {
    /// A caller with this credential and every scope.
    pub fn with_key(key: Option<SecretString>) -> Self {
        Self {
            key,
            denied: Vec::new(),
        }
    }

    fn refusal(&self, tool: &str) -> Option<ToolOutcome> {
        self.denied
            .iter()
            .find(|(denied, _)| denied == tool)
            .map(|(_, scope)| {
                ToolOutcome::error(format!(
                    "the caller may not call this tool: it needs the scope `{scope}`"
                ))
            })
    }
}

pub enum ToolRouter {
    InProcess(Arc<Instance>),
    Mcp(McpTools),
}

impl ToolRouter {
    pub fn label(&self) -> &'static str {
        match self {
            Self::InProcess(_) => "in-process",
            Self::Mcp(_) => "mcp",
        }
    }

    pub async fn call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
        caller: &ToolCaller,
    ) -> ToolOutcome {
        if let Some(refusal) = caller.refusal(name) {
            return refusal;
        }
        match self {
            Self::InProcess(instance) => match tools::call(instance, name, Some(arguments)) {
                Ok(result) => ToolOutcome {
                    result,
                    is_error: false,
                },
                Err(error) => ToolOutcome::error(error.to_string()),
            },
            Self::Mcp(mcp) => mcp.call(name, arguments, caller.key.as_ref()).await,
        }
    }
}

/// Where MCP routing sends tool calls, and whether that is this server's own `/mcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpEndpoint {
    url: String,
    own: bool,
}

impl McpEndpoint {
    /// This server's own `/mcp` on the address it listens on.
    pub fn local(listening: SocketAddr) -> Self {
        let host = match listening.ip() {
            ip if ip.is_unspecified() && ip.is_ipv6() => "[::1]".to_owned(),
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        Self {
            url: format!("http://{host}:{}/mcp", listening.port()),
            own: true,
        }
    }

    /// A configured URL (MCP_URL). It counts as this server's own only when it names the
    /// listener literally: plain `http`, no userinfo, the listening port, and the listening IP
    /// (or a loopback IP of the same family when listening on every address). Host names are
    /// never trusted to be us: what they resolve to is not ours to decide.
    pub fn configured(url: &str, listening: SocketAddr) -> Self {
        let own = Url::parse(url).is_ok_and(|parsed| names_listener(&parsed, listening));
        Self {
            url: url.to_owned(),
            own,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether callers' keys may be sent there.
    pub fn is_own(&self) -> bool {
        self.own
    }
}

fn names_listener(url: &Url, listening: SocketAddr) -> bool {
    if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    if url.port_or_known_default() != Some(listening.port()) {
        return false;
    }
    // An IP literal only (IPv6 ones come bracketed); a name does not parse as an IP.
    let Some(Ok(ip)) = url
        .host_str()
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
        .map(str::parse::<IpAddr>)
    else {
        return false;
    };
    let local = listening.ip();
    ip == local || (local.is_unspecified() && ip.is_loopback() && ip.is_ipv4() == local.is_ipv4())
}

/// How an MCP URL may appear in error texts: scheme, host, port and path only. The userinfo,
/// query and fragment (a password, an Azure Functions `code`…) are removed wherever they occur.
#[derive(Debug, Clone)]
pub struct UrlRedaction {
    shown: String,
    /// The whole URL as texts may spell it (as configured, normalized, without userinfo),
    /// longest first: each becomes `shown`.
    forms: Vec<String>,
    /// Its secret parts (password, query, fragment, query values), longest first: each becomes
    /// [`REDACTED`] wherever it is left.
    secrets: Vec<String>,
}

/// What takes the place of a secret part of the URL.
const REDACTED: &str = "[redacted]";

impl UrlRedaction {
    pub fn new(url: &str) -> Self {
        let Ok(parsed) = Url::parse(url) else {
            // Unparseable: show nothing of it.
            return Self {
                shown: "the configured MCP URL".to_owned(),
                forms: vec![url.to_owned()],
                secrets: Vec::new(),
            };
        };
        let mut bare = parsed.clone();
        let _ = bare.set_username("");
        let _ = bare.set_password(None);
        let forms = vec![url.to_owned(), parsed.to_string(), bare.to_string()];
        bare.set_query(None);
        bare.set_fragment(None);

        let mut secrets: Vec<String> = [parsed.password(), parsed.query(), parsed.fragment()]
            .into_iter()
            .flatten()
            .map(str::to_owned)
            .collect();
        // Query values on their own, raw and decoded; short ones are not secrets.
        let raw_values = parsed
            .query()
            .into_iter()
            .flat_map(|query| query.split('&'))
            .filter_map(|pair| pair.split_once('=').map(|(_, value)| value.to_owned()));
        let decoded_values = parsed.query_pairs().map(|(_, value)| value.into_owned());
        secrets.extend(raw_values.chain(decoded_values).filter(|v| v.len() >= 4));
        Self {
            shown: bare.to_string(),
            forms: longest_first(forms),
            secrets: longest_first(secrets),
        }
    }

    /// The URL as errors show it, e.g. `http://host/mcp`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// `text` with the URL shown bare and every secret part of it removed.
    pub fn apply(&self, text: &str) -> String {
        let mut text = text.to_owned();
        let replacements = self
            .forms
            .iter()
            .map(|form| (form, self.shown.as_str()))
            .chain(self.secrets.iter().map(|secret| (secret, REDACTED)));
        for (hidden, with) in replacements {
            if text.contains(hidden.as_str()) {
                text = text.replace(hidden.as_str(), with);
            }
        }
        text
    }
}

fn longest_first(mut texts: Vec<String>) -> Vec<String> {
    texts.retain(|text| !text.is_empty());
    texts.sort_by_key(|text| std::cmp::Reverse(text.len()));
    texts.dedup();
    texts
}

/// MCP routing: one reusable streamable-HTTP client per subscription key.
pub struct McpTools {
    endpoint: McpEndpoint,
    redaction: UrlRedaction,
    agent_key: Option<SecretString>,
    clients: Mutex<HashMap<String, Arc<McpClient>>>,
}

impl McpTools {
    /// `agent_key` is presented when no caller key applies: always, for an endpoint that is not
    /// this server's own.
    pub fn new(endpoint: McpEndpoint, agent_key: Option<SecretString>) -> Self {
        Self {
            redaction: UrlRedaction::new(endpoint.url()),
            endpoint,
            agent_key,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The key to present: the caller's only to our own `/mcp`, else the agent's.
    fn key_for(&self, caller_key: Option<&SecretString>) -> String {
        let caller_key = caller_key.filter(|_| self.endpoint.is_own());
        caller_key
            .or(self.agent_key.as_ref())
            .map(|k| k.expose_secret().to_owned())
            .unwrap_or_default()
    }

    async fn call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
        caller_key: Option<&SecretString>,
    ) -> ToolOutcome {
        let key = self.key_for(caller_key);
        let client = match self.client_for(&key).await {
            Ok(client) => client,
            Err(message) => return ToolOutcome::error(self.redaction.apply(&message)),
        };
        let mut params = CallToolRequestParams::new(name.to_owned()).with_arguments(arguments);
        // The trace goes on in `_meta` (SEP-414); `TracedHttp` copies it into the headers.
        if let Some((parent, state)) = gateway_client::telemetry::current_trace_context() {
            let mut meta = RequestMetaObject::new();
            meta.set_traceparent(parent);
            if let Some(state) = state {
                meta.set_tracestate(state);
            }
            params.meta = Some(meta);
        }
        match client.call_tool(params).await {
            Ok(result) => {
                let is_error = result.is_error.unwrap_or(false);
                let result = result.structured_content.clone().unwrap_or_else(|| {
                    let text: Vec<String> = result
                        .content
                        .iter()
                        .filter_map(|block| block.as_text().map(|t| t.text.clone()))
                        .collect();
                    let text = text.join("\n");
                    if is_error {
                        json!({"error": self.redaction.apply(&text)})
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    }
                });
                ToolOutcome { result, is_error }
            }
            Err(rmcp::ServiceError::McpError(error)) => {
                ToolOutcome::error(self.redaction.apply(&error.message))
            }
            Err(error) => {
                // The server refused this one request with an HTTP status (a 429 from its rate
                // limit, a 5xx): say so plainly, and keep the client. Dropping it would make the
                // next call reconnect, and that handshake is one more request against the same
                // limit (refused too while the limit lasts).
                if let rmcp::ServiceError::TransportSend(transport) = &error
                    && let Some(message) = http_refusal(transport)
                {
                    return ToolOutcome::error(message);
                }
                // The connection may be broken: forget it, the next call reconnects.
                self.clients.lock().await.remove(&key);
                ToolOutcome::error(self.redaction.apply(&format!("MCP call failed: {error}")))
            }
        }
    }

    async fn client_for(&self, key: &str) -> Result<Arc<McpClient>, String> {
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(key) {
            return Ok(client.clone());
        }
        let mut config =
            StreamableHttpClientTransportConfig::with_uri(self.endpoint.url().to_owned());
        if !key.is_empty() {
            let value = http::HeaderValue::from_str(key)
                .map_err(|_| "the subscription key is not a valid header value".to_owned())?;
            config = config.custom_headers(HashMap::from([(
                http::HeaderName::from_static("api-key"),
                value,
            )]));
        }
        // As rmcp's own client is built: no idle pooling (stalls on Linux's delayed ACKs), and no
        // redirects (a POST's body and our key stay with the endpoint configured).
        let http = gateway_client::tls::client_builder()
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| format!("cannot build the MCP HTTP client: {error}"))?;
        let transport = StreamableHttpClientTransport::with_client(TracedHttp(http), config);
        // Stateless 2026-07-28 when the server has it (no handshake); the handshake otherwise.
        let connecting = ClientConfig::default().serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Auto {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                legacy_version: Some(ProtocolVersion::V_2025_11_25),
            },
        );
        // rmcp runs the client's loop in the span current when it starts, for as long as the
        // client lives: started in a task of its own, it holds none of this turn's spans open.
        let client = tokio::spawn(connecting.with_current_subscriber())
            .await
            .map_err(|_| "the MCP client's start was cancelled".to_owned())?
            .map_err(|error| {
                let reason = match &error {
                    ClientInitializeError::TransportError { error, .. } => http_refusal(error),
                    _ => None,
                };
                let reason = reason.unwrap_or_else(|| error.to_string());
                format!(
                    "cannot reach the MCP server at {}: {reason}",
                    self.redaction.shown()
                )
            })?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        let client = Arc::new(client);
        clients.insert(key.to_owned(), client.clone());
        Ok(client)
    }
}

/// rmcp's HTTP transport error over its reqwest client.
type HttpError = StreamableHttpError<reqwest::Error>;

/// What to tell the model when the MCP server refused a request with an HTTP status (429 or
/// 5xx, or a 403 for a missing scope), or `None` for any other failure.
///
/// rmcp keeps the status and the server's `Retry-After` in its transport error, but its
/// `Display` reads as Rust type names followed by "HTTP 429": nothing a model can act on.
fn http_refusal(error: &rmcp::transport::DynamicTransportError) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error.error.as_ref());
    while let Some(cause) = current {
        match cause.downcast_ref::<HttpError>() {
            Some(HttpError::HttpStatus(status)) => return Some(describe_status(status)),
            // The caller's own rights do not cover this tool (MCP_TOOL_SCOPES on our /mcp).
            Some(HttpError::InsufficientScope(refusal)) => {
                let scope = refusal.get_required_scope().unwrap_or("another scope");
                return Some(format!(
                    "the caller may not call this tool: it needs the scope `{scope}` (HTTP 403)"
                ));
            }
            _ => {}
        }
        current = cause.source();
    }
    None
}

fn describe_status(refusal: &HttpStatusError) -> String {
    let retry = match refusal.retry_after.as_deref() {
        Some(seconds) if seconds.parse::<u64>().is_ok() => format!("; retry after {seconds} s"),
        Some(when) => format!("; retry after {when}"),
        None => String::new(),
    };
    match refusal.status {
        429 => format!("the MCP server's rate limit refused this call (HTTP 429){retry}"),
        status => format!("the MCP server failed to handle this call (HTTP {status}){retry}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn listening(addr: &str) -> SocketAddr {
        addr.parse().unwrap()
    }

    #[test]
    fn only_the_listener_itself_is_our_own_endpoint() {
        let own = |url: &str, at: &str| McpEndpoint::configured(url, listening(at)).is_own();
        assert!(McpEndpoint::local(listening("0.0.0.0:8000")).is_own());
        assert_eq!(
            McpEndpoint::local(listening("0.0.0.0:8000")).url(),
            "http://127.0.0.1:8000/mcp"
        );
        assert!(own("http://127.0.0.1:8000/mcp", "127.0.0.1:8000"));
        assert!(own("http://127.0.0.1:8000/mcp", "0.0.0.0:8000"));
        assert!(own("http://[::1]:8000/mcp", "[::]:8000"));
        assert!(own("http://10.0.0.5:8000/mcp", "10.0.0.5:8000"));
        // Another port, another address, a host name, userinfo, TLS: not provably us.
        assert!(!own("http://127.0.0.1:8001/mcp", "127.0.0.1:8000"));
        assert!(!own("http://127.0.0.2:8000/mcp", "127.0.0.1:8000"));
        assert!(!own("http://127.0.0.1:8000/mcp", "10.0.0.5:8000"));
        assert!(!own("http://localhost:8000/mcp", "127.0.0.1:8000"));
        assert!(!own("http://u:p@127.0.0.1:8000/mcp", "127.0.0.1:8000"));
        assert!(!own("https://127.0.0.1:8000/mcp", "127.0.0.1:8000"));
        assert!(!own("http://127.0.0.1/mcp", "127.0.0.1:8000"));
        assert!(!own("not a url", "127.0.0.1:8000"));
    }

    #[test]
    fn urls_in_errors_lose_userinfo_and_query() {
        let redaction =
            UrlRedaction::new("http://svc:pa55word@host.example/mcp?code=FUNC-KEY#frag");
        assert_eq!(redaction.shown(), "http://host.example/mcp");
        let text = redaction.apply(
            "error sending request for url (http://svc:pa55word@host.example/mcp?code=FUNC-KEY#frag): \
             refused; again at http://host.example/mcp?code=FUNC-KEY#frag; the code FUNC-KEY and \
             pa55word",
        );
        assert_eq!(
            text.matches("http://host.example/mcp)").count()
                + text.matches("http://host.example/mcp;").count(),
            2,
            "{text}"
        );
        for secret in ["pa55word", "FUNC-KEY", "code=", "svc:", "frag"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let garbled = UrlRedaction::new("::not a url?code=FUNC-KEY");
        assert!(
            !garbled
                .apply("at ::not a url?code=FUNC-KEY")
                .contains("FUNC-KEY")
        );
    }

    #[test]
    fn http_refusals_read_as_plain_words() {
        let limited = HttpStatusError::new(429, Some("30".to_owned()));
        assert_eq!(
            describe_status(&limited),
            "the MCP server's rate limit refused this call (HTTP 429); retry after 30 s"
        );
        let failed = HttpStatusError::new(503, None);
        assert_eq!(
            describe_status(&failed),
            "the MCP server failed to handle this call (HTTP 503)"
        );
        let transport = rmcp::transport::DynamicTransportError::from_parts(
            "test",
            std::any::TypeId::of::<()>(),
            Box::new(HttpError::HttpStatus(limited)),
        );
        assert!(http_refusal(&transport).is_some_and(|m| m.contains("rate limit")));
        let other = rmcp::transport::DynamicTransportError::from_parts(
            "test",
            std::any::TypeId::of::<()>(),
            Box::new(HttpError::UnexpectedEndOfStream),
        );
        assert_eq!(http_refusal(&other), None);
    }
}
