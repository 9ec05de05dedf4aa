//! `tollgate cache-eval` as an operator runs it: the real binary on a small file.
//!
//! This is the one test outside the `tests` crate: only the package that builds the `tollgate`
//! binary gets `CARGO_BIN_EXE_tollgate` (and cargo builds the binary for it). It uses std and
//! serde_json only, so it links fast. The evaluation itself is tested in
//! `gateway_client::semantic::eval` and, through the HTTP pipeline, in the `tests` crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use serde_json::Value;

/// An identical question (always a hit), an unrelated one (a miss), and a row mislabelled on
/// purpose (the same question, expected to miss): a wrong hit by the file's own account.
const SMALL_SET: &str = "# kind\tcached\tquery\texpect\n\
paraphrase/exact\tWhat is a token budget?\tWhat is a token budget?\thit\n\
unrelated\tWhat is a token budget?\tName three rivers in Africa.\tmiss\n\
\n\
near-miss/mislabelled\tDelete the first row of the table.\tDelete the first row of the table.\tmiss\n";

fn data_file(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `tollgate` with `args` and no inherited environment, so the defaults apply.
fn tollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .env_clear()
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cache_eval_reports_both_modes_as_json_and_fails_on_a_wrong_hit_when_asked() {
    let file = data_file("cache-eval-small.tsv", SMALL_SET);
    let file = file.to_str().unwrap();
    let output = tollgate(&["cache-eval", "--json", "--show-errors", file]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["rows"], 3);
    assert!(report["embedder"].as_str().is_some_and(|e| !e.is_empty()));
    for mode in ["isolated", "shared"] {
        let total = &report[mode]["total"];
        assert_eq!(total["rows"], 3, "{mode}");
        assert_eq!(total["hits"], 2, "{mode}");
        assert_eq!(total["recall"], 1.0, "{mode}");
        assert_eq!(total["wrong_hits"], 1, "{mode}");
        assert_eq!(
            report[mode]["kinds"]["near-miss/mislabelled"]["wrong_hits"],
            1
        );
        assert_eq!(report[mode]["top_kinds"]["near-miss"]["wrong_hits"], 1);
        assert_eq!(report[mode]["top_kinds"]["unrelated"]["hits"], 0);
    }
    assert_eq!(report["wrong_hits"], 2);
    let differences = report["differences"].as_array().unwrap();
    assert_eq!(differences.len(), 2);
    assert_eq!(differences[0]["line"], 5);
    assert_eq!(differences[0]["judgement"], "wrong_hit");

    let table = tollgate(&["cache-eval", file]);
    assert_eq!(table.status.code(), Some(0));
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("isolated pairs"), "{text}");
    assert!(text.contains("  paraphrase/exact "), "{text}");
    assert!(text.contains("wrong hits: 2"), "{text}");

    let strict = tollgate(&["cache-eval", "--fail-on-wrong-hit", file]);
    assert_eq!(strict.status.code(), Some(1));
}

#[test]
fn a_bad_file_is_named_with_its_line_and_exits_2() {
    let good = data_file("cache-eval-good.tsv", SMALL_SET);
    let bad = data_file(
        "cache-eval-bad.tsv",
        "# header\nparaphrase\tHow?\tHow so?\thit\nparaphrase\tHow?\tHow so?\tsometimes\n",
    );
    let output = tollgate(&["cache-eval", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("cache-eval-bad.tsv:3: "), "{stderr}");
    assert!(stderr.contains("`sometimes`"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.stdout.is_empty());

    let missing = tollgate(&["cache-eval", "/nonexistent/cache-eval.tsv"]);
    assert_eq!(missing.status.code(), Some(2));
    let off = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .env_clear()
        .env("SEMANTIC_CACHE", "off")
        .args(["cache-eval", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(off.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&off.stderr).contains("SEMANTIC_CACHE=off"));
}

#[test]
fn help_lists_the_settings_and_the_command() {
    let output = tollgate(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "cache-eval",
        "[env: PORT=]",
        "[env: CACHE_SIMILARITY_THRESHOLD=]",
    ] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
}
