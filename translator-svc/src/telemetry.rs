//! translator-svc's logs and traces: the gateway's shared set-up (`gateway_proto::telemetry`:
//! flat JSON lines or text, the optional OTLP/HTTP export, traceparent continuation) configured
//! from this service's settings, plus what only this service needs: the request id of the
//! request being served and the metadata of its outgoing gRPC calls. Never logs keys or prompts.

use std::sync::Arc;

use gateway_proto::telemetry::{self as shared, Service};
pub use gateway_proto::telemetry::{OtelConfig, Telemetry, continue_trace};
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{ConfigError, LogFormat, Source, bad};

const SERVICE: Service = Service {
    name: "translator-svc",
    target: "translator_svc",
};

#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `LOG_LEVEL` (else `RUST_LOG`, else `info`): a level or `target=level` directives.
    pub log_level: String,
    /// `None` unless an OTLP endpoint is configured: tracing export is off by default.
    pub otel: Option<OtelConfig>,
}

impl TelemetryConfig {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let (name, log_level) = match (src.get("LOG_LEVEL"), src.get("RUST_LOG")) {
            (Some(level), _) => ("LOG_LEVEL", level),
            (None, Some(level)) => ("RUST_LOG", level),
            (None, None) => ("LOG_LEVEL", "info".to_string()),
        };
        let config_error = |e: shared::SettingError| bad(e.name, e.reason);
        shared::parse_log_level(name, &log_level).map_err(config_error)?;
        Ok(TelemetryConfig {
            log_level,
            otel: OtelConfig::from_lookup(SERVICE.name, |name| src.get(name))
                .map_err(config_error)?,
        })
    }
}

/// Install the global subscriber. Must run inside the Tokio runtime (the exporter uses it).
pub fn init(format: LogFormat, config: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    shared::init(SERVICE, format, &config.log_level, config.otel.as_ref())
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
