//! The load generator end to end: the mock model, tollgate in-process, and a short run of
//! `loadtest::run` against each target. The agent run is the k6 demo in miniature: after the
//! warmup, the built-in paraphrased prompts must hit the semantic cache more than 30% of the time.

use std::time::Duration;

use loadtest::{RunConfig, Summary, Target};
use mock_upstream::{DEFAULT_MODEL, MockOptions, MockUpstream};
use tests::{TestServer, gateway::chat_body};
use tokio::sync::Mutex;

/// The runs measure throughput and cache behaviour, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

const KEY: &str = "load-key";

async fn mock() -> MockUpstream {
    MockUpstream::start(MockOptions {
        record_requests: false,
        ..MockOptions::default()
    })
    .await
    .unwrap()
}

async fn server(mock: &MockUpstream) -> TestServer {
    let base_url = mock.base_url();
    TestServer::start(&[
        "--openai-base-url",
        &base_url,
        "--chat-model",
        DEFAULT_MODEL,
        "--instance-id",
        "load-0",
        "--subscription-keys",
        &format!("load={KEY}"),
        "--tokens-per-minute",
        "100000000",
        "--mcp-rate-limit",
        "1000000/1",
    ])
    .await
}

/// A short run: `warmup`, then one second measured, four requests in flight.
fn config(server: &TestServer, target: Target, warmup: Duration) -> RunConfig {
    let mut config = RunConfig::new(server.url(""));
    config.key = Some(KEY.to_owned());
    config.target = target;
    config.warmup = warmup;
    config.duration = Duration::from_secs(1);
    config.concurrency = 4;
    config.timeout = Duration::from_secs(5);
    config
}

/// A run on a fresh mock and server, alone; `adjust` changes the short run's [`config`].
async fn run_alone(
    target: Target,
    warmup: Duration,
    adjust: impl FnOnce(&mut RunConfig),
) -> Summary {
    let _serial = SERIAL.lock().await;
    let mock = mock().await;
    let server = server(&mock).await;
    let mut config = config(&server, target, warmup);
    adjust(&mut config);
    loadtest::run(config).await.unwrap()
}

/// A short run that must have made more than 8 requests (enough for hits and misses, however busy
/// the machine) without an error; the summary and its rendered report.
async fn clean_run(target: Target, warmup: Duration) -> (Summary, String) {
    let summary = run_alone(target, warmup, |_| {}).await;
    let report = loadtest::report::render(&summary);
    assert!(summary.requests > 8, "{report}");
    assert_eq!(summary.errors, 0, "{report}");
    (summary, report)
}

/// Asserts that instance `id` served every request of the run.
fn assert_all_served_by(summary: &Summary, report: &str, id: &str) {
    assert_eq!(
        summary.instances.get(id),
        Some(&summary.requests),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_run_hits_the_semantic_cache() {
    let (summary, report) = clean_run(Target::Agent, Duration::from_millis(1500)).await;
    assert!(summary.passes(0.01), "{report}");
    // Every agent turn makes at least two model calls: the first can be served from the cache,
    // the second carries fresh tool results.
    assert!(
        summary.cache.hits + summary.cache.misses >= 2 * summary.requests,
        "{report}"
    );
    assert!(summary.cache.hit_ratio > 0.30, "{report}");
    assert_all_served_by(&summary, &report, "load-0");
    assert!(summary.latency_us.p50 > 0 && summary.latency_us.p50 <= summary.latency_us.p99);
    assert!(summary.requests_per_second > 0.0);
    for line in ["Cache hits : ", "Cache misses : ", "Hit ratio : "] {
        assert!(report.lines().any(|l| l.starts_with(line)), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_run_counts_the_cache_header() {
    let (summary, report) = clean_run(Target::Gateway, Duration::from_millis(500)).await;
    // One model call per request, each a hit or a miss; once the pool has been seen, repeats hit.
    assert_eq!(
        summary.cache.hits + summary.cache.misses,
        summary.requests,
        "{report}"
    );
    assert!(summary.cache.hit_ratio > 0.9, "{report}");
    // The gateway route does not name its instance.
    assert_all_served_by(&summary, &report, "unknown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_run_reads_real_echo_results() {
    let (summary, report) = clean_run(Target::Mcp, Duration::from_millis(200)).await;
    assert_all_served_by(&summary, &report, "load-0");
    assert_eq!(summary.cache.hits + summary.cache.misses, 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_counted_as_401_errors() {
    let summary = run_alone(Target::Mcp, Duration::ZERO, |config| {
        config.key = Some("not-a-key".to_owned());
        config.duration = Duration::from_millis(300);
    })
    .await;
    assert!(summary.requests > 0);
    assert_eq!(summary.errors, summary.requests);
    assert_eq!(summary.errors_by_status.get("401"), Some(&summary.requests));
    assert!(!summary.passes(0.01));
}

/// The built-in pool is worth its name: once a group's first wording is cached, its paraphrases
/// are served from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_paraphrases_hit_the_cache() {
    let _serial = SERIAL.lock().await;
    let mock = mock().await;
    let server = server(&mock).await;
    let client = tests::http_client();
    let mut missed = Vec::new();
    for (index, prompt) in loadtest::prompts::builtin().iter().enumerate() {
        let response = client
            .post(server.url("/v1/chat/completions"))
            .header("ocp-apim-subscription-key", KEY)
            .json(&chat_body(prompt))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let status = response.headers()["x-llm-cache-status"].to_str().unwrap();
        let first_wording = index < loadtest::prompts::groups().len();
        assert_eq!(
            status == "miss",
            first_wording || status != "hit",
            "{prompt}"
        );
        if !first_wording && status != "hit" {
            missed.push(prompt.clone());
        }
    }
    assert!(missed.is_empty(), "paraphrases that missed: {missed:?}");
}
