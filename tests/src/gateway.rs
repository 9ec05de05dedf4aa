//! Helpers for the gateway tests: a keyed server in front of an upstream, calls to the
//! OpenAI-compatible routes and `/admin/usage`, server-sent events, Prometheus scraping and the
//! wall-clock minute that token budgets are counted in.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::{TestServer, start_with_model};

/// Starts a server in front of the upstream at `base_url` for these subscription keys
/// (`name=key,…`), with `flags` on top. The semantic cache (tested on its own) is off, so every
/// admitted call reaches the upstream.
pub async fn start_keyed(base_url: &str, subscription_keys: &str, flags: &[&str]) -> TestServer {
    let mut all = vec![
        "--subscription-keys",
        subscription_keys,
        "--semantic-cache",
        "off",
    ];
    all.extend_from_slice(flags);
    start_with_model(base_url, &all).await
}

/// A minimal chat request with one user message.
pub fn chat_body(text: &str) -> Value {
    serde_json::json!({"messages": [{"role": "user", "content": text}]})
}

/// [`chat_body`] asking for a streamed answer.
pub fn streamed_chat_body(text: &str) -> Value {
    let mut body = chat_body(text);
    body["stream"] = Value::Bool(true);
    body
}

/// POSTs `body` to `path` with `key` (if any) as `api-key`.
///
/// # Panics
/// When the request cannot be sent at all: the server is gone.
pub async fn post_json(
    client: &reqwest::Client,
    server: &TestServer,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = client.post(server.url(path)).json(body);
    if let Some(key) = key {
        request = request.header("api-key", key);
    }
    match request.send().await {
        Ok(response) => response,
        Err(error) => panic!("POST {path} failed: {error}"),
    }
}

/// POSTs a chat completion request to `/v1/chat/completions`.
pub async fn post_chat(
    client: &reqwest::Client,
    server: &TestServer,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    post_json(client, server, "/v1/chat/completions", key, body).await
}

/// POSTs an embeddings request to `/v1/embeddings`.
pub async fn post_embeddings(
    client: &reqwest::Client,
    server: &TestServer,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    post_json(client, server, "/v1/embeddings", key, body).await
}

/// The `/admin/usage` report as `admin_key` sees it.
///
/// # Panics
/// When the report cannot be fetched or is not JSON.
pub async fn usage_report(client: &reqwest::Client, server: &TestServer, admin_key: &str) -> Value {
    let response = match client
        .get(server.url("/admin/usage"))
        .header("api-key", admin_key)
        .send()
        .await
    {
        Ok(response) => response,
        Err(error) => panic!("GET /admin/usage failed: {error}"),
    };
    match response.json().await {
        Ok(report) => report,
        Err(error) => panic!("the usage report is not JSON: {error}"),
    }
}

/// A response header as text, if present.
pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name)?.to_str().ok()
}

/// A numeric response header.
///
/// # Panics
/// When the header is missing or not a number.
pub fn header_u64(response: &reqwest::Response, name: &str) -> u64 {
    match header(response, name).map(str::parse::<u64>) {
        Some(Ok(value)) => value,
        other => panic!("header {name} is not a number: {other:?}"),
    }
}

/// The response's content type.
///
/// # Panics
/// When the response has none.
pub fn content_type(response: &reqwest::Response) -> &str {
    match header(response, "content-type") {
        Some(content_type) => content_type,
        None => panic!("the response has no content type"),
    }
}

/// The `data:` payloads of a server-sent events body, in order (`[DONE]` included).
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|value| value.strip_prefix(' ').unwrap_or(value))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// The text a stream spelled out in `delta.content`.
pub fn streamed_text(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|chunk| {
            chunk
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// The Prometheus text of `/metrics`.
///
/// # Panics
/// When `/metrics` cannot be read.
pub async fn scrape(client: &reqwest::Client, server: &TestServer) -> String {
    let response = match client.get(server.url("/metrics")).send().await {
        Ok(response) => response,
        Err(error) => panic!("GET /metrics failed: {error}"),
    };
    match response.text().await {
        Ok(text) => text,
        Err(error) => panic!("GET /metrics body failed: {error}"),
    }
}

/// The sum of every sample of `name` whose labels include all of `labels`; `None` if there is
/// no such sample. The registry is process-wide, so tests pick labels no other test uses.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found: Option<f64> = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((series_name, rest)) => (series_name, parse_labels(rest.trim_end_matches('}'))),
            None => (series, Vec::new()),
        };
        if series_name != name {
            continue;
        }
        let matches = labels.iter().all(|(key, wanted)| {
            series_labels
                .iter()
                .any(|(k, v)| k == key && v.as_str() == *wanted)
        });
        if let (true, Ok(value)) = (matches, value.parse::<f64>()) {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// `a="x",b="y"` as pairs (values unescaped).
fn parse_labels(raw: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = raw;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = at + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        pairs.push((key.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end..];
    }
    pairs
}

/// Waits, if need be, until at least `need` is left in the current UTC minute.
///
/// Token budgets are counted per wall-clock minute. A test over the real HTTP server that makes
/// several calls and compares exact budget figures must not straddle a minute boundary, where
/// the budget starts afresh. This waits only in the last `need` of a minute (never at all in
/// most runs), and never longer than `need`.
pub async fn minute_headroom(need: Duration) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let into_minute =
        Duration::from_millis(u64::try_from(since_epoch.as_millis() % 60_000).unwrap_or(0));
    let left = Duration::from_secs(60).saturating_sub(into_minute);
    if left < need {
        tokio::time::sleep(left + Duration::from_millis(50)).await;
    }
}

/// Sends `calls` chat calls at once, spread over `servers` in turn, each with `key`; returns
/// each call's status and its `x-tokens-consumed` (0 when refused).
pub async fn concurrent_chats(servers: &[&TestServer], key: &str, calls: usize) -> Vec<(u16, u64)> {
    let client = crate::http_client();
    let requests = (0..calls).map(|i| {
        let server = servers[i % servers.len()];
        let client = client.clone();
        async move {
            let body = chat_body(&format!("Question {i}: what is a token budget?"));
            let response = post_chat(&client, server, Some(key), &body).await;
            let consumed = header(&response, "x-tokens-consumed").and_then(|v| v.parse().ok());
            (response.status().as_u16(), consumed.unwrap_or(0))
        }
    });
    futures::future::join_all(requests).await
}

/// Asserts a remaining-tokens figure read on the real clock: the budget refills continuously,
/// so it may exceed the exact count `exact` by what `tokens_per_minute` refills in the time
/// since `since` (when the spending being checked began), and never falls short of it.
pub fn assert_remaining(actual: u64, exact: u64, tokens_per_minute: u64, since: Instant) {
    let elapsed = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
    let slack = elapsed.saturating_mul(tokens_per_minute).div_ceil(60_000) + 1;
    assert!(
        (exact..=exact.saturating_add(slack)).contains(&actual),
        "{actual} tokens remaining: expected {exact}, plus at most {slack} refilled"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_found_by_name_and_labels() {
        let text = "# TYPE x counter\nx{a=\"1\",b=\"two\"} 3\nx{a=\"1\",b=\"three\"} 4\ny 9\n";
        assert_eq!(metric(text, "x", &[("a", "1")]), Some(7.0));
        assert_eq!(metric(text, "x", &[("b", "two")]), Some(3.0));
        assert_eq!(metric(text, "x", &[("b", "four")]), None);
        assert_eq!(metric(text, "y", &[]), Some(9.0));
    }

    #[test]
    fn sse_bodies_split_into_data() {
        let body = "data: {\"a\":1}\n\ndata: [DONE]\n\n";
        assert_eq!(sse_data(body), ["{\"a\":1}", "[DONE]"]);
    }
}
