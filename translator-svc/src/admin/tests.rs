//! Every admin route through `tower::ServiceExt::oneshot`: auth, lifecycle, bad input, usage.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::keys::KeysConfig;
use crate::keys::testing::{Harness, MASTER, harness, harness_with, usage_record};
use crate::usage::{Outcome, UsageSink};

async fn call(
    h: &Harness,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_raw(
        h,
        method,
        uri,
        key.map(|k| ("x-api-key", k.to_string())),
        body.map(|b| b.to_string()),
    )
    .await
}

async fn call_raw(
    h: &Harness,
    method: Method,
    uri: &str,
    auth: Option<(&str, String)>,
    body: Option<String>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    let request = request
        .header("content-type", "application/json")
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .unwrap();
    let response = h.wired.admin_router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let has_request_id = response.headers().contains_key("request-id");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        assert!(has_request_id, "error responses carry request-id");
        assert_eq!(value["type"], "error", "{value}");
        assert!(value["request_id"].as_str().unwrap().starts_with("req_"));
    }
    (status, value)
}

async fn admin(h: &Harness, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    call(h, method, uri, Some(MASTER), body).await
}

fn error_type(body: &Value) -> &str {
    body["error"]["type"].as_str().unwrap_or("")
}

#[tokio::test]
async fn every_route_requires_the_master_key() {
    let h = harness().await;
    for (method, uri) in [
        (Method::GET, "/admin/v1/keys"),
        (Method::POST, "/admin/v1/keys"),
        (Method::DELETE, "/admin/v1/keys/key_x"),
        (Method::GET, "/admin/v1/usage"),
        (Method::PUT, "/admin/v1/pricing/m"),
        (Method::GET, "/admin/v1/models"),
        (Method::GET, "/admin/v1/nothing-here"),
    ] {
        let (status, body) = call(&h, method.clone(), uri, None, None).await;
        assert_eq!(
            (status, error_type(&body)),
            (StatusCode::UNAUTHORIZED, "authentication_error"),
            "{uri}"
        );
        let (status, body) = call(&h, method, uri, Some("sk-gw-wrong"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["message"], "invalid master key");
    }
    // A gateway key is not an admin key.
    let (_, secret) = h.create_key(crate::keys::testing::settings("user")).await;
    assert_eq!(
        call(&h, Method::GET, "/admin/v1/keys", Some(&secret), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // Both header styles work.
    let bearer = Some(("authorization", format!("Bearer {MASTER}")));
    assert_eq!(
        call_raw(&h, Method::GET, "/admin/v1/keys", bearer, None)
            .await
            .0,
        StatusCode::OK
    );
    let basic = Some(("authorization", format!("Basic {MASTER}")));
    assert_eq!(
        call_raw(&h, Method::GET, "/admin/v1/keys", basic, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    let mut config = KeysConfig::for_tests(MASTER);
    config.master_api_key = None;
    let closed = harness_with(config).await;
    let (status, body) = call(&closed, Method::GET, "/admin/v1/keys", Some(MASTER), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MASTER_API_KEY")
    );
}

#[tokio::test]
async fn keys_crud_through_the_admin_api() {
    let h = harness().await;
    let create = json!({"name": "ci", "owner": "team-a", "rpm": 60, "tpm": 90000, "tier": "flex", "budget": 50,
        "allowed_models": ["claude-sonnet-4-5"], "cache_ttl": "1h"});
    let (status, created) = admin(&h, Method::POST, "/admin/v1/keys", Some(create)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    let key = &created["key"];
    let id = key["id"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("sk-gw-") && secret.starts_with(key["key_prefix"].as_str().unwrap())
    );
    assert_eq!(key["status"], "active");
    assert_eq!(
        (
            key["requests_per_minute"].as_u64(),
            key["tokens_per_minute"].as_u64()
        ),
        (Some(60), Some(90000))
    );
    assert_eq!(
        (key["tier"].as_str(), key["monthly_budget_usd"].as_f64()),
        (Some("flex"), Some(50.0))
    );
    assert_eq!(key["cache_ttl"], "1h");
    assert!(key.get("key_hash").is_none(), "the hash is not shown");
    assert!(!created["key"].to_string().contains(&secret[10..]));

    let (status, listed) = admin(&h, Method::GET, "/admin/v1/keys", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(&secret[10..]),
        "list never shows the secret"
    );

    let (status, shown) = admin(&h, Method::GET, &format!("/admin/v1/keys/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["usage"]["month"], "2026-11");
    assert_eq!(shown["usage"]["budget_remaining_usd"], 50.0);

    let patch = json!({"rpm": 120, "tier": "priority", "budget": null, "owner": null});
    let (status, patched) = admin(
        &h,
        Method::PATCH,
        &format!("/admin/v1/keys/{id}"),
        Some(patch),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["key"]["requests_per_minute"], 120);
    assert_eq!(patched["key"]["tokens_per_minute"], 90000);
    assert_eq!(patched["key"]["tier"], "priority");
    assert_eq!(patched["key"]["monthly_budget_usd"], Value::Null);
    assert_eq!(patched["key"]["owner"], Value::Null);
    assert_eq!(patched["key"]["name"], "ci");

    let verify = |secret: String| {
        let v = h.wired.verifier.clone();
        async move { v.check(&secret).await.unwrap() }
    };
    let (status, disabled) = admin(
        &h,
        Method::POST,
        &format!("/admin/v1/keys/{id}/disable"),
        None,
    )
    .await;
    assert_eq!(
        (status, disabled["key"]["status"].as_str()),
        (StatusCode::OK, Some("disabled"))
    );
    assert!(matches!(
        verify(secret.clone()).await,
        crate::auth::Verdict::Denied(_)
    ));
    let (status, enabled) = admin(
        &h,
        Method::POST,
        &format!("/admin/v1/keys/{id}/enable"),
        None,
    )
    .await;
    assert_eq!(
        (status, enabled["key"]["status"].as_str()),
        (StatusCode::OK, Some("active"))
    );
    assert!(matches!(
        verify(secret.clone()).await,
        crate::auth::Verdict::Allowed(_)
    ));

    let (status, rotated) = admin(
        &h,
        Method::POST,
        &format!("/admin/v1/keys/{id}/rotate"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    assert!(matches!(
        verify(secret.clone()).await,
        crate::auth::Verdict::Denied(_)
    ));
    assert!(matches!(
        verify(new_secret.clone()).await,
        crate::auth::Verdict::Allowed(_)
    ));

    let (status, deleted) = admin(&h, Method::DELETE, &format!("/admin/v1/keys/{id}"), None).await;
    assert_eq!(
        (status, deleted["deleted"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    assert!(matches!(
        verify(new_secret).await,
        crate::auth::Verdict::Denied(_)
    ));
    for (method, suffix) in [
        (Method::GET, ""),
        (Method::DELETE, ""),
        (Method::PATCH, ""),
        (Method::POST, "/disable"),
        (Method::POST, "/enable"),
        (Method::POST, "/rotate"),
        (Method::GET, "/requests"),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"rpm": 1}));
        let (status, body) = admin(&h, method, &format!("/admin/v1/keys/{id}{suffix}"), body).await;
        assert_eq!(
            (status, error_type(&body)),
            (StatusCode::NOT_FOUND, "not_found_error"),
            "{suffix}"
        );
    }
}

#[tokio::test]
async fn bad_input_is_a_400_in_the_anthropic_shape() {
    let h = harness().await;
    let (_, created) = admin(
        &h,
        Method::POST,
        "/admin/v1/keys",
        Some(json!({"name": "x"})),
    )
    .await;
    let id = created["key"]["id"].as_str().unwrap().to_string();
    let cases: Vec<(Method, String, Option<String>, &str)> = vec![
        (
            Method::POST,
            "/admin/v1/keys".into(),
            None,
            "a JSON request body is required",
        ),
        (
            Method::POST,
            "/admin/v1/keys".into(),
            Some("{not json".into()),
            "invalid request body",
        ),
        (
            Method::POST,
            "/admin/v1/keys".into(),
            Some("{}".into()),
            "missing field `name`",
        ),
        (
            Method::POST,
            "/admin/v1/keys".into(),
            Some(r#"{"name":"x","colour":1}"#.into()),
            "unknown field `colour`",
        ),
        (
            Method::POST,
            "/admin/v1/keys".into(),
            Some(r#"{"name":"x","tier":"turbo"}"#.into()),
            "unknown variant `turbo`",
        ),
        (
            Method::POST,
            "/admin/v1/keys".into(),
            Some(r#"{"name":"x","budget":-5}"#.into()),
            "monthly_budget_usd: must be a positive",
        ),
        (
            Method::POST,
            "/admin/v1/keys".into(),
            Some(r#"{"name":"x","rpm":-1}"#.into()),
            "invalid request body",
        ),
        (
            Method::POST,
            "/admin/v1/keys".into(),
            Some(r#"{"name":"  "}"#.into()),
            "name: must be 1 to 128",
        ),
        (
            Method::POST,
            "/admin/v1/keys".into(),
            Some(r#"{"name":"x","allowed_models":[]}"#.into()),
            "allowed_models",
        ),
        (
            Method::POST,
            "/admin/v1/keys".into(),
            Some(r#"{"name":"x","cache_ttl":"2h"}"#.into()),
            "unknown variant `2h`",
        ),
        (
            Method::PATCH,
            format!("/admin/v1/keys/{id}"),
            Some(r#"{"budget":0}"#.into()),
            "monthly_budget_usd",
        ),
        (
            Method::PUT,
            "/admin/v1/pricing/m".into(),
            Some(r#"{"input":-1,"output":1}"#.into()),
            "input: must be",
        ),
        (
            Method::PUT,
            "/admin/v1/pricing/m".into(),
            Some(r#"{"input":1}"#.into()),
            "missing field `output`",
        ),
        (
            Method::PUT,
            "/admin/v1/models/m".into(),
            Some(r#"[1]"#.into()),
            "must be a JSON object",
        ),
        (
            Method::PUT,
            "/admin/v1/models/m".into(),
            Some(r#"{"key":"other","bedrock_id":"b"}"#.into()),
            "the name in the path",
        ),
        (
            Method::PUT,
            "/admin/v1/models/m".into(),
            Some(r#"{"bedrock_id":"b","bogus":true}"#.into()),
            "unknown field `bogus`",
        ),
        (
            Method::GET,
            "/admin/v1/usage?from=2026-13-01".into(),
            None,
            "from: expected a date",
        ),
        (
            Method::GET,
            "/admin/v1/usage?from=2026-11-10&to=2026-11-01".into(),
            None,
            "to must be on or after from",
        ),
        (
            Method::GET,
            "/admin/v1/usage?group_by=colour".into(),
            None,
            "group_by",
        ),
        (
            Method::GET,
            format!("/admin/v1/keys/{id}/requests?limit=0"),
            None,
            "limit",
        ),
    ];
    for (method, uri, body, expected) in cases {
        let auth = Some(("x-api-key", MASTER.to_string()));
        let (status, response) = call_raw(&h, method.clone(), &uri, auth, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {uri} {body:?}: {response}"
        );
        assert_eq!(error_type(&response), "invalid_request_error");
        let message = response["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{method} {uri}: {message:?} lacks {expected:?}"
        );
    }
    let (status, body) = admin(&h, Method::GET, "/admin/v1/nothing", None).await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::NOT_FOUND, "not_found_error")
    );
    let (status, body) = admin(&h, Method::PUT, "/admin/v1/keys", None).await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error")
    );
}

#[tokio::test]
async fn pricing_is_editable_and_used_for_cost() {
    let h = harness().await;
    let (status, prices) = admin(&h, Method::GET, "/admin/v1/pricing", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        prices["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["source"] == "builtin")
    );
    assert_eq!(prices["tier_multipliers"]["flex"], 0.5);

    let (status, set) = admin(
        &h,
        Method::PUT,
        "/admin/v1/pricing/qwen3",
        Some(json!({"input": 0.2, "output": 0.6})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(
        (set["model"].as_str(), set["cache_read"].as_f64()),
        (Some("qwen3"), Some(0.02))
    );
    let (_, prices) = admin(&h, Method::GET, "/admin/v1/pricing", None).await;
    assert_eq!(prices["data"][0]["model"], "qwen3");
    assert_eq!(prices["data"][0]["source"], "table");

    let mut record = usage_record("key_p", "req_p", 1_000_000, 1_000_000, Outcome::Ok);
    record.requested_model = "qwen3".into();
    record.resolved_model = "qwen.qwen3-32b-v1:0".into();
    h.wired.usage_sink.record(record);
    h.wired.usage_sink.flush().await;
    let (_, usage) = admin(&h, Method::GET, "/admin/v1/usage?group_by=model", None).await;
    assert_eq!(usage["totals"]["cost_nanos"], 800_000_000);

    let (status, _) = admin(&h, Method::DELETE, "/admin/v1/pricing/qwen3", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = admin(&h, Method::DELETE, "/admin/v1/pricing/qwen3", None).await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::NOT_FOUND, "not_found_error")
    );
    assert_eq!(h.wired.prices.lookup("qwen.qwen3-32b-v1:0", "qwen3"), None);
}

#[tokio::test]
async fn model_mapping_is_editable_and_feeds_the_relay() {
    let h = harness().await;
    let entry = json!({"bedrock_id": "qwen.qwen3-coder-30b-a3b-v1:0", "display_name": "Coder"});
    let (status, put) = admin(
        &h,
        Method::PUT,
        "/admin/v1/models/claude-coder",
        Some(entry),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["entry"]["key"], "claude-coder");
    let (_, listed) = admin(&h, Method::GET, "/admin/v1/models", None).await;
    assert_eq!(listed["data"][0]["key"], "claude-coder");
    let overrides = h.wired.model_source.model_overrides().await;
    assert_eq!(overrides.len(), 1);
    assert_eq!(
        (overrides[0].key.as_str(), overrides[0].bedrock_id.as_str()),
        ("claude-coder", "qwen.qwen3-coder-30b-a3b-v1:0")
    );

    let (status, _) = admin(&h, Method::DELETE, "/admin/v1/models/claude-coder", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.wired.model_source.model_overrides().await.is_empty());
    let (status, _) = admin(&h, Method::DELETE, "/admin/v1/models/claude-coder", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn usage_per_key_model_and_day_with_totals() {
    let h = harness().await;
    let (a, _) = h.create_key(crate::keys::testing::settings("a")).await;
    let (b, _) = h.create_key(crate::keys::testing::settings("b")).await;
    let sink = &h.wired.usage_sink;
    sink.record(usage_record(&a.id, "req_1", 1000, 100, Outcome::Ok));
    let mut haiku = usage_record(&a.id, "req_2", 2000, 200, Outcome::ClientDisconnected);
    haiku.requested_model = "claude-haiku-4-5".into();
    haiku.resolved_model = "us.anthropic.claude-haiku-4-5-20251001-v1:0".into();
    sink.record(haiku);
    sink.flush().await;
    h.clock.advance(std::time::Duration::from_secs(86_400));
    sink.record(usage_record(&b.id, "req_3", 3000, 300, Outcome::Ok));
    sink.flush().await;

    let (status, by_key) = admin(&h, Method::GET, "/admin/v1/usage", None).await;
    assert_eq!(status, StatusCode::OK, "{by_key}");
    assert_eq!(
        (by_key["from"].as_str(), by_key["to"].as_str()),
        (Some("2026-11-01"), Some("2026-11-26"))
    );
    let rows = by_key["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let row_a = rows.iter().find(|r| r["key_id"] == a.id.as_str()).unwrap();
    assert_eq!(
        (row_a["requests"].as_u64(), row_a["input_tokens"].as_u64()),
        (Some(2), Some(3000))
    );
    // Sonnet: 1000*3000 + 100*15000; Haiku: 2000*1000 + 200*5000 (nano-USD).
    assert_eq!(row_a["cost_nanos"], 4_500_000 + 3_000_000);
    assert_eq!(by_key["totals"]["requests"], 3);
    assert_eq!(by_key["totals"]["output_tokens"], 600);

    let (_, by_model) = admin(&h, Method::GET, "/admin/v1/usage?group_by=model", None).await;
    let models: Vec<_> = by_model["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["model"].clone(), r["requests"].clone()))
        .collect();
    assert_eq!(
        models,
        vec![
            (json!("claude-haiku-4-5"), json!(1)),
            (json!("claude-sonnet-4-5"), json!(2))
        ]
    );

    let (_, by_day) = admin(
        &h,
        Method::GET,
        "/admin/v1/usage?group_by=day&from=2026-11-25&to=2026-11-26",
        None,
    )
    .await;
    let days: Vec<_> = by_day["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["day"].clone(), r["requests"].clone()))
        .collect();
    assert_eq!(
        days,
        vec![
            (json!("2026-11-25"), json!(2)),
            (json!("2026-11-26"), json!(1))
        ]
    );

    let (_, one_key) = admin(
        &h,
        Method::GET,
        &format!("/admin/v1/usage?key_id={}&model=claude-haiku-4-5", a.id),
        None,
    )
    .await;
    assert_eq!(one_key["totals"]["requests"], 1);
    let (_, none) = admin(
        &h,
        Method::GET,
        "/admin/v1/usage?from=2026-10-01&to=2026-10-31",
        None,
    )
    .await;
    assert_eq!(
        (
            none["data"].as_array().unwrap().len(),
            none["totals"]["requests"].as_u64()
        ),
        (0, Some(0))
    );

    let (status, requests) = admin(
        &h,
        Method::GET,
        &format!("/admin/v1/keys/{}/requests", a.id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let items = requests["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["status"], "client_disconnected", "newest first");
    assert_eq!(items[0]["requested_model"], "claude-haiku-4-5");
    assert_eq!(items[1]["latency_ms"], 120);
    let (_, limited) = admin(
        &h,
        Method::GET,
        &format!("/admin/v1/keys/{}/requests?limit=1", a.id),
        None,
    )
    .await;
    assert_eq!(
        (
            limited["data"].as_array().unwrap().len(),
            limited["has_more"].as_bool()
        ),
        (1, Some(true))
    );

    let (_, shown) = admin(&h, Method::GET, &format!("/admin/v1/keys/{}", a.id), None).await;
    assert_eq!(shown["usage"]["requests"], 2);
}

#[tokio::test]
async fn raising_the_budget_through_the_api_lifts_the_block_at_once() {
    let h = harness().await;
    let (_, created) = admin(
        &h,
        Method::POST,
        "/admin/v1/keys",
        Some(json!({"name": "b", "budget": 0.1})),
    )
    .await;
    let id = created["key"]["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    h.wired
        .usage_sink
        .record(usage_record(&id, "req_1", 0, 10_000, Outcome::Ok));
    h.wired.usage_sink.flush().await;
    assert!(matches!(
        h.wired.verifier.check(&secret).await.unwrap(),
        crate::auth::Verdict::Denied(_)
    ));
    let (_, shown) = admin(&h, Method::GET, &format!("/admin/v1/keys/{id}"), None).await;
    assert_eq!(shown["key"]["status"], "budget_exceeded");
    let (_, patched) = admin(
        &h,
        Method::PATCH,
        &format!("/admin/v1/keys/{id}"),
        Some(json!({"budget": 10})),
    )
    .await;
    assert_eq!(patched["key"]["status"], "active");
    assert!(matches!(
        h.wired.verifier.check(&secret).await.unwrap(),
        crate::auth::Verdict::Allowed(_)
    ));
}

#[tokio::test]
async fn an_oversized_body_is_a_413_in_the_anthropic_shape() {
    let h = harness().await;
    let name = "x".repeat(2 << 20);
    let body = Some(json!({ "name": name }).to_string());
    let auth = Some(("x-api-key", MASTER.to_string()));
    let (status, response) = call_raw(&h, Method::POST, "/admin/v1/keys", auth, body).await;
    assert_eq!(
        (status, error_type(&response)),
        (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large")
    );
}
