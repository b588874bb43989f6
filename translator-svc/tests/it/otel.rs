//! OpenTelemetry export from the translator-svc binary: with `OTEL_EXPORTER_OTLP_ENDPOINT` set it
//! sends its spans over OTLP/HTTP (protobuf) to a collector, here a small receiver on loopback.
//! The request's spans continue the caller's W3C trace and carry the gateway request id; the
//! spans still queued at shutdown are flushed.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use fake_bedrock::FakeBedrock;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::json;

use crate::support::{Binary, SECRET};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";
const REQUEST_ID: &str = "req_OtelTest0123456789abcdEF";

type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

async fn receive(State(received): State<Received>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    received.lock().unwrap().push(request);
    ""
}

/// A collector's OTLP/HTTP traces endpoint on loopback.
async fn collector() -> (String, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .and_then(|v| match v {
            Any::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

#[tokio::test]
async fn spans_continue_the_callers_trace_and_carry_the_request_id() {
    let fake = FakeBedrock::start().await.unwrap();
    let (endpoint, received) = collector().await;
    let service = Binary::spawn(
        &fake,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SERVICE_NAME", "translator-otel-test"),
        ],
    )
    .await;

    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", service.url))
        .header("x-gw-internal-secret", SECRET)
        .header("x-gw-request-id", REQUEST_ID)
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01"))
        .json(&json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 32,
            "stream": true,
            "messages": [{"role": "user", "content": "hello"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["request-id"], REQUEST_ID);
    response.text().await.unwrap();

    // Probes come every few seconds: they are not traced.
    let health = reqwest::get(format!("{}/health", service.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // Spans are batched; the ones still queued must be flushed when the service stops.
    service.stop().await;

    let exports = received.lock().unwrap().clone();
    let service_names: Vec<String> = exports
        .iter()
        .flat_map(|e| &e.resource_spans)
        .filter_map(|rs| rs.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .filter(|kv| kv.key == "service.name")
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert!(
        !service_names.is_empty() && service_names.iter().all(|n| n == "translator-otel-test"),
        "{service_names:?}"
    );
    let spans: Vec<Span> = exports
        .into_iter()
        .flat_map(|e| e.resource_spans)
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let trace_id = hex::decode(TRACE_ID).unwrap();
    let in_trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == trace_id).collect();

    assert!(!names.contains(&"GET /health"), "{names:?}");
    let request = in_trace
        .iter()
        .find(|s| s.name == "POST /v1/messages")
        .unwrap_or_else(|| panic!("no request span in the caller's trace: {names:?}"));
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(request.parent_span_id, hex::decode(PARENT_SPAN_ID).unwrap());
    assert_eq!(attribute(request, "request_id"), Some(REQUEST_ID));
    assert_eq!(attribute(request, "model"), Some("claude-sonnet-4-5"));
    for stage in ["plan", "bedrock", "stream"] {
        let span = in_trace
            .iter()
            .find(|s| s.name == stage)
            .unwrap_or_else(|| panic!("no {stage} span in the caller's trace: {names:?}"));
        assert_eq!(
            span.parent_span_id, request.span_id,
            "{stage} is a child of the request span"
        );
    }
    let bedrock = in_trace.iter().find(|s| s.name == "bedrock").unwrap();
    assert_eq!(bedrock.kind, SpanKind::Client as i32);
    assert!(
        attribute(bedrock, "model_id").is_some_and(|id| id.contains("claude-sonnet-4-5")),
        "{bedrock:?}"
    );
    // The usage write runs after the request, in the sink's own task: found by the request id.
    let write = spans
        .iter()
        .find(|s| s.name == "usage_write")
        .unwrap_or_else(|| panic!("no usage_write span: {names:?}"));
    assert_eq!(attribute(write, "request_id"), Some(REQUEST_ID));
}
