//! One `metrics` recorder, two outputs: the Prometheus registry behind `/metrics`, and the same
//! instruments over OTLP once an exporter is set up.
//!
//! The `metrics` macros write to one process-wide recorder; this is it. Until OTLP export starts
//! (and always, when it is off) a handle is the Prometheus handle alone, so metrics cost what
//! they cost before. Once it starts, new handles write to both: to every exporting pipeline in
//! the process, as `/metrics` renders the process's one registry (the binary has one; a test
//! process runs several servers). Names follow OpenTelemetry
//! there: `gen_ai_client_token_usage` is `gen_ai.client.token.usage` with `gen_ai.token.type`,
//! counters lose `_total`, and `_seconds` becomes the unit `s`.

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use metrics_exporter_prometheus::PrometheusRecorder;
use opentelemetry::{KeyValue, metrics::Meter};
use parking_lot::RwLock;

use super::LATENCY_BUCKETS;

/// Token-count buckets, as OpenTelemetry's GenAI conventions advise for
/// `gen_ai.client.token.usage`.
const TOKEN_BUCKETS: &[f64] = &[
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// The exporting pipelines' instruments; `EXPORTING` is false while there are none, so a
/// handle made then costs one atomic load more than Prometheus alone.
static OTLP: RwLock<Vec<Arc<OtlpInstruments>>> = RwLock::new(Vec::new());
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Mirrors metrics to `meter` from now on, until [`Mirror`] is dropped.
pub fn mirror_to(meter: Meter) -> Mirror {
    let instruments = Arc::new(OtlpInstruments {
        meter,
        counters: RwLock::default(),
        gauges: RwLock::default(),
        histograms: RwLock::default(),
    });
    let mut all = OTLP.write();
    all.push(instruments.clone());
    EXPORTING.store(true, Ordering::Release);
    Mirror(instruments)
}

/// One pipeline's place among the mirrors; new handles leave it out once it is dropped.
pub struct Mirror(Arc<OtlpInstruments>);

impl Drop for Mirror {
    fn drop(&mut self) {
        let mut all = OTLP.write();
        all.retain(|other| !Arc::ptr_eq(other, &self.0));
        EXPORTING.store(!all.is_empty(), Ordering::Release);
    }
}

/// The mirrors' instruments for a new handle, or `None` when nothing exports.
fn mirrors<T>(make: impl Fn(&OtlpInstruments) -> T) -> Option<Vec<T>> {
    if !EXPORTING.load(Ordering::Acquire) {
        return None;
    }
    let all = OTLP.read();
    (!all.is_empty()).then(|| all.iter().map(|mirror| make(mirror)).collect())
}

pub struct Fanout {
    pub prometheus: PrometheusRecorder,
}

impl Recorder for Fanout {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        let prometheus = self.prometheus.register_counter(key, metadata);
        match mirrors(|otlp| otlp.counter(key.name())) {
            None => prometheus,
            Some(otlp) => Counter::from_arc(Arc::new(Both {
                prometheus,
                otlp,
                attributes: attributes(key),
            })),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let prometheus = self.prometheus.register_gauge(key, metadata);
        match mirrors(|otlp| otlp.gauge(key.name())) {
            None => prometheus,
            Some(otlp) => Gauge::from_arc(Arc::new(Both {
                prometheus,
                otlp,
                attributes: attributes(key),
            })),
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        let prometheus = self.prometheus.register_histogram(key, metadata);
        match mirrors(|otlp| otlp.histogram(key.name())) {
            None => prometheus,
            Some(otlp) => Histogram::from_arc(Arc::new(Both {
                prometheus,
                otlp,
                attributes: attributes(key),
            })),
        }
    }
}

/// One handle writing to Prometheus and to each exporting pipeline.
struct Both<P, O> {
    prometheus: P,
    otlp: Vec<O>,
    attributes: Vec<KeyValue>,
}

impl CounterFn for Both<Counter, opentelemetry::metrics::Counter<u64>> {
    fn increment(&self, value: u64) {
        self.prometheus.increment(value);
        for otlp in &self.otlp {
            otlp.add(value, &self.attributes);
        }
    }

    /// Prometheus only: an OTLP counter takes increments, and no counter here is set absolutely.
    fn absolute(&self, value: u64) {
        self.prometheus.absolute(value);
    }
}

impl GaugeFn for Both<Gauge, opentelemetry::metrics::Gauge<f64>> {
    /// Prometheus only, as `decrement`: an OTLP gauge records values, and every gauge here is
    /// only ever set.
    fn increment(&self, value: f64) {
        self.prometheus.increment(value);
    }

    fn decrement(&self, value: f64) {
        self.prometheus.decrement(value);
    }

    fn set(&self, value: f64) {
        self.prometheus.set(value);
        for otlp in &self.otlp {
            otlp.record(value, &self.attributes);
        }
    }
}

impl HistogramFn for Both<Histogram, opentelemetry::metrics::Histogram<f64>> {
    fn record(&self, value: f64) {
        self.prometheus.record(value);
        for otlp in &self.otlp {
            otlp.record(value, &self.attributes);
        }
    }
}

/// The OTLP instruments, made once per name.
struct OtlpInstruments {
    meter: Meter,
    counters: RwLock<HashMap<String, opentelemetry::metrics::Counter<u64>>>,
    gauges: RwLock<HashMap<String, opentelemetry::metrics::Gauge<f64>>>,
    histograms: RwLock<HashMap<String, opentelemetry::metrics::Histogram<f64>>>,
}

impl OtlpInstruments {
    fn counter(&self, name: &str) -> opentelemetry::metrics::Counter<u64> {
        cached(&self.counters, name, || {
            let (otlp_name, unit) = otlp_name(name);
            let builder = self.meter.u64_counter(otlp_name);
            match unit {
                Some(unit) => builder.with_unit(unit).build(),
                None => builder.build(),
            }
        })
    }

    fn gauge(&self, name: &str) -> opentelemetry::metrics::Gauge<f64> {
        cached(&self.gauges, name, || {
            self.meter.f64_gauge(otlp_name(name).0).build()
        })
    }

    fn histogram(&self, name: &str) -> opentelemetry::metrics::Histogram<f64> {
        cached(&self.histograms, name, || {
            let (otlp_name, unit) = otlp_name(name);
            let buckets = if unit == Some("s") {
                LATENCY_BUCKETS
            } else {
                TOKEN_BUCKETS
            };
            let builder = self
                .meter
                .f64_histogram(otlp_name)
                .with_boundaries(buckets.to_vec());
            match unit {
                Some(unit) => builder.with_unit(unit).build(),
                None => builder.build(),
            }
        })
    }
}

fn cached<T: Clone>(map: &RwLock<HashMap<String, T>>, name: &str, make: impl FnOnce() -> T) -> T {
    if let Some(found) = map.read().get(name) {
        return found.clone();
    }
    map.write()
        .entry(name.to_owned())
        .or_insert_with(make)
        .clone()
}

/// A Prometheus-style name as OpenTelemetry names the instrument, and its unit.
fn otlp_name(name: &str) -> (Cow<'static, str>, Option<&'static str>) {
    match name {
        "gen_ai_client_token_usage" => ("gen_ai.client.token.usage".into(), Some("{token}")),
        "gen_ai_client_operation_duration_seconds" => {
            ("gen_ai.client.operation.duration".into(), Some("s"))
        }
        other => {
            if let Some(base) = other.strip_suffix("_seconds") {
                (base.to_owned().into(), Some("s"))
            } else {
                let base = other.strip_suffix("_total").unwrap_or(other);
                (base.to_owned().into(), None)
            }
        }
    }
}

/// The labels as OpenTelemetry attributes (the GenAI ones under their dotted names).
fn attributes(key: &Key) -> Vec<KeyValue> {
    key.labels()
        .map(|label| {
            let name = match label.key() {
                "gen_ai_token_type" => "gen_ai.token.type",
                "gen_ai_request_model" => "gen_ai.request.model",
                "gen_ai_operation_name" => "gen_ai.operation.name",
                other => return KeyValue::new(other.to_owned(), label.value().to_owned()),
            };
            KeyValue::new(name, label.value().to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_names_become_opentelemetry_names() {
        assert_eq!(
            otlp_name("gen_ai_client_token_usage"),
            ("gen_ai.client.token.usage".into(), Some("{token}"))
        );
        assert_eq!(
            otlp_name("gen_ai_client_operation_duration_seconds"),
            ("gen_ai.client.operation.duration".into(), Some("s"))
        );
        assert_eq!(
            otlp_name("gateway_cache_requests_total"),
            ("gateway_cache_requests".into(), None)
        );
        assert_eq!(
            otlp_name("mcp_request_duration_seconds"),
            ("mcp_request_duration".into(), Some("s"))
        );
        let key = Key::from_parts(
            "gen_ai_client_token_usage",
            vec![
                metrics::Label::new("gen_ai_token_type", "input"),
                metrics::Label::new("subscription", "alice"),
            ],
        );
        assert_eq!(
            attributes(&key),
            [
                KeyValue::new("gen_ai.token.type", "input"),
                KeyValue::new("subscription", "alice")
            ]
        );
    }
}
