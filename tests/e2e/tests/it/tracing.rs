//! One trace from the edge: Envoy's OpenTelemetry tracer (`envoy/tracing.fragment.yaml`) and
//! translator-svc export to the same OTLP/HTTP collector (a receiver on loopback here), and the
//! translator's request span continues Envoy's trace and carries the request id the client saw.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use e2e::stack::{Stack, StackOptions};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

/// Every exported span with its resource's `service.name`.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

fn string(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> Option<String> {
    match value?.value.as_ref()? {
        Any::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

async fn receive(State(received): State<Received>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    let mut received = received.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| string(kv.value.as_ref()))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            received.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
        }
    }
    ""
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| string(kv.value.as_ref()))
}

#[tokio::test]
async fn envoy_and_translator_spans_form_one_trace() {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let Some(stack) = Stack::start(StackOptions::default().with_otel(&collector))
        .await
        .expect("start the gateway")
    else {
        return;
    };
    let response = stack
        .http()
        .post(format!("{}/v1/messages", stack.url))
        .header("x-api-key", &stack.master_key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({
            "model": "claude-sonnet-4-5-20250929",
            "max_tokens": 32,
            "stream": true,
            "messages": [{"role": "user", "content": "trace me"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    response.text().await.unwrap();

    // Envoy flushes its spans every few seconds; translator-svc every 100 ms here.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = received.lock().unwrap().clone();
        let translator = spans.iter().find(|(service, span)| {
            service == "translator-svc"
                && span.name == "POST /v1/messages"
                && attribute(span, "request_id").as_deref() == Some(request_id.as_str())
        });
        if let Some((_, request_span)) = translator {
            let envoy: Vec<&Span> = spans
                .iter()
                .filter(|(service, span)| {
                    service == "gateway-envoy" && span.trace_id == request_span.trace_id
                })
                .map(|(_, span)| span)
                .collect();
            if !envoy.is_empty() {
                assert!(
                    envoy
                        .iter()
                        .any(|span| span.span_id == request_span.parent_span_id),
                    "translator-svc's request span is not a child of an Envoy span: \
                     {request_span:?}\nEnvoy: {envoy:?}"
                );
                let stages: Vec<&str> = spans
                    .iter()
                    .filter(|(_, span)| span.trace_id == request_span.trace_id)
                    .map(|(_, span)| span.name.as_str())
                    .collect();
                for stage in ["plan", "bedrock", "stream"] {
                    assert!(stages.contains(&stage), "no {stage} span in {stages:?}");
                }
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no Envoy and translator-svc spans of {request_id} in one trace: {:#?}",
            spans
                .iter()
                .map(|(service, span)| (service, &span.name, hex(&span.trace_id)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
