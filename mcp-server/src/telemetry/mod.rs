//! Logs, metrics and traces.
//!
//! - the Prometheus registry behind `/metrics`, and [`recorder`], which mirrors the same
//!   instruments to OTLP once export is on;
//! - [`otel`]: the OpenTelemetry pipeline (OTLP/HTTP exporters, sampler, resource);
//! - [`request`]: every request's span and access-log line;
//! - [`Telemetry`]: the subscriber (logs, and OpenTelemetry when export is on) of one server.
//!
//! The `metrics` recorder is process-wide (the macros write to one global recorder), so it is
//! installed once and every app in the process renders the same registry. Spans come from
//! `tracing`: the code's spans with the target `otel` (and the request span) become
//! OpenTelemetry spans when an endpoint is set; without one, no exporter, no OpenTelemetry
//! layer, and those spans are filtered out at their callsites.

mod otel;
mod recorder;
pub mod request;

use std::{sync::Arc, sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::{Dispatch, level_filters::LevelFilter};
use tracing_subscriber::{
    EnvFilter, Layer, Registry, filter::Targets, fmt, fmt::writer::BoxMakeWriter, prelude::*,
};

use crate::config::{LogFormat, TelemetrySettings};
pub use request::RequestObserver;

/// Latency buckets in seconds: fine-grained below a millisecond, where the MCP and gateway
/// overheads live, and out to a minute for model calls.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus registry, installing it on first use.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".to_owned()),
                    LATENCY_BUCKETS,
                )
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding app); ours still renders.
            let _ = metrics::set_global_recorder(recorder::Fanout {
                prometheus: recorder,
            });
            handle
        })
        .clone()
}

/// Keeps histogram storage bounded; the exporter expects this to run periodically.
pub async fn run_metrics_upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// One server's telemetry: its OpenTelemetry pipeline (when an endpoint is set) and the
/// subscriber its requests log and trace through. Clones share them.
#[derive(Clone)]
pub struct Telemetry {
    pipeline: Option<Arc<otel::Pipeline>>,
    observer: RequestObserver,
}

impl Telemetry {
    /// The binary's: logs to stdout (`RUST_LOG` filters, default `info`) and, with an endpoint,
    /// OpenTelemetry export, as the process-wide subscriber.
    pub fn install(settings: &TelemetrySettings, instance_id: &str) -> Result<Self, String> {
        let pipeline = start_pipeline(settings, instance_id)?;
        let filter = EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .from_env_lossy();
        // With RUST_LOG above `info` (`warn`, `error`), no access line would be written.
        let info_logged = filter
            .max_level_hint()
            .is_none_or(|most| most >= LevelFilter::INFO);
        let logs = Logs {
            format: settings.log_format,
            writer: BoxMakeWriter::new(std::io::stdout),
            filter,
        };
        // `try_init` also routes the `log` crate's records (rustls, redis…) into it.
        let _ = subscriber(Some(logs), pipeline.as_deref()).try_init();
        Ok(Self {
            observer: observer(settings, info_logged, pipeline.is_some(), None),
            pipeline,
        })
    }

    /// A server's own, in a process that may run others (tests): nothing process-wide but the
    /// metrics mirror. Its requests run in its own subscriber when it exports or logs
    /// (`logs`: where its lines go, filtered at `info`).
    pub fn scoped(
        settings: &TelemetrySettings,
        instance_id: &str,
        logs: Option<BoxMakeWriter>,
    ) -> Result<Self, String> {
        let pipeline = start_pipeline(settings, instance_id)?;
        let logs = logs.map(|writer| Logs {
            format: settings.log_format,
            writer,
            filter: EnvFilter::new("info"),
        });
        let logging = logs.is_some();
        let scoped = (pipeline.is_some() || logging).then(|| subscriber(logs, pipeline.as_deref()));
        Ok(Self {
            observer: observer(settings, logging, pipeline.is_some(), scoped),
            pipeline,
        })
    }

    /// What the request layer needs.
    pub fn observer(&self) -> RequestObserver {
        self.observer.clone()
    }

    /// Exports every finished span and the metrics now, and waits for the collector's answer.
    pub async fn flush(&self) {
        if let Some(pipeline) = self.pipeline.clone() {
            let _ = tokio::task::spawn_blocking(move || pipeline.flush()).await;
        }
    }

    /// Exports what is left and stops the exporters.
    pub async fn shutdown(&self) {
        if let Some(pipeline) = self.pipeline.clone() {
            let _ = tokio::task::spawn_blocking(move || pipeline.shutdown()).await;
        }
    }
}

/// `info_logged`: the logs take `info` lines (else no access line would be written, and
/// nothing is gathered for one).
fn observer(
    settings: &TelemetrySettings,
    info_logged: bool,
    tracing: bool,
    scoped: Option<Dispatch>,
) -> RequestObserver {
    RequestObserver {
        tracing,
        access_log: settings.access_log && info_logged,
        scoped,
    }
}

fn start_pipeline(
    settings: &TelemetrySettings,
    instance_id: &str,
) -> Result<Option<Arc<otel::Pipeline>>, String> {
    let Some(otlp) = &settings.otlp else {
        return Ok(None);
    };
    otel::Pipeline::start(otlp, instance_id).map(|pipeline| Some(Arc::new(pipeline)))
}

/// Log lines: their format, where they go, what passes.
struct Logs {
    format: LogFormat,
    writer: BoxMakeWriter,
    filter: EnvFilter,
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Logs (text or JSON lines), and the OpenTelemetry layer when export is on. The logs never
/// see the `otel` spans (they would only repeat the request span's context); the OpenTelemetry
/// layer sees those, the request span, and the events inside them from tollgate's crates.
///
/// Every layer has its own filter and they are kept in a `Vec`: then a callsite no layer wants
/// (an `otel` span without export) is disabled for good. (An absent layer written as `None`
/// would count as one that wants everything, and turn every span back on.)
fn subscriber(logs: Option<Logs>, pipeline: Option<&otel::Pipeline>) -> Dispatch {
    let mut layers: Vec<BoxedLayer> = Vec::with_capacity(2);
    if let Some(logs) = logs {
        let filter = logs.filter.add_directive(silenced("otel"));
        layers.push(match logs.format {
            LogFormat::Text => fmt::layer()
                .with_writer(logs.writer)
                .with_filter(filter)
                .boxed(),
            LogFormat::Json => fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(logs.writer)
                .with_filter(filter)
                .boxed(),
        });
    }
    if let Some(pipeline) = pipeline {
        let targets = Targets::new()
            .with_target("otel", LevelFilter::INFO)
            .with_target(request::REQUEST_TARGET, LevelFilter::INFO)
            .with_target("gateway_client", LevelFilter::INFO)
            .with_target("agent", LevelFilter::INFO)
            .with_target("mcp_server", LevelFilter::WARN);
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(pipeline.tracer.clone())
                .with_tracked_inactivity(false)
                .with_location(false)
                .with_threads(false)
                .with_filter(targets)
                .boxed(),
        );
    }
    Dispatch::new(tracing_subscriber::registry().with(layers))
}

fn silenced(target: &str) -> tracing_subscriber::filter::Directive {
    format!("{target}=off")
        .parse()
        .unwrap_or_else(|_| LevelFilter::OFF.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Settings;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn telemetry_settings(vars: &[(&str, &str)]) -> TelemetrySettings {
        Settings::from_map(vars).unwrap().telemetry_settings()
    }

    #[test]
    fn without_an_endpoint_there_is_no_exporter_and_otel_spans_are_filtered_out() {
        let settings = telemetry_settings(&[]);
        assert!(settings.otlp.is_none());
        let quiet = Telemetry::scoped(&settings, "i", None).unwrap();
        assert!(quiet.pipeline.is_none());
        assert!(!quiet.observer().tracing && quiet.observer().scoped.is_none());

        // Logging to a writer but not exporting: the `otel` spans are off at their callsites
        // while the request span still gives log lines their context.
        let logging = Telemetry::scoped(&settings, "i", Some(BoxMakeWriter::new(std::io::sink)));
        let dispatch = logging.unwrap().observer().scoped.unwrap();
        tracing::dispatcher::with_default(&dispatch, || {
            assert!(tracing::info_span!(target: "otel", "gen_ai.client").is_disabled());
            assert!(!tracing::info_span!(target: request::REQUEST_TARGET, "request").is_disabled());
        });
    }

    #[test]
    fn otlp_settings_come_from_the_standard_variables() {
        let settings = telemetry_settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s%3Dcret,tenant=a"),
            ("OTEL_SERVICE_NAME", "gateway-east"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored,team=ai"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("WEBSITE_SITE_NAME", "site"),
        ]);
        let otlp = settings.otlp.unwrap();
        assert_eq!(otlp.endpoint, "http://collector:4318");
        let headers: Vec<(&str, &str)> = otlp
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.expose_secret()))
            .collect();
        assert_eq!(headers, [("x-api-key", "s=cret"), ("tenant", "a")]);
        let resource: HashMap<&str, &str> = otlp
            .resource
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(resource["service.name"], "gateway-east");
        assert_eq!(resource["team"], "ai");
        assert_eq!(resource["azure.app_service.site.name"], "site");
        assert_eq!(
            otlp.sampler,
            crate::config::SamplerSetting {
                parent_based: true,
                root: crate::config::RootSampler::Ratio(0.25),
            }
        );
        assert!(settings.access_log);
    }

    #[test]
    fn bad_otlp_settings_are_refused_naming_the_variable() {
        for (variable, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign"),
            ("OTEL_RESOURCE_ATTRIBUTES", "team=%zz"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_BSP_SCHEDULE_DELAY", "0"),
            ("ACCESS_LOG", "maybe"),
        ] {
            let error = Settings::from_map(&[(variable, value)])
                .unwrap_err()
                .to_string();
            assert!(error.contains(variable), "{variable}={value}: {error}");
        }
    }
}
