//! `/metrics` of translator-svc, in-process against the fake Bedrock: requests of every kind
//! (streamed, refused by Bedrock, invalid before a model is known, count_tokens, models, an
//! unknown path, Auth/Check over gRPC), then the exposition is read back and checked against the
//! reference table in docs/observability.md (names and label names) and for the exact counts
//! those requests must have produced.

#[path = "../../../tests/observability/catalogue.rs"]
mod catalogue;

use fake_bedrock::Scenario;
use gateway_proto::auth::v1::CheckRequest;
use gateway_proto::auth::v1::auth_client::AuthClient;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::Service;

const MODEL: &str = "claude-3-5-haiku-latest";

/// The status of a POST with a raw body (it may be invalid JSON), read to the end: a stream's
/// usage is recorded when it finishes.
async fn post(h: &Service, path: &str, body: String, key_id: Option<&str>) -> u16 {
    let mut request = h
        .request(Method::POST, path)
        .header("content-type", "application/json")
        .body(body);
    if let Some(key_id) = key_id {
        request = request.header("x-gw-key-id", key_id);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    response.bytes().await.unwrap();
    status
}

async fn get(h: &Service, path: &str) -> (u16, String) {
    let response = h.request(Method::GET, path).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn exposition(h: &Service) -> String {
    let (status, text) = get(h, "/metrics").await;
    assert_eq!(status, 200);
    text
}

fn messages(extra: Value) -> String {
    let mut body = json!({"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "measure me"}]});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body.to_string()
}

#[tokio::test]
async fn every_catalogued_metric_is_exposed_and_counts_what_happened() {
    let h = Service::start(&[]).await;
    let before = exposition(&h).await;
    let count = |text: &str, name: &str, having: &[(&str, &str)]| {
        catalogue::value(text, name, having) - catalogue::value(&before, name, having)
    };

    // A streamed answer, a Bedrock throttle, two requests refused before a model is known.
    h.fake.enqueue(Scenario::text("hello there"));
    assert_eq!(
        post(&h, "/v1/messages", messages(json!({"stream": true})), None).await,
        200
    );
    assert_eq!(
        post(
            &h,
            "/v1/messages",
            messages(json!({"messages": [{"role": "user", "content": "hi [[fake:throttle]]"}]})),
            None
        )
        .await,
        429
    );
    assert_eq!(
        post(
            &h,
            "/v1/messages",
            json!({"max_tokens": 5}).to_string(),
            None
        )
        .await,
        400
    );
    assert_eq!(
        post(&h, "/v1/messages", "{not json".into(), None).await,
        400
    );
    // count_tokens through Bedrock, the model list, a path that does not exist.
    h.fake.enqueue(Scenario {
        count_tokens: Some(42),
        ..Default::default()
    });
    let count_body = json!({"model": MODEL, "messages": [{"role": "user", "content": "count"}]});
    assert_eq!(
        post(
            &h,
            "/v1/messages/count_tokens",
            count_body.to_string(),
            None
        )
        .await,
        200
    );
    assert_eq!(get(&h, "/v1/models").await.0, 200);
    assert_eq!(get(&h, "/no/such/path").await.0, 404);

    // Auth/Check twice with one key (a miss, then a hit), once with an unknown key; then two
    // requests carrying the key id (its policy is looked up in the cache).
    let (key_id, secret) = h.create_key(&json!({"name": "metrics"})).await;
    let mut auth = AuthClient::connect(h.running.url()).await.unwrap();
    // Well-formed but unknown: the same shape with another last character.
    let last = if secret.ends_with('a') { "b" } else { "a" };
    let unknown = format!("{}{last}", &secret[..secret.len() - 1]);
    for key in [secret.as_str(), secret.as_str(), unknown.as_str()] {
        auth.check(CheckRequest {
            api_key: key.into(),
            path: "/v1/messages".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    for _ in 0..2 {
        h.fake.enqueue(Scenario::text("ok"));
        assert_eq!(
            post(&h, "/v1/messages", messages(json!({})), Some(&key_id)).await,
            200
        );
    }

    let after = exposition(&h).await;
    let problems = catalogue::problems("translator-svc", &after);
    assert!(problems.is_empty(), "{problems:#?}\n{after}");

    let requests = "translator_http_requests_total";
    let expect = [
        (
            requests,
            vec![
                ("route", "/v1/messages"),
                ("method", "POST"),
                ("status", "200"),
                ("model", MODEL),
                ("error_type", ""),
            ],
            3.0,
        ),
        (
            requests,
            vec![
                ("route", "/v1/messages"),
                ("status", "429"),
                ("model", MODEL),
                ("error_type", "rate_limit_error"),
            ],
            1.0,
        ),
        (
            requests,
            vec![
                ("route", "/v1/messages"),
                ("status", "400"),
                ("model", "unknown"),
                ("error_type", "invalid_request_error"),
            ],
            2.0,
        ),
        (
            requests,
            vec![
                ("route", "/v1/messages/count_tokens"),
                ("status", "200"),
                ("model", MODEL),
            ],
            1.0,
        ),
        (
            requests,
            vec![
                ("route", "/v1/models"),
                ("method", "GET"),
                ("status", "200"),
                ("model", ""),
            ],
            1.0,
        ),
        (
            requests,
            vec![
                ("route", "unmatched"),
                ("status", "404"),
                ("error_type", "not_found_error"),
            ],
            1.0,
        ),
        (
            "translator_bedrock_call_duration_seconds_count",
            vec![("operation", "invoke_stream"), ("outcome", "ok")],
            1.0,
        ),
        (
            "translator_bedrock_call_duration_seconds_count",
            vec![("operation", "invoke"), ("outcome", "ThrottlingException")],
            1.0,
        ),
        (
            "translator_bedrock_call_duration_seconds_count",
            vec![("operation", "count_tokens"), ("outcome", "ok")],
            1.0,
        ),
        (
            "translator_bedrock_errors_total",
            vec![
                ("operation", "invoke"),
                ("exception", "ThrottlingException"),
            ],
            1.0,
        ),
        (
            "translator_time_to_first_token_seconds_count",
            vec![("model", MODEL), ("api", "invoke")],
            1.0,
        ),
        (
            "translator_request_duration_seconds_count",
            vec![("model", MODEL), ("stream", "true"), ("outcome", "ok")],
            1.0,
        ),
        (
            "translator_auth_cache_lookups_total",
            vec![("cache", "verdict"), ("result", "miss")],
            2.0,
        ),
        (
            "translator_auth_cache_lookups_total",
            vec![("cache", "verdict"), ("result", "hit")],
            1.0,
        ),
        // The allowed Auth/Check cached the key's policy too: both requests hit it.
        (
            "translator_auth_cache_lookups_total",
            vec![("cache", "policy"), ("result", "miss")],
            0.0,
        ),
        (
            "translator_auth_cache_lookups_total",
            vec![("cache", "policy"), ("result", "hit")],
            2.0,
        ),
        (
            "translator_auth_checks_total",
            vec![("result", "allowed")],
            2.0,
        ),
        (
            "translator_auth_checks_total",
            vec![("result", "invalid_key")],
            1.0,
        ),
        (
            "translator_errors_total",
            vec![("type", "rate_limit_error")],
            1.0,
        ),
    ];
    for (name, having, wanted) in expect {
        assert_eq!(
            count(&after, name, &having),
            wanted,
            "{name} {having:?}\n{after}"
        );
    }
    let output = count(
        &after,
        "translator_tokens_total",
        &[("model", MODEL), ("kind", "output")],
    );
    assert!(output > 0.0, "output tokens counted\n{after}");
    for kind in ["input", "cache_read", "cache_write"] {
        assert!(
            catalogue::parse(&after)
                .iter()
                .any(|s| s.name == "translator_tokens_total"
                    && s.labels.get("kind").map(String::as_str) == Some(kind)),
            "tokens of kind {kind}\n{after}"
        );
    }
}
