//! The semantic cache's figures on every labelled set in `tests/data` (`*.tsv`; the dev set at
//! least), through the real HTTP pipeline: each row in a partition of its own, figures per kind,
//! printed (`-- --nocapture`) and held to the floors below, so a change that loses recall or
//! serves a wrong answer fails the build. The same rows through `semantic::eval` (what
//! `tollgate cache-eval` runs) must come out exactly as the pipeline's, and its one-partition
//! mode is held to the same wrong-hit limit.

use std::{path::PathBuf, time::Instant};

use gateway_client::{
    Api, CallContext,
    pipeline::semantic_cache,
    semantic::{
        SemanticCache,
        eval::{self, Expect, Mode, Outcome, Row, Served, Summary},
    },
};
use mcp_server::Settings;
use mock_upstream::MockUpstream;
use serde_json::{Value, json};
use tests::{
    TestServer, UPSTREAM_KEY,
    gateway::{chat_body, header, post_chat},
    start_mock, start_with_model,
};

/// The least paraphrase recall (isolated pairs) per data file: what the cache measures today
/// with the default embedder (the static model) and the verifier. Raise a floor when the cache
/// improves; never lower one to let a change pass. (The dev floor went from 0.78 to 0.76 once, on
/// purpose: the lexicon stopped matching two satellites of one WordNet adjective cluster, which
/// made "silver"/"gold" alike as well as "key"/"main"; precision first.) The held-out file is
/// measured, never tuned on.
const MIN_PARAPHRASE_RECALL: &[(&str, f64)] = &[
    ("cache-dev-set.tsv", 0.88),
    ("cache-tune.tsv", 0.79),
    ("cache-heldout.tsv", 0.69),
    ("cache-heldout-v2.tsv", 0.64),
    ("cache-heldout-v3.tsv", 0.71),
];

/// The most wrong hits (answers served to a question they do not answer) per data file, in
/// either mode. None on the sets the verifier was designed with; the fresh held-out set (v2,
/// looked into only for its wrong hits) drew 2 of its 271 near-misses when it was written, 0
/// since the verifier knows a phrasal verb's particle ("filter out"/"filter for"); v3 (written
/// later by someone who had seen neither the cache nor v2, never looked into) draws 1 of 155.
const MAX_WRONG_HITS: &[(&str, usize)] = &[
    ("cache-dev-set.tsv", 0),
    ("cache-tune.tsv", 0),
    ("cache-heldout.tsv", 0),
    ("cache-heldout-v2.tsv", 0),
    ("cache-heldout-v3.tsv", 1),
];

/// The shared floor: every other set is optional.
const REQUIRED_SET: &str = "cache-dev-set.tsv";

fn data_files() -> Vec<PathBuf> {
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/data");
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "tsv"))
        .collect();
    files.sort();
    files
}

fn floor<T: Copy>(table: &[(&str, T)], file: &str) -> Option<T> {
    table
        .iter()
        .find(|(name, _)| *name == file)
        .map(|&(_, value)| value)
}

#[tokio::test]
async fn every_labelled_set_meets_its_floors() {
    let files = data_files();
    let names: Vec<String> = files
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|name| name == REQUIRED_SET), "{names:?}");
    let mock = start_mock().await;
    let flags = [
        "--openai-base-url",
        &mock.base_url(),
        "--openai-api-key",
        UPSTREAM_KEY,
    ];
    // A thousand calls and more: a budget that never refuses (each reserves its max_tokens).
    let server = start_with_model(&mock.base_url(), &["--tokens-per-minute", "1000000000"]).await;
    // Caches built from the server's own settings, as `tollgate cache-eval` builds them.
    let new_cache = || {
        let settings = Settings::from_args(flags).unwrap();
        Ok(semantic_cache(&settings.gateway_config())?.unwrap())
    };
    let pipeline = Pipeline {
        client: tests::http_client(),
        server: &server,
        mock: &mock,
        keys: new_cache().unwrap(),
    };
    let mut failures = Vec::new();
    for (index, (path, name)) in files.iter().zip(&names).enumerate() {
        let rows = eval::parse_rows(name, &std::fs::read_to_string(path).unwrap()).unwrap();
        let isolated = pipeline.isolated(index, &rows).await;
        let shared = pipeline.shared(index, &rows).await;
        let report = eval::evaluate(&rows, new_cache).await.unwrap();
        let (isolated_figures, shared_figures) = (
            eval::summarize(&rows, &isolated),
            eval::summarize(&rows, &shared),
        );
        println!(
            "{name}: {} rows through the HTTP pipeline (latency of the whole request)",
            rows.len()
        );
        println!("isolated pairs\n{isolated_figures}\none shared partition\n{shared_figures}");
        assert_same_counts(name, &isolated_figures, &report.isolated);
        // The same rows differ; only cache-eval says why a row missed.
        let library: Vec<_> = (report.differences.iter())
            .filter(|d| d.mode == Mode::Isolated)
            .map(|d| eval::Difference {
                why_missed: None,
                ..d.clone()
            })
            .collect();
        assert_eq!(
            eval::differences(Mode::Isolated, &rows, &isolated),
            library,
            "{name}: cache-eval and the pipeline differ on rows"
        );
        for wrong in eval::differences(Mode::Shared, &rows, &shared)
            .iter()
            .filter(|d| d.judgement.is_wrong_hit())
        {
            println!("through the pipeline, one partition: {wrong}");
        }
        let wrong = [&isolated_figures, &shared_figures, &report.shared]
            .map(|summary| summary.total.wrong_hits);
        failures.extend(check_floors(name, &isolated_figures, wrong));
    }
    assert!(
        failures.is_empty(),
        "floors not met:\n{}",
        failures.join("\n")
    );
}

/// The gateway under test, and a cache whose exact keys tell whose question an answer answers.
struct Pipeline<'a> {
    client: reqwest::Client,
    server: &'a TestServer,
    mock: &'a MockUpstream,
    keys: SemanticCache,
}

impl Pipeline<'_> {
    /// Each row's cached prompt, then its query, in a partition of the row's own.
    async fn isolated(&self, file_index: usize, rows: &[Row]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(rows.len());
        for (row_index, row) in rows.iter().enumerate() {
            let partition = format!("{file_index}:{row_index}");
            let (first, _) = self.ask(&row.cached, &partition).await;
            assert_eq!(
                first, "miss",
                "{}:{}: a fresh partition hit",
                row.file, row.line
            );
            outcomes.push(self.look_up(row, rows, &partition).await);
        }
        outcomes
    }

    /// Every cached prompt in one partition, then every query, as a server meets them: answers
    /// to queries that miss are stored too, and a later query must still get no wrong answer.
    async fn shared(&self, file_index: usize, rows: &[Row]) -> Vec<Outcome> {
        let partition = format!("{file_index}:shared");
        for row in rows {
            self.ask(&row.cached, &partition).await;
        }
        let mut outcomes = Vec::with_capacity(rows.len());
        for row in rows {
            outcomes.push(self.look_up(row, rows, &partition).await);
        }
        outcomes
    }

    async fn look_up(&self, row: &Row, rows: &[Row], partition: &str) -> Outcome {
        let upstream_calls = self.mock.request_count();
        let started = Instant::now();
        let (status, answer) = self.ask(&row.query, partition).await;
        let latency = started.elapsed();
        if status != "hit" {
            return Outcome {
                served: Served::Nothing,
                latency,
                asked: None,
                why_missed: None,
            };
        }
        assert_eq!(
            self.mock.request_count(),
            upstream_calls,
            "a hit never calls the upstream"
        );
        let asked = answered_question(&answer);
        let served = match self.key(&asked) {
            key if key == self.key(&row.cached) => Served::Own,
            key if key == self.key(&row.query) => Served::SameQuestion,
            // The answer to another labelled paraphrase of this row's cached prompt (stored when
            // that query missed) answers this one too.
            _ if row.expect == Expect::Hit && is_paraphrase_of(rows, &asked, &row.cached) => {
                Served::Own
            }
            _ => Served::Other { prompt: asked },
        };
        Outcome {
            served,
            latency,
            asked: None,
            why_missed: None,
        }
    }

    /// A chat call in `partition` (an extra request field is a parameter the cache splits by).
    async fn ask(&self, text: &str, partition: &str) -> (String, Value) {
        let mut body = chat_body(text);
        body["x_eval_partition"] = json!(partition);
        let response = post_chat(&self.client, self.server, None, &body).await;
        assert_eq!(response.status(), 200);
        let status = header(&response, "x-llm-cache-status").unwrap().to_owned();
        (status, response.json().await.unwrap())
    }

    /// The cache's normalized-match key of a one-message prompt.
    fn key(&self, text: &str) -> u64 {
        let context = CallContext::for_subscription("eval", Api::OpenAi);
        let request = chat_body(text);
        self.keys
            .prompt(&context, "m", request.as_object().unwrap())
            .unwrap()
            .exact
    }
}

/// The mock model's plain answers quote the question they answer.
fn answered_question(answer: &Value) -> String {
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    text.split_once("You asked: \"")
        .and_then(|(_, rest)| rest.split_once("\"."))
        .map(|(question, _)| question.to_owned())
        .unwrap_or_default()
}

/// Every count per kind agrees (latencies differ: a whole request against a lookup).
fn assert_same_counts(file: &str, pipeline: &Summary, library: &Summary) {
    let counts = |summary: &Summary| -> Vec<(String, [usize; 5])> {
        summary
            .kinds
            .iter()
            .chain(&summary.top_kinds)
            .chain([(&"total".to_owned(), &summary.total)])
            .map(|(kind, f)| {
                (
                    kind.clone(),
                    [f.rows, f.hits, f.right_hits, f.wrong_hits, f.wrong_entries],
                )
            })
            .collect()
    };
    assert_eq!(
        counts(pipeline),
        counts(library),
        "{file}: cache-eval and the pipeline differ"
    );
}

/// Whether `rows` label `query` a paraphrase (expected hit) of `cached`.
fn is_paraphrase_of(rows: &[Row], query: &str, cached: &str) -> bool {
    rows.iter()
        .any(|row| row.expect == Expect::Hit && row.query == query && row.cached == cached)
}

/// Checks `file`'s floors: paraphrase recall in isolated pairs, and wrong hits in every run
/// (isolated and shared through the pipeline, shared through `semantic::eval`).
fn check_floors(file: &str, isolated: &Summary, wrong: [usize; 3]) -> Vec<String> {
    let recall = (isolated.top_kinds.get("paraphrase"))
        .and_then(|figures| figures.recall)
        .unwrap_or(0.0);
    let (min_recall, max_wrong) = (
        floor(MIN_PARAPHRASE_RECALL, file),
        floor(MAX_WRONG_HITS, file),
    );
    println!(
        "{file}: paraphrase recall {recall:.3} (floor {}); wrong hits {wrong:?} (max {})\n",
        min_recall.map_or("none".to_owned(), |min| min.to_string()),
        max_wrong.map_or("none".to_owned(), |max| max.to_string()),
    );
    let most_wrong = wrong.into_iter().max().unwrap_or(0);
    let mut failures = Vec::new();
    match min_recall {
        Some(min) if recall + 1e-9 < min => {
            failures.push(format!("{file}: paraphrase recall {recall:.3} < {min}"));
        }
        Some(_) => {}
        None => failures.push(format!(
            "{file}: no MIN_PARAPHRASE_RECALL floor; it measures {recall:.3}: add it"
        )),
    }
    match max_wrong {
        Some(max) if most_wrong > max => {
            failures.push(format!("{file}: {most_wrong} wrong hits > {max}"));
        }
        Some(_) => {}
        None => failures.push(format!(
            "{file}: no MAX_WRONG_HITS entry; it measures {most_wrong}: add it"
        )),
    }
    failures
}
