//! Measuring the semantic cache: recall and wrong hits on labelled prompt pairs.
//!
//! A data file holds one pair per line, `kind<TAB>cached<TAB>query<TAB>expect` (lines starting
//! with `#` are comments): a prompt already answered and cached, a new prompt, and whether
//! serving the cached answer to the new one is right (`hit`) or wrong (`miss`). A kind is
//! `top` or `top/class` (`paraphrase/synonym`); figures come per full kind and per top-level kind.
//!
//! [`evaluate`] runs rows through caches built like the gateway's, in two modes:
//! - isolated pairs: each row in a partition of its own: store the cached prompt, look the
//!   query up;
//! - one shared partition: every cached prompt stored together, then every query looked up. A
//!   hit is right only if it serves the row's own cached prompt, or a prompt identical to the
//!   query once normalized; any other entry's answer is a wrong hit.
//!
//! It goes through the cache's public lookup and store, so it measures whatever embedder and
//! verifier the cache has. [`summarize`] turns outcomes into [`Figures`]: tests that drive the
//! HTTP pipeline instead share the same maths.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::SemanticCache;
use crate::{
    cache::{CacheLookup, ResponseCache},
    context::{Api, CallContext, Operation},
    error::GatewayError,
};

/// The model name of every evaluated request (it only names the partition).
const MODEL: &str = "cache-eval";
/// An extra request field: the cache partitions by it, so each row gets a partition of its own.
const ROW_FIELD: &str = "cache_eval_row";
/// The partition of the warm-up lookup: no row's.
const WARM_UP_PARTITION: usize = usize::MAX;
/// Stored answers name their entry, so a hit tells which entry served it.
const ANSWER_PREFIX: &str = "cache-eval entry ";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Hit,
    Miss,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
        })
    }
}

/// One labelled pair, and where it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub file: Arc<str>,
    /// 1-based line number in `file`.
    pub line: usize,
    pub kind: String,
    pub cached: String,
    pub query: String,
    pub expect: Expect,
}

impl Row {
    /// `paraphrase` for `paraphrase/synonym`; a plain kind is its own top-level kind.
    pub fn top_kind(&self) -> &str {
        self.kind
            .split_once('/')
            .map_or(self.kind.as_str(), |(top, _)| top)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{file}:{line}: {message}")]
    BadRow {
        file: String,
        line: usize,
        message: String,
    },
    #[error("the semantic cache cannot be built: {0}")]
    Build(#[from] GatewayError),
    #[error(
        "{file}:{line}: the cached prompt could not be stored: embedding it failed (the log says why)"
    )]
    NotStored { file: String, line: usize },
}

/// The rows of one data file; `file` names it in the rows and in errors.
pub fn parse_rows(file: &str, text: &str) -> Result<Vec<Row>, EvalError> {
    let name: Arc<str> = Arc::from(file);
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let [kind, cached, query, expect] =
            parse_columns(line).map_err(|message| EvalError::BadRow {
                file: file.to_owned(),
                line: index + 1,
                message,
            })?;
        rows.push(Row {
            file: name.clone(),
            line: index + 1,
            kind: kind.to_owned(),
            cached: cached.to_owned(),
            query: query.to_owned(),
            expect: if expect == "hit" {
                Expect::Hit
            } else {
                Expect::Miss
            },
        });
    }
    Ok(rows)
}

/// The four checked columns of a data line.
fn parse_columns(line: &str) -> Result<[&str; 4], String> {
    let columns: Vec<&str> = line.split('\t').map(str::trim).collect();
    let [kind, cached, query, expect] = columns[..] else {
        return Err(format!(
            "expected 4 tab-separated columns (kind, cached, query, expect), found {}",
            columns.len()
        ));
    };
    for (name, value) in [
        ("kind", kind),
        ("cached", cached),
        ("query", query),
        ("expect", expect),
    ] {
        if value.is_empty() {
            return Err(format!("the {name} column is empty"));
        }
    }
    if kind.split('/').any(str::is_empty) {
        return Err(format!("kind `{kind:.60}` is not `top` or `top/class`"));
    }
    if !matches!(expect, "hit" | "miss") {
        return Err(format!(
            "expect is `{expect:.40}`; it must be `hit` or `miss`"
        ));
    }
    Ok([kind, cached, query, expect])
}

/// What a lookup served, relative to the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// Nothing: a miss.
    Nothing,
    /// The answer stored for the row's own cached prompt.
    Own,
    /// The answer to a prompt identical to the query once normalized: right for any row.
    SameQuestion,
    /// The answer to another question, `prompt`.
    Other { prompt: String },
}

/// One row's lookup: what it served and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub served: Served,
    pub latency: Duration,
    /// In the model-judged mode, the candidate the chat model would be asked about.
    pub asked: Option<Asked>,
    /// For a row expected to hit that missed: why its cached answer was not served.
    pub why_missed: Option<String>,
}

/// A lookup that would ask the chat model (`CACHE_JUDGE=model`).
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    /// What a "yes" would serve.
    pub served: Served,
    /// The judgement's tokens, request and answer.
    pub tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Judgement {
    /// A right answer was served.
    RightHit,
    /// Nothing was served, as expected.
    RightMiss,
    /// Nothing was served to a row that should hit.
    Missed,
    /// The row's cached answer was served although the query asks something else.
    WrongHit,
    /// Another question's answer was served.
    WrongEntry,
}

impl Judgement {
    pub fn is_wrong_hit(self) -> bool {
        matches!(self, Self::WrongHit | Self::WrongEntry)
    }

    /// Whether the row's outcome differs from its expectation.
    pub fn is_error(self) -> bool {
        matches!(self, Self::Missed | Self::WrongHit | Self::WrongEntry)
    }
}

pub fn judge(expect: Expect, served: &Served) -> Judgement {
    match (expect, served) {
        (_, Served::SameQuestion) | (Expect::Hit, Served::Own) => Judgement::RightHit,
        (Expect::Hit, Served::Nothing) => Judgement::Missed,
        (Expect::Miss, Served::Nothing) => Judgement::RightMiss,
        (Expect::Miss, Served::Own) => Judgement::WrongHit,
        (_, Served::Other { .. }) => Judgement::WrongEntry,
    }
}

/// The figures of a group of rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub rows: usize,
    /// Rows served any answer.
    pub hits: usize,
    /// Rows expected to hit.
    pub expected_hits: usize,
    /// Rows expected to hit that were served a right answer.
    pub right_hits: usize,
    /// `right_hits / expected_hits`; `None` without rows expected to hit.
    pub recall: Option<f64>,
    /// Wrong answers served: rows expected to miss that hit, and hits on another entry.
    pub wrong_hits: usize,
    /// Of the wrong hits, those that served another question's answer.
    pub wrong_entries: usize,
    /// Lookup latency percentiles, in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
    /// Model-judged mode: lookups that would ask the chat model, those where "yes" is right
    /// (recall the judge can add), and the tokens all the asks cost.
    pub asked: usize,
    pub asked_right: usize,
    pub asked_tokens: u64,
}

impl Figures {
    fn of<'a>(pairs: impl IntoIterator<Item = (&'a Row, &'a Outcome)>) -> Self {
        let mut figures = Self::default();
        let mut latencies = Vec::new();
        for (row, outcome) in pairs {
            let judgement = judge(row.expect, &outcome.served);
            figures.rows += 1;
            figures.hits += usize::from(outcome.served != Served::Nothing);
            if row.expect == Expect::Hit {
                figures.expected_hits += 1;
                figures.right_hits += usize::from(judgement == Judgement::RightHit);
            }
            figures.wrong_hits += usize::from(judgement.is_wrong_hit());
            figures.wrong_entries += usize::from(judgement == Judgement::WrongEntry);
            latencies.push(outcome.latency);
            if let Some(asked) = &outcome.asked {
                figures.asked += 1;
                figures.asked_right +=
                    usize::from(judge(row.expect, &asked.served) == Judgement::RightHit);
                figures.asked_tokens += asked.tokens;
            }
        }
        figures.recall = (figures.expected_hits > 0)
            .then(|| figures.right_hits as f64 / figures.expected_hits as f64);
        latencies.sort_unstable();
        figures.p50_us = percentile_us(&latencies, 0.50);
        figures.p99_us = percentile_us(&latencies, 0.99);
        figures
    }
}

/// Nearest-rank percentile of sorted latencies, in microseconds; 0 when there are none.
fn percentile_us(sorted: &[Duration], quantile: f64) -> f64 {
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    match sorted.get(rank.clamp(1, sorted.len().max(1)) - 1) {
        Some(latency) => latency.as_secs_f64() * 1e6,
        None => 0.0,
    }
}

/// Figures for all rows, per top-level kind and per full kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub total: Figures,
    /// Per top-level kind (`paraphrase`).
    pub top_kinds: BTreeMap<String, Figures>,
    /// Per full kind (`paraphrase/synonym`); a plain kind is its own full kind.
    pub kinds: BTreeMap<String, Figures>,
}

/// Figures of `rows` whose lookups gave `outcomes` (the same order, one each).
pub fn summarize(rows: &[Row], outcomes: &[Outcome]) -> Summary {
    let pairs: Vec<(&Row, &Outcome)> = rows.iter().zip(outcomes).collect();
    let group = |key: fn(&Row) -> &str| {
        let mut groups: BTreeMap<String, Vec<(&Row, &Outcome)>> = BTreeMap::new();
        for &(row, outcome) in &pairs {
            groups
                .entry(key(row).to_owned())
                .or_default()
                .push((row, outcome));
        }
        groups
            .into_iter()
            .map(|(kind, members)| (kind, Figures::of(members)))
            .collect()
    };
    Summary {
        total: Figures::of(pairs.iter().copied()),
        top_kinds: group(Row::top_kind),
        kinds: group(|row| row.kind.as_str()),
    }
}

/// A table: each top-level kind, its classes indented under it, then the total.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .kinds
            .keys()
            .map(|kind| kind.chars().count() + 2)
            .chain([10])
            .max()
            .unwrap_or(10);
        writeln!(
            f,
            "{:width$} {:>6} {:>6}  {:<15} {:>6} {:>12} {:>9} {:>9}",
            "kind", "rows", "hits", "recall", "wrong", "other entry", "p50 µs", "p99 µs"
        )?;
        for (top, figures) in &self.top_kinds {
            write_line(f, top, figures, width)?;
            let prefix = format!("{top}/");
            for (kind, figures) in self.kinds.iter().filter(|(k, _)| k.starts_with(&prefix)) {
                write_line(f, &format!("  {kind}"), figures, width)?;
            }
        }
        write_line(f, "total", &self.total, width)?;
        let total = &self.total;
        if total.asked > 0 {
            writeln!(
                f,
                "model-judged mode: {} lookups ask the chat model ({} where \"yes\" is right, {} \
                 where it must say no), {} tokens in all, {:.0} per ask",
                total.asked,
                total.asked_right,
                total.asked - total.asked_right,
                total.asked_tokens,
                total.asked_tokens as f64 / total.asked as f64
            )?;
        }
        Ok(())
    }
}

fn write_line(
    f: &mut fmt::Formatter<'_>,
    label: &str,
    figures: &Figures,
    width: usize,
) -> fmt::Result {
    let recall = match figures.recall {
        Some(recall) => format!(
            "{}/{} {:5.1}%",
            figures.right_hits,
            figures.expected_hits,
            100.0 * recall
        ),
        None => "-".to_owned(),
    };
    writeln!(
        f,
        "{label:width$} {:>6} {:>6}  {recall:<15} {:>6} {:>12} {:>9.1} {:>9.1}",
        figures.rows,
        figures.hits,
        figures.wrong_hits,
        figures.wrong_entries,
        figures.p50_us,
        figures.p99_us
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Isolated,
    Shared,
}

/// A row whose outcome differs from its expectation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub mode: Mode,
    pub file: String,
    pub line: usize,
    pub kind: String,
    pub cached: String,
    pub query: String,
    pub expect: Expect,
    pub judgement: Judgement,
    /// The question whose answer was served, when it was another row's.
    pub served_prompt: Option<String>,
    /// For a missed row: why the cache did not serve the row's cached answer.
    pub why_missed: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::Isolated => "isolated",
            Mode::Shared => "shared",
        };
        let what = match self.judgement {
            Judgement::Missed => "missed",
            Judgement::WrongHit => "wrong hit",
            Judgement::WrongEntry => "served another entry",
            Judgement::RightHit | Judgement::RightMiss => "as expected",
        };
        write!(
            f,
            "{}:{} [{mode}] {} (expect {}): {what}: {:?} | {:?}",
            self.file, self.line, self.kind, self.expect, self.cached, self.query
        )?;
        if let Some(prompt) = &self.served_prompt {
            write!(f, " <- answer to {prompt:?}")?;
        }
        match &self.why_missed {
            Some(why) => write!(f, " ({why})"),
            None => Ok(()),
        }
    }
}

/// The rows of `outcomes` that differ from their expectation.
pub fn differences(mode: Mode, rows: &[Row], outcomes: &[Outcome]) -> Vec<Difference> {
    rows.iter()
        .zip(outcomes)
        .filter_map(|(row, outcome)| {
            let judgement = judge(row.expect, &outcome.served);
            judgement.is_error().then(|| Difference {
                mode,
                file: row.file.to_string(),
                line: row.line,
                kind: row.kind.clone(),
                cached: row.cached.clone(),
                query: row.query.clone(),
                expect: row.expect,
                judgement,
                served_prompt: match &outcome.served {
                    Served::Other { prompt } => Some(prompt.clone()),
                    _ => None,
                },
                why_missed: outcome.why_missed.clone(),
            })
        })
        .collect()
}

/// The whole evaluation: both modes, and which cache was measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub embedder: &'static str,
    pub threshold: f32,
    pub rows: usize,
    pub isolated: Summary,
    pub shared: Summary,
    /// Rows that differ from expectation, isolated ones first.
    pub differences: Vec<Difference>,
}

impl Report {
    pub fn wrong_hits(&self) -> usize {
        self.isolated.total.wrong_hits + self.shared.total.wrong_hits
    }
}

/// Runs `rows` in both modes, each on a fresh cache from `new_cache` (build it as the gateway
/// builds its own, so the figures are the product's).
pub async fn evaluate(
    rows: &[Row],
    mut new_cache: impl FnMut() -> Result<SemanticCache, GatewayError>,
) -> Result<Report, EvalError> {
    let isolated_cache = new_cache()?;
    let isolated = Bench::new(&isolated_cache, rows)
        .await
        .isolated(rows)
        .await?;
    let shared_cache = new_cache()?;
    let shared = Bench::new(&shared_cache, rows).await.shared(rows).await?;
    let mut found = differences(Mode::Isolated, rows, &isolated);
    found.extend(differences(Mode::Shared, rows, &shared));
    Ok(Report {
        embedder: isolated_cache.embedder_name(),
        threshold: isolated_cache.threshold(),
        rows: rows.len(),
        isolated: summarize(rows, &isolated),
        shared: summarize(rows, &shared),
        differences: found,
    })
}

/// A stored prompt: its normalized-match key and its text.
struct Stored {
    exact: u64,
    prompt: String,
}

/// One cache under evaluation, and the entries stored in it.
struct Bench<'a> {
    cache: &'a SemanticCache,
    context: CallContext,
    entries: Vec<Stored>,
}

impl<'a> Bench<'a> {
    /// A bench on `cache`, warmed up by one untimed lookup (lazy tables, a model's first run).
    async fn new(cache: &'a SemanticCache, rows: &[Row]) -> Self {
        let bench = Self {
            cache,
            context: CallContext::for_subscription("cache-eval", Api::OpenAi),
            entries: Vec::new(),
        };
        if let Some(row) = rows.first() {
            bench.look_up(&row.query, Some(WARM_UP_PARTITION), 0).await;
        }
        bench
    }

    async fn isolated(mut self, rows: &[Row]) -> Result<Vec<Outcome>, EvalError> {
        let mut outcomes = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            let own = self.store(row, Some(index)).await?;
            outcomes.push(self.look_up(&row.query, Some(index), own).await);
        }
        Ok(outcomes)
    }

    async fn shared(mut self, rows: &[Row]) -> Result<Vec<Outcome>, EvalError> {
        // Rows often share a cached prompt; it is stored once.
        let mut stored: HashMap<&str, u64> = HashMap::new();
        let mut own = Vec::with_capacity(rows.len());
        for row in rows {
            let exact = match stored.get(row.cached.as_str()) {
                Some(&exact) => exact,
                None => self.store(row, None).await?,
            };
            stored.insert(&row.cached, exact);
            own.push(exact);
        }
        let mut outcomes = Vec::with_capacity(rows.len());
        for (row, own) in rows.iter().zip(own) {
            outcomes.push(self.look_up(&row.query, None, own).await);
        }
        Ok(outcomes)
    }

    /// Stores `row`'s cached prompt with an answer naming its entry; returns its exact key.
    async fn store(&mut self, row: &Row, partition: Option<usize>) -> Result<u64, EvalError> {
        let not_stored = || EvalError::NotStored {
            file: row.file.to_string(),
            line: row.line,
        };
        let request = request(&row.cached, partition);
        let prompt = self
            .cache
            .prompt(&self.context, MODEL, &request)
            .ok_or_else(not_stored)?;
        let (exact, partition) = (prompt.exact, prompt.partition);
        let entry = self
            .cache
            .entry_for(&prompt, &answer(self.entries.len()))
            .await
            .ok_or_else(not_stored)?;
        self.cache.insert_entry(partition, entry);
        self.entries.push(Stored {
            exact,
            prompt: row.cached.clone(),
        });
        Ok(exact)
    }

    /// Looks `query` up as the gateway does, timing it, and tells whose answer came back.
    async fn look_up(&self, query: &str, partition: Option<usize>, own: u64) -> Outcome {
        let request = request(query, partition);
        let started = Instant::now();
        let served = self
            .cache
            .lookup(&self.context, Operation::Chat, MODEL, &request)
            .await;
        let latency = started.elapsed();
        let (served, asked) = match served {
            CacheLookup::Hit(answer) => (self.whose(&answer, &request, own), None),
            CacheLookup::Unconfirmed(candidate) => {
                let asked = Asked {
                    served: self.whose(&candidate.answer, &request, own),
                    tokens: candidate.judge_tokens(MODEL),
                };
                (Served::Nothing, Some(asked))
            }
            CacheLookup::Miss | CacheLookup::Bypass => (Served::Nothing, None),
        };
        let why_missed = match served {
            Served::Nothing => self.why_not(&request, own, partition).await,
            Served::Own | Served::SameQuestion | Served::Other { .. } => None,
        };
        Outcome {
            served,
            latency,
            asked,
            why_missed,
        }
    }

    /// Why the entry stored as `own` was not served for `request`.
    async fn why_not(
        &self,
        query: &Map<String, Value>,
        own: u64,
        partition: Option<usize>,
    ) -> Option<String> {
        let stored = self.entries.iter().find(|entry| entry.exact == own)?;
        let cached = request(&stored.prompt, partition);
        let query = self.cache.prompt(&self.context, MODEL, query)?;
        let cached = self.cache.prompt(&self.context, MODEL, &cached)?;
        self.cache.why_not(&query, &cached).await
    }

    /// Whose answer `served` is, relative to the row whose own entry is `own`.
    fn whose(&self, served: &Value, request: &Map<String, Value>, own: u64) -> Served {
        let same_question = self
            .cache
            .prompt(&self.context, MODEL, request)
            .map(|prompt| prompt.exact);
        let entry = answered_entry(served).and_then(|index| self.entries.get(index));
        match entry {
            Some(entry) if entry.exact == own => Served::Own,
            Some(entry) if Some(entry.exact) == same_question => Served::SameQuestion,
            Some(entry) => Served::Other {
                prompt: entry.prompt.clone(),
            },
            None => Served::Other {
                prompt: "(an answer this evaluation did not store)".to_owned(),
            },
        }
    }
}

/// A one-message chat request, in its own partition when `partition` is given.
fn request(text: &str, partition: Option<usize>) -> Map<String, Value> {
    let mut request = Map::new();
    request.insert(
        "messages".to_owned(),
        json!([{"role": "user", "content": text}]),
    );
    if let Some(partition) = partition {
        request.insert(ROW_FIELD.to_owned(), json!(partition));
    }
    request
}

/// A complete answer that names entry `index`.
fn answer(index: usize) -> Value {
    json!({
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": format!("{ANSWER_PREFIX}{index}")},
            "finish_reason": "stop"
        }]
    })
}

fn answered_entry(answer: &Value) -> Option<usize> {
    answer["choices"][0]["message"]["content"]
        .as_str()?
        .strip_prefix(ANSWER_PREFIX)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use async_trait::async_trait;

    use super::*;
    use crate::{
        clock::Clock,
        semantic::{CacheConfig, EmbedError, Embedder, Embedding, text::Token},
    };

    /// Similarity 1 for identical texts and 0 otherwise: only the same question can hit, so
    /// these tests measure the evaluation, not the verifier.
    struct SameTextOnly;

    #[async_trait]
    impl Embedder for SameTextOnly {
        fn name(&self) -> &'static str {
            "same-text-only"
        }

        fn default_threshold(&self) -> f32 {
            0.5
        }

        async fn embed(&self, text: &str, _tokens: &[Token]) -> Result<Embedding, EmbedError> {
            let id = text
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31) ^ u32::from(b));
            Ok(Embedding::Sparse(vec![(id, 1.0)]))
        }
    }

    struct Failing;

    #[async_trait]
    impl Embedder for Failing {
        fn name(&self) -> &'static str {
            "failing"
        }

        fn default_threshold(&self) -> f32 {
            0.5
        }

        async fn embed(&self, _text: &str, _tokens: &[Token]) -> Result<Embedding, EmbedError> {
            Err(EmbedError::Failed("no model".to_owned()))
        }
    }

    fn cache_with(embedder: impl Embedder) -> Result<SemanticCache, GatewayError> {
        Ok(SemanticCache::new(
            Arc::new(embedder),
            CacheConfig::default(),
            Clock::new(),
        ))
    }

    fn row(kind: &str, cached: &str, query: &str, expect: Expect) -> Row {
        Row {
            file: Arc::from("t.tsv"),
            line: 1,
            kind: kind.to_owned(),
            cached: cached.to_owned(),
            query: query.to_owned(),
            expect,
        }
    }

    fn outcome(served: Served, micros: u64) -> Outcome {
        Outcome {
            served,
            latency: Duration::from_micros(micros),
            asked: None,
            why_missed: None,
        }
    }

    fn bad_row_message(text: &str) -> (usize, String) {
        match parse_rows("bad.tsv", text) {
            Err(EvalError::BadRow {
                file,
                line,
                message,
            }) => {
                assert_eq!(file, "bad.tsv");
                (line, message)
            }
            other => panic!("not a bad row: {other:?}"),
        }
    }

    #[test]
    fn rows_parse_with_comments_blank_lines_and_crlf() {
        let text = "# kind\tcached\tquery\texpect\n\n\
            paraphrase/synonym\tHow do I obtain a token?\tHow do I get a token?\thit\r\n\
            \t# an indented comment\n\
            near-miss\tDelete the first row.\tDelete the last row.\tmiss\n";
        let rows = parse_rows("set.tsv", text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(&*rows[0].file, "set.tsv");
        assert_eq!(rows[0].line, 3);
        assert_eq!(rows[0].kind, "paraphrase/synonym");
        assert_eq!(rows[0].top_kind(), "paraphrase");
        assert_eq!(rows[0].expect, Expect::Hit);
        assert_eq!(rows[0].query, "How do I get a token?");
        assert_eq!(rows[1].line, 5);
        assert_eq!(rows[1].top_kind(), "near-miss");
        assert_eq!(rows[1].expect, Expect::Miss);
    }

    #[test]
    fn bad_rows_name_their_line_and_what_is_wrong() {
        let (line, message) = bad_row_message("# c\nparaphrase\ta\tb\n");
        assert_eq!(line, 2);
        assert!(message.contains("4 tab-separated columns"), "{message}");
        assert!(message.contains("found 3"), "{message}");
        let (_, message) = bad_row_message("paraphrase\ta\tb\thit\textra\n");
        assert!(message.contains("found 5"), "{message}");
        let (_, message) = bad_row_message("paraphrase\ta\tb\tyes\n");
        assert!(
            message.contains("`yes`") && message.contains("hit` or `miss"),
            "{message}"
        );
        let (_, message) = bad_row_message("paraphrase\t \tb\thit\n");
        assert!(message.contains("cached column is empty"), "{message}");
        let (_, message) = bad_row_message("paraphrase/\ta\tb\thit\n");
        assert!(message.contains("top/class"), "{message}");
        let error = parse_rows("bad.tsv", "x\n").unwrap_err().to_string();
        assert!(error.starts_with("bad.tsv:1: "), "{error}");
    }

    #[test]
    fn judgements_follow_the_expectation_and_whose_answer_was_served() {
        let other = Served::Other {
            prompt: "p".to_owned(),
        };
        let cases = [
            (Expect::Hit, Served::Own, Judgement::RightHit),
            (Expect::Hit, Served::SameQuestion, Judgement::RightHit),
            (Expect::Hit, Served::Nothing, Judgement::Missed),
            (Expect::Hit, other.clone(), Judgement::WrongEntry),
            (Expect::Miss, Served::Nothing, Judgement::RightMiss),
            (Expect::Miss, Served::Own, Judgement::WrongHit),
            (Expect::Miss, Served::SameQuestion, Judgement::RightHit),
            (Expect::Miss, other, Judgement::WrongEntry),
        ];
        for (expect, served, judgement) in cases {
            assert_eq!(judge(expect, &served), judgement, "{expect} {served:?}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let latencies: Vec<Duration> = (1..=200).map(Duration::from_micros).collect();
        assert_eq!(percentile_us(&latencies, 0.5), 100.0);
        assert_eq!(percentile_us(&latencies, 0.99), 198.0);
        assert_eq!(percentile_us(&latencies[..1], 0.99), 1.0);
        assert_eq!(percentile_us(&[], 0.5), 0.0);
    }

    #[test]
    fn figures_per_kind_top_level_kind_and_total() {
        let rows = [
            row("paraphrase/synonym", "a", "b", Expect::Hit),
            row("paraphrase/synonym", "c", "d", Expect::Hit),
            row("paraphrase/spelling", "e", "f", Expect::Hit),
            row("near-miss/referent", "g", "h", Expect::Miss),
            row("near-miss/referent", "i", "j", Expect::Miss),
            row("unrelated", "k", "l", Expect::Miss),
        ];
        let other = Served::Other {
            prompt: "x".to_owned(),
        };
        let outcomes = [
            outcome(Served::Own, 10),
            outcome(Served::Nothing, 20),
            outcome(other.clone(), 30),
            outcome(Served::Own, 40),
            outcome(Served::Nothing, 50),
            outcome(Served::SameQuestion, 60),
        ];
        let summary = summarize(&rows, &outcomes);
        let synonym = &summary.kinds["paraphrase/synonym"];
        assert_eq!((synonym.rows, synonym.hits, synonym.right_hits), (2, 1, 1));
        assert_eq!(synonym.recall, Some(0.5));
        assert_eq!((synonym.p50_us, synonym.p99_us), (10.0, 20.0));
        let paraphrase = &summary.top_kinds["paraphrase"];
        assert_eq!(paraphrase.rows, 3);
        assert_eq!(paraphrase.expected_hits, 3);
        assert_eq!(paraphrase.right_hits, 1);
        assert_eq!((paraphrase.wrong_hits, paraphrase.wrong_entries), (1, 1));
        let near_miss = &summary.top_kinds["near-miss"];
        assert_eq!(near_miss.recall, None);
        assert_eq!((near_miss.hits, near_miss.wrong_hits), (1, 1));
        assert_eq!(near_miss.wrong_entries, 0);
        let unrelated = &summary.kinds["unrelated"];
        assert_eq!((unrelated.hits, unrelated.wrong_hits), (1, 0));
        assert_eq!(summary.top_kinds["unrelated"], *unrelated);
        let total = &summary.total;
        assert_eq!((total.rows, total.hits, total.expected_hits), (6, 4, 3));
        assert_eq!((total.wrong_hits, total.wrong_entries), (2, 1));
        assert_eq!((total.p50_us, total.p99_us), (30.0, 60.0));

        let found = differences(Mode::Shared, &rows, &outcomes);
        let judged: Vec<Judgement> = found.iter().map(|d| d.judgement).collect();
        assert_eq!(
            judged,
            [
                Judgement::Missed,
                Judgement::WrongEntry,
                Judgement::WrongHit
            ]
        );
        assert_eq!(found[1].served_prompt.as_deref(), Some("x"));

        let table = summary.to_string();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("kind"));
        assert!(lines[1].starts_with("near-miss "), "{table}");
        assert!(lines[2].starts_with("  near-miss/referent "), "{table}");
        assert!(lines[3].starts_with("paraphrase "), "{table}");
        assert!(lines[3].contains("1/3  33.3%"), "{table}");
        assert!(lines.last().unwrap().starts_with("total "), "{table}");
        assert_eq!(lines.len(), 1 + 2 + 3 + 1 + 1);
    }

    #[tokio::test]
    async fn both_modes_store_look_up_and_tell_whose_answer_was_served() {
        let rows = [
            row(
                "paraphrase/exact",
                "What is a token budget?",
                "What is a token budget?",
                Expect::Hit,
            ),
            row(
                "paraphrase/reworded",
                "How do I restart my app?",
                "Restart procedure for the app",
                Expect::Hit,
            ),
            // Mislabelled on purpose: the same question, expected to miss.
            row(
                "near-miss",
                "Delete the first row.",
                "Delete the first row.",
                Expect::Miss,
            ),
            // In one partition this query meets row 1's identical cached prompt: a right answer.
            row(
                "unrelated",
                "Name a colour.",
                "What is a token budget?",
                Expect::Miss,
            ),
            row(
                "paraphrase/exact",
                "Name a colour.",
                "Name a colour.",
                Expect::Hit,
            ),
        ];
        let report = evaluate(&rows, || cache_with(SameTextOnly)).await.unwrap();
        assert_eq!(report.embedder, "same-text-only");
        assert_eq!(report.threshold, 0.5);
        assert_eq!(report.rows, 5);

        let isolated = &report.isolated.total;
        assert_eq!(
            (isolated.hits, isolated.right_hits, isolated.expected_hits),
            (3, 2, 3)
        );
        assert_eq!((isolated.wrong_hits, isolated.wrong_entries), (1, 0));
        assert_eq!(report.isolated.kinds["unrelated"].hits, 0);

        let shared = &report.shared.total;
        assert_eq!(
            (shared.hits, shared.right_hits, shared.wrong_hits),
            (4, 2, 1)
        );
        assert_eq!(report.shared.kinds["unrelated"].hits, 1);
        assert_eq!(report.shared.kinds["unrelated"].wrong_hits, 0);
        assert_eq!(report.wrong_hits(), 2);

        let found: Vec<(Mode, usize, Judgement)> = report
            .differences
            .iter()
            .map(|d| {
                (
                    d.mode,
                    rows.iter().position(|r| r.query == d.query).unwrap(),
                    d.judgement,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (Mode::Isolated, 1, Judgement::Missed),
                (Mode::Isolated, 2, Judgement::WrongHit),
                (Mode::Shared, 1, Judgement::Missed),
                (Mode::Shared, 2, Judgement::WrongHit),
            ]
        );
    }

    #[tokio::test]
    async fn a_prompt_that_cannot_be_embedded_is_an_error_not_a_miss() {
        let mut rows = vec![row("paraphrase", "a b c", "a b c", Expect::Hit)];
        rows[0].line = 7;
        match evaluate(&rows, || cache_with(Failing)).await {
            Err(EvalError::NotStored { file, line }) => {
                assert_eq!((file.as_str(), line), ("t.tsv", 7))
            }
            other => panic!("expected NotStored, got {other:?}"),
        }
        let refused = evaluate(&rows, || {
            Err(GatewayError::InvalidRequest("no model".to_owned()))
        })
        .await;
        assert!(matches!(refused, Err(EvalError::Build(_))));
    }
}
