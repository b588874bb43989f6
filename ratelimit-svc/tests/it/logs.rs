//! The built binary's logs: flat JSON lines, and the lines of a check carry the gateway request
//! id that Envoy sends as `x-request-id` metadata (`envoy/ratelimit.fragment.yaml`).

use std::process::Stdio;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr};
use tonic::transport::Channel;

const REQUEST_ID: &str = "req_RateLimitLogs0000000001";

#[tokio::test]
async fn the_lines_of_a_check_carry_the_callers_request_id() {
    let (_child, mut lines, mut client) = start(&[(
        "LOG_LEVEL",
        "debug,h2=info,tower=info,hyper=info,hyper_util=info",
    )])
    .await;
    let check = || check_request("1");
    let first = client
        .should_rate_limit(check())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.overall_code, Code::Ok as i32);
    let second = client
        .should_rate_limit(check())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.overall_code, Code::OverLimit as i32);

    // The over-limit decision is logged (debug) inside the call's span.
    let over = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("a log line");
            let json: Value = serde_json::from_str(&line).expect("a JSON line");
            assert!(
                json.as_object().unwrap().values().all(|v| !v.is_object()),
                "not flat: {line}"
            );
            if json["message"] == "descriptor over limit" {
                break json;
            }
        }
    })
    .await
    .expect("no over-limit line");
    assert_eq!(over["request_id"], REQUEST_ID, "{over}");
    assert_eq!(over["span"], "grpc", "{over}");
    assert_eq!(over["level"], "DEBUG", "{over}");
    assert!(over["timestamp"].is_string() && over["target"].is_string());
}

/// At the default level, without trace export, calls have no span (it would cost about a fifth
/// of a check for lines nobody sees); the warning a call can still write names its request id.
#[tokio::test]
async fn without_spans_a_calls_warning_still_carries_the_request_id() {
    let (_child, mut lines, mut client) = start(&[]).await;
    let request = check_request("lots");
    let answer = client
        .should_rate_limit(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.overall_code,
        Code::Ok as i32,
        "an invalid limit admits"
    );

    let warning = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("a log line");
            let json: Value = serde_json::from_str(&line).expect("a JSON line");
            if json["level"] == "WARN" {
                break json;
            }
        }
    })
    .await
    .expect("no warning line");
    assert_eq!(
        warning["message"], "ignoring a descriptor with an invalid per-key limit",
        "{warning}"
    );
    assert_eq!(warning["request_id"], REQUEST_ID, "{warning}");
    assert!(
        warning.get("span").is_none(),
        "no call span at info: {warning}"
    );
}

#[tokio::test]
async fn a_bad_log_level_exits_2_naming_it() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ratelimit-svc"))
        .env_clear()
        .env("LOG_LEVEL", "loud")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LOG_LEVEL"), "{stderr}");
}

/// The built binary with JSON logs on ephemeral ports and the extra settings; its stderr lines
/// (read up to the one naming the gRPC address) and a client connected there.
async fn start(
    extra: &[(&str, &str)],
) -> (
    Child,
    Lines<BufReader<ChildStderr>>,
    RateLimitServiceClient<Channel>,
) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ratelimit-svc"))
        .env_clear()
        .env("RATELIMIT_LISTEN", "127.0.0.1:0")
        .env("RATELIMIT_HTTP_LISTEN", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .envs(extra.iter().copied())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let grpc_addr = loop {
        let line = lines.next_line().await.unwrap().expect("a log line");
        let json: Value = serde_json::from_str(&line).expect("a JSON line");
        if let Some(addr) = json["grpc_addr"].as_str() {
            break addr.to_owned();
        }
    };
    let client = RateLimitServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .unwrap();
    (child, lines, client)
}

/// A check of key `logs` with the given `rpm` entry, under the request id the lines must carry.
fn check_request(rpm: &str) -> tonic::Request<RateLimitRequest> {
    let mut request = tonic::Request::new(RateLimitRequest {
        domain: "gateway".to_owned(),
        descriptors: vec![RateLimitDescriptor {
            entries: [("key_id", "logs"), ("rpm", rpm)]
                .into_iter()
                .map(|(key, value)| Entry {
                    key: key.to_owned(),
                    value: value.to_owned(),
                })
                .collect(),
            ..Default::default()
        }],
        hits_addend: 0,
    });
    request
        .metadata_mut()
        .insert("x-request-id", REQUEST_ID.parse().unwrap());
    request
}
