//! Scripting and recording: queue order and model filters, markers, the automatic tool-result reply,
//! the recorded requests, the HTTP control API, and the binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use aws_sdk_bedrockruntime::types::{
    ContentBlock as SdkBlock, ConversationRole, Tool, ToolConfiguration, ToolInputSchema,
    ToolResultBlock, ToolResultContentBlock, ToolSpecification, ToolUseBlock,
};
use fake_bedrock::{FakeBedrock, Operation, RecordedRequest, Scenario};
use serde_json::{Value, json};

use crate::common::{CLAUDE, CLAUDE_ARN, client, json_to_document, message, user};

async fn converse_text(
    fake: &FakeBedrock,
    model: &str,
    messages: Vec<aws_sdk_bedrockruntime::types::Message>,
    tools: Option<ToolConfiguration>,
) -> String {
    let out = client(fake)
        .converse()
        .model_id(model)
        .set_messages(Some(messages))
        .set_tool_config(tools)
        .send()
        .await
        .expect("converse");
    let content = out
        .output()
        .and_then(|o| o.as_message().ok())
        .expect("message")
        .content()
        .to_vec();
    content
        .iter()
        .filter_map(|b| b.as_text().ok().cloned())
        .collect()
}

#[tokio::test]
async fn queue_is_fifo_filtered_by_model_and_falls_back_to_default() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(Scenario {
        model: Some("amazon.nova-pro-v1:0".into()),
        ..Scenario::text("for nova")
    });
    fake.enqueue(Scenario::text("first"));
    fake.enqueue(Scenario::text("second"));
    assert_eq!(
        converse_text(&fake, CLAUDE, vec![user("a")], None).await,
        "first"
    );
    assert_eq!(
        converse_text(&fake, CLAUDE, vec![user("a")], None).await,
        "second"
    );
    assert_eq!(
        converse_text(&fake, CLAUDE, vec![user("a")], None).await,
        format!("Hello from fake Bedrock ({CLAUDE})")
    );
    assert_eq!(
        converse_text(&fake, "amazon.nova-pro-v1:0", vec![user("a")], None).await,
        "for nova"
    );
    assert!(fake.queued().is_empty());
}

#[tokio::test]
async fn markers_pick_builtins_and_tool_results_are_echoed() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(Scenario::text("still queued"));
    let out = client(&fake)
        .converse()
        .model_id(CLAUDE)
        .messages(user("run it [[fake:bash]]"))
        .send()
        .await
        .expect("ok");
    let content = out
        .output()
        .and_then(|o| o.as_message().ok())
        .expect("message")
        .content()
        .to_vec();
    let tool = content
        .iter()
        .find_map(|b| b.as_tool_use().ok())
        .expect("tool use")
        .clone();
    assert_eq!(tool.name(), "Bash");
    assert_eq!(
        crate::common::document_to_json(tool.input())["command"],
        "echo hello-from-tool"
    );
    let spec = ToolSpecification::builder()
        .name("Bash")
        .input_schema(ToolInputSchema::Json(json_to_document(
            &json!({"type": "object"}),
        )))
        .build()
        .expect("spec");
    let tools = ToolConfiguration::builder()
        .tools(Tool::ToolSpec(spec))
        .build()
        .expect("tools");
    let result = ToolResultBlock::builder()
        .tool_use_id(tool.tool_use_id())
        .content(ToolResultContentBlock::Text(format!(
            "hello-from-tool\n{}",
            "z".repeat(300)
        )))
        .build()
        .expect("result");
    let history = vec![
        user("run it [[fake:bash]]"),
        message(
            ConversationRole::Assistant,
            vec![SdkBlock::ToolUse(
                ToolUseBlock::builder()
                    .tool_use_id(tool.tool_use_id())
                    .name("Bash")
                    .input(tool.input().clone())
                    .build()
                    .expect("use"),
            )],
        ),
        message(ConversationRole::User, vec![SdkBlock::ToolResult(result)]),
    ];
    let text = converse_text(&fake, CLAUDE, history, Some(tools)).await;
    assert_eq!(
        text,
        format!("Tool said: hello-from-tool\n{}", "z".repeat(184))
    );
    assert_eq!(
        fake.queued().len(),
        1,
        "markers and tool results leave the queue alone"
    );
}

#[tokio::test]
async fn records_operation_model_path_headers_and_body() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    client(&fake)
        .converse()
        .model_id(CLAUDE_ARN)
        .messages(user("recorded"))
        .send()
        .await
        .expect("ok");
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request: &RecordedRequest = &requests[0];
    assert_eq!(request.operation, Operation::Converse);
    assert_eq!(request.model_id, CLAUDE_ARN);
    assert_eq!(request.method, "POST");
    assert!(
        request.path.starts_with(
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
        ),
        "{}",
        request.path
    );
    assert!(request.path.ends_with("/converse"));
    assert!(
        request
            .header("Authorization")
            .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDFAKE/")
                && a.contains("/us-east-1/bedrock/aws4_request"))
    );
    assert_eq!(request.header("x-amz-security-token"), Some("fake-session"));
    assert!(request.header("x-amz-date").is_some());
    assert_eq!(request.attempt(), Some(1));
    assert_eq!(
        request.body["messages"][0]["content"][0]["text"],
        "recorded"
    );
    fake.clear_requests();
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn http_control_api_scripts_and_inspects() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", fake.url());
    let added: Value = http
        .post(url("/_fake/scenarios"))
        .json(&json!({"content": [{"type": "text", "text": "scripted over http"}]}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(added["queued"], 1);
    let bad = http
        .post(url("/_fake/scenarios"))
        .json(&json!({"contnet": []}))
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 400);
    assert_eq!(
        converse_text(&fake, CLAUDE, vec![user("hi")], None).await,
        "scripted over http"
    );
    http.post(url("/_fake/scenarios"))
        .json(&json!([{"count_tokens": 5}, {"count_tokens": 6}]))
        .send()
        .await
        .expect("post");
    let queued: Value = http
        .get(url("/_fake/scenarios"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(queued.as_array().map(Vec::len), Some(2));
    let requests: Vec<RecordedRequest> = http
        .get(url("/_fake/requests"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].operation, Operation::Converse);
    assert_eq!(requests[0].model_id, CLAUDE);
    assert_eq!(
        http.delete(url("/_fake/requests"))
            .send()
            .await
            .expect("delete")
            .status(),
        204
    );
    assert!(fake.requests().is_empty());
    assert_eq!(
        http.post(url("/_fake/reset"))
            .send()
            .await
            .expect("reset")
            .status(),
        204
    );
    assert!(fake.queued().is_empty());
    let unknown = http
        .post(url("/model/x/unknown-op"))
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(unknown.status(), 404);
    assert!(
        unknown
            .headers()
            .get("x-amzn-errortype")
            .is_some_and(|v| v.as_bytes().starts_with(b"UnknownOperationException"))
    );
    assert_eq!(fake.requests()[0].operation, Operation::Unknown);
}

#[tokio::test]
async fn dropping_the_fake_stops_the_listener() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let addr = fake.addr();
    assert!(fake.url().starts_with("http://127.0.0.1:"));
    drop(fake);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Kills the child on every exit path.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_prints_its_address_and_serves() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_fake-bedrock"))
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("joined")
    .expect("reads the listen line");
    let url = line
        .trim()
        .strip_prefix("fake-bedrock listening on ")
        .expect("listen line")
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let http = reqwest::Client::new();
    http.post(format!("{url}/_fake/scenarios"))
        .json(&json!({"content": [{"type": "text", "text": "from the binary"}]}))
        .send()
        .await
        .expect("enqueue");
    let body = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let reply: Value = http
        .post(format!("{url}/model/{CLAUDE}/converse"))
        .json(&body)
        .send()
        .await
        .expect("converse")
        .json()
        .await
        .expect("json");
    assert_eq!(
        reply["output"]["message"]["content"][0]["text"],
        "from the binary"
    );
    let requests: Value = http
        .get(format!("{url}/_fake/requests"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(requests[0]["operation"], "converse");
    // SIGTERM ends it cleanly.
    let pid = child.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.0.wait())
        .await
        .expect("joined")
        .expect("waits");
    assert!(exit.success(), "{exit:?}");
}
