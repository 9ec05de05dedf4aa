//! The k6-style text summary of a run (the `--json` form is [`Summary`] serialized).

use std::fmt::Write as _;

use crate::stats::Summary;

/// The summary as printed at the end of a run. It includes the lines `Cache hits : N`,
/// `Cache misses : N` and `Hit ratio : X%` that the k6 demo prints.
pub fn render(summary: &Summary) -> String {
    let mut out = String::new();
    let title = "tollgate loadtest — summary";
    let _ = writeln!(out, "{title}");
    let _ = writeln!(out, "{}", "─".repeat(title.chars().count()));
    let _ = writeln!(out, "Target : {} (POST {})", summary.target, summary.url);
    let _ = writeln!(out, "Concurrency : {}", summary.concurrency);
    let _ = writeln!(
        out,
        "Phases : warmup {:.1} s, steady {:.1} s",
        summary.warmup_seconds, summary.duration_seconds
    );
    let _ = writeln!(out, "Requests : {}", summary.requests);
    let _ = writeln!(out, "Requests/s : {:.1}", summary.requests_per_second);
    let _ = writeln!(
        out,
        "Errors : {} ({:.2}%)",
        summary.errors,
        summary.error_rate * 100.0
    );
    let latency = &summary.latency_us;
    for (name, value) in [
        ("min", millis(latency.min)),
        ("mean", millis_f(latency.mean)),
        ("p50", millis(latency.p50)),
        ("p90", millis(latency.p90)),
        ("p95", millis(latency.p95)),
        ("p99", millis(latency.p99)),
        ("max", millis(latency.max)),
    ] {
        let _ = writeln!(out, "Latency {name} : {value}");
    }
    let _ = writeln!(out, "Cache hits : {}", summary.cache.hits);
    let _ = writeln!(out, "Cache misses : {}", summary.cache.misses);
    let _ = writeln!(out, "Hit ratio : {:.1}%", summary.cache.hit_ratio * 100.0);
    let errors = if summary.errors_by_status.is_empty() {
        "none".to_owned()
    } else {
        summary
            .errors_by_status
            .iter()
            .map(|(status, count)| format!("{status} × {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "Errors by status : {errors}");
    let instances = summary
        .instances
        .iter()
        .map(|(instance, count)| {
            let share = crate::stats::ratio(*count, summary.requests) * 100.0;
            format!("{instance} × {count} ({share:.1}%)")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let instances = if instances.is_empty() {
        "none".to_owned()
    } else {
        instances
    };
    let _ = writeln!(out, "Instances : {instances}");
    out
}

/// Microseconds as milliseconds with microsecond precision.
fn millis(micros: u64) -> String {
    format!("{}.{:03} ms", micros / 1000, micros % 1000)
}

fn millis_f(micros: f64) -> String {
    format!("{:.3} ms", micros / 1000.0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::{Failure, Outcome, RunShape, Tally};

    #[test]
    fn the_summary_has_the_k6_demo_lines() {
        let mut tally = Tally::new();
        for i in 0..10_u64 {
            let outcome = Outcome {
                failure: None,
                cache_hits: u64::from(i < 8),
                cache_misses: u64::from(i >= 8),
                instance: Some("web-0".into()),
            };
            tally.record(Duration::from_micros(1500 + i), &outcome);
        }
        tally.record(
            Duration::from_millis(3),
            &Outcome::failed(Failure::Status(429)),
        );
        let shape = RunShape {
            target: "agent".into(),
            url: "http://127.0.0.1:8000/agent/chat".into(),
            concurrency: 8,
            warmup: Duration::from_secs(10),
        };
        let text = render(&Summary::new(shape, &tally, Duration::from_secs(30)));
        for line in [
            "Cache hits : 8",
            "Cache misses : 2",
            "Hit ratio : 80.0%",
            "Requests : 11",
            "Errors : 1 (9.09%)",
            "Errors by status : 429 × 1",
            "Latency p50 : 1.505 ms",
            "Instances : unknown × 1 (9.1%), web-0 × 10 (90.9%)",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
    }

    #[test]
    fn millis_keep_microseconds() {
        assert_eq!(millis(1_234), "1.234 ms");
        assert_eq!(millis(7), "0.007 ms");
    }
}
