//! A scripted, deterministic OpenAI-compatible upstream.
//!
//! Integration tests start one on port 0 and point the gateway at [`MockUpstream::base_url`] (or
//! [`MockUpstream::azure_endpoint`]); the `loadtest mock-upstream` subcommand serves the same
//! thing for demos and benchmarks through [`MockUpstream::serve`].
//!
//! Routes:
//! - `POST /v1/chat/completions`, `POST /openai/deployments/{deployment}/chat/completions`
//! - `POST /v1/embeddings`, `POST /openai/deployments/{deployment}/embeddings`
//! - `GET /v1/models`
//!
//! A chat request is answered, in this order, by: failure injection (`fail_429_every`,
//! `fail_500_every`), else the next reply queued with [`MockUpstream::push`], else the default
//! tool-using "model" (see `script.rs`). Embeddings requests consume their own queue
//! ([`MockUpstream::push_embeddings`]), so the gateway's cache lookups never eat a chat script.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use mock_upstream::{MockOptions, MockUpstream, Reply};
//!
//! let mock = MockUpstream::start(MockOptions::default()).await?;
//! mock.push(Reply::status(429).with_retry_after(2));
//! mock.push(Reply::text("Hello!"));
//! // ... point the gateway at mock.base_url(), call it, then:
//! assert_eq!(mock.chat_requests().len(), 2);
//! # Ok(())
//! # }
//! ```

mod embed;
mod reply;
mod request;
mod script;
mod wire;

use std::{
    borrow::Cow,
    collections::VecDeque,
    fmt,
    future::Future,
    io,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, FromRequest, Path, Request, State},
    response::{IntoResponse, Response},
    routing::{get, post},
    serve::ListenerExt as _,
};
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot};

pub use reply::Reply;

use request::{ChatRequest, estimate_tokens};
use wire::{Answer, EmbeddingData, Meta, SseBuilder, ToolCall, Usage};

/// Default chat model name reported when the request names none.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// Default embedding model name reported when the request names none.
pub const DEFAULT_EMBEDDING_MODEL: &str = "text-embedding-3-small";
/// Default embedding dimensions.
pub const DEFAULT_EMBEDDING_DIMS: usize = 64;
/// Request bodies above this are refused with 413.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Largest `dimensions` an embeddings request may ask for.
const MAX_EMBEDDING_DIMS: u64 = 16_384;

/// How the mock behaves when nothing is scripted, plus the injected latency and failures.
#[derive(Debug, Clone, PartialEq)]
pub struct MockOptions {
    /// Added before every chat and embeddings answer.
    pub latency: Duration,
    /// Every n-th chat request (counting all chat requests, both route styles) answers 429 with
    /// `Retry-After: 1`, without consuming a queued reply.
    pub fail_429_every: Option<u32>,
    /// Every n-th chat request answers 500 (429 wins when both hit), without consuming a reply.
    pub fail_500_every: Option<u32>,
    /// Every n-th chat request waits `slow` longer.
    pub slow_every: Option<u32>,
    pub slow: Duration,
    /// Dimensions of embeddings when the request has no `dimensions`.
    pub embedding_dims: usize,
    /// Chat model reported when the request has no `model` (and no Azure deployment).
    pub model: String,
    /// Keep every request for [`MockUpstream::requests`]. Turn off for long benchmark runs
    /// ([`MockUpstream::request_count`] still counts).
    pub record_requests: bool,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            fail_429_every: None,
            fail_500_every: None,
            slow_every: None,
            slow: Duration::ZERO,
            embedding_dims: DEFAULT_EMBEDDING_DIMS,
            model: DEFAULT_MODEL.to_owned(),
            record_requests: true,
        }
    }
}

/// A request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, e.g. `/openai/deployments/d/chat/completions?api-version=2024-10-21`.
    pub path: String,
    pub headers: HeaderMap,
    /// The JSON body, or `Null` if it was empty or not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The value of a header, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// True for chat completion requests (either route style).
    pub fn is_chat(&self) -> bool {
        self.route().ends_with("/chat/completions")
    }

    /// True for embeddings requests (either route style).
    pub fn is_embeddings(&self) -> bool {
        self.route().ends_with("/embeddings")
    }

    fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
}

/// A running mock upstream. Cheap to clone; the server stops when the last clone is dropped.
#[derive(Clone)]
pub struct MockUpstream {
    inner: Arc<Running>,
}

struct Running {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping it (with the last handle) shuts the server down.
    _stop: oneshot::Sender<()>,
}

impl fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockUpstream")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl MockUpstream {
    /// Binds 127.0.0.1:0 and serves in a spawned task. The listener is bound before this returns,
    /// so callers can connect at once.
    pub async fn start(options: MockOptions) -> io::Result<MockUpstream> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(options));
        let (stop, stopped) = oneshot::channel::<()>();
        let server_state = Arc::clone(&shared);
        tokio::spawn(async move {
            let shutdown = async move {
                // Resolves when the last handle drops the sender.
                let _ = stopped.await;
            };
            if let Err(err) = run(listener, server_state, shutdown).await {
                tracing::warn!(error = %err, "mock upstream stopped with an error");
            }
        });
        Ok(MockUpstream {
            inner: Arc::new(Running {
                addr,
                shared,
                _stop: stop,
            }),
        })
    }

    /// Serves on `listener` until `shutdown` resolves (used by the CLI).
    pub async fn serve(
        listener: TcpListener,
        options: MockOptions,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        run(listener, Arc::new(Shared::new(options)), shutdown).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT/v1`, for `OPENAI_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.inner.addr)
    }

    /// `http://127.0.0.1:PORT`, for `AZURE_OPENAI_ENDPOINT`.
    pub fn azure_endpoint(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// Queues a scripted reply for chat completion requests; each chat request pops the next one
    /// (FIFO). When the queue is empty, the default behaviour applies.
    pub fn push(&self, reply: Reply) {
        lock(&self.inner.shared.chat_replies).push_back(reply);
    }

    /// Queues several chat replies, in order.
    pub fn push_many(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.inner.shared.chat_replies).extend(replies);
    }

    /// Queues a scripted reply for embeddings requests (their own FIFO). `Status`, `Delay`,
    /// `RawJson` and `WithUsage` apply; any other reply yields the default vectors.
    pub fn push_embeddings(&self, reply: Reply) {
        lock(&self.inner.shared.embedding_replies).push_back(reply);
    }

    /// Chat replies still queued.
    pub fn pending_replies(&self) -> usize {
        lock(&self.inner.shared.chat_replies).len()
    }

    /// Every request received (chat, embeddings, models and unknown routes), in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.shared.requests).clone()
    }

    /// The chat completion requests received, in order.
    pub fn chat_requests(&self) -> Vec<RecordedRequest> {
        self.filtered(RecordedRequest::is_chat)
    }

    /// The embeddings requests received, in order.
    pub fn embedding_requests(&self) -> Vec<RecordedRequest> {
        self.filtered(RecordedRequest::is_embeddings)
    }

    fn filtered(&self, keep: fn(&RecordedRequest) -> bool) -> Vec<RecordedRequest> {
        lock(&self.inner.shared.requests)
            .iter()
            .filter(|request| keep(request))
            .cloned()
            .collect()
    }

    /// How many requests were received (also counted when recording is off).
    pub fn request_count(&self) -> usize {
        self.inner.shared.request_count.load(Ordering::Relaxed)
    }

    /// Flood streams ([`Reply::Flood`]) dropped before their end: their reader closed the
    /// connection mid-stream.
    pub fn dropped_streams(&self) -> usize {
        *self.inner.shared.dropped_streams.borrow()
    }

    /// Waits until at least `count` flood streams were dropped before their end (see
    /// [`dropped_streams`](Self::dropped_streams)); put a timeout around it.
    pub async fn dropped_streams_reach(&self, count: usize) {
        let mut dropped = self.inner.shared.dropped_streams.subscribe();
        let _ = dropped.wait_for(|dropped| *dropped >= count).await;
    }

    /// From now on, answers 401 to every request whose `Authorization` is not `Bearer T` for
    /// one of `tokens` (an Azure OpenAI deployment that takes Entra ID tokens); the requests are
    /// still recorded.
    pub fn require_bearer(&self, tokens: &[&str]) {
        *lock(&self.inner.shared.required_bearers) =
            Some(tokens.iter().map(|t| format!("Bearer {t}")).collect());
    }

    /// Forgets recorded requests and queued replies, and restarts the failure-injection count.
    pub fn clear(&self) {
        let shared = &self.inner.shared;
        lock(&shared.chat_replies).clear();
        lock(&shared.embedding_replies).clear();
        lock(&shared.requests).clear();
        shared.request_count.store(0, Ordering::Relaxed);
        shared.chat_count.store(0, Ordering::Relaxed);
    }
}

/// State shared by the handlers and the handles. Locks are held only to push or pop.
struct Shared {
    options: MockOptions,
    chat_replies: Mutex<VecDeque<Reply>>,
    embedding_replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<RecordedRequest>>,
    request_count: AtomicUsize,
    /// Chat requests so far, for the every-n-th failure injection.
    chat_count: AtomicU64,
    /// Source of response and tool call ids.
    next_id: AtomicU64,
    /// Flood streams dropped before their end.
    dropped_streams: tokio::sync::watch::Sender<usize>,
    /// `Authorization` values accepted, when set (see [`MockUpstream::require_bearer`]).
    required_bearers: Mutex<Option<Vec<String>>>,
}

impl Shared {
    fn new(options: MockOptions) -> Self {
        Self {
            options,
            chat_replies: Mutex::default(),
            embedding_replies: Mutex::default(),
            requests: Mutex::default(),
            request_count: AtomicUsize::new(0),
            chat_count: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            dropped_streams: tokio::sync::watch::Sender::new(0),
            required_bearers: Mutex::default(),
        }
    }

    /// Records the request and returns its body parsed as JSON (`None` if it is not JSON).
    fn record(&self, method: &Method, uri: &Uri, headers: HeaderMap, body: &[u8]) -> Option<Value> {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        self.request_count.fetch_add(1, Ordering::Relaxed);
        if self.options.record_requests {
            let recorded = RecordedRequest {
                method: method.as_str().to_owned(),
                path: uri
                    .path_and_query()
                    .map_or_else(|| uri.path(), |path| path.as_str())
                    .to_owned(),
                headers,
                body: parsed.clone().unwrap_or(Value::Null),
            };
            lock(&self.requests).push(recorded);
        }
        parsed
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        // Small SSE chunks should leave at once.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app(shared))
        .with_graceful_shutdown(shutdown)
        .await
}

fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat),
        )
        .route("/v1/embeddings", post(openai_embeddings))
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(azure_embeddings),
        )
        .route("/v1/models", get(models))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

// ---------------------------------------------------------------------------------------------
// Handlers: record (the `Recorded` extractor), then hand over to the logic below.

/// The request's JSON body (`None` when it is not JSON), taken after the request was recorded.
/// Every route takes it, so every request is counted and, when asked, kept for the tests.
struct Recorded(Option<Value>);

impl FromRequest<Arc<Shared>> for Recorded {
    type Rejection = Response;

    async fn from_request(request: Request, shared: &Arc<Shared>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let headers = std::mem::take(&mut parts.headers);
        let (method, uri) = (parts.method.clone(), parts.uri.clone());
        let bytes = Bytes::from_request(Request::from_parts(parts, body), shared)
            .await
            .map_err(IntoResponse::into_response)?;
        let authorized = lock(&shared.required_bearers)
            .as_ref()
            .is_none_or(|accepted| {
                let given = headers.get(http::header::AUTHORIZATION);
                given.is_some_and(|given| accepted.iter().any(|a| a.as_bytes() == given.as_bytes()))
            });
        let body = shared.record(&method, &uri, headers, &bytes);
        if !authorized {
            let message = "Unauthorized. Access token is missing, invalid, audience is incorrect, or have expired.";
            return Err(wire::error_response(401, message, None));
        }
        Ok(Self(body))
    }
}

async fn openai_chat(State(shared): State<Arc<Shared>>, Recorded(body): Recorded) -> Response {
    chat(&shared, body, None).await
}

async fn azure_chat(
    State(shared): State<Arc<Shared>>,
    Path(deployment): Path<String>,
    Recorded(body): Recorded,
) -> Response {
    chat(&shared, body, Some(&deployment)).await
}

async fn openai_embeddings(
    State(shared): State<Arc<Shared>>,
    Recorded(body): Recorded,
) -> Response {
    embeddings(&shared, body, None).await
}

async fn azure_embeddings(
    State(shared): State<Arc<Shared>>,
    Path(deployment): Path<String>,
    Recorded(body): Recorded,
) -> Response {
    embeddings(&shared, body, Some(&deployment)).await
}

async fn models(State(shared): State<Arc<Shared>>, _: Recorded) -> Response {
    Json(json!({
        "object": "list",
        "data": [{
            "id": shared.options.model,
            "object": "model",
            "created": 1_700_000_000,
            "owned_by": "tollgate-mock",
        }],
    }))
    .into_response()
}

async fn not_found(method: Method, uri: Uri, _: Recorded) -> Response {
    let message = format!("Unknown request URL: {method} {}.", uri.path());
    wire::error_response(404, &message, None)
}

// ---------------------------------------------------------------------------------------------
// Chat completions.

async fn chat(shared: &Arc<Shared>, body: Option<Value>, deployment: Option<&str>) -> Response {
    let Some(body) = body else {
        return invalid_json();
    };
    let request = match ChatRequest::parse(&body, deployment, &shared.options.model) {
        Ok(request) => request,
        Err(message) => return wire::error_response(400, message, None),
    };
    let options = &shared.options;
    let nth = shared.chat_count.fetch_add(1, Ordering::Relaxed) + 1;
    let injected = if hits(options.fail_429_every, nth) {
        Some(429)
    } else if hits(options.fail_500_every, nth) {
        Some(500)
    } else {
        None
    };
    // Pop before waiting, so concurrent requests take replies in arrival order.
    let scripted = match injected {
        None => lock(&shared.chat_replies).pop_front(),
        Some(_) => None,
    };
    let mut wait = options.latency;
    if hits(options.slow_every, nth) {
        wait += options.slow;
    }
    pause(wait).await;
    match injected {
        Some(429) => wire::error_response(
            429,
            "Rate limit reached for requests (injected by the mock upstream).",
            Some(1),
        ),
        Some(status) => wire::error_response(
            status,
            "The server had an error while processing your request (injected by the mock upstream).",
            None,
        ),
        None => {
            let reply = scripted.unwrap_or_else(|| script::default_reply(&request));
            answer_chat(shared, &request, reply).await
        }
    }
}

/// Unwraps `Delay`/`WithUsage` and delivers the reply in the shape the request asked for.
async fn answer_chat(
    shared: &Arc<Shared>,
    request: &ChatRequest<'_>,
    mut reply: Reply,
) -> Response {
    let mut usage_override: Option<Usage> = None;
    loop {
        reply = match reply {
            Reply::Delay(delay, inner) => {
                pause(delay).await;
                *inner
            }
            Reply::WithUsage {
                prompt_tokens,
                completion_tokens,
                reply: inner,
            } => {
                usage_override.get_or_insert(Usage::new(prompt_tokens, completion_tokens));
                *inner
            }
            Reply::Status {
                status,
                retry_after,
                message,
            } => return wire::error_response(status, &message, retry_after),
            Reply::RawJson(body) => return Json(body).into_response(),
            Reply::RawSse(events) => return wire::sse_response(wire::raw_events(&events), false),
            Reply::Text(text) => {
                let answer = Answer {
                    usage: usage(request, usage_override, text.chars().count()),
                    content: Some(text),
                    tool_calls: Vec::new(),
                    finish_reason: "stop",
                };
                return deliver(shared, request, &answer);
            }
            Reply::ToolCalls { content, calls } => {
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                let tool_calls: Vec<ToolCall> = calls
                    .into_iter()
                    .enumerate()
                    .map(|(index, (name, arguments))| ToolCall {
                        id: format!("call_mock{id}_{index}"),
                        name,
                        arguments,
                    })
                    .collect();
                let output_chars = content.as_deref().map_or(0, |text| text.chars().count())
                    + tool_calls
                        .iter()
                        .map(|call| call.name.chars().count() + call.arguments.chars().count())
                        .sum::<usize>();
                let answer = Answer {
                    content,
                    tool_calls,
                    finish_reason: "tool_calls",
                    usage: usage(request, usage_override, output_chars),
                };
                return deliver(shared, request, &answer);
            }
            Reply::Stream { deltas, fail_after } => {
                return stream_script(shared, request, &deltas, fail_after, usage_override);
            }
            Reply::Flood { delta, chunks } => {
                return flood(shared, request, &delta, chunks, usage_override);
            }
        };
    }
}

/// Usage for an answer: the override, else the deterministic estimates.
fn usage(request: &ChatRequest<'_>, usage_override: Option<Usage>, output_chars: usize) -> Usage {
    usage_override
        .unwrap_or_else(|| Usage::new(request.prompt_tokens(), estimate_tokens(output_chars)))
}

fn deliver(shared: &Shared, request: &ChatRequest<'_>, answer: &Answer) -> Response {
    let id = completion_id(shared);
    let meta = Meta {
        id: &id,
        created: unix_now(),
        model: &request.model,
    };
    let result = if request.stream {
        wire::answer_events(meta, answer, request.include_usage)
            .map(|events| wire::sse_response(events, false))
    } else {
        wire::completion_json(meta, answer).map(wire::json_response)
    };
    result.unwrap_or_else(|err| wire::internal_error(&err))
}

/// A [`Reply::Stream`]: the deltas as content chunks, possibly breaking off.
fn stream_script(
    shared: &Shared,
    request: &ChatRequest<'_>,
    deltas: &[String],
    fail_after: Option<usize>,
    usage_override: Option<Usage>,
) -> Response {
    let output_chars = deltas.iter().map(|delta| delta.chars().count()).sum();
    let usage = usage(request, usage_override, output_chars);
    if !request.stream {
        if fail_after.is_some() {
            let mut response = wire::json_response(Vec::new());
            *response.body_mut() = wire::streamed_body(Vec::new(), true);
            return response;
        }
        let answer = Answer {
            content: Some(deltas.concat()),
            tool_calls: Vec::new(),
            finish_reason: "stop",
            usage,
        };
        return deliver(shared, request, &answer);
    }
    let id = completion_id(shared);
    let meta = Meta {
        id: &id,
        created: unix_now(),
        model: &request.model,
    };
    let build = || -> serde_json::Result<Response> {
        let mut sse = SseBuilder::new(meta, request.include_usage);
        sse.role()?;
        for (sent, delta) in deltas.iter().enumerate() {
            if fail_after == Some(sent) {
                return Ok(wire::sse_response(sse.broken(), true));
            }
            sse.content(delta)?;
        }
        if fail_after.is_some() {
            // Asked to fail after at least as many chunks as there are: break before finishing.
            return Ok(wire::sse_response(sse.broken(), true));
        }
        sse.finish("stop")?;
        Ok(wire::sse_response(sse.done(usage)?, false))
    };
    build().unwrap_or_else(|err| wire::internal_error(&err))
}

/// A [`Reply::Flood`]: the same delta `chunks` times, made as it is sent.
fn flood(
    shared: &Arc<Shared>,
    request: &ChatRequest<'_>,
    delta: &str,
    chunks: usize,
    usage_override: Option<Usage>,
) -> Response {
    let usage = usage(
        request,
        usage_override,
        delta.chars().count().saturating_mul(chunks),
    );
    if !request.stream {
        let answer = Answer {
            content: Some(delta.repeat(chunks)),
            tool_calls: Vec::new(),
            finish_reason: "stop",
            usage,
        };
        return deliver(shared, request, &answer);
    }
    let id = completion_id(shared);
    let meta = Meta {
        id: &id,
        created: unix_now(),
        model: &request.model,
    };
    let (head, repeated, tail) = match wire::flood_events(meta, delta, request.include_usage, usage)
    {
        Ok(events) => events,
        Err(err) => return wire::internal_error(&err),
    };
    let events = head
        .into_iter()
        .chain(std::iter::repeat_n(repeated, chunks))
        .chain(tail)
        .map(Ok::<_, io::Error>);
    let tracked = Tracked {
        events: futures::stream::iter(events),
        ended: false,
        shared: Arc::clone(shared),
    };
    wire::sse_body_response(axum::body::Body::from_stream(tracked))
}

/// A streamed body that counts itself in [`MockUpstream::dropped_streams`] when it is dropped
/// before its end: the reader went away (or was cut off) mid-stream.
struct Tracked<S> {
    events: S,
    ended: bool,
    shared: Arc<Shared>,
}

impl<S: futures::Stream + Unpin> futures::Stream for Tracked<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = std::pin::Pin::new(&mut self.events).poll_next(cx);
        if let std::task::Poll::Ready(None) = polled {
            self.ended = true;
        }
        polled
    }
}

impl<S> Drop for Tracked<S> {
    fn drop(&mut self) {
        if !self.ended {
            self.shared
                .dropped_streams
                .send_modify(|dropped| *dropped += 1);
        }
    }
}

fn completion_id(shared: &Shared) -> String {
    format!(
        "chatcmpl-mock{}",
        shared.next_id.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------------------------
// Embeddings.

async fn embeddings(shared: &Shared, body: Option<Value>, deployment: Option<&str>) -> Response {
    let Some(body) = body else {
        return invalid_json();
    };
    let inputs = match embedding_inputs(&body) {
        Ok(inputs) => inputs,
        Err(message) => return wire::error_response(400, message, None),
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|model| !model.is_empty())
        .or(deployment)
        .unwrap_or(DEFAULT_EMBEDDING_MODEL);
    let dims = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .filter(|dims| (1..=MAX_EMBEDDING_DIMS).contains(dims))
        .and_then(|dims| usize::try_from(dims).ok())
        .unwrap_or(shared.options.embedding_dims);
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");

    let mut scripted = lock(&shared.embedding_replies).pop_front();
    pause(shared.options.latency).await;
    let mut prompt_override = None;
    loop {
        scripted = match scripted {
            Some(Reply::Delay(delay, inner)) => {
                pause(delay).await;
                Some(*inner)
            }
            Some(Reply::WithUsage {
                prompt_tokens,
                reply: inner,
                ..
            }) => {
                prompt_override.get_or_insert(prompt_tokens);
                Some(*inner)
            }
            Some(Reply::Status {
                status,
                retry_after,
                message,
            }) => return wire::error_response(status, &message, retry_after),
            Some(Reply::RawJson(body)) => return Json(body).into_response(),
            _ => break,
        };
    }

    let prompt_tokens = prompt_override.unwrap_or_else(|| {
        inputs
            .iter()
            .map(|input| estimate_tokens(input.chars().count()))
            .sum()
    });
    let vectors = inputs
        .iter()
        .map(|input| {
            let vector = embed::embed(input, dims);
            if base64 {
                EmbeddingData::Base64(embed::base64_f32(&vector))
            } else {
                EmbeddingData::Float(vector)
            }
        })
        .collect();
    wire::embeddings_json(model, vectors, prompt_tokens)
        .map_or_else(|err| wire::internal_error(&err), wire::json_response)
}

/// `input` as texts: a string, an array of strings, an array of token ids, or an array of
/// token-id arrays (token ids are embedded as their decimal text).
fn embedding_inputs(body: &Value) -> Result<Vec<Cow<'_, str>>, &'static str> {
    const INVALID: &str =
        "'input' must be a string, an array of strings, or an array of token arrays.";
    fn tokens_text(tokens: &[Value]) -> Option<String> {
        let ids: Option<Vec<String>> = tokens
            .iter()
            .map(|token| token.as_u64().map(|id| id.to_string()))
            .collect();
        Some(ids?.join(" "))
    }
    match body.get("input") {
        Some(Value::String(text)) => Ok(vec![Cow::Borrowed(text.as_str())]),
        Some(Value::Array(items)) if items.is_empty() => Err("'input' must not be empty."),
        Some(Value::Array(items)) if items.iter().all(Value::is_u64) => {
            Ok(vec![Cow::Owned(tokens_text(items).ok_or(INVALID)?)])
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(Cow::Borrowed(text.as_str())),
                Value::Array(tokens) => tokens_text(tokens).map(Cow::Owned).ok_or(INVALID),
                _ => Err(INVALID),
            })
            .collect(),
        _ => Err(INVALID),
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

fn invalid_json() -> Response {
    wire::error_response(
        400,
        "We could not parse the JSON body of your request.",
        None,
    )
}

/// True when `every` is set (and non-zero) and `nth` is a multiple of it.
fn hits(every: Option<u32>, nth: u64) -> bool {
    every.is_some_and(|every| every > 0 && nth.is_multiple_of(u64::from(every)))
}

async fn pause(duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_every_nth() {
        let hit: Vec<u64> = (1..=6).filter(|&n| hits(Some(3), n)).collect();
        assert_eq!(hit, [3, 6]);
        assert!(!hits(None, 3));
        assert!(!hits(Some(0), 3));
    }

    #[test]
    fn embedding_inputs_accept_the_openai_forms() -> Result<(), &'static str> {
        assert_eq!(embedding_inputs(&json!({"input": "a"}))?, ["a"]);
        assert_eq!(embedding_inputs(&json!({"input": ["a", "b"]}))?, ["a", "b"]);
        assert_eq!(embedding_inputs(&json!({"input": [1, 2]}))?, ["1 2"]);
        assert_eq!(
            embedding_inputs(&json!({"input": [[1], [2, 3]]}))?,
            ["1", "2 3"]
        );
        assert!(embedding_inputs(&json!({"input": []})).is_err());
        assert!(embedding_inputs(&json!({"input": [{"x": 1}]})).is_err());
        assert!(embedding_inputs(&json!({})).is_err());
        Ok(())
    }

    #[test]
    fn recorded_request_classifies_routes() {
        let request = |path: &str| RecordedRequest {
            method: "POST".into(),
            path: path.into(),
            headers: HeaderMap::new(),
            body: Value::Null,
        };
        assert!(request("/v1/chat/completions").is_chat());
        assert!(request("/openai/deployments/d/chat/completions?api-version=1").is_chat());
        assert!(request("/openai/deployments/d/embeddings?api-version=1").is_embeddings());
        assert!(!request("/v1/models").is_chat());
    }
}
