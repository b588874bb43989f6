//! Raw HTTP against the whole gateway through real Envoy: what any client sees at the edge (key
//! errors, spoofed internal headers, malformed and oversized bodies, `?beta=true`, `HEAD /`, the
//! `request-id` header), asserted on the status, the Anthropic error shape and what reached the
//! fake Bedrock.

use e2e::stack::{ClaudeApi, Stack, StackOptions};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

const MODEL: &str = "claude-sonnet-4-5-20250929";

async fn start(api: ClaudeApi) -> Option<Stack> {
    Stack::start(StackOptions::api(api))
        .await
        .expect("start the gateway")
}

fn hello(text: &str) -> Value {
    json!({
        "model": MODEL,
        "max_tokens": 32,
        "messages": [{"role": "user", "content": text}],
    })
}

fn messages(stack: &Stack, path_and_query: &str) -> reqwest::RequestBuilder {
    stack
        .http()
        .post(format!("{}{path_and_query}", stack.url))
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
}

fn request_id(response: &Response) -> String {
    response
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Asserts an Anthropic error envelope with `error_type` and a `request-id` header.
async fn assert_anthropic_error(response: Response, status: StatusCode, error_type: &str) {
    assert_eq!(response.status(), status);
    assert!(
        !request_id(&response).is_empty(),
        "no request-id on an error"
    );
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["type"], "error", "{body:#}");
    assert_eq!(body["error"]["type"], error_type, "{body:#}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body:#}"
    );
}

async fn assert_message(response: Response) -> Value {
    let status = response.status();
    let id = request_id(&response);
    let text = response.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(!id.is_empty(), "no request-id on a success");
    let body: Value = serde_json::from_str(&text).expect("JSON body");
    assert_eq!(body["type"], "message", "{body:#}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_key_is_401_and_never_reaches_bedrock() {
    let Some(stack) = start(ClaudeApi::Invoke).await else {
        return;
    };
    let wrong = messages(&stack, "/v1/messages")
        .header("x-api-key", "sk-gw-wrong")
        .json(&hello("hi"))
        .send()
        .await
        .expect("send");
    assert_anthropic_error(wrong, StatusCode::UNAUTHORIZED, "authentication_error").await;
    let missing = messages(&stack, "/v1/messages")
        .json(&hello("hi"))
        .send()
        .await
        .expect("send");
    assert_anthropic_error(missing, StatusCode::UNAUTHORIZED, "authentication_error").await;
    assert!(stack.fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_internal_headers_are_ignored() {
    let Some(stack) = start(ClaudeApi::Invoke).await else {
        return;
    };
    // A made-up key id, tier and even the internal secret do not make a bad key pass.
    let spoofed = messages(&stack, "/v1/messages")
        .header("x-api-key", "sk-gw-wrong")
        .header("x-gw-key-id", "master")
        .header("x-gw-tier", "priority")
        .header("x-gw-internal-secret", &stack.internal_secret)
        .json(&hello("hi"))
        .send()
        .await
        .expect("send");
    assert_anthropic_error(spoofed, StatusCode::UNAUTHORIZED, "authentication_error").await;
    // With a good key the spoofed headers change nothing and never travel upstream.
    let ok = messages(&stack, "/v1/messages")
        .header("x-api-key", &stack.master_key)
        .header("x-gw-key-id", "someone-else")
        .header("x-gw-tier", "priority")
        .json(&hello("hi"))
        .send()
        .await
        .expect("send");
    assert_message(ok).await;
    let calls = stack.fake.requests();
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0]
            .headers
            .keys()
            .all(|name| !name.starts_with("x-gw-")),
        "internal headers leaked to Bedrock: {:?}",
        calls[0].headers
    );
    assert_ne!(
        calls[0].header("x-amzn-bedrock-service-tier"),
        Some("priority")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400() {
    let Some(stack) = start(ClaudeApi::Invoke).await else {
        return;
    };
    for body in [
        "{not json".to_string(),
        "[1, 2, 3]".to_string(),
        json!({"model": MODEL, "messages": []}).to_string(),
        json!({"model": MODEL, "max_tokens": 0, "messages": []}).to_string(),
        json!({"max_tokens": 8, "messages": []}).to_string(),
    ] {
        let response = messages(&stack, "/v1/messages")
            .header("x-api-key", &stack.master_key)
            .body(body)
            .send()
            .await
            .expect("send");
        assert_anthropic_error(response, StatusCode::BAD_REQUEST, "invalid_request_error").await;
    }
    assert!(stack.fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_megabyte_body_is_served() {
    let Some(stack) = start(ClaudeApi::Invoke).await else {
        return;
    };
    let big = "lorem ipsum ".repeat(5 * 1024 * 1024 / 12);
    let response = messages(&stack, "/v1/messages")
        .header("x-api-key", &stack.master_key)
        .json(&hello(&big))
        .send()
        .await
        .expect("send");
    assert_message(response).await;
    let calls = stack.fake.requests();
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].body_bytes > 5_000_000,
        "{} bytes reached Bedrock",
        calls[0].body_bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_megabyte_body_is_413() {
    let Some(stack) = start(ClaudeApi::Invoke).await else {
        return;
    };
    let huge = "x".repeat(40 * 1024 * 1024);
    let response = messages(&stack, "/v1/messages")
        .header("x-api-key", &stack.master_key)
        .json(&hello(&huge))
        .send()
        .await
        .expect("the gateway answers before the upload ends");
    assert_anthropic_error(response, StatusCode::PAYLOAD_TOO_LARGE, "request_too_large").await;
    assert!(stack.fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beta_query_and_bearer_key_are_served() {
    for api in [ClaudeApi::Invoke, ClaudeApi::Converse] {
        let Some(stack) = start(api).await else {
            return;
        };
        let response = messages(&stack, "/v1/messages?beta=true")
            .bearer_auth(&stack.master_key)
            .header("anthropic-beta", "interleaved-thinking-2025-05-14")
            .json(&hello("beta please"))
            .send()
            .await
            .expect("send");
        assert_message(response).await;
        assert_eq!(stack.fake.requests().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_root_is_200() {
    let Some(stack) = start(ClaudeApi::Invoke).await else {
        return;
    };
    // Claude Code probes the base URL with HEAD / and no key.
    let response = stack
        .http()
        .request(Method::HEAD, format!("{}/", stack.url))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_through_envoy_is_sse() {
    let Some(stack) = start(ClaudeApi::Invoke).await else {
        return;
    };
    let mut body = hello("stream please [[fake:text]]");
    body["stream"] = json!(true);
    let response = messages(&stack, "/v1/messages")
        .header("x-api-key", &stack.master_key)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!request_id(&response).is_empty());
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let text = response.text().await.expect("body");
    assert!(text.contains("event: message_start"), "{text}");
    let last_event = text.lines().rev().find(|line| line.starts_with("event: "));
    assert_eq!(last_event, Some("event: message_stop"), "{text}");
}

/// The request id the client sees in `request-id` is on every line translator-svc logs for that
/// request (JSON logs at debug: Bedrock and key store calls, the streamed body, the usage line
/// and its write) and on Envoy's access log line; no key or prompt is logged.
#[tokio::test]
async fn logs_carry_the_request_id_the_client_saw() {
    const PROMPT: &str = "MARKERe2ePrompt never in a log";
    let options = StackOptions::api(ClaudeApi::Invoke)
        .translator_env("LOG_FORMAT", "json")
        // Debug, minus connection-level chatter and the embedded DynamoDB's own server.
        .translator_env(
            "LOG_LEVEL",
            "debug,h2=info,hyper=info,hyper_util=info,tower=info,dynoxide=info",
        )
        // No periodic store refresh inside the window below.
        .translator_env("STORE_REFRESH_SECS", "3600");
    let Some(stack) = Stack::start(options).await.expect("start the gateway") else {
        return;
    };
    let before = stack.translator_logs()[0].lines().count();
    let mut ids = Vec::new();
    for stream in [false, true] {
        let mut body = hello(&format!("log me {PROMPT}"));
        body["stream"] = json!(stream);
        let response = messages(&stack, "/v1/messages")
            .header("x-api-key", &stack.master_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let id = request_id(&response);
        assert!(id.starts_with("req_"), "{id}");
        response.text().await.unwrap();
        ids.push(id);
    }
    // The usage and access log lines are written when the responses end; give the writers (and
    // the usage writes, tasks of their own) a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lines: Vec<Value> = loop {
        let log = stack.translator_logs().remove(0);
        let lines: Vec<Value> = log
            .lines()
            .skip(before)
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect();
        let envoy = stack.envoy_log();
        let done = ids.iter().all(|id| {
            lines
                .iter()
                .any(|l| l["message"] == "usage" && l["request_id"] == id.as_str())
                && envoy
                    .lines()
                    .any(|l| l.contains(&format!("\"request_id\":\"{id}\"")))
        });
        if done {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            break stack
                .translator_logs()
                .remove(0)
                .lines()
                .skip(before)
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "request ids {ids:?} not in both logs:\n{}",
            stack.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    for line in &lines {
        let id = line["request_id"].as_str().unwrap_or_default();
        assert!(
            ids.iter().any(|seen| seen == id),
            "a translator line without the request id the client saw: {line}"
        );
    }
    for id in &ids {
        let own: Vec<&Value> = lines
            .iter()
            .filter(|l| l["request_id"] == id.as_str())
            .collect();
        // The AWS SDK's own lines of the Bedrock call are the request's too.
        assert!(
            own.iter().any(|l| l["rpc.service"] == "Bedrock Runtime"),
            "no Bedrock call line for {id}"
        );
        assert!(
            own.iter()
                .any(|l| l["message"] == "usage" && l["model"] == MODEL),
            "no usage line for {id}"
        );
    }
    let all = stack.logs() + &stack.translator_logs().join("\n") + &stack.envoy_log();
    assert!(!all.contains(&stack.master_key), "a key reached the logs");
    assert!(
        !all.contains("MARKERe2ePrompt"),
        "a prompt reached the logs"
    );
}
