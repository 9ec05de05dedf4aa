//! `/mcp`: rmcp's streamable-HTTP service, stateless with JSON answers, behind our limits and
//! per-tool scopes, with a fast path for plain stateless tool calls (`fast_path`). `content`
//! serves the built-in documents as resources, and the prompts.

mod content;
mod fast_path;
mod handler;
pub mod limits;
mod trace;
pub mod traffic;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json,
    body::Body,
    extract::Request,
    response::{IntoResponse, Response},
    routing::{MethodRouter, any},
};
use http::{Method, StatusCode, header};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::never::NeverSessionManager,
};
use tokio::time::timeout_at;
use tokio_util::sync::CancellationToken;
use tools::Instance;
use tracing::{Instrument, instrument::WithSubscriber};

pub use handler::{TollgateMcp, warm};

use crate::{
    auth::Caller,
    config::McpSettings,
    error::{ApiError, read_body},
    oauth::{Challenge, OAuth, scopes::ToolScopes},
};
use fast_path::FastPath;
use traffic::{Labels, McpTraffic};

/// Browser origins allowed when `ALLOWED_ORIGINS` is unset: this machine, any port.
const LOOPBACK_ORIGINS: &[&str] = &[
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://[::1]:*",
    "https://[::1]:*",
];

/// ALLOWED_HOSTS plus loopback names. A rebinding attack can't make a browser send a loopback
/// Host, and the agent's MCP routing calls this server on loopback whatever the public hostname.
fn allowed_hosts(settings: &McpSettings) -> Vec<String> {
    let mut hosts: Vec<String> = settings
        .allowed_hosts
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    for loopback in ["localhost", "127.0.0.1", "::1"] {
        if !hosts.iter().any(|h| h == loopback) {
            hosts.push(loopback.to_owned());
        }
    }
    hosts
}

/// Who may call what on /mcp.
#[derive(Clone)]
pub struct McpAccess {
    /// MCP_TOOL_SCOPES.
    pub scopes: Arc<ToolScopes>,
    /// The resource server whose challenge a refusal carries, when tokens are accepted.
    pub oauth: Option<Arc<OAuth>>,
    /// Whether the server takes no credentials at all.
    pub open: bool,
}

/// The `/mcp` route: limits, scopes and metrics around the fast path for plain stateless tool
/// calls (unless MCP_FAST_PATH=off) and rmcp for everything else. rmcp's service is shared
/// behind an `Arc` and called by reference: mounted as a tower service, it would be cloned (its
/// whole config, allowlists included) twice per request.
pub fn route<S>(
    settings: &McpSettings,
    instance: Arc<Instance>,
    traffic: Arc<McpTraffic>,
    access: McpAccess,
    shutdown: CancellationToken,
) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let hosts = allowed_hosts(settings);
    let endpoint = Arc::new(Endpoint {
        fast_path: settings
            .fast_path
            .then(|| FastPath::new(instance.clone(), &hosts)),
        rmcp: service(settings, hosts, instance, &access, shutdown),
        traffic,
        access,
        max_body_bytes: settings.max_request_body_bytes,
        request_timeout: settings.request_timeout,
    });
    any(move |request: Request| {
        let endpoint = Arc::clone(&endpoint);
        async move { endpoint.serve(request).await }
    })
}

struct Endpoint {
    fast_path: Option<FastPath>,
    rmcp: StreamableHttpService<TollgateMcp, NeverSessionManager>,
    traffic: Arc<McpTraffic>,
    access: McpAccess,
    max_body_bytes: usize,
    request_timeout: Duration,
}

impl Endpoint {
    async fn serve(self: &Arc<Self>, request: Request) -> Response {
        let started = Instant::now();
        // Everything that can wait (the body, rmcp) is bounded by REQUEST_TIMEOUT_SECONDS. The
        // fast path answers synchronously, so a timer around it could never fire.
        let deadline = tokio::time::Instant::from_std(started) + self.request_timeout;
        if request.method() != Method::POST {
            // rmcp answers GET/DELETE with 405; nothing to count against a limit.
            return self.rmcp_before(deadline, request).await;
        }
        let (parts, body) = request.into_parts();
        let body = match timeout_at(deadline, read_body(body, self.max_body_bytes)).await {
            Ok(Ok(body)) => body,
            Ok(Err(refusal)) => return refusal.into_response(),
            Err(_) => return ApiError::Timeout(self.request_timeout).into_response(),
        };
        let plain_call = self
            .fast_path
            .as_ref()
            .and_then(|fast_path| fast_path.plain_call(&parts.headers, &body));
        let labels = plain_call.as_ref().map_or_else(
            || Labels::of(&body),
            |call| Labels::tool_call(call.tool_name()),
        );
        let caller = parts.extensions.get::<Caller>();
        let admission = match self.traffic.admit(caller, labels, started) {
            Ok(admission) => admission,
            Err(refusal) => return refusal.into_response(),
        };
        let missing_scope = labels.tool().zip(caller).and_then(|(tool, caller)| {
            caller
                .missing_scope(tool, &self.access.scopes)
                .map(|scope| (tool, scope))
        });
        if let Some((tool, scope)) = missing_scope {
            let mut response = self.scope_refusal(tool, scope, &body);
            admission.complete(&mut response);
            return response;
        }
        let span = trace::server_span(&parts.headers, &body);
        let fast_answer = plain_call
            .zip(self.fast_path.as_ref())
            .map(|(call, fast_path)| fast_path.answer(call));
        let mut response = match fast_answer {
            Some(response) => response,
            None => {
                let request = Request::from_parts(parts, Body::from(body));
                self.rmcp_traced(deadline, request, &span).await
            }
        };
        trace::record_status(&span, response.status());
        admission.complete(&mut response);
        response
    }

    /// A tool call the caller's token has no scope for: 403 with an `insufficient_scope`
    /// challenge (so clients can ask for the scope), and a JSON-RPC error for the call.
    fn scope_refusal(&self, tool: &str, scope: &str, body: &[u8]) -> Response {
        #[derive(serde::Deserialize)]
        struct IdPeek {
            #[serde(default)]
            id: serde_json::Value,
        }
        let id = serde_json::from_slice::<IdPeek>(body).map_or(serde_json::Value::Null, |p| p.id);
        let error = handler::insufficient_scope(tool, scope);
        let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": error});
        let mut response = (StatusCode::FORBIDDEN, Json(body)).into_response();
        if let Some(oauth) = &self.access.oauth {
            let requested = self.access.scopes.requested_form(scope);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                oauth.challenge(Challenge::InsufficientScope(&requested)),
            );
        }
        response
    }

    /// rmcp within the MCP span. rmcp runs each request's service loop in a task of its own,
    /// in the span current when it starts, and that task can outlive the answer: traced, it
    /// starts from a task of ours with no span, so it keeps none of ours open (an open span is
    /// never exported).
    async fn rmcp_traced(
        self: &Arc<Self>,
        deadline: tokio::time::Instant,
        request: Request,
        span: &tracing::Span,
    ) -> Response {
        if span.is_disabled() {
            return self.rmcp_before(deadline, request).await;
        }
        let endpoint = Arc::clone(self);
        let handled = async move { endpoint.rmcp_before(deadline, request).await };
        tokio::spawn(handled.with_current_subscriber())
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| {
                ApiError::Internal("the MCP request was cancelled".into()).into_response()
            })
    }

    async fn rmcp_before(&self, deadline: tokio::time::Instant, request: Request) -> Response {
        match timeout_at(deadline, self.rmcp.handle(request)).await {
            Ok(response) => response.into_response(),
            Err(_) => ApiError::Timeout(self.request_timeout).into_response(),
        }
    }
}

/// The MCP endpoint: no sessions, JSON answers, Host/Origin checked against the allowlists.
fn service(
    settings: &McpSettings,
    allowed_hosts: Vec<String>,
    instance: Arc<Instance>,
    access: &McpAccess,
    shutdown: CancellationToken,
) -> StreamableHttpService<TollgateMcp, NeverSessionManager> {
    // Without ALLOWED_ORIGINS, only pages served from this machine may call /mcp from a
    // browser; any other Origin is refused, as DNS-rebinding protection requires.
    let origins: Vec<String> = if settings.allowed_origins.is_empty() {
        LOOPBACK_ORIGINS.iter().map(|o| (*o).to_owned()).collect()
    } else {
        settings
            .allowed_origins
            .iter()
            .map(|o| o.trim().to_owned())
            .collect()
    };
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_cancellation_token(shutdown)
        .with_max_request_body_bytes(settings.max_request_body_bytes)
        .with_allowed_hosts(allowed_hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation();
    let handler = TollgateMcp::new(instance, access.scopes.clone(), access.open);
    StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}
