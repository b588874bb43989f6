//! The OTLP/HTTP span export: its settings, read from the standard `OTEL_*` variables by their
//! OpenTelemetry names (off unless an endpoint is set), and the exporter. The SDK's batch
//! processor exports from its own thread, while hyper needs a Tokio runtime: `OnRuntime` runs
//! each export on the service's runtime.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use super::SettingError;

const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OpenTelemetry export settings; `None` from `from_lookup` means tracing export is off.
#[derive(Debug, Clone, PartialEq)]
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

impl OtelConfig {
    /// The settings from the environment; `service_name` unless `OTEL_SERVICE_NAME` is set.
    pub fn from_env(service_name: &str) -> Result<Option<Self>, SettingError> {
        Self::from_lookup(service_name, |name| std::env::var(name).ok())
    }

    /// The settings from `lookup` (the environment, or a service's config source); blank values
    /// count as unset.
    pub fn from_lookup(
        service_name: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, SettingError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let disabled = "OTEL_SDK_DISABLED";
        match get(disabled)
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("0" | "false" | "no" | "off") => {}
            Some("1" | "true" | "yes" | "on") => return Ok(None),
            Some(other) => {
                return Err(SettingError::new(
                    disabled,
                    format!("{other:?} is not a boolean"),
                ));
            }
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
            return Err(SettingError::new(
                name,
                "must be an http:// URL (OTLP/HTTP; for TLS, export to a local collector)",
            ));
        }
        for name in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ] {
            if let Some(protocol) = get(name)
                && protocol.trim() != "http/protobuf"
            {
                return Err(SettingError::new(
                    name,
                    format!("{protocol:?}: only http/protobuf is supported"),
                ));
            }
        }
        // Checked whenever set, even for a sampler that ignores it: a typo should not wait for
        // the day someone switches to a ratio sampler.
        let ratio = match get("OTEL_TRACES_SAMPLER_ARG") {
            None => 1.0,
            Some(arg) => match arg.trim().parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => ratio,
                _ => {
                    return Err(SettingError::new(
                        "OTEL_TRACES_SAMPLER_ARG",
                        format!("{arg:?} is not a ratio between 0 and 1"),
                    ));
                }
            },
        };
        let sampler = match get("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
            None | Some("parentbased_always_on") => SamplerKind::ParentBasedAlwaysOn,
            Some("always_on") => SamplerKind::AlwaysOn,
            Some("always_off") => SamplerKind::AlwaysOff,
            Some("traceidratio") => SamplerKind::TraceIdRatio(ratio),
            Some("parentbased_always_off") => SamplerKind::ParentBasedAlwaysOff,
            Some("parentbased_traceidratio") => SamplerKind::ParentBasedTraceIdRatio(ratio),
            Some(other) => {
                return Err(SettingError::new(
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
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| service_name.to_owned()),
            sampler,
        }))
    }
}

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

pub(super) fn provider(config: &OtelConfig) -> anyhow::Result<SdkTracerProvider> {
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
        .with_sampler(config.sampler.sampler())
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build())
}
