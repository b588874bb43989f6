//! The translator-svc binary's logs as an operator reads them: flat JSON lines on stderr, every
//! line of a request (streamed bodies and the usage line included) carrying the request id the
//! client saw in `request-id`, and never a key, a prompt or a credential.

use std::time::Duration;

use fake_bedrock::FakeBedrock;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::support::Binary;

const SECRET: &str = "logs-test-internal-secret-0123456789";
const MASTER: &str = "sk-gw-logs-test-master-key-MARKERmaster";
const CLIENT_KEY: &str = "sk-gw-logs-test-client-key-MARKERclient";
const AWS_SECRET: &str = "MARKERawsSecretAccessKey0123456789abcdef";
const PROMPT: &str = "MARKERprompt the unique words never logged";

/// The binary with JSON logs at debug level and marked secrets, to find any that leaks.
async fn spawn() -> (Binary, FakeBedrock) {
    let fake = FakeBedrock::start().await.unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let service = Binary::spawn(
        &fake,
        &[
            ("PATH", &path),
            ("GATEWAY_INTERNAL_SECRET", SECRET),
            ("MASTER_API_KEY", MASTER),
            ("AWS_ACCESS_KEY_ID", "AKIAMARKERLOGSTEST01"),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
            // Debug, to catch a leak wherever it hides; minus the connection-level chatter of
            // the HTTP libraries and the embedded DynamoDB's own server (DynamoDB's logs in
            // production).
            (
                "LOG_LEVEL",
                "debug,h2=info,hyper=info,hyper_util=info,dynoxide=info",
            ),
        ],
    )
    .await;
    (service, fake)
}

/// Lines logged since `from`, once the usage line of `request_id` is among them.
async fn lines_until_usage(service: &Binary, from: usize, request_id: &str) -> Vec<Value> {
    for _ in 0..200 {
        let parsed: Vec<Value> = service.lines()[from..]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect();
        if parsed
            .iter()
            .any(|l| l["message"] == "usage" && l["request_id"] == request_id)
        {
            return parsed;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "no usage line for {request_id}: {:#?}",
        &service.lines()[from..]
    );
}

fn body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 64,
        "stream": stream,
        "system": format!("system {PROMPT}"),
        "messages": [{"role": "user", "content": format!("hello {PROMPT}")}],
    })
}

#[tokio::test]
async fn every_line_of_a_request_carries_its_request_id_and_nothing_secret() {
    let (service, _fake) = spawn().await;
    let http = reqwest::Client::new();
    let cases = [
        ("claude-sonnet-4-5", false, true),
        ("claude-sonnet-4-5", true, true),
        ("qwen.qwen3-coder-480b-a35b-v1:0", true, false),
        ("qwen.qwen3-coder-480b-a35b-v1:0", false, false),
    ];
    let first = service.lines().len();
    let mut seen = Vec::new();
    for (model, stream, gateway_id) in cases {
        let from = service.lines().len();
        let mut request = http
            .post(format!("{}/v1/messages", service.url))
            .header("x-gw-internal-secret", SECRET)
            .header("x-gw-key-id", "key_logs_test")
            .header("x-api-key", CLIENT_KEY)
            .header("authorization", format!("Bearer {CLIENT_KEY}"))
            .json(&body(model, stream));
        // Envoy's gate assigns the id; without it translator-svc makes one. Either way the
        // client sees it in `request-id`.
        if gateway_id {
            let id = if stream {
                "req_LogsTestStreamed00000001"
            } else {
                "req_LogsTestUnary00000000001"
            };
            request = request.header("x-gw-request-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{model} stream={stream}");
        let request_id = response.headers()["request-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(request_id.starts_with("req_"), "{request_id}");
        if gateway_id {
            assert!(request_id.starts_with("req_LogsTest"), "{request_id}");
        }
        assert!(!response.text().await.unwrap().is_empty());

        let lines = lines_until_usage(&service, from, &request_id).await;
        let own: Vec<&Value> = lines
            .iter()
            .filter(|l| l["request_id"] == request_id.as_str())
            .collect();
        assert!(own.len() >= 2, "{model} stream={stream}: {lines:#?}");
        let usage = own.iter().find(|l| l["message"] == "usage").unwrap();
        assert_eq!(usage["key_id"], "key_logs_test", "{usage}");
        assert_eq!(usage["model"], model, "the request span's model: {usage}");
        assert_eq!(usage["stream"], stream, "{usage}");
        if stream {
            // The usage line of a stream is written by the body after the handler returned (the
            // request span's status is known by then), still inside the request's span.
            assert_eq!(usage["status"], 200, "{usage}");
        }
        seen.push(request_id);
    }
    // Let the last usage write (a task of its own) finish.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Every line while the requests ran belongs to one of them (usage writes of a request may
    // run while the next one is served), and every line is flat JSON.
    for line in &service.lines()[first..] {
        let line: Value = serde_json::from_str(line).unwrap();
        let id = line["request_id"].as_str().unwrap_or_default();
        assert!(
            seen.iter().any(|seen| seen == id),
            "a line without a request id the client saw: {line}"
        );
        // A stable order: timestamp, level, target, message (when there is one), request_id.
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected: &[&str] = if line.get("message").is_some() {
            &["timestamp", "level", "target", "message", "request_id"]
        } else {
            &["timestamp", "level", "target", "request_id"]
        };
        assert_eq!(&keys[..expected.len()], expected, "{line}");
        assert!(
            line.as_object().unwrap().values().all(|v| !v.is_object()),
            "not flat: {line}"
        );
    }

    let all = service.stop().await.join("\n");
    for secret in [
        PROMPT,
        "MARKERprompt",
        CLIENT_KEY,
        MASTER,
        AWS_SECRET,
        SECRET,
    ] {
        assert!(!all.contains(secret), "{secret:?} appears in the logs");
    }
}

#[tokio::test]
async fn a_bad_log_level_stops_the_start_with_a_clear_message() {
    for (name, value) in [("LOG_LEVEL", "loud"), ("RUST_LOG", "info,chatty")] {
        let out = Command::new(env!("CARGO_BIN_EXE_translator-svc"))
            .env_clear()
            .env("GATEWAY_INTERNAL_SECRET", SECRET)
            .env("KEY_STORE", "memory")
            .env(name, value)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
        assert!(stderr.contains("expected a level"), "{stderr}");
    }
}
