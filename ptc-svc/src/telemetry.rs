//! ptc-svc's logs and traces: the gateway's shared set-up (`gateway_proto::telemetry`: flat JSON
//! lines with the caller's request id, optional OTLP/HTTP export) under this service's name and
//! log target.

use gateway_proto::telemetry::{self as shared, Service};
pub use gateway_proto::telemetry::{OtelConfig, Telemetry, grpc_span};

use crate::config::Config;

const SERVICE: Service = Service {
    name: "ptc-svc",
    target: "ptc_svc",
};

/// `OTEL_*` from the environment; `None` means tracing export is off.
pub fn otel_from_env() -> anyhow::Result<Option<OtelConfig>> {
    Ok(OtelConfig::from_env(SERVICE.name)?)
}

/// Installs the global subscriber; must run inside the Tokio runtime (the exporter uses it).
pub fn init(config: &Config, otel: Option<&OtelConfig>) -> anyhow::Result<Telemetry> {
    shared::init(SERVICE, config.log_format, &config.log_level, otel)
}
