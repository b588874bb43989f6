//! OpenTelemetry export from the built binary: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, each
//! gRPC call is a span that continues the caller's W3C trace (Envoy's tracer sends
//! `traceparent`), carries the gateway request id, and is flushed when the service stops.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";
const REQUEST_ID: &str = "req_RateLimitOtel000000001";

type Received = Arc<Mutex<Vec<Span>>>;

async fn receive(State(received): State<Received>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    received.lock().unwrap().extend(
        request
            .resource_spans
            .into_iter()
            .flat_map(|rs| rs.scope_spans)
            .flat_map(|ss| ss.spans),
    );
    ""
}

fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn calls_are_spans_in_the_callers_trace() {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ratelimit-svc"))
        .env_clear()
        .env("RATELIMIT_LISTEN", "127.0.0.1:0")
        .env("RATELIMIT_HTTP_LISTEN", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let grpc_addr = loop {
        let line = lines.next_line().await.unwrap().expect("a log line");
        let json: Value = serde_json::from_str(&line).expect("a JSON line");
        if let Some(addr) = json["grpc_addr"].as_str() {
            break addr.to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut client = RateLimitServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .unwrap();
    let mut request = tonic::Request::new(RateLimitRequest {
        domain: "gateway".to_owned(),
        descriptors: Vec::new(),
        hits_addend: 0,
    });
    let metadata = request.metadata_mut();
    metadata.insert("x-request-id", REQUEST_ID.parse().unwrap());
    metadata.insert(
        "traceparent",
        format!("00-{TRACE_ID}-{PARENT}-01").parse().unwrap(),
    );
    client.should_rate_limit(request).await.unwrap();

    let pid = child.id().unwrap().to_string();
    tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("ratelimit-svc did not stop")
        .unwrap();
    assert!(status.success(), "{status}");

    let spans = received.lock().unwrap().clone();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let call = spans
        .iter()
        .find(|s| s.name == "envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit")
        .unwrap_or_else(|| panic!("no span for the call: {names:?}"));
    assert_eq!(call.trace_id, bytes(TRACE_ID));
    assert_eq!(call.parent_span_id, bytes(PARENT));
    let request_id = call
        .attributes
        .iter()
        .find(|kv| kv.key == "request_id")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.as_str()),
            _ => None,
        });
    assert_eq!(request_id, Some(REQUEST_ID));
}
