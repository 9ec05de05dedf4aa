//! The OpenTelemetry pipeline: OTLP/HTTP exporters, the batch span processor, the periodic
//! metric reader, the resource and the sampler, all from [`OtlpSettings`].
//!
//! Every option is set here explicitly, so what `config.rs` parsed is what runs. Export runs on
//! the SDK's own threads: spans wait in a bounded queue (`OTEL_BSP_MAX_QUEUE_SIZE`; past it they
//! are dropped), so a slow or dead collector costs a warning in the log, never request latency.

use std::collections::HashMap;

use opentelemetry::{KeyValue, metrics::MeterProvider as _, trace::TracerProvider as _};
use opentelemetry_otlp::{
    MetricExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig,
};
use opentelemetry_sdk::{
    Resource,
    metrics::{PeriodicReader, SdkMeterProvider, Temporality},
    trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider},
};
use secrecy::ExposeSecret;

use super::recorder::{self, Mirror};
use crate::config::{OtlpSettings, RootSampler, SamplerSetting};

/// The tracer and meter providers of one server; flushed and shut down through it.
pub struct Pipeline {
    pub tracer: SdkTracer,
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    /// The `metrics` instruments go to `meter_provider` while this lives.
    _mirror: Mirror,
}

impl Pipeline {
    /// Builds the exporters and providers; `instance_id` is `service.instance.id`.
    pub fn start(settings: &OtlpSettings, instance_id: &str) -> Result<Self, String> {
        let resource = resource(settings, instance_id);
        let headers: HashMap<String, String> = settings
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.expose_secret().to_owned()))
            .collect();
        let spans = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/traces", settings.endpoint))
            .with_timeout(settings.timeout)
            .with_headers(headers.clone())
            .build()
            .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: cannot export traces: {e}"))?;
        let batches = BatchConfigBuilder::default()
            .with_max_queue_size(settings.span_queue)
            .with_max_export_batch_size(settings.span_queue.min(512))
            .with_scheduled_delay(settings.span_delay)
            .build();
        let tracer_provider = SdkTracerProvider::builder()
            .with_span_processor(
                BatchSpanProcessor::builder(spans)
                    .with_batch_config(batches)
                    .build(),
            )
            .with_sampler(sampler(settings.sampler))
            .with_resource(resource.clone())
            .build();
        let metrics = MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/metrics", settings.endpoint))
            .with_timeout(settings.timeout)
            .with_headers(headers)
            .with_temporality(Temporality::Cumulative)
            .build()
            .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: cannot export metrics: {e}"))?;
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(
                PeriodicReader::builder(metrics)
                    .with_interval(settings.metric_interval)
                    .build(),
            )
            .with_resource(resource)
            .build();
        Ok(Self {
            tracer: tracer_provider.tracer("tollgate"),
            _mirror: recorder::mirror_to(meter_provider.meter("tollgate")),
            tracer_provider,
            meter_provider,
        })
    }

    /// Exports what is waiting now; blocks the calling thread until the collector answered.
    pub fn flush(&self) {
        if let Err(error) = self.tracer_provider.force_flush() {
            tracing::warn!(%error, "OpenTelemetry: traces were not flushed");
        }
        if let Err(error) = self.meter_provider.force_flush() {
            tracing::warn!(%error, "OpenTelemetry: metrics were not flushed");
        }
    }

    /// Flushes and stops the exporters; blocks the calling thread.
    pub fn shutdown(&self) {
        let _ = self.tracer_provider.shutdown();
        let _ = self.meter_provider.shutdown();
    }
}

/// The settings' resource, with `service.instance.id` (App Insights' `cloud_RoleInstance`).
fn resource(settings: &OtlpSettings, instance_id: &str) -> Resource {
    let attributes = settings
        .resource
        .iter()
        .filter(|(key, _)| key != "service.instance.id")
        .map(|(key, value)| KeyValue::new(key.clone(), value.clone()))
        .chain([KeyValue::new("service.instance.id", instance_id.to_owned())]);
    Resource::builder_empty()
        .with_attributes(attributes)
        .build()
}

fn sampler(setting: SamplerSetting) -> Sampler {
    let root = match setting.root {
        RootSampler::AlwaysOn => Sampler::AlwaysOn,
        RootSampler::AlwaysOff => Sampler::AlwaysOff,
        RootSampler::Ratio(ratio) => Sampler::TraceIdRatioBased(ratio),
    };
    if setting.parent_based {
        Sampler::ParentBased(Box::new(root))
    } else {
        root
    }
}
