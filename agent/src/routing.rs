//! How the agent reaches its tools: in-process (the fast path) or through an MCP endpoint.
//!
//! MCP routing sends each call through the `/mcp` endpoint like any client, so the calls pass
//! the same keys, rate limits and metrics. A failure there (a 429, a protocol error, a dropped
//! connection) becomes a tool error the model sees; it never ends the turn.

use std::{collections::HashMap, sync::Arc};

use rmcp::{
    ClientLifecycleMode, ClientServiceExt, RoleClient,
    model::{CallToolRequestParams, ClientConfig, ProtocolVersion},
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
        caller_key: Option<&SecretString>,
    ) -> ToolOutcome {
        match self {
            Self::InProcess(instance) => match tools::call(instance, name, Some(arguments)) {
                Ok(result) => ToolOutcome {
                    result,
                    is_error: false,
                },
                Err(error) => ToolOutcome::error(error.to_string()),
            },
            Self::Mcp(mcp) => mcp.call(name, arguments, caller_key).await,
        }
    }
}

/// MCP routing: one reusable streamable-HTTP client per subscription key.
pub struct McpTools {
    url: String,
    fallback_key: Option<SecretString>,
    clients: Mutex<HashMap<String, Arc<McpClient>>>,
}

impl McpTools {
    pub fn new(url: String, fallback_key: Option<SecretString>) -> Self {
        Self {
            url,
            fallback_key,
            clients: Mutex::new(HashMap::new()),
        }
    }

    async fn call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
        caller_key: Option<&SecretString>,
    ) -> ToolOutcome {
        let key = caller_key
            .or(self.fallback_key.as_ref())
            .map(|k| k.expose_secret().to_owned())
            .unwrap_or_default();
        let client = match self.client_for(&key).await {
            Ok(client) => client,
            Err(message) => return ToolOutcome::error(message),
        };
        let params = CallToolRequestParams::new(name.to_owned()).with_arguments(arguments);
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
                        json!({"error": text})
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    }
                });
                ToolOutcome { result, is_error }
            }
            Err(rmcp::ServiceError::McpError(error)) => {
                ToolOutcome::error(error.message.to_string())
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
                ToolOutcome::error(format!("MCP call failed: {error}"))
            }
        }
    }

    async fn client_for(&self, key: &str) -> Result<Arc<McpClient>, String> {
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(key) {
            return Ok(client.clone());
        }
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url.clone());
        if !key.is_empty() {
            let value = http::HeaderValue::from_str(key)
                .map_err(|_| "the subscription key is not a valid header value".to_owned())?;
            config = config.custom_headers(HashMap::from([(
                http::HeaderName::from_static("api-key"),
                value,
            )]));
        }
        let transport = StreamableHttpClientTransport::from_config(config);
        // Stateless 2026-07-28 when the server has it (no handshake); the handshake otherwise.
        let client = ClientConfig::default()
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Auto {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                    legacy_version: Some(ProtocolVersion::V_2025_11_25),
                },
            )
            .await
            .map_err(|error| {
                let reason = match &error {
                    ClientInitializeError::TransportError { error, .. } => http_refusal(error),
                    _ => None,
                };
                let reason = reason.unwrap_or_else(|| error.to_string());
                format!("cannot reach the MCP server at {}: {reason}", self.url)
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
type HttpError = StreamableHttpError<reqwest_rmcp::Error>;

/// What to tell the model when the MCP server refused a request with an HTTP status (429 or
/// 5xx), or `None` for any other failure.
///
/// rmcp keeps the status and the server's `Retry-After` in its transport error, but its
/// `Display` reads as Rust type names followed by "HTTP 429": nothing a model can act on.
fn http_refusal(error: &rmcp::transport::DynamicTransportError) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error.error.as_ref());
    while let Some(cause) = current {
        if let Some(HttpError::HttpStatus(status)) = cause.downcast_ref::<HttpError>() {
            return Some(describe_status(status));
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
    use super::*;

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
