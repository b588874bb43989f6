use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;

use super::*;

fn otel(vars: &[(&str, &str)]) -> Result<Option<OtelConfig>, SettingError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    OtelConfig::from_lookup("ptc-svc", |name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}

#[test]
fn export_is_off_by_default_and_follows_the_standard_variables() {
    assert_eq!(otel(&[]), Ok(None));
    let config = otel(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")])
        .unwrap()
        .unwrap();
    assert_eq!(config.traces_endpoint, "http://collector:4318/v1/traces");
    assert_eq!(config.service_name, "ptc-svc");
    assert_eq!(config.sampler, SamplerKind::ParentBasedAlwaysOn);
}

#[test]
fn tracing_is_off_without_an_endpoint() {
    let config = otel(&[
        ("OTEL_SERVICE_NAME", "gw"),
        ("OTEL_TRACES_SAMPLER", "always_on"),
    ]);
    assert_eq!(config, Ok(None));
    let config = otel(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        ("OTEL_SDK_DISABLED", "true"),
    ]);
    assert_eq!(config, Ok(None));
    // Blank values count as unset.
    assert_eq!(otel(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]), Ok(None));
}

#[test]
fn otel_settings_follow_the_standard_variables() {
    let config = otel(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://traces:9999/custom",
        ),
        ("OTEL_SERVICE_NAME", "gateway-translator"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ("OTEL_SDK_DISABLED", "false"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(config.traces_endpoint, "http://traces:9999/custom");
    assert_eq!(config.service_name, "gateway-translator");
    assert_eq!(config.sampler, SamplerKind::ParentBasedTraceIdRatio(0.25));
}

#[test]
fn bad_settings_name_the_variable() {
    for (name, value) in [
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ("OTEL_TRACES_SAMPLER_ARG", "half"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ("OTEL_SDK_DISABLED", "maybe"),
    ] {
        let error = otel(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            (name, value),
        ])
        .unwrap_err();
        assert_eq!(error.name, name, "{value}");
        assert!(error.to_string().starts_with(name), "{error}");
    }
    for name in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ] {
        let error = otel(&[(name, "https://collector:4318")]).unwrap_err();
        assert_eq!(error.name, name);
    }
}

#[test]
fn log_levels_are_levels_or_target_level_directives() {
    for value in ["loud", "info,chatty", "ptc_svc=loud"] {
        let error = parse_log_level("LOG_LEVEL", value).unwrap_err();
        assert_eq!(error.name, "LOG_LEVEL", "{value}");
        assert!(error.to_string().starts_with("LOG_LEVEL: "), "{error}");
    }
    assert_eq!(
        parse_log_level("RUST_LOG", "verbose").unwrap_err().name,
        "RUST_LOG"
    );
    assert!(parse_log_level("LOG_LEVEL", "WARN,h2=off").is_ok());
    assert!(parse_log_level("LOG_LEVEL", "warn,ptc_svc=debug").is_ok());
}

/// Collects what the formatter writes.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[test]
fn a_line_in_a_grpc_call_is_flat_and_names_the_callers_request() {
    let buffer = Buffer::default();
    let subscriber = Registry::default().with(
        tracing_subscriber::fmt::layer()
            .with_writer(buffer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(json::FlatJson),
    );
    let request = http::Request::builder()
        .uri("/gateway.ptc.v1.Ptc/CreateSession")
        .header("x-request-id", "req_SharedTelemetry000000001")
        .body(())
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let _call = grpc_span(&request).entered();
        let _inner =
            tracing::info_span!("session", request_id = "sdk-own-id", rounds = 3).entered();
        tracing::info!(container = "c1", rounds = 4, "session created");
    });
    let written = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let line: Value = serde_json::from_str(written.trim_end()).unwrap();
    let line = line.as_object().unwrap();
    let keys: Vec<&str> = line.keys().map(String::as_str).take(5).collect();
    assert_eq!(
        keys,
        ["timestamp", "level", "target", "message", "request_id"]
    );
    assert_eq!(line["message"], "session created");
    assert_eq!(line["level"], "INFO");
    // The outermost request id wins; a different inner value keeps its scope.
    assert_eq!(line["request_id"], "req_SharedTelemetry000000001");
    assert_eq!(line["session.request_id"], "sdk-own-id");
    assert_eq!(line["span"], "session");
    assert_eq!(line["method"], "/gateway.ptc.v1.Ptc/CreateSession");
    assert_eq!(line["rounds"], 3);
    assert_eq!(line["event.rounds"], 4);
    assert_eq!(line["container"], "c1");
    // Export hints stay out, and nothing nests.
    assert!(line.keys().all(|k| !k.starts_with("otel.")), "{written}");
    assert!(line.values().all(|v| !v.is_object()), "{written}");
}
