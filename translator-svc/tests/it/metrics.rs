//! `/metrics` of translator-svc, in-process against the fake Bedrock: requests of every kind
//! (streamed, refused by Bedrock, invalid before a model is known, count_tokens, models, an
//! unknown path, Auth/Check over gRPC), then the exposition is read back and checked against the
//! reference table in docs/observability.md (names and label names) and for the exact counts
//! those requests must have produced.

#[path = "../../../tests/observability/catalogue.rs"]
mod catalogue;

use std::collections::HashMap;

use aws_credential_types::Credentials;
use fake_bedrock::{FakeBedrock, Scenario};
use gateway_proto::auth::v1::CheckRequest;
use gateway_proto::auth::v1::auth_client::AuthClient;
use serde_json::{Value, json};
use translator_svc::app;
use translator_svc::bedrock::{self, BedrockSettings};
use translator_svc::config::Config;

const SECRET: &str = "test-internal-secret-0123456789";
const MASTER: &str = "sk-gw-metrics-test-master-key";
const MODEL: &str = "claude-3-5-haiku-latest";

struct Harness {
    fake: FakeBedrock,
    service: app::Running,
    http: reqwest::Client,
}

async fn start() -> Harness {
    let fake = FakeBedrock::start().await.unwrap();
    let env: HashMap<&str, &str> = HashMap::from([
        ("GATEWAY_INTERNAL_SECRET", SECRET),
        ("TRANSLATOR_LISTEN", "127.0.0.1:0"),
        ("LOG_FORMAT", "text"),
        ("KEY_STORE", "memory"),
        ("MASTER_API_KEY", MASTER),
    ]);
    let config = Config::from_source(&env).unwrap();
    let mut settings = BedrockSettings::new("us-east-1".to_string());
    settings.endpoint_url = Some(fake.url());
    let client = bedrock::connect_with_credentials(&settings, Credentials::for_tests()).unwrap();
    let service = app::spawn(config, client).await.unwrap();
    Harness {
        fake,
        service,
        http: reqwest::Client::new(),
    }
}

impl Harness {
    async fn post(&self, path: &str, body: String, key_id: Option<&str>) -> u16 {
        let mut request = self
            .http
            .post(format!("{}{path}", self.service.url()))
            .header("x-gw-internal-secret", SECRET)
            .header("content-type", "application/json")
            .body(body);
        if let Some(key_id) = key_id {
            request = request.header("x-gw-key-id", key_id);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        // Read to the end: a stream's usage is recorded when it finishes.
        response.bytes().await.unwrap();
        status
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.service.url()))
            .header("x-gw-internal-secret", SECRET)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn metrics(&self) -> String {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200);
        text
    }

    async fn create_key(&self) -> (String, String) {
        let created: Value = self
            .http
            .post(format!("{}/admin/v1/keys", self.service.url()))
            .header("x-api-key", MASTER)
            .json(&json!({"name": "metrics"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            created["key"]["id"].as_str().unwrap().to_string(),
            created["secret"].as_str().unwrap().to_string(),
        )
    }
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
    let h = start().await;
    let before = h.metrics().await;
    let count = |text: &str, name: &str, having: &[(&str, &str)]| {
        catalogue::value(text, name, having) - catalogue::value(&before, name, having)
    };

    // A streamed answer, a Bedrock throttle, two requests refused before a model is known.
    h.fake.enqueue(Scenario::text("hello there"));
    assert_eq!(
        h.post("/v1/messages", messages(json!({"stream": true})), None)
            .await,
        200
    );
    assert_eq!(
        h.post(
            "/v1/messages",
            messages(json!({"messages": [{"role": "user", "content": "hi [[fake:throttle]]"}]})),
            None
        )
        .await,
        429
    );
    assert_eq!(
        h.post("/v1/messages", json!({"max_tokens": 5}).to_string(), None)
            .await,
        400
    );
    assert_eq!(h.post("/v1/messages", "{not json".into(), None).await, 400);
    // count_tokens through Bedrock, the model list, a path that does not exist.
    h.fake.enqueue(Scenario {
        count_tokens: Some(42),
        ..Default::default()
    });
    let count_body = json!({"model": MODEL, "messages": [{"role": "user", "content": "count"}]});
    assert_eq!(
        h.post("/v1/messages/count_tokens", count_body.to_string(), None)
            .await,
        200
    );
    assert_eq!(h.get("/v1/models").await.0, 200);
    assert_eq!(h.get("/no/such/path").await.0, 404);

    // Auth/Check twice with one key (a miss, then a hit), once with an unknown key; then two
    // requests carrying the key id (its policy is looked up in the cache).
    let (key_id, secret) = h.create_key().await;
    let mut auth = AuthClient::connect(h.service.url()).await.unwrap();
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
            h.post("/v1/messages", messages(json!({})), Some(&key_id))
                .await,
            200
        );
    }

    let after = h.metrics().await;
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
