use std::collections::HashMap;

use super::*;

fn telemetry(vars: &[(&'static str, &'static str)]) -> Result<TelemetryConfig, ConfigError> {
    let src: HashMap<&str, &str> = vars.iter().copied().collect();
    TelemetryConfig::from_source(&src)
}

#[test]
fn log_level_defaults_to_info_and_falls_back_to_rust_log() {
    assert_eq!(telemetry(&[]).unwrap().log_level, "info");
    let c = telemetry(&[("RUST_LOG", "warn,translator_svc=debug")]).unwrap();
    assert_eq!(c.log_level, "warn,translator_svc=debug");
    let c = telemetry(&[("RUST_LOG", "warn"), ("LOG_LEVEL", "debug")]).unwrap();
    assert_eq!(c.log_level, "debug");
}

#[test]
fn bad_log_levels_name_the_variable() {
    for value in ["loud", "info,chatty", "translator_svc=loud"] {
        let err = telemetry(&[("LOG_LEVEL", value)]).unwrap_err();
        assert_eq!(err.name, "LOG_LEVEL", "{value}");
    }
    assert_eq!(
        telemetry(&[("RUST_LOG", "verbose")]).unwrap_err().name,
        "RUST_LOG"
    );
    assert!(telemetry(&[("LOG_LEVEL", "WARN,h2=off")]).is_ok());
}

#[test]
fn otel_settings_come_from_the_source_under_this_services_name() {
    assert!(telemetry(&[]).unwrap().otel.is_none());
    let otel = telemetry(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")])
        .unwrap()
        .otel
        .unwrap();
    assert_eq!(otel.traces_endpoint, "http://collector:4318/v1/traces");
    assert_eq!(otel.service_name, "translator-svc");
}

#[test]
fn bad_otel_settings_name_the_variable() {
    // The parsing itself is gateway_proto::telemetry's (tested there); a bad value must still
    // stop this service's start with a ConfigError naming the variable.
    for (name, value) in [
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_SDK_DISABLED", "maybe"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
    ] {
        let err = telemetry(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (name, value),
        ])
        .unwrap_err();
        assert_eq!(err.name, name, "{value}");
    }
}

#[tokio::test]
async fn calls_made_for_a_request_name_it() {
    let mut outside = tonic::metadata::MetadataMap::new();
    annotate_call(&mut outside);
    assert!(outside.get("x-request-id").is_none());
    assert_eq!(request_id(), None);

    let id: Arc<str> = Arc::from("req_0123456789abcdefABCDEF01");
    let metadata = in_request_async(id.clone(), async {
        // Across an await point too: the id belongs to the task, not the thread.
        tokio::task::yield_now().await;
        let mut metadata = tonic::metadata::MetadataMap::new();
        annotate_call(&mut metadata);
        metadata
    })
    .await;
    assert_eq!(
        metadata.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("req_0123456789abcdefABCDEF01")
    );
    assert_eq!(in_request(&id, request_id), Some(id.clone()));
}
