//! Calls to the model API: the backend pool, retries with backoff, failover, circuit breakers.
//!
//! This module is the only code in tollgate that sends a request to a model API.
//!
//! A call tries backends in priority order, skipping those whose breaker is open. On one backend
//! it retries what may pass next time (429, 408, 5xx, connection errors and timeouts) with
//! exponential backoff and jitter, honoring the upstream's `Retry-After` up to a bound; errors
//! that will recur (400, 404, 422…) end the call at once. The whole call has one deadline.
//! A stream is retried only until its answer starts: nothing is retried once bytes have gone on.

mod breaker;
mod direct;
pub mod sse;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, uri::PathAndQuery};
use rand::Rng;
use secrecy::ExposeSecret;
use tokio::time::Instant;
use tracing::Instrument;

pub use breaker::{Breaker, Permit};

use crate::{
    config::{BackendConfig, BreakerConfig, RetryConfig},
    context::Operation,
    entra::{Bearer, COGNITIVE_SERVICES_SCOPE, EntraCredential},
    error::GatewayError,
    metrics,
    model_api::{ByteStream, ModelApi},
    names,
    stats::{BreakerState, Stats},
    telemetry,
};

/// One upstream with its breaker. Its label (host and port) names it in logs and metrics.
pub struct Backend {
    pub label: Arc<str>,
    config: BackendConfig,
    pub breaker: Breaker,
    /// Microsoft Entra ID tokens, for an Azure backend configured without a key.
    credential: Option<Arc<EntraCredential>>,
    /// The headers that carry its key (and Anthropic's version), built once.
    key_headers: HeaderMap,
    /// An OpenAI-style backend's URLs (chat, embeddings, moderations), parsed once: they do not
    /// depend on the call, and parsing a URL on every call is a measurable share of it.
    parsed_urls: Option<[reqwest::Url; 3]>,
    /// A plain-HTTP backend's own connections (see [`direct`]); `None`: reqwest's client.
    direct: Option<Arc<direct::Pool>>,
    /// The paths of `parsed_urls`, for `direct`.
    direct_paths: Option<[PathAndQuery; 3]>,
}

/// Azure AI Content Safety's API version.
pub const CONTENT_SAFETY_API_VERSION: &str = "2024-09-01";

impl Backend {
    /// The backend for `config`; refused when its key cannot be sent in a header.
    pub fn new(config: BackendConfig, breaker: BreakerConfig) -> Result<Self, GatewayError> {
        let label: Arc<str> = Arc::from(label_of(&config));
        let key_headers = key_headers(&config).map_err(|_| {
            GatewayError::Startup(format!(
                "the key for {label} holds characters an HTTP header cannot carry"
            ))
        })?;
        let mut backend = Self {
            breaker: Breaker::new(label.clone(), breaker),
            label,
            config,
            credential: None,
            key_headers,
            parsed_urls: None,
            direct: None,
            direct_paths: None,
        };
        if !backend.names_deployments() {
            let parse = |operation| reqwest::Url::parse(&backend.url(operation, "")).ok();
            backend.parsed_urls = match (
                parse(Operation::Chat),
                parse(Operation::Embeddings),
                parse(Operation::Moderations),
            ) {
                (Some(chat), Some(embeddings), Some(moderations)) => {
                    Some([chat, embeddings, moderations])
                }
                _ => None,
            };
        }
        Ok(backend)
    }

    /// Reaches this backend through its own connections when its URL is plain HTTP.
    fn with_direct_connections(mut self) -> Self {
        self.direct = direct::Pool::for_url(self.base_url());
        self.direct_paths =
            self.parsed_urls
                .as_ref()
                .and_then(|[chat, embeddings, moderations]| {
                    Some([path_of(chat)?, path_of(embeddings)?, path_of(moderations)?])
                });
        self
    }

    fn base_url(&self) -> &str {
        match &self.config {
            BackendConfig::OpenAi { base_url, .. } | BackendConfig::Anthropic { base_url, .. } => {
                base_url
            }
            BackendConfig::Azure { endpoint, .. }
            | BackendConfig::ContentSafety { endpoint, .. } => endpoint,
        }
    }

    /// The URL of this backend's endpoint for `operation` (and `model`, on Azure).
    fn parsed_url(&self, operation: Operation, model: &str) -> Result<reqwest::Url, Failure> {
        match (&self.parsed_urls, fixed_endpoint(operation)) {
            (Some(urls), Some(index)) => Ok(urls[index].clone()),
            _ => reqwest::Url::parse(&self.url(operation, model)).map_err(|_| {
                Failure::Final(GatewayError::Startup(format!(
                    "the URL of {} does not parse",
                    self.label
                )))
            }),
        }
    }

    /// The path (and query) of this backend's endpoint for `operation`, for `direct`.
    fn path(&self, operation: Operation, model: &str) -> Result<PathAndQuery, Failure> {
        if let (Some(paths), Some(index)) = (&self.direct_paths, fixed_endpoint(operation)) {
            return Ok(paths[index].clone());
        }
        let url = self.parsed_url(operation, model)?;
        path_of(&url).ok_or_else(|| {
            Failure::Final(GatewayError::Startup(format!(
                "the URL of {} has no usable path",
                self.label
            )))
        })
    }

    fn url(&self, operation: Operation, model: &str) -> String {
        let path = match operation {
            Operation::Chat => "chat/completions",
            Operation::Embeddings => "embeddings",
            Operation::Moderations => "moderations",
            Operation::TextAnalyze => "contentsafety/text:analyze",
            Operation::ShieldPrompt => "contentsafety/text:shieldPrompt",
            Operation::Responses => "responses",
        };
        match &self.config {
            BackendConfig::OpenAi { base_url, .. } => {
                format!("{}/{path}", base_url.trim_end_matches('/'))
            }
            // Azure serves the Responses API on its v1 surface, the deployment in the body.
            BackendConfig::Azure { endpoint, .. } if operation == Operation::Responses => {
                format!("{}/openai/v1/{path}", endpoint.trim_end_matches('/'))
            }
            BackendConfig::Azure {
                endpoint,
                api_version,
                ..
            } => format!(
                "{}/openai/deployments/{}/{path}?api-version={api_version}",
                endpoint.trim_end_matches('/'),
                urlencode_path_segment(model),
            ),
            // Only Messages calls go to an Anthropic backend. Its base URL is the SDKs' (no
            // `/v1`), though one ending in `/v1` is taken as meant.
            BackendConfig::Anthropic { base_url, .. } => {
                let base = base_url.trim_end_matches('/');
                format!("{}/v1/messages", base.strip_suffix("/v1").unwrap_or(base))
            }
            BackendConfig::ContentSafety { endpoint, .. } => format!(
                "{}/{path}?api-version={CONTENT_SAFETY_API_VERSION}",
                endpoint.trim_end_matches('/'),
            ),
        }
    }

    /// Whether the model name becomes a path segment of this backend's URLs.
    fn names_deployments(&self) -> bool {
        matches!(self.config, BackendConfig::Azure { .. })
    }

    /// Whether this backend authenticates with Entra ID tokens: an Azure one without a key.
    fn wants_token(&self) -> bool {
        matches!(
            self.config,
            BackendConfig::Azure { api_key: None, .. }
                | BackendConfig::ContentSafety { api_key: None, .. }
        )
    }

    /// The headers of one request: its key (or `bearer`, an Entra ID token), the trace
    /// context, then the call's own headers (which win).
    fn request_headers(&self, bearer: Option<&Bearer>, call_headers: &HeaderMap) -> HeaderMap {
        let mut headers = self.key_headers.clone();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(bearer) = bearer {
            headers.insert(http::header::AUTHORIZATION, bearer.header.clone());
        }
        // The trace context goes on to the model API (W3C traceparent), when there is one.
        telemetry::inject_headers(&mut headers);
        for name in call_headers.keys() {
            headers.remove(name);
        }
        for (name, value) in call_headers {
            headers.append(name, value.clone());
        }
        headers
    }

    /// An Entra ID token for this backend, if it takes one, within `deadline`.
    async fn bearer(&self, deadline: Instant) -> Result<Option<Bearer>, GatewayError> {
        let Some(credential) = &self.credential else {
            return Ok(None);
        };
        match credential.bearer(COGNITIVE_SERVICES_SCOPE, deadline).await {
            Ok(bearer) => Ok(Some(bearer)),
            Err(error) => {
                metrics::upstream_error(&self.label, "credential");
                Err(error.into())
            }
        }
    }

    fn secret(&self) -> Option<&str> {
        match &self.config {
            BackendConfig::OpenAi { api_key, .. }
            | BackendConfig::Azure { api_key, .. }
            | BackendConfig::Anthropic { api_key, .. }
            | BackendConfig::ContentSafety { api_key, .. } => {
                api_key.as_ref().map(|k| k.expose_secret())
            }
        }
    }
}

/// Where `operation`'s URL sits in `parsed_urls`, for the operations whose URL never changes.
fn fixed_endpoint(operation: Operation) -> Option<usize> {
    match operation {
        Operation::Chat => Some(0),
        Operation::Embeddings => Some(1),
        Operation::Moderations => Some(2),
        Operation::TextAnalyze | Operation::ShieldPrompt | Operation::Responses => None,
    }
}

fn path_of(url: &reqwest::Url) -> Option<PathAndQuery> {
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    PathAndQuery::try_from(path).ok()
}

/// The headers that carry `config`'s key, marked sensitive (kept out of debug output).
fn key_headers(config: &BackendConfig) -> Result<HeaderMap, http::header::InvalidHeaderValue> {
    let secret = |value: String| {
        HeaderValue::try_from(value).map(|mut value| {
            value.set_sensitive(true);
            value
        })
    };
    let mut headers = HeaderMap::new();
    match config {
        BackendConfig::OpenAi {
            api_key: Some(key), ..
        } => {
            let value = secret(format!("Bearer {}", key.expose_secret()))?;
            headers.insert(http::header::AUTHORIZATION, value);
        }
        BackendConfig::Azure {
            api_key: Some(key), ..
        } => {
            headers.insert("api-key", secret(key.expose_secret().to_owned())?);
        }
        BackendConfig::Anthropic {
            api_key, version, ..
        } => {
            headers.insert(
                "anthropic-version",
                HeaderValue::try_from(version.as_str())?,
            );
            if let Some(key) = api_key {
                headers.insert("x-api-key", secret(key.expose_secret().to_owned())?);
            }
        }
        BackendConfig::ContentSafety {
            api_key: Some(key), ..
        } => {
            let value = secret(key.expose_secret().to_owned())?;
            headers.insert("Ocp-Apim-Subscription-Key", value);
        }
        BackendConfig::OpenAi { api_key: None, .. }
        | BackendConfig::Azure { api_key: None, .. }
        | BackendConfig::ContentSafety { api_key: None, .. } => {}
    }
    Ok(headers)
}

fn label_of(config: &BackendConfig) -> String {
    let url = match config {
        BackendConfig::OpenAi { base_url, .. } | BackendConfig::Anthropic { base_url, .. } => {
            base_url
        }
        BackendConfig::Azure { endpoint, .. } | BackendConfig::ContentSafety { endpoint, .. } => {
            endpoint
        }
    };
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|host| match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            })
        })
        .unwrap_or_else(|| "invalid-url".to_owned())
}

fn urlencode_path_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Why one attempt failed, and whether another attempt could succeed.
enum Failure {
    Retryable {
        error: GatewayError,
        retry_after: Option<Duration>,
    },
    Final(GatewayError),
}

impl Failure {
    fn retryable(summary: String) -> Self {
        Self::Retryable {
            error: GatewayError::UpstreamFailed { summary },
            retry_after: None,
        }
    }
}

/// How a successful response is taken in: read whole, or handed on as a stream.
trait Reading: Copy + Send + Sync {
    type Output: Send;

    fn read(
        self,
        response: Answer,
        backend: &Backend,
        attempt_deadline: Instant,
    ) -> impl Future<Output = Result<Self::Output, Failure>> + Send;
}

/// The whole body, read within the attempt's deadline (a body that breaks off is retried).
#[derive(Clone, Copy)]
struct Whole;

impl Reading for Whole {
    type Output = Bytes;

    async fn read(
        self,
        response: Answer,
        backend: &Backend,
        attempt_deadline: Instant,
    ) -> Result<Bytes, Failure> {
        match tokio::time::timeout_at(attempt_deadline, response.bytes()).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(_)) | Err(_) => {
                metrics::upstream_error(&backend.label, "body");
                Err(Failure::retryable(format!(
                    "{} broke off its answer",
                    backend.label
                )))
            }
        }
    }
}

/// The open stream: nothing is retried once its bytes have started to flow.
#[derive(Clone, Copy)]
struct Streamed;

impl Reading for Streamed {
    type Output = ByteStream;

    async fn read(
        self,
        response: Answer,
        _backend: &Backend,
        _attempt_deadline: Instant,
    ) -> Result<ByteStream, Failure> {
        let chunks = futures::stream::unfold(response, |mut response| async move {
            match response.chunk().await {
                Ok(Some(bytes)) => Some((Ok(bytes), response)),
                Ok(None) => None,
                Err(_) => Some((
                    Err(GatewayError::UpstreamFailed {
                        summary: "the upstream stream broke off".to_owned(),
                    }),
                    response,
                )),
            }
        });
        Ok(Box::pin(chunks))
    }
}

pub struct Upstream {
    http: reqwest::Client,
    backends: Vec<Backend>,
    retry: RetryConfig,
    /// Where each attempt is counted, when the dashboard's figures are kept.
    stats: Option<Arc<Stats>>,
}

#[async_trait]
impl ModelApi for Upstream {
    async fn whole(
        &self,
        operation: Operation,
        model: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Bytes, GatewayError> {
        self.send(operation, model, body, &HeaderMap::new(), Whole, deadline)
            .await
    }

    async fn stream(
        &self,
        operation: Operation,
        model: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<ByteStream, GatewayError> {
        self.send(
            operation,
            model,
            body,
            &HeaderMap::new(),
            Streamed,
            deadline,
        )
        .await
    }

    fn is_configured(&self) -> bool {
        !self.backends.is_empty()
    }

    fn provider_name(&self) -> &'static str {
        if self.backends.iter().any(Backend::names_deployments) {
            "azure.ai.openai"
        } else {
            "openai"
        }
    }

    /// Any upstream takes a sound model name; an Azure one puts it in its URL path, so it must
    /// also be a deployment name.
    fn check_model(&self, model: &str) -> Result<(), GatewayError> {
        names::check_model_name(model).map_err(GatewayError::InvalidModel)?;
        if self.backends.iter().any(Backend::names_deployments) {
            names::check_deployment_name(model).map_err(GatewayError::InvalidModel)?;
        }
        Ok(())
    }

    fn breaker_states(&self) -> Vec<BreakerState> {
        self.backends
            .iter()
            .map(|backend| BreakerState {
                backend: backend.label.to_string(),
                state: backend.breaker.state_label().to_owned(),
            })
            .collect()
    }
}

impl Upstream {
    pub fn new(
        backends: Vec<BackendConfig>,
        retry: RetryConfig,
        breaker: BreakerConfig,
    ) -> Result<Self, GatewayError> {
        let http = crate::tls::client_builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            // Model APIs answer a POST where it was sent; a redirect is an error to report.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GatewayError::Startup(format!("cannot build HTTP client: {e}")))?;
        let backends = backends
            .into_iter()
            .map(|config| Backend::new(config, breaker).map(Backend::with_direct_connections))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            http,
            backends,
            retry,
            stats: None,
        })
    }

    /// Sends every request through reqwest's client, plain-HTTP ones too: what an HTTP proxy
    /// in the environment needs, since only reqwest honours one.
    pub fn without_direct_connections(mut self) -> Self {
        for backend in &mut self.backends {
            backend.direct = None;
        }
        self
    }

    /// [`ModelApi::whole`] with headers of the call's own (set after the backend's, so they
    /// win): what a protocol passes on from its caller, e.g. `anthropic-version`.
    pub async fn whole_with_headers(
        &self,
        operation: Operation,
        model: &str,
        body: Bytes,
        headers: &HeaderMap,
        deadline: Instant,
    ) -> Result<Bytes, GatewayError> {
        self.send(operation, model, body, headers, Whole, deadline)
            .await
    }

    /// [`ModelApi::stream`] with headers of the call's own (see [`Self::whole_with_headers`]).
    pub async fn stream_with_headers(
        &self,
        operation: Operation,
        model: &str,
        body: Bytes,
        headers: &HeaderMap,
        deadline: Instant,
    ) -> Result<ByteStream, GatewayError> {
        self.send(operation, model, body, headers, Streamed, deadline)
            .await
    }

    /// Counts every attempt (calls, errors, latency by backend) in `stats`.
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Gives the backends that take Entra ID tokens (Azure ones without a key) `credential`.
    pub fn with_credential(mut self, credential: Option<Arc<EntraCredential>>) -> Self {
        for backend in self.backends.iter_mut().filter(|b| b.wants_token()) {
            backend.credential = credential.clone();
        }
        self
    }

    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    pub fn call_deadline(&self) -> Duration {
        self.retry.call_deadline
    }

    pub fn stream_idle_timeout(&self) -> Duration {
        self.retry.stream_idle_timeout
    }

    /// Sends one call with retries and failover, within `deadline`.
    async fn send<R: Reading>(
        &self,
        operation: Operation,
        model: &str,
        body: Bytes,
        headers: &HeaderMap,
        reading: R,
        deadline: Instant,
    ) -> Result<R::Output, GatewayError> {
        if self.backends.is_empty() {
            return Err(GatewayError::NotConfigured);
        }
        // Callers check at admission; this guards every path to a URL (the embedder's too).
        self.check_model(model)?;
        let call = Call {
            operation,
            model,
            body: &body,
            headers,
            deadline,
        };
        let call = self.send_with_failover(&call, reading);
        let timed_out = || GatewayError::Timeout {
            deadline: self.retry.call_deadline,
        };
        match tokio::time::timeout_at(deadline, call).await {
            // The last attempt's own timer is set to this same deadline and fires first, failing
            // the attempt as "did not answer in time" (a 502): that is still the call's deadline
            // passing (a 504).
            Ok(Err(GatewayError::UpstreamFailed { .. })) if Instant::now() >= deadline => {
                Err(timed_out())
            }
            Ok(result) => result,
            Err(_) => Err(timed_out()),
        }
    }

    async fn send_with_failover<R: Reading>(
        &self,
        call: &Call<'_>,
        reading: R,
    ) -> Result<R::Output, GatewayError> {
        let mut last_error: Option<GatewayError> = None;
        for (index, backend) in self.backends.iter().enumerate() {
            match self.try_backend(backend, call, reading).await {
                Tried::Answered(output) => return Ok(output),
                Tried::Refused(error) => return Err(error),
                Tried::GaveUp(Some(error)) => last_error = Some(error),
                Tried::GaveUp(None) => {}
            }
            if index + 1 < self.backends.len() {
                metrics::failover(&backend.label);
                tracing::info!(backend = %backend.label, "failing over to the next backend");
            }
        }
        Err(last_error.unwrap_or_else(|| GatewayError::UpstreamFailed {
            summary: "every backend's circuit is open".to_owned(),
        }))
    }

    /// The attempts on one backend, until one answers, one fails for good, the retries run
    /// out or its breaker opens.
    async fn try_backend<R: Reading>(
        &self,
        backend: &Backend,
        call: &Call<'_>,
        reading: R,
    ) -> Tried<R::Output> {
        let mut last: Option<GatewayError> = None;
        for attempt in 0..self.retry.attempts_per_backend.max(1) {
            let Some(permit) = backend.breaker.admit() else {
                tracing::debug!(backend = %backend.label, "circuit open: skipping backend");
                break;
            };
            if attempt > 0 {
                metrics::retry(&backend.label);
            }
            let (error, retry_after) = match self.attempt(backend, call, reading, attempt).await {
                Ok(output) => {
                    backend.breaker.record_success();
                    return Tried::Answered(output);
                }
                Err(Failure::Final(error)) => {
                    // The backend answered, so it is alive; the request itself is at fault.
                    if permit == Permit::Probe {
                        backend.breaker.record_success();
                    }
                    return Tried::Refused(error);
                }
                Err(Failure::Retryable { error, retry_after }) => {
                    backend.breaker.record_failure();
                    (error, retry_after)
                }
            };
            tracing::info!(backend = %backend.label, attempt, error = %error, "upstream attempt failed");
            last = Some(error);
            if !self
                .wait_before_retry(attempt, retry_after, call.deadline)
                .await
            {
                break;
            }
        }
        Tried::GaveUp(last)
    }

    /// Waits before the next attempt on the same backend; false when there should be none.
    async fn wait_before_retry(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        deadline: Instant,
    ) -> bool {
        if attempt + 1 >= self.retry.attempts_per_backend {
            return false;
        }
        let wait = match retry_after {
            Some(wait) if wait > self.retry.max_retry_after => return false,
            Some(wait) => wait,
            None => self.backoff(attempt),
        };
        if Instant::now() + wait >= deadline {
            return false;
        }
        tokio::time::sleep(wait).await;
        true
    }

    /// Exponential backoff with jitter: half fixed, half random, so retries spread out.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .retry
            .base_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.retry.max_backoff);
        let half = exponential / 2;
        let jitter = rand::rng().random_range(0.0..=1.0);
        half + half.mul_f64(jitter)
    }

    /// One request to one backend, in a span of its own (OpenTelemetry's HTTP client span, with
    /// the backend and how many requests went before it on this backend).
    async fn attempt<R: Reading>(
        &self,
        backend: &Backend,
        call: &Call<'_>,
        reading: R,
        resend: u32,
    ) -> Result<R::Output, Failure> {
        let span = tracing::info_span!(
            target: "otel",
            "http.client",
            otel.name = "POST",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = "POST",
            server.address = %backend.label,
            http.request.resend_count = resend,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            tollgate.backend = %backend.label,
            tollgate.retried = resend > 0,
        );
        telemetry::note_attempt(&backend.label);
        let result = self
            .timed_attempt(backend, call, reading)
            .instrument(span.clone())
            .await;
        if let Err(Failure::Retryable { error, .. } | Failure::Final(error)) = &result {
            span.record("error.type", error.code());
            span.record("otel.status_code", "error");
        }
        result
    }

    /// One request to one backend, within the attempt's own timeout, counted for the dashboard.
    async fn timed_attempt<R: Reading>(
        &self,
        backend: &Backend,
        call: &Call<'_>,
        reading: R,
    ) -> Result<R::Output, Failure> {
        let started = Instant::now();
        let attempt_deadline = call.deadline.min(started + self.retry.attempt_timeout);
        let result = self.answer(backend, call, reading, attempt_deadline).await;
        if let Some(stats) = &self.stats {
            stats.upstream(&backend.label, started.elapsed(), result.is_err());
        }
        result
    }

    async fn answer<R: Reading>(
        &self,
        backend: &Backend,
        call: &Call<'_>,
        reading: R,
        attempt_deadline: Instant,
    ) -> Result<R::Output, Failure> {
        let response = self.exchange(backend, call, attempt_deadline).await?;
        tracing::Span::current().record("http.response.status_code", response.status().as_u16());
        if response.status().is_success() {
            return reading.read(response, backend, attempt_deadline).await;
        }
        Err(refusal(response, backend, attempt_deadline).await)
    }

    /// Sends the request with the backend's credentials. An Entra ID token the backend refuses
    /// (401) is dropped and the request sent once more with a new one: tokens can be revoked
    /// or rotated before they expire.
    async fn exchange(
        &self,
        backend: &Backend,
        call: &Call<'_>,
        deadline: Instant,
    ) -> Result<Answer, Failure> {
        let bearer = backend.bearer(deadline).await.map_err(Failure::Final)?;
        let response = self
            .send_once(backend, call, bearer.as_ref(), deadline)
            .await?;
        let (Some(refused), StatusCode::UNAUTHORIZED) = (bearer, response.status()) else {
            return Ok(response);
        };
        if let Some(credential) = &backend.credential {
            credential.invalidate(COGNITIVE_SERVICES_SCOPE, refused.generation);
        }
        tracing::info!(backend = %backend.label, "the upstream refused its Entra ID token; fetching a new one");
        let bearer = backend.bearer(deadline).await.map_err(Failure::Final)?;
        self.send_once(backend, call, bearer.as_ref(), deadline)
            .await
    }

    async fn send_once(
        &self,
        backend: &Backend,
        call: &Call<'_>,
        bearer: Option<&Bearer>,
        deadline: Instant,
    ) -> Result<Answer, Failure> {
        let headers = backend.request_headers(bearer, call.headers);
        let sent = match &backend.direct {
            Some(pool) => {
                let path = backend.path(call.operation, call.model)?;
                let sending = pool.post(path, headers, call.body.clone());
                tokio::time::timeout_at(deadline, sending)
                    .await
                    .map(|sent| sent.map(Answer::Direct))
            }
            None => {
                let url = backend.parsed_url(call.operation, call.model)?;
                let sending = self
                    .http
                    .post(url)
                    .headers(headers)
                    .body(call.body.clone())
                    .send();
                tokio::time::timeout_at(deadline, sending)
                    .await
                    .map(|sent| {
                        sent.map(Answer::Pooled)
                            .map_err(|error| match error.is_connect() {
                                true => direct::SendError::Connect,
                                false => direct::SendError::Transport,
                            })
                    })
            }
        };
        let (kind, summary) = match sent {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(direct::SendError::Connect)) => ("connect", "connect error talking to"),
            Ok(Err(direct::SendError::Transport)) => ("transport", "transport error talking to"),
            Err(_) => {
                metrics::upstream_error(&backend.label, "timeout");
                return Err(Failure::retryable(format!(
                    "{} did not answer in time",
                    backend.label
                )));
            }
        };
        metrics::upstream_error(&backend.label, kind);
        Err(Failure::retryable(format!("{summary} {}", backend.label)))
    }
}

/// A model API's answer, from reqwest's pooled client or from a plain-HTTP backend's own
/// connections: its head, and its body read on demand.
enum Answer {
    Pooled(reqwest::Response),
    Direct(direct::Response),
}

impl Answer {
    fn status(&self) -> StatusCode {
        match self {
            Self::Pooled(response) => response.status(),
            Self::Direct(response) => response.status,
        }
    }

    fn headers(&self) -> &HeaderMap {
        match self {
            Self::Pooled(response) => response.headers(),
            Self::Direct(response) => &response.headers,
        }
    }

    async fn bytes(self) -> Result<Bytes, direct::BrokeOff> {
        match self {
            Self::Pooled(response) => response.bytes().await.map_err(|_| direct::BrokeOff),
            Self::Direct(response) => response.bytes().await,
        }
    }

    /// The body's next piece; `None` at its end.
    async fn chunk(&mut self) -> Result<Option<Bytes>, direct::BrokeOff> {
        match self {
            Self::Pooled(response) => response.chunk().await.map_err(|_| direct::BrokeOff),
            Self::Direct(response) => response.chunk().await,
        }
    }
}

/// One call as every attempt sends it.
struct Call<'a> {
    operation: Operation,
    model: &'a str,
    body: &'a Bytes,
    /// The call's own headers, sent after the backend's.
    headers: &'a HeaderMap,
    deadline: Instant,
}

/// What the attempts on one backend came to.
enum Tried<T> {
    Answered(T),
    /// Failed in a way no other attempt would mend.
    Refused(GatewayError),
    /// Retries ran out or the breaker is open; the last error, if an attempt was made.
    GaveUp(Option<GatewayError>),
}

/// Why a backend's error answer failed the attempt, and whether to retry it.
async fn refusal(response: Answer, backend: &Backend, attempt_deadline: Instant) -> Failure {
    let status = response.status();
    metrics::upstream_error(&backend.label, status_label(status));
    let retry_after = retry_after(response.headers());
    let body = tokio::time::timeout_at(attempt_deadline, response.bytes())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let summary = summarize_error_body(&body, backend.secret());
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            tracing::error!(backend = %backend.label, %status, %summary, "the model API refused the gateway's key");
            Failure::Final(GatewayError::UpstreamAuth {
                status: status.as_u16(),
            })
        }
        StatusCode::TOO_MANY_REQUESTS => Failure::Retryable {
            error: GatewayError::UpstreamRateLimited {
                retry_after,
                summary,
            },
            retry_after,
        },
        s if s == StatusCode::REQUEST_TIMEOUT || s.is_server_error() => Failure::Retryable {
            error: GatewayError::UpstreamFailed {
                summary: format!("{} answered {}: {summary}", backend.label, s.as_u16()),
            },
            retry_after,
        },
        s => Failure::Final(GatewayError::UpstreamRejected {
            status: s.as_u16(),
            summary,
        }),
    }
}

fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        408 => "408",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// `retry-after-ms` (Azure) or `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// A short, safe summary of an upstream error body: its `error.message` if it has one, cut to a
/// sane length, with the gateway's own key scrubbed should the upstream have echoed it.
fn summarize_error_body(body: &[u8], secret: Option<&str>) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    // The first of these that is a string: OpenAI's `error.message`, a bare `message`, or an
    // `error` string (Ollama). Each is tried in turn, so an `error` object without a message
    // does not hide a `message` beside it.
    let message = parsed
        .as_ref()
        .and_then(|v| {
            [
                v.pointer("/error/message"),
                v.get("message"),
                v.get("error"),
            ]
            .into_iter()
            .flatten()
            .find_map(serde_json::Value::as_str)
        })
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if body.is_empty() {
                "no details given".to_owned()
            } else if parsed.is_some() {
                "the error body gave no message".to_owned()
            } else {
                "the error body was not JSON".to_owned()
            }
        });
    let mut message: String = message.chars().take(300).collect();
    if let Some(secret) = secret.filter(|s| s.len() >= 4) {
        message = message.replace(secret, "[redacted]");
    }
    message
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn retry_after_reads_every_form() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "retry-after",
            "3".parse().unwrap_or(http::HeaderValue::from_static("0")),
        );
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", http::HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        let mut dated = HeaderMap::new();
        dated.insert(
            "retry-after",
            http::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&dated), Some(Duration::ZERO));
    }

    #[test]
    fn error_summaries_are_short_and_scrubbed() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-secret-123","type":"invalid_request_error"}}"#;
        let summary = summarize_error_body(body, Some("sk-secret-123"));
        assert_eq!(summary, "Incorrect API key provided: [redacted]");
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "x".repeat(1000));
        assert_eq!(summarize_error_body(long.as_bytes(), None).len(), 300);
        assert_eq!(
            summarize_error_body(b"<html>", None),
            "the error body was not JSON"
        );
        assert_eq!(
            summarize_error_body(br#"{"error":{"code":"x"},"message":"beside"}"#, None),
            "beside"
        );
        assert_eq!(
            summarize_error_body(br#"{"error":"model 'x' not found"}"#, None),
            "model 'x' not found"
        );
        assert_eq!(
            summarize_error_body(br#"{"error":{"code":"x"}}"#, None),
            "the error body gave no message"
        );
    }

    #[test]
    fn azure_urls_name_the_deployment() {
        let backend = Backend::new(
            BackendConfig::Azure {
                endpoint: "https://example.openai.azure.com/".to_owned(),
                api_key: None,
                api_version: "2024-10-21".to_owned(),
            },
            BreakerConfig::default(),
        )
        .expect("a key-less backend");
        assert_eq!(
            backend.url(Operation::Chat, "gpt 4o"),
            "https://example.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            backend.url(Operation::Responses, "gpt 4o"),
            "https://example.openai.azure.com/openai/v1/responses"
        );
        assert_eq!(&*backend.label, "example.openai.azure.com");
    }

    fn anthropic(base_url: &str, key: &str) -> BackendConfig {
        BackendConfig::Anthropic {
            base_url: base_url.to_owned(),
            api_key: Some(key.to_owned().into()),
            version: "2023-06-01".to_owned(),
        }
    }

    #[test]
    fn keys_ride_in_sensitive_headers_and_the_calls_own_headers_win() {
        let backend = Backend::new(
            anthropic("http://127.0.0.1:9/", "sk-ant"),
            Default::default(),
        )
        .expect("a valid key")
        .with_direct_connections();
        let mut own = HeaderMap::new();
        own.insert("anthropic-version", HeaderValue::from_static("2024-01-01"));
        let headers = backend.request_headers(None, &own);
        assert_eq!(headers["x-api-key"], "sk-ant");
        assert!(headers["x-api-key"].is_sensitive());
        assert_eq!(headers["anthropic-version"], "2024-01-01");
        assert_eq!(headers.get_all("anthropic-version").iter().count(), 1);
        assert_eq!(headers[http::header::CONTENT_TYPE], "application/json");
        let openai = BackendConfig::OpenAi {
            base_url: "https://api.openai.com/v1".to_owned(),
            api_key: Some("sk-x".to_owned().into()),
        };
        let headers = Backend::new(openai, Default::default())
            .expect("a valid key")
            .request_headers(None, &HeaderMap::new());
        assert_eq!(headers[http::header::AUTHORIZATION], "Bearer sk-x");
        assert!(headers[http::header::AUTHORIZATION].is_sensitive());
    }

    #[test]
    fn plain_http_backends_get_their_own_connections_and_https_ones_reqwest() {
        let plain = Backend::new(anthropic("http://127.0.0.1:9", "k"), Default::default())
            .expect("a valid key")
            .with_direct_connections();
        assert!(plain.direct.is_some());
        let path = plain.path(Operation::Chat, "m").ok().expect("a path");
        assert_eq!(path.as_str(), "/v1/messages");
        let tls = Backend::new(
            anthropic("https://api.anthropic.com", "k"),
            Default::default(),
        )
        .expect("a valid key")
        .with_direct_connections();
        assert!(tls.direct.is_none());
        let upstream = Upstream::new(
            vec![anthropic("http://127.0.0.1:9", "k")],
            RetryConfig::default(),
            BreakerConfig::default(),
        )
        .expect("an upstream");
        assert!(upstream.backends[0].direct.is_some());
        assert!(
            upstream.without_direct_connections().backends[0]
                .direct
                .is_none()
        );
    }

    #[test]
    fn a_key_no_header_can_carry_is_refused_at_start() {
        let refused = Backend::new(anthropic("http://x", "sk\nInjected: 1"), Default::default());
        assert!(matches!(refused, Err(GatewayError::Startup(message)) if !message.contains("sk")));
    }
}
