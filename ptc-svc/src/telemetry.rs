//! Logs and traces: flat JSON lines (default) or text filtered by `LOG_LEVEL`, one span per gRPC
//! call carrying the caller's `x-request-id` (so every line of a call names the gateway request),
//! and the optional OpenTelemetry export over OTLP/HTTP, off unless an OTLP endpoint is set. The
//! standard `OTEL_*` variables are read here, by their OpenTelemetry names.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde_json::{Map, Value};
use tracing::field::{Empty, Field, Visit};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets, filter_fn};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{Config, LogFormat};

const SERVICE: &str = "ptc-svc";
/// This crate's spans are recorded whatever `LOG_LEVEL` says, so a warning during a call still
/// carries the call's request id.
const OWN_TARGET: &str = "ptc_svc";
const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OpenTelemetry export settings; `None` from `from_lookup` means tracing export is off.
#[derive(Debug, Clone, PartialEq)]
pub struct OtelConfig {
    /// Full URL of the OTLP/HTTP traces endpoint (`.../v1/traces`).
    pub traces_endpoint: String,
    pub service_name: String,
    /// `OTEL_TRACES_SAMPLER` name and ratio (`OTEL_TRACES_SAMPLER_ARG`).
    pub sampler: (String, f64),
}

impl OtelConfig {
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<Self>> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        match get("OTEL_SDK_DISABLED").as_deref().map(str::trim) {
            None | Some("false") => {}
            Some("true") => return Ok(None),
            Some(other) => anyhow::bail!("OTEL_SDK_DISABLED: {other:?} is not true or false"),
        }
        let (name, traces_endpoint) = match (
            get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            // The signal-specific variable is used as is; the generic one is a base URL.
            (Some(url), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url.trim().to_owned()),
            (None, Some(base)) => (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("{}/v1/traces", base.trim().trim_end_matches('/')),
            ),
            (None, None) => return Ok(None),
        };
        if !traces_endpoint.starts_with("http://") {
            anyhow::bail!(
                "{name}: must be an http:// URL (OTLP/HTTP; for TLS, export to a local collector)"
            );
        }
        for name in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ] {
            if let Some(protocol) = get(name)
                && protocol.trim() != "http/protobuf"
            {
                anyhow::bail!("{name}: {protocol:?}: only http/protobuf is supported");
            }
        }
        let sampler = get("OTEL_TRACES_SAMPLER")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "parentbased_always_on".to_owned());
        let ratio = match get("OTEL_TRACES_SAMPLER_ARG") {
            None => 1.0,
            Some(arg) => match arg.trim().parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => ratio,
                _ => {
                    anyhow::bail!("OTEL_TRACES_SAMPLER_ARG: {arg:?} is not a ratio between 0 and 1")
                }
            },
        };
        let config = OtelConfig {
            traces_endpoint,
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| SERVICE.to_owned()),
            sampler: (sampler, ratio),
        };
        config.sampler()?;
        Ok(Some(config))
    }

    fn sampler(&self) -> anyhow::Result<Sampler> {
        let (name, ratio) = (&self.sampler.0, self.sampler.1);
        Ok(match name.as_str() {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::TraceIdRatioBased(ratio),
            "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            "parentbased_traceidratio" => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
            }
            other => anyhow::bail!(
                "OTEL_TRACES_SAMPLER: {other:?}: expected always_on, always_off, traceidratio, \
                 parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
            ),
        })
    }
}

/// A log filter that means what the operator wrote: every directive is a level or
/// `target=level` (a bare word would otherwise silently become a target and hide everything).
pub fn parse_log_level(value: &str) -> anyhow::Result<EnvFilter> {
    for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            anyhow::bail!(
                "LOG_LEVEL: {directive:?}: expected a level ({}) or target=level",
                LEVELS.join(", ")
            );
        }
    }
    EnvFilter::try_new(value).map_err(|e| anyhow::anyhow!("LOG_LEVEL: {value:?}: {e}"))
}

/// The installed telemetry; `shutdown` flushes the spans still queued for export.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The batch exporter's thread hands exports to this runtime: wait off its workers.
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = done {
                tracing::warn!(%error, "could not flush the remaining spans");
            }
        }
    }
}

/// Installs the global subscriber; must run inside the Tokio runtime (the exporter uses it).
pub fn init(config: &Config, otel: Option<&OtelConfig>) -> anyhow::Result<Telemetry> {
    let events = parse_log_level(&config.log_level)?;
    let own_spans = filter_fn(|meta| meta.is_span() && meta.target().starts_with(OWN_TARGET));
    let filter = own_spans.or(events);
    let logs = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
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
            let provider = provider(otel)?;
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
    Ok(Telemetry { provider })
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
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
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

/// The SDK's batch processor exports from its own thread, while hyper needs a Tokio runtime:
/// each export runs on the service's runtime.
#[derive(Debug)]
struct OnRuntime {
    runtime: tokio::runtime::Handle,
    client: Arc<HyperClient>,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = Arc::clone(&self.client);
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}

fn provider(config: &OtelConfig) -> anyhow::Result<SdkTracerProvider> {
    let client = OnRuntime {
        runtime: tokio::runtime::Handle::try_current()?,
        client: Arc::new(HyperClient::with_default_connector(EXPORT_TIMEOUT, None)),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.traces_endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(config.sampler()?)
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build())
}

/// One flat JSON object per line: `timestamp`, `level`, `target`, `message`, `span`, the fields
/// of the enclosing spans (so `request_id`), then the event's own fields.
struct FlatJson;

struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

/// Adds `fields` to the line. The outer value of a name wins (`request_id` is the gateway's,
/// not the AWS SDK's span field of the same name); a different inner value is kept as
/// `<scope>.<name>`. Trace-export hints (`otel.*`) and `log` origins (`log.*`) stay out.
fn merge(line: &mut Map<String, Value>, scope: &str, fields: Map<String, Value>) {
    for (name, value) in fields {
        if name.starts_with("otel.") || name.starts_with("log.") {
            continue;
        }
        match line.get(&name) {
            None => {
                line.insert(name, value);
            }
            Some(existing) if *existing == value => {}
            Some(_) => {
                line.insert(format!("{scope}.{name}"), value);
            }
        }
    }
}

impl<S> FormatEvent<S, JsonFields> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut own = Map::new();
        event.record(&mut Fields(&mut own));
        let meta = event.metadata();
        let mut line = Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(message) = own.remove("message") {
            line.insert("message".into(), message);
        }
        let mut spans = Vec::new();
        for span in ctx
            .event_scope()
            .into_iter()
            .flat_map(|scope| scope.from_root())
        {
            let extensions = span.extensions();
            let fields = extensions
                .get::<FormattedFields<JsonFields>>()
                .and_then(|fields| serde_json::from_str::<Value>(fields).ok());
            let fields = match fields {
                Some(Value::Object(fields)) => fields,
                _ => Map::new(),
            };
            spans.push((span.name(), fields));
        }
        // The key every line of a request shares comes right after the message.
        let request_id = spans
            .iter()
            .find_map(|(_, fields)| fields.get("request_id"))
            .or_else(|| own.get("request_id"));
        if let Some(id) = request_id.cloned() {
            line.insert("request_id".into(), id);
        }
        if let Some((name, _)) = spans.last() {
            line.insert("span".into(), (*name).into());
        }
        for (name, fields) in spans {
            merge(&mut line, name, fields);
        }
        merge(&mut line, "event", own);
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otel(vars: &[(&str, &str)]) -> anyhow::Result<Option<OtelConfig>> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OtelConfig::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn export_is_off_by_default_and_follows_the_standard_variables() {
        assert_eq!(otel(&[]).ok(), Some(None));
        let config = otel(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")])
            .ok()
            .flatten();
        let config = config.as_ref();
        assert_eq!(
            config.map(|c| c.traces_endpoint.as_str()),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(config.map(|c| c.service_name.as_str()), Some(SERVICE));
    }

    #[test]
    fn bad_settings_name_the_variable() {
        for (name, value) in [
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ] {
            let error = otel(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                (name, value),
            ])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(error.starts_with(name), "{name}={value}: {error}");
        }
        for value in ["loud", "info,chatty"] {
            let error = parse_log_level(value).err().map(|e| e.to_string());
            assert!(error.is_some_and(|e| e.starts_with("LOG_LEVEL")), "{value}");
        }
        assert!(parse_log_level("warn,h2=off").is_ok());
    }
}
