//! `/metrics` of ratelimit-svc after real RateLimitService calls: admitted, over the limit, token
//! charges, and a store that is down (fail-open). The exposition is checked against the reference
//! table in docs/observability.md (names and label names) and for the counts the calls produced.

#[path = "../../../tests/observability/catalogue.rs"]
mod catalogue;

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::google::protobuf::UInt64Value;
use ratelimit_svc::check::FailureMode;
use ratelimit_svc::config::Config;
use ratelimit_svc::limiter::ManualClock;
use ratelimit_svc::server::{self, Running};

async fn start(redis_url: Option<String>) -> Running {
    let mut config = Config::from_lookup(|_| None).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.http_listen = "127.0.0.1:0".parse().unwrap();
    config.redis_url = redis_url;
    config.failure_mode = FailureMode::Open;
    server::start(&config, Arc::new(ManualClock::starting_now()))
        .await
        .unwrap()
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

/// One ShouldRateLimit call with the gate's per-key descriptors; the overall code.
async fn check(running: &Running, key: &str, tokens: Option<u64>) -> i32 {
    let mut client = RateLimitServiceClient::connect(format!("http://{}", running.grpc_addr))
        .await
        .unwrap();
    let descriptors = match tokens {
        None => vec![descriptor(&[("key_id", key), ("rpm", "2")], None)],
        Some(tokens) => vec![descriptor(
            &[("key_id", key), ("tpm", "1000")],
            Some(tokens),
        )],
    };
    client
        .should_rate_limit(RateLimitRequest {
            domain: "gateway".to_owned(),
            descriptors,
            hits_addend: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .overall_code
}

async fn metrics(running: &Running) -> String {
    reqwest::get(format!("http://{}/metrics", running.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn decisions_store_latency_and_failures_are_exposed() {
    let running = start(None).await;
    for expected in [Code::Ok, Code::Ok, Code::OverLimit] {
        assert_eq!(check(&running, "key_a", None).await, expected as i32);
    }
    assert_eq!(check(&running, "key_a", Some(300)).await, Code::Ok as i32);
    let text = metrics(&running).await;
    let problems = catalogue::problems("ratelimit-svc", &text);
    assert!(problems.is_empty(), "{problems:#?}\n{text}");
    for (name, having, wanted) in [
        ("ratelimit_requests_total", vec![("result", "ok")], 3.0),
        (
            "ratelimit_requests_total",
            vec![("result", "over_limit")],
            1.0,
        ),
        (
            "ratelimit_descriptors_total",
            vec![("kind", "requests"), ("result", "over_limit")],
            1.0,
        ),
        (
            "ratelimit_descriptors_total",
            vec![("kind", "tokens"), ("result", "ok")],
            1.0,
        ),
        ("ratelimit_hits_total", vec![("kind", "requests")], 3.0),
        ("ratelimit_hits_total", vec![("kind", "tokens")], 300.0),
        ("ratelimit_store_duration_seconds_count", vec![], 4.0),
        ("ratelimit_store_errors_total", vec![], 0.0),
        ("ratelimit_store_up", vec![], 1.0),
    ] {
        assert_eq!(
            catalogue::value(&text, name, &having),
            wanted,
            "{name} {having:?}\n{text}"
        );
    }
    running.shutdown().await.unwrap();

    // Nothing listens on port 1: every store call fails and the request is admitted (fail-open).
    let down = start(Some("redis://127.0.0.1:1/".to_owned())).await;
    assert_eq!(check(&down, "key_b", None).await, Code::Ok as i32);
    let text = metrics(&down).await;
    for (name, having, wanted) in [
        (
            "ratelimit_requests_total",
            vec![("result", "failure_open")],
            1.0,
        ),
        ("ratelimit_store_errors_total", vec![], 1.0),
        ("ratelimit_store_up", vec![], 0.0),
    ] {
        assert_eq!(
            catalogue::value(&text, name, &having),
            wanted,
            "{name} {having:?}\n{text}"
        );
    }
    down.shutdown().await.unwrap();
}
