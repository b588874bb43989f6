//! The gRPC face through a real tonic client on 127.0.0.1:0 (in-process server), plus the HTTP
//! health and metrics endpoints, with the in-memory store and with Redis.

use crate::support;

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use ratelimit_svc::config::Config;
use ratelimit_svc::limiter::ManualClock;
use ratelimit_svc::server::{self, Running};
use tonic::transport::Channel;

fn test_config(redis_url: Option<String>) -> Config {
    let mut config = Config::from_lookup(|_| None).expect("defaults");
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.http_listen = "127.0.0.1:0".parse().expect("addr");
    config.redis_url = redis_url;
    config.rules_path =
        Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/limits/gateway.yaml"));
    config
}

async fn start(
    redis_url: Option<String>,
) -> (Running, RateLimitServiceClient<Channel>, ManualClock) {
    let clock = ManualClock::starting_now();
    let running = server::start(&test_config(redis_url), Arc::new(clock.clone()))
        .await
        .expect("server starts");
    let client = RateLimitServiceClient::connect(format!("http://{}", running.grpc_addr))
        .await
        .expect("client connects");
    (running, client, clock)
}

fn descriptor(entries: &[(&str, &str)], hits: Option<u64>) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: (*k).to_owned(),
                value: (*v).to_owned(),
            })
            .collect(),
        limit: None,
        hits_addend: hits.map(|value| UInt64Value { value }),
        is_negative_hits: false,
    }
}

async fn call(
    client: &mut RateLimitServiceClient<Channel>,
    descriptors: Vec<RateLimitDescriptor>,
    hits_addend: u32,
) -> RateLimitResponse {
    client
        .should_rate_limit(RateLimitRequest {
            domain: "gateway".to_owned(),
            descriptors,
            hits_addend,
        })
        .await
        .expect("rpc ok")
        .into_inner()
}

fn header<'a>(response: &'a RateLimitResponse, name: &str) -> Option<&'a str> {
    response
        .response_headers_to_add
        .iter()
        .find(|h| h.key == name)
        .map(|h| h.value.as_str())
}

async fn per_key_rpm_and_tpm(redis_url: Option<String>) {
    let (running, mut client, _clock) = start(redis_url).await;
    let admission = |key: &str| {
        vec![
            descriptor(&[("key_id", key), ("rpm", "3")], None),
            descriptor(&[("key_id", key), ("tpm", "100")], Some(0)),
        ]
    };
    for expected_remaining in ["2", "1", "0"] {
        let ok = call(&mut client, admission("a"), 0).await;
        assert_eq!(ok.overall_code, Code::Ok as i32);
        assert_eq!(
            header(&ok, "anthropic-ratelimit-requests-remaining"),
            Some(expected_remaining)
        );
        assert_eq!(
            header(&ok, "anthropic-ratelimit-tokens-remaining"),
            Some("100")
        );
        assert!(ok.raw_body.is_empty());
    }
    let over = call(&mut client, admission("a"), 0).await;
    assert_eq!(over.overall_code, Code::OverLimit as i32);
    assert_eq!(over.statuses[0].code, Code::OverLimit as i32);
    assert_eq!(over.statuses[1].code, Code::Ok as i32);
    let limit = over.statuses[0].current_limit.as_ref().expect("limit");
    assert_eq!(limit.requests_per_unit, 3);
    assert_eq!(over.statuses[0].limit_remaining, 0);
    let reset = over.statuses[0].duration_until_reset.expect("reset");
    assert_eq!(reset.seconds, 60);
    let body: serde_json::Value = serde_json::from_slice(&over.raw_body).expect("json body");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(body["request_id"].as_str().expect("id").starts_with("req_"));
    assert_eq!(header(&over, "content-type"), Some("application/json"));
    assert_eq!(header(&over, "retry-after"), Some("20"));

    // The stream-done charge (hits_addend = tokens), then the next admission is refused.
    let charge = call(
        &mut client,
        vec![descriptor(&[("key_id", "b"), ("tpm", "100")], Some(250))],
        0,
    )
    .await;
    assert_eq!(charge.overall_code, Code::Ok as i32);
    let refused = call(&mut client, admission("b"), 0).await;
    assert_eq!(refused.overall_code, Code::OverLimit as i32);
    assert_eq!(refused.statuses[1].code, Code::OverLimit as i32);
    assert_eq!(
        header(&refused, "anthropic-ratelimit-tokens-remaining"),
        Some("0")
    );
    // Refused for tokens: its request unit was not consumed.
    assert_eq!(refused.statuses[0].limit_remaining, 3);
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn rls_with_memory_store() {
    per_key_rpm_and_tpm(None).await;
}

#[tokio::test]
async fn rls_with_redis_store() {
    let Some(redis) = support::RedisServer::start() else {
        return;
    };
    per_key_rpm_and_tpm(Some(redis.url())).await;
}

#[tokio::test]
async fn yaml_rules_request_hits_addend_and_limit_override() {
    let (running, mut client, clock) = start(None).await;
    // tier=free: 100/minute. Request-level hits_addend 60 twice: the second does not fit.
    let tier = || vec![descriptor(&[("tier", "free")], None)];
    assert_eq!(
        call(&mut client, tier(), 60).await.overall_code,
        Code::Ok as i32
    );
    let over = call(&mut client, tier(), 60).await;
    assert_eq!(over.overall_code, Code::OverLimit as i32);
    assert!(String::from_utf8_lossy(&over.raw_body).contains("free-tier"));
    assert_eq!(
        over.statuses[0]
            .current_limit
            .as_ref()
            .map(|l| l.name.as_str()),
        Some("free-tier")
    );
    clock.advance_ms(36_000);
    assert_eq!(
        call(&mut client, tier(), 60).await.overall_code,
        Code::Ok as i32
    );

    // An Envoy `limit` override: 1 per hour.
    let mut overridden = descriptor(&[("client", "x")], None);
    overridden.limit = Some(RateLimitOverride {
        requests_per_unit: 1,
        unit: 3,
    });
    let first = call(&mut client, vec![overridden.clone()], 0).await;
    assert_eq!(first.overall_code, Code::Ok as i32);
    assert_eq!(
        first.statuses[0].current_limit.as_ref().map(|l| l.unit),
        Some(3)
    );
    let second = call(&mut client, vec![overridden], 0).await;
    assert_eq!(second.overall_code, Code::OverLimit as i32);

    // Unknown descriptors are OK with no limit.
    let free = call(
        &mut client,
        vec![descriptor(&[("nothing", "here")], None)],
        0,
    )
    .await;
    assert_eq!(free.overall_code, Code::Ok as i32);
    assert!(free.statuses[0].current_limit.is_none());
    assert!(free.response_headers_to_add.is_empty());

    // An empty domain is a protocol error.
    let error = client
        .should_rate_limit(RateLimitRequest::default())
        .await
        .expect_err("empty domain");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn grpc_health_and_http_endpoints() {
    let (running, mut client, _clock) = start(None).await;
    call(
        &mut client,
        vec![descriptor(&[("key_id", "m"), ("rpm", "5")], None)],
        0,
    )
    .await;

    let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "envoy.service.ratelimit.v3.RateLimitService"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .expect("health")
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }

    let http = reqwest::Client::new();
    let base = format!("http://{}", running.http_addr);
    let health = http
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = http
        .get(format!("{base}/ready"))
        .send()
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["store"], "memory");
    assert_eq!(ready["store_up"], true);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for expected in [
        r#"ratelimit_requests_total{result="ok"} 1"#,
        r#"ratelimit_hits_total{kind="requests"} 1"#,
        "ratelimit_store_duration_seconds_count 1",
        "ratelimit_store_up 1",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected:?} in:\n{metrics}"
        );
    }
    running.shutdown().await.expect("clean shutdown");
}
