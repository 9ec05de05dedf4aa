//! `tollgate cache-eval FILE.tsv…`: the semantic cache, built from the settings exactly as the
//! server builds it, measured on labelled prompt pairs (`gateway_client::semantic::eval` does
//! the work; this module reads the files and prints the report).

use std::{io::Write, process::ExitCode};

use gateway_client::{
    GatewayError,
    pipeline::semantic_cache,
    semantic::eval::{self, Report},
};
use serde_json::json;

use crate::config::{CacheEvalArgs, Settings};

/// The exit status when the files or the settings cannot be evaluated.
const EXIT_UNUSABLE: u8 = 2;

/// Runs the evaluation and prints it: status 0, 1 for a wrong hit under
/// `--fail-on-wrong-hit`, or 2 when it cannot run.
pub async fn run(settings: &Settings, args: &CacheEvalArgs) -> ExitCode {
    // Logs go to stderr, so stdout stays the report (and valid JSON under --json).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let report = match evaluate(settings, args).await {
        Ok(report) => report,
        Err(message) => {
            eprintln!("tollgate cache-eval: {message}");
            return ExitCode::from(EXIT_UNUSABLE);
        }
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        write_json(&mut out, &report, args)
    } else {
        write_text(&mut out, &report, args)
    };
    match written.and_then(|()| out.flush()) {
        // A reader that stopped early (`| head`) has what it wanted.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(error) => {
            eprintln!("tollgate cache-eval: cannot write the report: {error}");
            return ExitCode::from(EXIT_UNUSABLE);
        }
        Ok(()) => {}
    }
    if args.fail_on_wrong_hit && report.wrong_hits() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn evaluate(settings: &Settings, args: &CacheEvalArgs) -> Result<Report, String> {
    let mut rows = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{name}: cannot read: {error}"))?;
        rows.extend(eval::parse_rows(&name, &text).map_err(|error| error.to_string())?);
    }
    if rows.is_empty() {
        return Err("the files hold no rows".to_owned());
    }
    let config = settings.gateway_config();
    if config.cache.is_none() {
        return Err(
            "the semantic cache is off (SEMANTIC_CACHE=off): nothing to measure".to_owned(),
        );
    }
    let new_cache = || {
        semantic_cache(&config)?
            .ok_or_else(|| GatewayError::InvalidRequest("the semantic cache is off".to_owned()))
    };
    eval::evaluate(&rows, new_cache)
        .await
        .map_err(|error| error.to_string())
}

fn write_text(out: &mut impl Write, report: &Report, args: &CacheEvalArgs) -> std::io::Result<()> {
    writeln!(
        out,
        "semantic cache: embedder {}, threshold {:.2}; {} rows from {} file(s)\n",
        report.embedder,
        report.threshold,
        report.rows,
        args.files.len()
    )?;
    writeln!(out, "isolated pairs (each row in a partition of its own)")?;
    writeln!(out, "{}", report.isolated)?;
    writeln!(
        out,
        "one shared partition (every cached prompt stored together)"
    )?;
    writeln!(out, "{}", report.shared)?;
    if args.show_errors {
        writeln!(
            out,
            "rows that differ from expectation: {}",
            report.differences.len()
        )?;
        for difference in &report.differences {
            writeln!(out, "  {difference}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "wrong hits: {} (isolated {}, shared {})",
        report.wrong_hits(),
        report.isolated.total.wrong_hits,
        report.shared.total.wrong_hits
    )
}

fn write_json(out: &mut impl Write, report: &Report, args: &CacheEvalArgs) -> std::io::Result<()> {
    let mut value = serde_json::to_value(report)?;
    if !args.show_errors
        && let Some(object) = value.as_object_mut()
    {
        object.remove("differences");
    }
    let files: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    value["files"] = json!(files);
    value["wrong_hits"] = json!(report.wrong_hits());
    serde_json::to_writer(&mut *out, &value)?;
    writeln!(out)
}
