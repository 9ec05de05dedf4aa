//! One load run: `concurrency` workers sending requests back to back over a pooled client, a
//! warmup phase that is not counted, then a steady phase that is.
//!
//! A request counts when it *starts* in the steady phase; workers stop starting new requests
//! at its end and let the ones in flight finish (they count too, and the phase is taken to
//! last until the last of them finished, never less than `duration`). Each worker keeps its
//! own [`Tally`]; nothing is shared on the hot path but the prompt counter and, when progress
//! is shown, a few relaxed atomic counters.

use std::{
    fmt,
    io::IsTerminal as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::{task::JoinSet, time::Instant};

use crate::{
    prompts,
    stats::{Failure, Outcome, RunShape, Summary, Tally, ratio},
    target::Target,
};

/// The header the subscription key is sent in.
pub const KEY_HEADER: &str = "ocp-apim-subscription-key";

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Where tollgate listens, e.g. `http://127.0.0.1:8000`.
    pub base_url: String,
    /// Sent as `Ocp-Apim-Subscription-Key` when set.
    pub key: Option<String>,
    pub target: Target,
    pub warmup: Duration,
    pub duration: Duration,
    /// Requests in flight at once (one worker each).
    pub concurrency: usize,
    /// Sent in order, cycling; must not be empty.
    pub prompts: Vec<String>,
    /// Deadline of one request, from sending to the end of the body.
    pub timeout: Duration,
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
}

impl RunConfig {
    /// The defaults of the CLI: the agent target, 10 s warmup, 30 s steady phase, 8 workers,
    /// the built-in prompts, a 30 s request timeout, no progress bar.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            key: None,
            target: Target::Agent,
            warmup: Duration::from_secs(10),
            duration: Duration::from_secs(30),
            concurrency: 8,
            prompts: prompts::builtin(),
            timeout: Duration::from_secs(30),
            progress: false,
        }
    }
}

/// Why a run could not start.
#[derive(Debug)]
pub enum RunError {
    NoPrompts,
    ZeroConcurrency,
    ZeroDuration,
    /// The key cannot be sent as a header value.
    InvalidKey,
    /// The HTTP client could not be built.
    Client(reqwest::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPrompts => f.write_str("there is no prompt to send"),
            Self::ZeroConcurrency => f.write_str("concurrency must be at least 1"),
            Self::ZeroDuration => f.write_str("the steady phase must last longer than 0 s"),
            Self::InvalidKey => f.write_str("the key is not a valid header value"),
            Self::Client(error) => write!(f, "cannot build the HTTP client: {error}"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Client(error) => Some(error),
            _ => None,
        }
    }
}

/// Runs the warmup and the steady phase and returns the steady phase's figures.
pub async fn run(config: RunConfig) -> Result<Summary, RunError> {
    if config.prompts.is_empty() {
        return Err(RunError::NoPrompts);
    }
    if config.concurrency == 0 {
        return Err(RunError::ZeroConcurrency);
    }
    if config.duration.is_zero() {
        return Err(RunError::ZeroDuration);
    }
    // reqwest is built without a default TLS crypto provider: install ours (or keep the caller's).
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let client = reqwest::Client::builder()
        .timeout(config.timeout)
        .pool_max_idle_per_host(config.concurrency)
        .tcp_nodelay(true)
        .build()
        .map_err(RunError::Client)?;
    let url = config.target.url(&config.base_url);
    let shared = Arc::new(Shared {
        client,
        url: url.clone(),
        headers: request_headers(config.target, config.key.as_deref())?,
        bodies: config
            .prompts
            .iter()
            .map(|prompt| config.target.body(prompt))
            .collect(),
        target: config.target,
        next: AtomicU64::new(0),
        live: Live::default(),
    });

    let started = Instant::now();
    let steady_start = started + config.warmup;
    let end = steady_start + config.duration;
    let mut workers = JoinSet::new();
    for _ in 0..config.concurrency {
        workers.spawn(worker(Arc::clone(&shared), steady_start, end));
    }
    let progress = config.progress.then(|| {
        let bar = progress_bar(config.warmup + config.duration);
        let ticker = tokio::spawn(tick(
            bar.clone(),
            Arc::clone(&shared),
            started,
            config.warmup,
            config.duration,
        ));
        (bar, ticker)
    });

    let mut tally = Tally::new();
    let mut last_done = end;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(done) => {
                tally.merge(&done.tally);
                last_done = last_done.max(done.last_done);
            }
            Err(error) => tracing::warn!(%error, "a load worker stopped abnormally"),
        }
    }
    if let Some((bar, ticker)) = progress {
        ticker.abort();
        bar.finish_and_clear();
    }
    let elapsed = last_done.saturating_duration_since(steady_start);
    let shape = RunShape {
        target: config.target.name().to_owned(),
        url,
        concurrency: config.concurrency,
        warmup: config.warmup,
    };
    Ok(Summary::new(shape, &tally, elapsed))
}

/// What the workers share: the client, the prepared requests and the progress counters.
struct Shared {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    /// One prepared body per prompt.
    bodies: Vec<Bytes>,
    target: Target,
    /// The next prompt, across workers (round-robin).
    next: AtomicU64,
    live: Live,
}

/// Counters for the progress bar.
#[derive(Default)]
struct Live {
    warmup_requests: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct WorkerDone {
    tally: Tally,
    last_done: Instant,
}

async fn worker(shared: Arc<Shared>, steady_start: Instant, end: Instant) -> WorkerDone {
    let mut tally = Tally::new();
    let mut last_done = steady_start;
    loop {
        let start = Instant::now();
        if start >= end {
            break;
        }
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        let index = usize::try_from(n % shared.bodies.len() as u64).unwrap_or(0);
        let body = shared.bodies.get(index).cloned().unwrap_or_default();
        let outcome = call(&shared, body).await;
        let done = Instant::now();
        let live = &shared.live;
        if start < steady_start {
            live.warmup_requests.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        tally.record(done - start, &outcome);
        last_done = done;
        live.requests.fetch_add(1, Ordering::Relaxed);
        if outcome.failure.is_some() {
            live.errors.fetch_add(1, Ordering::Relaxed);
        }
        live.hits.fetch_add(outcome.cache_hits, Ordering::Relaxed);
        live.misses
            .fetch_add(outcome.cache_misses, Ordering::Relaxed);
    }
    WorkerDone { tally, last_done }
}

/// One request, read to the end of its body.
async fn call(shared: &Shared, body: Bytes) -> Outcome {
    let sent = shared
        .client
        .post(shared.url.as_str())
        .headers(shared.headers.clone())
        .body(body)
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(error) => return Outcome::failed(transport_failure(&error)),
    };
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    match response.bytes().await {
        Ok(body) => shared.target.interpret(status, &headers, &body),
        Err(error) => Outcome::failed(transport_failure(&error)),
    }
}

fn transport_failure(error: &reqwest::Error) -> Failure {
    if error.is_timeout() {
        Failure::Timeout
    } else if error.is_connect() {
        Failure::Connect
    } else {
        Failure::Transport
    }
}

fn request_headers(target: Target, key: Option<&str>) -> Result<HeaderMap, RunError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in target.headers() {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if let Some(key) = key {
        let mut value = HeaderValue::from_str(key).map_err(|_| RunError::InvalidKey)?;
        value.set_sensitive(true);
        headers.insert(HeaderName::from_static(KEY_HEADER), value);
    }
    Ok(headers)
}

fn progress_bar(total: Duration) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total_ms = u64::try_from(total.as_millis()).unwrap_or(u64::MAX);
    let bar = ProgressBar::with_draw_target(Some(total_ms), ProgressDrawTarget::stderr_with_hz(8));
    let style = ProgressStyle::with_template("{spinner} {prefix:>6} [{bar:30}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// Refreshes the progress bar until aborted.
async fn tick(
    bar: ProgressBar,
    shared: Arc<Shared>,
    started: Instant,
    warmup: Duration,
    duration: Duration,
) {
    let mut interval = tokio::time::interval(Duration::from_millis(200));
    loop {
        interval.tick().await;
        let elapsed = started.elapsed();
        bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        let live = &shared.live;
        if elapsed < warmup {
            bar.set_prefix("warmup");
            bar.set_message(format!(
                "{:.0}/{:.0} s  {} requests",
                elapsed.as_secs_f64(),
                warmup.as_secs_f64(),
                live.warmup_requests.load(Ordering::Relaxed)
            ));
        } else {
            let steady = (elapsed - warmup).min(duration);
            let requests = live.requests.load(Ordering::Relaxed);
            let hits = live.hits.load(Ordering::Relaxed);
            let misses = live.misses.load(Ordering::Relaxed);
            bar.set_prefix("steady");
            bar.set_message(format!(
                "{:.0}/{:.0} s  {requests} requests  {:.1} req/s  {} errors  hit ratio {:.1}%",
                steady.as_secs_f64(),
                duration.as_secs_f64(),
                crate::stats::per_second(requests, steady),
                live.errors.load(Ordering::Relaxed),
                ratio(hits, hits + misses) * 100.0,
            ));
        }
    }
}
