//! ratelimit-svc's logs and traces: the gateway's shared set-up (`gateway_proto::telemetry`:
//! flat JSON lines with the caller's request id, optional OTLP/HTTP export) under this
//! service's name and log target.

use gateway_proto::telemetry::{self as shared, Service};
pub use gateway_proto::telemetry::{OtelConfig, Telemetry, grpc_span};
use tonic::codegen::http;
use tracing::Span;
use tracing::level_filters::LevelFilter;

use crate::config::Config;

const SERVICE: Service = Service {
    name: "ratelimit-svc",
    target: "ratelimit_svc",
};

/// `OTEL_*` from the environment; `None` means tracing export is off.
pub fn otel_from_env() -> anyhow::Result<Option<OtelConfig>> {
    Ok(OtelConfig::from_env(SERVICE.name)?)
}

/// Installs the global subscriber; must run inside the Tokio runtime (the exporter uses it).
pub fn init(config: &Config, otel: Option<&OtelConfig>) -> anyhow::Result<Telemetry> {
    shared::init(SERVICE, config.log_format, &config.log_level, otel)
}

/// tonic's `trace_fn`: the span of each gRPC call, or none when nobody would see it.
///
/// The span (request id, method, W3C parent) is not free: the registry allocates it, the log
/// layer renders its fields as JSON, the W3C parent is parsed, and it is entered and left on
/// every poll (about 9,000 instructions a check). It is only seen when spans are exported, or when the log filter lets the debug lines written
/// inside a call through (`descriptor over limit`, ...). Otherwise no span is made, and the few
/// info, warn and error lines a call can write carry the caller's `request_id` as their own
/// field (`check::CheckIn::log_request_id`), so every line of a call still names it.
pub fn call_span(
    export_traces: bool,
    log_level: &str,
) -> impl Fn(&http::Request<()>) -> Span + Clone + use<> {
    let spans = export_traces || debug_lines_visible(log_level);
    move |request| {
        if spans {
            grpc_span(request)
        } else {
            Span::none()
        }
    }
}

/// Whether `LOG_LEVEL` lets any debug line through: read from the filter itself, because the
/// shared subscriber enables every span of the service's own target at any level (so that lines
/// carry their span's fields), and `tracing::enabled!` on the span would always say yes. Errs on
/// the side of spans: `h2=debug` also turns them on, and so does a filter that does not parse
/// (`init` has refused it already anyway).
fn debug_lines_visible(log_level: &str) -> bool {
    shared::parse_log_level("LOG_LEVEL", log_level).map_or(true, |filter| {
        filter.max_level_hint() >= Some(LevelFilter::DEBUG)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> http::Request<()> {
        http::Request::builder()
            .uri("/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit")
            .header("x-request-id", "req_1")
            .body(())
            .unwrap()
    }

    #[test]
    fn a_call_has_a_span_only_when_exported_or_debug_lines_show() {
        // Without a subscriber every span is disabled, so `is_none` tells "not even made".
        assert!(call_span(false, "info")(&call()).is_none());
        assert!(call_span(false, "warn,h2=info")(&call()).is_none());
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            assert!(call_span(false, "info")(&call()).is_none());
            assert!(!call_span(true, "info")(&call()).is_none());
            assert!(!call_span(false, "debug")(&call()).is_none());
            assert!(!call_span(false, "info,ratelimit_svc=debug")(&call()).is_none());
        });
    }
}
