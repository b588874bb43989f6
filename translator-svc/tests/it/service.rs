//! Service tests: translator-svc started in-process against the fake Bedrock, driven over HTTP,
//! asserting both what the client sees and what Bedrock received.

use std::time::Duration;

use fake_bedrock::{Operation, Pause, Scenario, StreamErrorSpec};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Service, sse_events as events};

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(e, _)| e.as_str()).collect()
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

const SIGNATURE: &str = "EqQBCkgIARABGAIiQ+/sig==with/odd+chars";

fn thinking_history(model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [
            user("first"),
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "step one", "signature": SIGNATURE},
                {"type": "redacted_thinking", "data": "cmVkYWN0ZWQ="},
                {"type": "text", "text": "answer"}
            ]},
            user("second")
        ]
    })
}

#[tokio::test]
async fn thinking_signature_reaches_invoke_byte_exact_and_in_order() {
    let h = Service::start(&[]).await;
    let (status, headers, body) = h.messages(&thinking_history("claude-sonnet-4-5")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers
            .get("request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let sent = &h.fake.requests()[0];
    assert_eq!(
        sent.model_id,
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
    let blocks = &sent.body["messages"][1]["content"];
    assert_eq!(blocks[0]["signature"], SIGNATURE);
    assert_eq!(blocks[1]["type"], "redacted_thinking");
    assert_eq!(blocks[1]["data"], "cmVkYWN0ZWQ=");
    assert_eq!(blocks[2]["type"], "text");
    assert_eq!(sent.body["anthropic_version"], "bedrock-2023-05-31");
    assert!(sent.body.get("model").is_none() && sent.body.get("stream").is_none());
}

#[tokio::test]
async fn thinking_signature_reaches_converse_byte_exact() {
    let h = Service::start(&[("CLAUDE_API", "converse")]).await;
    let (status, _, body) = h.messages(&thinking_history("claude-sonnet-4-5")).await;
    assert_eq!(status, 200, "{body}");
    let sent = &h.fake.requests()[0];
    assert_eq!(sent.operation, Operation::Converse);
    let blocks = &sent.body["messages"][1]["content"];
    assert_eq!(
        blocks[0]["reasoningContent"]["reasoningText"]["signature"],
        SIGNATURE
    );
    assert_eq!(
        blocks[0]["reasoningContent"]["reasoningText"]["text"],
        "step one"
    );
    // base64 "cmVkYWN0ZWQ=" decoded to bytes, re-encoded on the wire.
    assert_eq!(
        blocks[1]["reasoningContent"]["redactedContent"],
        "cmVkYWN0ZWQ="
    );
}

fn claude_code_request() -> (Value, String) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/claude-code-2.1.332-turn2-request.json"
    );
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let beta = recorded["headers"]["anthropic-beta"]
        .as_str()
        .unwrap()
        .to_string();
    (recorded["body"].clone(), beta)
}

async fn serve_claude_code(api: &str) -> (Service, Vec<(String, Value)>) {
    let h = Service::start(&[("CLAUDE_API", api)]).await;
    let (body, beta) = claude_code_request();
    let response = h
        .post("/v1/messages?beta=true", &body)
        .header("anthropic-beta", beta)
        .header("x-api-key", "ignored-here")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    (h, events(&text))
}

#[tokio::test]
async fn claude_code_request_is_served_through_invoke() {
    let (h, events) = serve_claude_code("invoke").await;
    assert_eq!(names(&events).first(), Some(&"message_start"));
    assert_eq!(names(&events).last(), Some(&"message_stop"));
    assert_eq!(events[0].1["message"]["model"], "claude-opus-5-5");
    let sent = &h.fake.requests()[0];
    assert_eq!(sent.operation, Operation::InvokeStream);
    for key in ["context_management", "safeguards", "model", "stream"] {
        assert!(sent.body.get(key).is_none(), "{key} must not reach Bedrock");
    }
    let betas: Vec<&str> = sent.body["anthropic_beta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(betas.contains(&"interleaved-thinking-2025-05-14"));
    assert!(!betas.contains(&"claude-code-20250219"));
    assert!(!betas.contains(&"advanced-tool-use-2025-11-20"));
}

#[tokio::test]
async fn claude_code_request_is_served_through_converse() {
    let (h, events) = serve_claude_code("converse").await;
    assert_eq!(names(&events).last(), Some(&"message_stop"));
    let delta = events.iter().find(|(e, _)| e == "message_delta").unwrap();
    assert!(
        delta.1["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "usage must come from metadata"
    );
    let sent = &h.fake.requests()[0];
    assert_eq!(sent.operation, Operation::ConverseStream);
    let text = sent.body.to_string();
    for forbidden in [
        "context_management",
        "safeguards",
        "defer_loading",
        "$schema",
        "\"metadata\"",
    ] {
        assert!(
            !text.contains(forbidden),
            "{forbidden} must not reach Converse"
        );
    }
}

#[tokio::test]
async fn tier_rejection_falls_back_to_default_once() {
    let h = Service::start(&[("DEFAULT_SERVICE_TIER", "priority")]).await;
    h.fake.enqueue(Scenario {
        reject_service_tiers: vec!["priority".into()],
        ..Scenario::text("served on default")
    });
    let (status, _, body) = h
        .messages(&json!({"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [user("hi")]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("served on default"));
    let requests = h.fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("x-amzn-bedrock-service-tier"),
        Some("priority")
    );
    assert_eq!(requests[1].header("x-amzn-bedrock-service-tier"), None);
}

#[tokio::test]
async fn errors_before_the_stream_keep_their_http_status() {
    let h = Service::start(&[]).await;
    let request = json!({"model": "claude-haiku-4-5", "max_tokens": 50, "stream": true, "messages": [user("hi [[fake:throttle]]")]});
    let (status, headers, body) = h.messages(&request).await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.get("retry-after").is_some());
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["request_id"], headers["request-id"].to_str().unwrap());
}

#[tokio::test]
async fn errors_after_commit_become_an_sse_error_event() {
    let h = Service::start(&[("CLAUDE_API", "converse")]).await;
    h.fake.enqueue(Scenario {
        stream_error: Some(StreamErrorSpec {
            after_events: 3,
            kind: "serviceUnavailableException".into(),
            message: Some("busy".into()),
            original_status_code: None,
            original_message: None,
        }),
        ..Scenario::text("a reasonably long answer that spans several deltas")
    });
    let (status, _, body) = h.messages(&json!({"model": "claude-haiku-4-5", "max_tokens": 50, "stream": true, "messages": [user("hi")]})).await;
    assert_eq!(status, 200);
    let events = events(&body);
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "error");
    assert_eq!(data["error"]["type"], "overloaded_error");
    assert!(!names(&events).contains(&"message_stop"));
}

#[tokio::test]
async fn pings_fill_upstream_silence_and_idle_upstream_is_cut() {
    let h = Service::start(&[
        ("SSE_PING_INTERVAL_SECS", "0.2"),
        ("UPSTREAM_IDLE_TIMEOUT_SECS", "5"),
    ])
    .await;
    h.fake.enqueue(Scenario {
        pause: Some(Pause {
            after_events: 2,
            ms: 1200,
        }),
        ..Scenario::text("slow answer")
    });
    let request = json!({"model": "claude-haiku-4-5", "max_tokens": 50, "stream": true, "messages": [user("hi")]});
    let (_, _, body) = h.messages(&request).await;
    let pings = names(&events(&body))
        .iter()
        .filter(|e| **e == "ping")
        .count();
    assert!(
        pings >= 4,
        "expected keepalive pings during the pause, got {pings}: {body}"
    );
    assert_eq!(names(&events(&body)).last(), Some(&"message_stop"));

    let h = Service::start(&[
        ("SSE_PING_INTERVAL_SECS", "0.2"),
        ("UPSTREAM_IDLE_TIMEOUT_SECS", "0.6"),
    ])
    .await;
    h.fake.enqueue(Scenario {
        pause: Some(Pause {
            after_events: 2,
            ms: 3000,
        }),
        ..Scenario::text("slow answer")
    });
    let (_, _, body) = h.messages(&request).await;
    let events = events(&body);
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "error", "{body}");
    assert_eq!(data["error"]["message"], "upstream idle timeout");
}

#[tokio::test]
async fn converse_stream_without_metadata_still_ends_the_message() {
    let h = Service::start(&[("CLAUDE_API", "converse"), ("METADATA_WAIT_SECS", "0.3")]).await;
    h.fake.enqueue(Scenario {
        omit_metadata: true,
        ..Scenario::text("no usage follows")
    });
    let (_, _, body) = h.messages(&json!({"model": "claude-haiku-4-5", "max_tokens": 50, "stream": true, "messages": [user("hi")]})).await;
    let events = events(&body);
    assert_eq!(
        &names(&events)[names(&events).len() - 2..],
        ["message_delta", "message_stop"]
    );
}

#[tokio::test]
async fn gateway_edges_answer_in_anthropic_shape() {
    let h = Service::start(&[("MAX_BODY_BYTES", "2048")]).await;
    // Without Envoy's internal secret nothing under /v1 is served.
    let r = h
        .http
        .post(h.url("/v1/messages"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = h.request(Method::GET, "/v1/messages").send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "invalid_request_error"
    );
    let r = h.request(Method::GET, "/v1/files").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let big = json!({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [user(&"x".repeat(4096))]});
    let (status, _, body) = h.messages(&big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("request_too_large"));
    let (status, _, body) = h
        .messages(&json!({"model": "no-such-model", "max_tokens": 5, "messages": [user("hi")]}))
        .await;
    assert_eq!(status, 404, "{body}");
    let r = h
        .request(Method::POST, "/v1/messages")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        h.fake.requests().is_empty(),
        "no bad request may reach Bedrock"
    );
    let r = h.http.head(h.url("/api/hello")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = h.http.get(h.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A Bedrock id in the path arrives percent-encoded (`:` as `%3A`) and is decoded once.
    let r = h
        .request(
            Method::GET,
            "/v1/models/global.anthropic.claude-haiku-4-5-20251001-v1%3A0",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let model: Value = r.json().await.unwrap();
    assert_eq!(
        model["id"],
        "global.anthropic.claude-haiku-4-5-20251001-v1:0"
    );
}

#[tokio::test]
async fn count_tokens_uses_bedrock_for_claude_and_estimates_otherwise() {
    let h = Service::start(&[]).await;
    h.fake.enqueue(Scenario {
        count_tokens: Some(321),
        ..Default::default()
    });
    let body = json!({"model": "claude-sonnet-4-5", "messages": [user("count me")]});
    let r = h
        .post("/v1/messages/count_tokens?beta=true", &body)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("x-gateway-token-estimate").is_none());
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"input_tokens": 321})
    );
    let sent = &h.fake.requests()[0];
    assert_eq!(
        sent.model_id, "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "geo prefix removed"
    );
    let body =
        json!({"model": "qwen.qwen3-coder-480b-a35b-v1:0", "messages": [user("count me please")]});
    let r = h
        .post("/v1/messages/count_tokens", &body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-gateway-token-estimate"], "true");
    assert!(
        r.json::<Value>().await.unwrap()["input_tokens"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let h = Service::start(&[]).await;
    h.fake.enqueue(Scenario {
        event_delay_ms: 200,
        ..Scenario::text("long answer ".repeat(40))
    });
    let request = json!({"model": "claude-haiku-4-5", "max_tokens": 500, "stream": true, "messages": [user("hi")]});
    let mut response = h.post("/v1/messages", &request).send().await.unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    drop(response);
    // The fake counts streams still writing; a cancelled call stops within a couple of events.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        h.fake.active_streams(),
        0,
        "the upstream stream must be cancelled with the client"
    );
}

#[tokio::test]
async fn responses_report_tokens_for_the_rate_limiter() {
    let h = Service::start(&[]).await;
    h.fake.enqueue(Scenario {
        usage: Some(fake_bedrock::Usage {
            input_tokens: Some(100),
            output_tokens: Some(20),
            cache_read_input_tokens: Some(1000),
            cache_creation_input_tokens: Some(5),
            ..Default::default()
        }),
        ..Scenario::text("counted")
    });
    let request = json!({"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [user("hi")]});
    let (status, headers, _) = h.messages(&request).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["x-gw-usage-tokens"], "125",
        "input + cache writes + output, no cache reads"
    );

    // Streams report the same count as an HTTP/2 trailer, the way Envoy reaches the service.
    h.fake.enqueue(Scenario {
        usage: Some(fake_bedrock::Usage {
            input_tokens: Some(7),
            output_tokens: Some(3),
            cache_read_input_tokens: Some(0),
            cache_creation_input_tokens: Some(0),
            ..Default::default()
        }),
        ..Scenario::text("streamed")
    });
    let mut body = request.clone();
    body["stream"] = json!(true);
    let (text, trailers) = h.stream_with_trailers(&body, &[]).await;
    assert_eq!(trailers["x-gw-usage-tokens"], "10");
    assert!(text.contains("message_stop"));
}

#[tokio::test]
async fn key_policy_limits_models_and_sets_the_cache_ttl() {
    let h = Service::start(&[("CLAUDE_API", "converse")]).await;
    // Through Envoy the gate sends the verified key id; here the admin API is called directly.
    let (key_id, _) = h
        .create_key(&json!({"name": "restricted", "allowed_models": ["claude-haiku-4-5"], "cache_ttl": "1h"}))
        .await;
    let request = |model: &str| {
        json!({"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "cache me", "cache_control": {"type": "ephemeral"}}
        ]}]})
    };
    let denied = h
        .post("/v1/messages", &request("claude-sonnet-4-5"))
        .header("x-gw-key-id", &key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    assert_eq!(
        denied.json::<Value>().await.unwrap()["error"]["type"],
        "permission_error"
    );
    assert!(h.fake.requests().is_empty());

    let allowed = h
        .post("/v1/messages", &request("claude-haiku-4-5"))
        .header("x-gw-key-id", &key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let sent = &h.fake.requests()[0];
    let blocks = sent.body["messages"][0]["content"].as_array().unwrap();
    assert_eq!(
        blocks.last().unwrap()["cachePoint"]["ttl"],
        "1h",
        "{blocks:?}"
    );

    // The admin API is served by the same router: routes with path parameters work there too.
    let disabled = h
        .admin(Method::POST, &format!("/admin/v1/keys/{key_id}/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200, "{}", disabled.text().await.unwrap());
    let shown = h.admin_get(&format!("/admin/v1/keys/{key_id}")).await;
    assert_eq!(shown["key"]["status"], "disabled");
}

#[tokio::test]
async fn metrics_describe_requests_tokens_and_latency() {
    let h = Service::start(&[]).await;
    let request = json!({"model": "claude-3-5-haiku-latest", "max_tokens": 20, "stream": true, "messages": [user("measure me")]});
    let (status, _, _) = h.messages(&request).await;
    assert_eq!(status, 200);
    let (status, _, _) = h.messages(&json!({"model": "claude-3-5-haiku-latest", "max_tokens": 20, "messages": [user("hi [[fake:throttle]]")]}))
        .await;
    assert_eq!(status, 429);
    let text = h
        .http
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let has = |needle: &str| {
        text.lines()
            .any(|l| l.starts_with(needle) || (l.contains(needle) && !l.starts_with('#')))
    };
    for series in [
        "translator_requests_total{",
        "translator_tokens_total{",
        "translator_request_duration_seconds_bucket{",
        "translator_time_to_first_token_seconds_bucket{",
        "translator_bedrock_errors_total{",
        "translator_errors_total{",
    ] {
        assert!(has(series), "{series} missing from /metrics:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("translator_tokens_total{")
                && l.contains("model=\"claude-3-5-haiku-latest\"")
                && l.contains("kind=\"output\"")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("translator_errors_total{")
                && l.contains("type=\"rate_limit_error\"")),
        "{text}"
    );
}
