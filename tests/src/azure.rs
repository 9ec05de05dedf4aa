//! Stand-ins for the Azure services tollgate talks to, on loopback ports, each recording what it
//! was sent:
//! - [`IdentityStandIn`]: the Microsoft Entra ID token endpoint
//!   (`POST /{tenant}/oauth2/v2.0/token`, for `AZURE_AUTHORITY_HOST`), App Service's managed
//!   identity endpoint (`GET /msi/token`, for `IDENTITY_ENDPOINT`) and the instance metadata
//!   service (`GET /metadata/identity/oauth2/token`, for `AZURE_IMDS_ENDPOINT`);
//! - [`ContentSafetyStandIn`]: Azure AI Content Safety's `text:analyze` and `text:shieldPrompt`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Form, Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::bind_loopback;

/// One request as a stand-in received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Query parameters (managed identity) or form fields (the token endpoint), or the JSON
    /// body's top-level strings.
    pub params: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Received {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve(router: Router) -> SocketAddr {
    let (listener, addr) = bind_loopback().await;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

#[derive(Default)]
struct Identity {
    received: Mutex<Vec<Received>>,
    issued: AtomicUsize,
    /// Lifetime of the tokens handed out, in seconds.
    expires_in: AtomicU64,
    /// Answer 500 instead of a token.
    failing: AtomicBool,
    /// Wait this long (ms) before answering.
    delay_ms: AtomicU64,
    /// Tells this stand-in's tokens from any other's.
    nonce: u16,
}

/// The Entra ID token endpoint and both managed identity endpoints, in one server.
#[derive(Clone)]
pub struct IdentityStandIn {
    pub addr: SocketAddr,
    inner: Arc<Identity>,
}

impl IdentityStandIn {
    /// Starts one handing out tokens that live an hour.
    pub async fn start() -> Self {
        let (listener, addr) = bind_loopback().await;
        let inner = Arc::new(Identity {
            expires_in: AtomicU64::new(3600),
            nonce: addr.port(),
            ..Identity::default()
        });
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(entra_token))
            .route("/msi/token", get(app_service_token))
            .route("/metadata/identity/oauth2/token", get(imds_token))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, inner }
    }

    /// `http://127.0.0.1:PORT`, for `AZURE_AUTHORITY_HOST`.
    pub fn authority_host(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// App Service's identity endpoint, for `IDENTITY_ENDPOINT`.
    pub fn app_service_endpoint(&self) -> String {
        format!("http://{}/msi/token", self.addr)
    }

    /// The instance metadata service's token URL, for `AZURE_IMDS_ENDPOINT`.
    pub fn imds_endpoint(&self) -> String {
        format!("http://{}/metadata/identity/oauth2/token", self.addr)
    }

    /// The `n`-th token this stand-in hands out (from 1).
    pub fn token(&self, n: usize) -> String {
        format!("eyJ0eXAiOiJKV1Qi.standin{}.token{n}", self.inner.nonce)
    }

    /// Tokens handed out (or refused: every request counts).
    pub fn token_requests(&self) -> usize {
        self.inner.issued.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        lock(&self.inner.received).clone()
    }

    pub fn set_expires_in(&self, seconds: u64) {
        self.inner.expires_in.store(seconds, Ordering::SeqCst);
    }

    pub fn set_failing(&self, failing: bool) {
        self.inner.failing.store(failing, Ordering::SeqCst);
    }

    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.inner.delay_ms.store(ms, Ordering::SeqCst);
    }
}

impl Identity {
    /// Records the request, waits, and hands out the next token (or fails).
    async fn answer(
        &self,
        path: String,
        params: HashMap<String, String>,
        headers: HeaderMap,
        shape: TokenShape,
    ) -> Response {
        lock(&self.received).push(Received {
            path,
            params,
            headers,
            body: Value::Null,
        });
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))).await;
        if self.failing.load(Ordering::SeqCst) {
            let body = json!({"error": "temporarily_unavailable", "error_description": "The identity service is down (stand-in).\r\nTrace ID: 0"});
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
        }
        let token = format!("eyJ0eXAiOiJKV1Qi.standin{}.token{n}", self.nonce);
        let lifetime = self.expires_in.load(Ordering::SeqCst);
        let body = match shape {
            TokenShape::Entra => json!({
                "token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                "access_token": token,
            }),
            // App Service: `expires_on` in Unix seconds, as a string.
            TokenShape::AppService => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                json!({
                    "access_token": token, "expires_on": (now + lifetime).to_string(),
                    "resource": "https://cognitiveservices.azure.com", "token_type": "Bearer",
                })
            }
            // IMDS: `expires_in` as a string.
            TokenShape::Imds => json!({
                "access_token": token, "expires_in": lifetime.to_string(),
                "resource": "https://cognitiveservices.azure.com", "token_type": "Bearer",
            }),
        };
        Json(body).into_response()
    }
}

enum TokenShape {
    Entra,
    AppService,
    Imds,
}

async fn entra_token(
    State(identity): State<Arc<Identity>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let path = format!("/{tenant}/oauth2/v2.0/token");
    identity
        .answer(path, form, headers, TokenShape::Entra)
        .await
}

async fn app_service_token(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = "/msi/token".to_owned();
    identity
        .answer(path, query, headers, TokenShape::AppService)
        .await
}

async fn imds_token(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = "/metadata/identity/oauth2/token".to_owned();
    identity
        .answer(path, query, headers, TokenShape::Imds)
        .await
}

/// What the content safety stand-in judges harmful, and how gravely (eight-level scale).
pub const HATE_MARKER: &str = "HATEFUL-MARKER";
pub const VIOLENCE_MARKER: &str = "VIOLENT-MARKER";
/// A prompt attack, as Prompt Shields would see it.
pub const ATTACK_MARKER: &str = "ignore all previous instructions";

#[derive(Default)]
struct ContentSafety {
    received: Mutex<Vec<Received>>,
    failing: AtomicBool,
}

/// Azure AI Content Safety: `text:analyze` finds [`HATE_MARKER`] (Hate 6) and
/// [`VIOLENCE_MARKER`] (Violence 4); `text:shieldPrompt` finds [`ATTACK_MARKER`]. Texts over
/// the API's limits get 400, as the service answers them.
#[derive(Clone)]
pub struct ContentSafetyStandIn {
    pub addr: SocketAddr,
    inner: Arc<ContentSafety>,
}

impl ContentSafetyStandIn {
    pub async fn start() -> Self {
        let inner = Arc::new(ContentSafety::default());
        let router = Router::new()
            .route("/contentsafety/text:analyze", post(analyze))
            .route("/contentsafety/text:shieldPrompt", post(shield_prompt))
            .with_state(inner.clone());
        Self {
            addr: serve(router).await,
            inner,
        }
    }

    /// For `AZURE_CONTENT_SAFETY_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        lock(&self.inner.received).clone()
    }

    /// The `text:analyze` requests received.
    pub fn analyses(&self) -> Vec<Received> {
        self.of("/contentsafety/text:analyze")
    }

    /// The `text:shieldPrompt` requests received.
    pub fn shields(&self) -> Vec<Received> {
        self.of("/contentsafety/text:shieldPrompt")
    }

    fn of(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    pub fn set_failing(&self, failing: bool) {
        self.inner.failing.store(failing, Ordering::SeqCst);
    }
}

impl ContentSafety {
    /// Records the request; an error answer if it must get one.
    fn take(
        &self,
        path: &str,
        query: HashMap<String, String>,
        headers: HeaderMap,
        body: &Value,
    ) -> Option<Response> {
        lock(&self.received).push(Received {
            path: path.to_owned(),
            params: query.clone(),
            headers,
            body: body.clone(),
        });
        if self.failing.load(Ordering::SeqCst) {
            return Some(error(500, "InternalError", "stand-in failure"));
        }
        if query.get("api-version").map(String::as_str) != Some("2024-09-01") {
            return Some(error(404, "ApiVersionUnsupported", "unknown api-version"));
        }
        None
    }
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn chars(value: &Value) -> usize {
    value.as_str().map_or(0, |s| s.chars().count())
}

async fn analyze(
    State(safety): State<Arc<ContentSafety>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let path = "/contentsafety/text:analyze";
    if let Some(refusal) = safety.take(path, query, headers, &body) {
        return refusal;
    }
    if chars(&body["text"]) > 10_000 {
        return error(
            400,
            "InvalidRequestBody",
            "text is longer than 10000 characters",
        );
    }
    let text = body["text"].as_str().unwrap_or_default();
    let severity = |marker: &str, grave: u64| if text.contains(marker) { grave } else { 0 };
    Json(json!({
        "blocklistsMatch": [],
        "categoriesAnalysis": [
            {"category": "Hate", "severity": severity(HATE_MARKER, 6)},
            {"category": "SelfHarm", "severity": 0},
            {"category": "Sexual", "severity": 0},
            {"category": "Violence", "severity": severity(VIOLENCE_MARKER, 4)},
        ],
    }))
    .into_response()
}

async fn shield_prompt(
    State(safety): State<Arc<ContentSafety>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let path = "/contentsafety/text:shieldPrompt";
    if let Some(refusal) = safety.take(path, query, headers, &body) {
        return refusal;
    }
    let documents = body["documents"].as_array().cloned().unwrap_or_default();
    let document_chars: usize = documents.iter().map(chars).sum();
    if chars(&body["userPrompt"]) > 10_000 || documents.len() > 5 || document_chars > 10_000 {
        return error(
            400,
            "InvalidRequestBody",
            "the prompt or documents are too long",
        );
    }
    let attacked = |text: &Value| {
        text.as_str()
            .is_some_and(|t| t.to_lowercase().contains(ATTACK_MARKER))
    };
    Json(json!({
        "userPromptAnalysis": {"attackDetected": attacked(&body["userPrompt"])},
        "documentsAnalysis": documents.iter().map(|d| json!({"attackDetected": attacked(d)})).collect::<Vec<_>>(),
    }))
    .into_response()
}
