//! The router: every route, every layer, in one place, in the order they run.
//!
//! Public routes (`/`, `/health`, `/metrics`, `/dashboard` and its assets) need no key; everything else passes
//! [`auth::RequireCallerLayer`] first. Handlers stay thin: they read state and call into a crate.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    BoxError, Json, Router,
    body::{Body, to_bytes},
    extract::DefaultBodyLimit,
    extract::{Request, State},
    middleware,
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use futures::{
    FutureExt,
    future::{BoxFuture, Either, Then},
};
use http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceBuilder, util::MapResponseLayer};
use tower_http::{
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
};

use crate::{
    admin, agent_routes, auth, dashboard,
    error::{self, ApiError},
    gateway_routes, mcp, messages_routes, model_routes, oauth, responses_routes,
    state::AppState,
    telemetry,
};

/// Builds the whole application. `shutdown` stops rmcp's in-flight work on shutdown.
pub fn app(
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    let settings = &state.http;
    let short_deadline =
        TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, settings.request_timeout);

    let mcp = Router::new().route(
        "/mcp",
        mcp::route(
            &state.mcp,
            state.instance.clone(),
            state.mcp_traffic.clone(),
            mcp::McpAccess {
                scopes: state.tool_scopes.clone(),
                oauth: state.oauth.clone(),
                open: state.authenticator.is_open(),
            },
            shutdown,
        ),
    );
    // Model calls and agent turns carry their own deadlines (UPSTREAM_TIMEOUT_SECONDS,
    // AGENT_TIMEOUT_SECONDS), longer than a short route's.
    let gateway = Router::new()
        .route(
            "/v1/chat/completions",
            post(gateway_routes::chat_completions),
        )
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(gateway_routes::chat_completions),
        )
        .route("/v1/embeddings", post(gateway_routes::embeddings))
        .route("/v1/responses", post(responses_routes::responses))
        .route("/openai/v1/responses", post(responses_routes::responses))
        .route("/openai/responses", post(responses_routes::responses))
        .route("/v1/models", get(model_routes::list))
        .route("/v1/models/{*id}", get(model_routes::get))
        .route("/openai/v1/models", get(model_routes::list))
        .route("/openai/v1/models/{*id}", get(model_routes::get))
        .route("/agent/chat", post(agent_routes::chat))
        .route("/agent/chat/stream", post(agent_routes::chat_stream))
        .route("/agent/sessions", get(agent_routes::list_sessions))
        .route(
            "/agent/sessions/{id}",
            get(agent_routes::get_session).delete(agent_routes::delete_session),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(gateway_routes::embeddings),
        );
    let protected = mcp
        .merge(gateway)
        .layer(auth::RequireCallerLayer(state.authenticator.clone()));
    // The Anthropic routes answer every refusal in Anthropic's error shape, the key check's
    // included, so that layer sits outside theirs.
    let messages = Router::new()
        .route("/v1/messages", post(messages_routes::messages))
        .route(
            "/v1/messages/count_tokens",
            post(messages_routes::count_tokens),
        )
        .layer(auth::RequireCallerLayer(state.authenticator.clone()))
        .layer(middleware::from_fn(messages_routes::anthropic_errors));

    // Public, or checking keys themselves (admin).
    let open = Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/admin/usage", get(admin::usage))
        .route(oauth::METADATA_PATH, get(protected_resource_metadata))
        .route(
            &format!("{}/mcp", oauth::METADATA_PATH),
            get(protected_resource_metadata),
        )
        .route("/admin/stats", get(admin::stats))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/app.css", get(dashboard::style))
        .route("/dashboard/icon.svg", get(dashboard::icon))
        .layer(short_deadline);

    let routes = open
        .merge(protected)
        .merge(messages)
        .fallback(not_found)
        .with_state(state.clone())
        // Inside the router, so spans and access-log lines can name the matched route.
        .layer(telemetry::request::ObserveLayer(state.observer.clone()));
    // Layers every request meets, stacked once around the whole router instead of once per
    // route: a per-route layer costs a boxed clone of the route on every request. Top to bottom
    // is the order a request meets them: request id, render Retry-After for every refusal that
    // asks for one (the one place RETRY_AFTER_FORMAT is applied), give every bare error the JSON
    // envelope, bound the body (axum's body extractors have their own 2 MB default; the
    // configured limit rules).
    ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(MapResponseLayer::new(error::render_retry_after(
            settings.retry_after_format,
        )))
        .layer(EnvelopeLayer)
        .layer(RequestBodyLimitLayer::new(settings.max_request_body_bytes))
        .layer(DefaultBodyLimit::max(settings.max_request_body_bytes))
        .service(routes)
}

/// Rewrites error answers that carry no JSON (from rmcp, axum or tower-http layers) into the
/// JSON envelope, so every error a client sees has the same shape. Any other answer passes
/// with nothing boxed.
#[derive(Clone, Copy)]
struct EnvelopeLayer;

impl<S> tower::Layer<S> for EnvelopeLayer {
    type Service = Envelope<S>;

    fn layer(&self, inner: S) -> Envelope<S> {
        Envelope(inner)
    }
}

#[derive(Clone)]
struct Envelope<S>(S);

type Enveloped =
    Either<Ready<Result<Response, Infallible>>, BoxFuture<'static, Result<Response, Infallible>>>;

impl<S, B> Service<Request> for Envelope<S>
where
    S: Service<Request, Response = Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Then<S::Future, Enveloped, fn(Result<Response<B>, Infallible>) -> Enveloped>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.0.call(request).then(envelope_if_bare::<B>)
    }
}

fn envelope_if_bare<B>(answer: Result<Response<B>, Infallible>) -> Enveloped
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Ok(response) = answer;
    let response = response.map(Body::new);
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return Either::Left(ready(Ok(response)));
    }
    Either::Right(Box::pin(async move { Ok(enveloped(response).await) }))
}

async fn enveloped(response: Response) -> Response {
    let status = response.status();
    let (parts, body) = response.into_parts();
    // These bodies are short reason texts; anything long is not worth echoing.
    let text = to_bytes(body, 1024)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let mut rewritten = error::envelope(status, error::code_for_status(status), &text);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!("{} {}", request.method(), request.uri().path()))
}

#[derive(Serialize)]
pub struct Health<'a> {
    pub status: &'static str,
    /// Why the instance is degraded, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub instance_id: &'a str,
    pub version: &'static str,
    pub tool_routing: &'static str,
    pub model_configured: bool,
    pub state_store: &'static str,
    pub uptime_seconds: u64,
    /// What was built before the server answered (tokenizers, tables, the tool catalog).
    pub warmed: &'a [&'static str],
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let degraded = state.gateway.degraded_reason();
    Json(Health {
        status: if degraded.is_some() {
            "degraded"
        } else {
            "healthy"
        },
        reason: degraded,
        instance_id: &state.instance.id,
        version: env!("CARGO_PKG_VERSION"),
        tool_routing: state.http.tool_routing.as_str(),
        model_configured: state.gateway.is_configured(),
        state_store: state.gateway.state_store(),
        uptime_seconds: state.started.elapsed().as_secs(),
        warmed: &state.warmed,
    })
    .into_response()
}

/// RFC 9728 protected-resource metadata (both the root and the `/mcp`-suffixed form describe
/// the MCP endpoint), built from PUBLIC_URL so it is right behind a proxy; 404 without
/// OAUTH_ISSUERS.
async fn protected_resource_metadata(State(state): State<Arc<AppState>>) -> Response {
    match &state.oauth {
        Some(oauth) => (
            [(header::CACHE_CONTROL, "public, max-age=3600")],
            Json(oauth.metadata()),
        )
            .into_response(),
        None => ApiError::NotFound(
            "protected-resource metadata: this server takes no OAuth tokens (OAUTH_ISSUERS)"
                .to_owned(),
        )
        .into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    // Read from the store at each scrape: on Redis, every instance's sessions. No labels.
    if let Ok(live) = state.agent.sessions().live_count().await {
        metrics::gauge!("agent_sessions_live").set(live as f64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.prometheus.render(),
    )
        .into_response()
}

async fn index(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Html<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    Html(crate::status_page::render(&state, host))
}
