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
pub mod sse;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
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
    /// An OpenAI-style backend's URLs (chat, embeddings, moderations), parsed once: they do not
    /// depend on the call, and parsing a URL on every call is a measurable share of it.
    parsed_urls: Option<[reqwest::Url; 3]>,
}

/// Azure AI Content Safety's API version.
pub const CONTENT_SAFETY_API_VERSION: &str = "2024-09-01";

impl Backend {
    pub fn new(config: BackendConfig, breaker: BreakerConfig) -> Self {
        let label: Arc<str> = Arc::from(label_of(&config));
        let mut backend = Self {
            breaker: Breaker::new(label.clone(), breaker),
            label,
            config,
            credential: None,
            parsed_urls: None,
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
        backend
    }

    /// A POST to this backend's endpoint for `operation` (and `model`, on Azure).
    fn post(
        &self,
        http: &reqwest::Client,
        operation: Operation,
        model: &str,
    ) -> reqwest::RequestBuilder {
        let index = match operation {
            Operation::Chat => Some(0),
            Operation::Embeddings => Some(1),
            Operation::Moderations => Some(2),
            Operation::TextAnalyze | Operation::ShieldPrompt | Operation::Responses => None,
        };
        match (&self.parsed_urls, index) {
            (Some(urls), Some(index)) => http.post(urls[index].clone()),
            _ => http.post(self.url(operation, model)),
        }
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

    /// The request with this backend's key, or with `bearer`, an Entra ID token.
    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        bearer: Option<&Bearer>,
    ) -> reqwest::RequestBuilder {
        if let Some(bearer) = bearer {
            return request.header(http::header::AUTHORIZATION, bearer.header.clone());
        }
        match &self.config {
            BackendConfig::OpenAi {
                api_key: Some(key), ..
            } => request.bearer_auth(key.expose_secret()),
            BackendConfig::Azure {
                api_key: Some(key), ..
            } => request.header("api-key", key.expose_secret()),
            BackendConfig::Anthropic {
                api_key, version, ..
            } => {
                let request = request.header("anthropic-version", version.as_str());
                match api_key {
                    Some(key) => request.header("x-api-key", key.expose_secret()),
                    None => request,
                }
            }
            BackendConfig::ContentSafety {
                api_key: Some(key), ..
            } => request.header("Ocp-Apim-Subscription-Key", key.expose_secret()),
            BackendConfig::OpenAi { api_key: None, .. }
            | BackendConfig::Azure { api_key: None, .. }
            | BackendConfig::ContentSafety { api_key: None, .. } => request,
        }
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
        response: reqwest::Response,
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
        response: reqwest::Response,
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
        response: reqwest::Response,
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
        Ok(Self {
            http,
            backends: backends
                .into_iter()
                .map(|config| Backend::new(config, breaker))
                .collect(),
            retry,
            stats: None,
        })
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
    ) -> Result<reqwest::Response, Failure> {
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
    ) -> Result<reqwest::Response, Failure> {
        let request = backend
            .authorize(backend.post(&self.http, call.operation, call.model), bearer)
            .header(http::header::CONTENT_TYPE, "application/json");
        // The trace context goes on to the model API (W3C traceparent), when there is one.
        let mut trace_headers = HeaderMap::new();
        telemetry::inject_headers(&mut trace_headers);
        let request = request.headers(trace_headers);
        let request = if call.headers.is_empty() {
            request
        } else {
            request.headers(call.headers.clone())
        }
        .body(call.body.clone());
        match tokio::time::timeout_at(deadline, request.send()).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => {
                let kind = if error.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                metrics::upstream_error(&backend.label, kind);
                Err(Failure::retryable(format!(
                    "{kind} error talking to {}",
                    backend.label
                )))
            }
            Err(_) => {
                metrics::upstream_error(&backend.label, "timeout");
                Err(Failure::retryable(format!(
                    "{} did not answer in time",
                    backend.label
                )))
            }
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
async fn refusal(
    response: reqwest::Response,
    backend: &Backend,
    attempt_deadline: Instant,
) -> Failure {
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
        );
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
}
