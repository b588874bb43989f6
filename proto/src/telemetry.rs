//! Logs and traces, set up the same way by every service: flat JSON lines (or text) filtered by
//! `LOG_LEVEL`, each carrying the gateway `request_id` of the span it runs in; W3C trace context
//! continued from the caller; and the OpenTelemetry export over OTLP/HTTP, off unless an OTLP
//! endpoint is set. What differs per service is a parameter: its `Service` name and log target.
//!
//! Why here, behind feature `telemetry`: the log line shape (which log tools and the end-to-end
//! tests parse) and the `x-request-id`/`traceparent` handling are contracts between the services,
//! like the protos, and three copies had already begun to drift. This crate is the one the
//! services share; a separate `common` crate would be a second one. The feature is off by default
//! and only the services turn it on: the wasm filter never links tracing-subscriber or
//! OpenTelemetry. Each service keeps a small `telemetry` module that reads its own config.

mod json;
mod otlp;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets, filter_fn};
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

pub use otlp::{OtelConfig, SamplerKind};

/// The spans `grpc_span` opens carry this module's target, so they are recorded and exported
/// like the service's own.
const SHARED_TARGET: &str = module_path!();
const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// Which service is logging and tracing.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// The default OpenTelemetry `service.name` (`OTEL_SERVICE_NAME` overrides it), e.g. `ptc-svc`.
    pub name: &'static str,
    /// The service crate's log target, e.g. `ptc_svc`. Its spans are recorded whatever
    /// `LOG_LEVEL` says, so a warning inside a call still carries the call's request id; they
    /// are also the only spans exported.
    pub target: &'static str,
}

/// `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// A bad telemetry setting, naming its variable; the services turn it into their own config
/// error (and exit 2).
#[derive(Debug, Clone, PartialEq)]
pub struct SettingError {
    pub name: &'static str,
    pub reason: String,
}

impl SettingError {
    fn new(name: &'static str, reason: impl Into<String>) -> Self {
        SettingError {
            name,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.reason)
    }
}

impl std::error::Error for SettingError {}

/// A log filter that means what the operator wrote: every directive is a level or
/// `target=level` (a bare word would otherwise silently become a target and hide everything).
/// `name` is the variable the value came from.
pub fn parse_log_level(name: &'static str, value: &str) -> Result<EnvFilter, SettingError> {
    for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(SettingError::new(
                name,
                format!(
                    "{directive:?}: expected a level ({}) or target=level",
                    LEVELS.join(", ")
                ),
            ));
        }
    }
    EnvFilter::try_new(value).map_err(|e| SettingError::new(name, format!("{value:?}: {e}")))
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
            if let Ok(Err(error)) = done {
                tracing::warn!(%error, "could not flush the remaining spans");
            }
        }
    }
}

/// Installs the global subscriber: logs in `format` filtered by `log_level` (`LOG_LEVEL`), and
/// the span export when `otel` is set. Must run inside the Tokio runtime (the exporter uses it).
pub fn init(
    service: Service,
    format: LogFormat,
    log_level: &str,
    otel: Option<&OtelConfig>,
) -> anyhow::Result<Telemetry> {
    let events = parse_log_level("LOG_LEVEL", log_level)?;
    let own_spans = filter_fn(move |meta| {
        meta.is_span()
            && (meta.target().starts_with(service.target)
                || meta.target().starts_with(SHARED_TARGET))
    });
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
    let (traces, provider) = match otel {
        None => (None, None),
        Some(otel) => {
            let provider = otlp::provider(otel)?;
            let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, service.target);
            let exported = Targets::new()
                .with_target(service.target, tracing::Level::INFO)
                .with_target(SHARED_TARGET, tracing::Level::INFO);
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(exported)
                .boxed();
            (Some(layer), Some(provider))
        }
    };
    // No `Option` layer when nothing is exported: an empty one answers "interested" for every
    // callsite, which made h2's and hyper's trace-level spans get built on every call (about
    // half of ratelimit-svc's user-space CPU per check) only for the log filter to drop them.
    let registry = Registry::default().with(logs);
    match traces {
        Some(traces) => registry.with(traces).try_init(),
        None => registry.try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    if let Some(otel) = otel {
        tracing::info!(
            endpoint = %otel.traces_endpoint,
            service = %otel.service_name,
            "exporting traces over OTLP/HTTP"
        );
    }
    Ok(Telemetry { provider })
}

/// Continues the caller's trace (W3C `traceparent` from Envoy or the client) in `span`. Without
/// an OpenTelemetry layer this does nothing.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
}

/// The span of one gRPC call (tonic's `trace_fn`): the gateway request id from `x-request-id`
/// and the caller's W3C trace context.
pub fn grpc_span(request: &http::Request<()>) -> tracing::Span {
    let headers = request.headers();
    let path = request.uri().path();
    macro_rules! grpc_span {
        ($level:ident) => {
            tracing::$level!(
                "grpc",
                request_id = Empty,
                method = %path,
                otel.name = %path.trim_start_matches('/'),
                otel.kind = "server",
            )
        };
    }
    // Health probes arrive every few seconds: their spans stay out of exported traces.
    let span = if path.starts_with("/grpc.health.v1.Health/") {
        grpc_span!(debug_span)
    } else {
        grpc_span!(info_span)
    };
    if let Some(id) = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128)
    {
        span.record("request_id", id);
    }
    continue_trace(&span, headers);
    span
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

#[cfg(test)]
mod tests;
