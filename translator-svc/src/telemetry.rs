//! Logs and traces: the subscriber (flat JSON lines or text, filtered by `LOG_LEVEL`), the
//! optional OpenTelemetry export (off unless an OTLP endpoint is configured), W3C trace-context
//! propagation, and the request id of the request being served. Never logs keys or prompts.

mod json;
mod otlp;

use std::sync::Arc;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets, filter_fn};
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{ConfigError, LogFormat, Source, bad};

/// This crate's spans are always recorded, whatever `LOG_LEVEL` says, so that a warning inside a
/// request still carries the request span's fields (its request id).
const OWN_TARGET: &str = "translator_svc";

#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `LOG_LEVEL` (else `RUST_LOG`, else `info`): a level or `target=level` directives.
    pub log_level: String,
    /// `None` unless an OTLP endpoint is configured: tracing export is off by default.
    pub otel: Option<OtelConfig>,
}

#[derive(Debug, Clone)]
pub struct OtelConfig {
    /// Full URL of the OTLP/HTTP traces endpoint (`.../v1/traces`).
    pub traces_endpoint: String,
    pub service_name: String,
    pub sampler: SamplerKind,
}

/// `OTEL_TRACES_SAMPLER` (and `_ARG`), as the OpenTelemetry SDK specification names them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerKind {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

impl SamplerKind {
    fn sampler(self) -> Sampler {
        match self {
            SamplerKind::AlwaysOn => Sampler::AlwaysOn,
            SamplerKind::AlwaysOff => Sampler::AlwaysOff,
            SamplerKind::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
            SamplerKind::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            SamplerKind::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            SamplerKind::ParentBasedTraceIdRatio(r) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
            }
        }
    }
}

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// A log filter that means what the operator wrote: every directive is a level or
/// `target=level` (a bare word would otherwise silently become a target and hide everything).
pub fn parse_log_level(name: &'static str, value: &str) -> Result<EnvFilter, ConfigError> {
    for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(bad(
                name,
                format!(
                    "{directive:?}: expected a level ({}) or target=level",
                    LEVELS.join(", ")
                ),
            ));
        }
    }
    EnvFilter::try_new(value).map_err(|e| bad(name, format!("{value:?}: {e}")))
}

impl TelemetryConfig {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let (name, log_level) = match (src.get("LOG_LEVEL"), src.get("RUST_LOG")) {
            (Some(level), _) => ("LOG_LEVEL", level),
            (None, Some(level)) => ("RUST_LOG", level),
            (None, None) => ("LOG_LEVEL", "info".to_string()),
        };
        parse_log_level(name, &log_level)?;
        Ok(TelemetryConfig {
            log_level,
            otel: OtelConfig::from_source(src)?,
        })
    }
}

impl OtelConfig {
    fn from_source(src: &dyn Source) -> Result<Option<Self>, ConfigError> {
        if crate::config::flag(src, "OTEL_SDK_DISABLED", false)? {
            return Ok(None);
        }
        let traces_endpoint = match (
            src.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            src.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            // The signal-specific variable is used as is; the generic one is a base URL.
            (Some(url), _) => (url, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            (None, Some(base)) => (
                format!("{}/v1/traces", base.trim().trim_end_matches('/')),
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (None, None) => return Ok(None),
        };
        let (traces_endpoint, name) = traces_endpoint;
        if !traces_endpoint.starts_with("http://") {
            return Err(bad(
                name,
                "must be an http:// URL (OTLP/HTTP; for TLS, export to a local collector)",
            ));
        }
        for name in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ] {
            if let Some(protocol) = src.get(name)
                && protocol.trim() != "http/protobuf"
            {
                return Err(bad(
                    name,
                    format!("{protocol:?}: only http/protobuf is supported"),
                ));
            }
        }
        let ratio = || -> Result<f64, ConfigError> {
            let ratio: f64 = crate::config::number(src, "OTEL_TRACES_SAMPLER_ARG", 1.0)?;
            if !(0.0..=1.0).contains(&ratio) {
                return Err(bad(
                    "OTEL_TRACES_SAMPLER_ARG",
                    "must be a ratio between 0 and 1",
                ));
            }
            Ok(ratio)
        };
        let sampler = match src.get("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
            None | Some("parentbased_always_on") => SamplerKind::ParentBasedAlwaysOn,
            Some("always_on") => SamplerKind::AlwaysOn,
            Some("always_off") => SamplerKind::AlwaysOff,
            Some("traceidratio") => SamplerKind::TraceIdRatio(ratio()?),
            Some("parentbased_always_off") => SamplerKind::ParentBasedAlwaysOff,
            Some("parentbased_traceidratio") => SamplerKind::ParentBasedTraceIdRatio(ratio()?),
            Some(other) => {
                return Err(bad(
                    "OTEL_TRACES_SAMPLER",
                    format!(
                        "{other:?}: expected always_on, always_off, traceidratio, \
                         parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
                    ),
                ));
            }
        };
        Ok(Some(OtelConfig {
            traces_endpoint,
            service_name: src
                .get("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| "translator-svc".into()),
            sampler,
        }))
    }
}

/// The installed telemetry; `shutdown` flushes the spans still queued for export.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The batch exporter's own thread hands exports to this runtime: wait off its workers.
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "could not flush the remaining spans");
            }
        }
    }
}

/// Install the global subscriber. Must run inside the Tokio runtime (the exporter uses it).
pub fn init(format: LogFormat, config: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    let events = parse_log_level("LOG_LEVEL", &config.log_level)?;
    let own_spans = filter_fn(|meta| meta.is_span() && meta.target().starts_with(OWN_TARGET));
    let filter = own_spans.or(events);
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(JsonFields::new())
            .event_format(json::FlatJson)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let (traces, provider) = match &config.otel {
        None => (None, None),
        Some(otel) => {
            let provider = otlp::provider(otel)?;
            let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, OWN_TARGET);
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(Targets::new().with_target(OWN_TARGET, tracing::Level::INFO))
                .boxed();
            (Some(layer), Some(provider))
        }
    };
    Registry::default()
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    if let Some(otel) = &config.otel {
        tracing::info!(
            endpoint = %otel.traces_endpoint,
            service = %otel.service_name,
            "exporting traces over OTLP/HTTP"
        );
    }
    Ok(Telemetry { provider })
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Continue the caller's trace (W3C `traceparent` from Envoy or the client) in `span`. Without
/// an OpenTelemetry layer this does nothing.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
}

/// Metadata naming the request an outgoing gRPC call belongs to: `x-request-id` and, when
/// traces are exported, the W3C `traceparent` of the current span.
pub fn annotate_call(metadata: &mut tonic::metadata::MetadataMap) {
    if let Some(id) = request_id()
        && let Ok(value) = id.parse()
    {
        metadata.insert("x-request-id", value);
    }
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut Metadata(metadata));
}

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// The id of the request the current task is serving, if any.
pub fn request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
}

/// Run `f` as part of request `id` (see `request_id`).
pub fn in_request<R>(id: &Arc<str>, f: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(Arc::clone(id), f)
}

/// Run the future `f` as part of request `id`.
pub async fn in_request_async<F: std::future::Future>(id: Arc<str>, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

#[cfg(test)]
mod tests;
