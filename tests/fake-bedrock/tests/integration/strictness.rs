//! Bedrock's strictness: malformed requests get 400 ValidationException (with `x-amzn-errortype`) and
//! consume no scenario.

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError;
use fake_bedrock::{FakeBedrock, Scenario};
use serde_json::{Value, json};

use crate::common::{CLAUDE, client, invoke_body, post_raw, to_blob};

/// Posts `body` and returns the ValidationException message, failing on anything else.
async fn rejected(fake: &FakeBedrock, operation: &str, body: &Value) -> String {
    let response = post_raw(fake, &format!("/model/{CLAUDE}/{operation}"), body).await;
    assert_eq!(response.status(), 400, "{body}");
    let errortype = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(errortype.starts_with("ValidationException"), "{errortype}");
    assert!(response.headers().get("x-amzn-requestid").is_some());
    let body: Value = response.json().await.expect("JSON error body");
    body["message"].as_str().expect("message").to_owned()
}

fn user_text(text: &str) -> Value {
    json!({"role": "user", "content": [{"text": text}]})
}

#[tokio::test]
async fn converse_rejects_malformed_conversations() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(Scenario::text("never consumed by a rejected call"));
    let assistant = json!({"role": "assistant", "content": [{"text": "a"}]});
    let tool_turns = json!([
        user_text("a"),
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "Bash", "input": {}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "out"}]}}]}
    ]);
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": [{"text": "   "}]}]}),
            "is blank",
        ),
        (
            json!({"messages": [user_text("a"), user_text("b")]}),
            "alternate between user and assistant",
        ),
        (
            json!({"messages": [assistant]}),
            "must start with a user message",
        ),
        (
            json!({"messages": tool_turns}),
            "toolConfig field must be defined",
        ),
        (
            json!({"messages": [user_text("a")], "toolConfig": {"tools": []}}),
            "toolConfig.tools",
        ),
        (
            json!({"messages": [user_text("a")], "serviceTier": "priority"}),
            "serviceTier",
        ),
        (
            json!({"messages": [user_text("a")], "max_tokens": 5}),
            "extraneous key [max_tokens]",
        ),
    ];
    for operation in ["converse", "converse-stream"] {
        for (body, expected) in &cases {
            let message = rejected(&fake, operation, body).await;
            assert!(message.contains(expected), "{operation} {body}: {message}");
        }
    }
    assert_eq!(fake.queued().len(), 1);
    assert_eq!(
        fake.requests().len(),
        cases.len() * 2,
        "rejected calls are still recorded"
    );
}

#[tokio::test]
async fn invoke_rejects_non_bedrock_bodies() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let with = |key: &str, value: Value| {
        let mut body = invoke_body("hi");
        body[key] = value;
        body
    };
    let mut no_version = invoke_body("hi");
    if let Some(object) = no_version.as_object_mut() {
        object.remove("anthropic_version");
    }
    let clear_thinking = json!({"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]});
    let mut context = with("context_management", clear_thinking);
    context["anthropic_beta"] = json!(["context-management-2025-06-27"]);
    let cases = [
        (
            with("model", json!("claude-sonnet-4-5")),
            "model: Extra inputs are not permitted",
        ),
        (
            with("stream", json!(true)),
            "stream: Extra inputs are not permitted",
        ),
        (
            with("container", json!("c")),
            "container: Extra inputs are not permitted",
        ),
        (no_version, "required key [anthropic_version] not found"),
        (
            with("anthropic_beta", json!(["claude-code-20250219"])),
            "invalid beta flag",
        ),
        (context, "clear_thinking_20251015"),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "text", "text": ""}]}]),
            ),
            "text content blocks must be non-empty",
        ),
    ];
    for operation in ["invoke", "invoke-with-response-stream"] {
        for (body, expected) in &cases {
            let message = rejected(&fake, operation, body).await;
            assert!(message.contains(expected), "{operation} {body}: {message}");
        }
    }
    let mut fine = with(
        "anthropic_beta",
        json!([
            "tool-search-tool-2025-10-19",
            "tool-examples-2025-10-29",
            "interleaved-thinking-2025-05-14"
        ]),
    );
    fine["context_management"] = json!({"edits": [{"type": "compact_20260112"}]});
    if let Some(flags) = fine["anthropic_beta"].as_array_mut() {
        flags.push(json!("context-management-2025-06-27"));
    }
    assert_eq!(
        post_raw(&fake, &format!("/model/{CLAUDE}/invoke"), &fine)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn invoke_rejects_bodies_over_25_mb_through_the_sdk() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let body = invoke_body(&"a".repeat(25_000_001));
    let error = client(&fake)
        .invoke_model()
        .model_id(CLAUDE)
        .body(to_blob(&body))
        .send()
        .await
        .expect_err("too large");
    let service = error.as_service_error().expect("service error");
    assert!(
        matches!(service, InvokeModelError::ValidationException(_)),
        "{service:?}"
    );
    assert!(service.message().is_some_and(|m| m.contains("25000000")));
    assert!(fake.requests()[0].body_bytes > 25_000_000);
}

#[tokio::test]
async fn invoke_checks_tool_pairing_and_model_family() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let body = json!({
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_a", "name": "Bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_b", "content": "x"}]}
        ]
    });
    let message = rejected(&fake, "invoke", &body).await;
    assert!(message.contains("unexpected `tool_use_id`"), "{message}");
    let error = client(&fake)
        .invoke_model()
        .model_id("qwen.qwen3-32b-v1:0")
        .body(to_blob(&invoke_body("hi")))
        .send()
        .await
        .expect_err("not claude");
    assert!(matches!(
        error.as_service_error(),
        Some(InvokeModelError::ValidationException(_))
    ));
    let response = post_raw(
        &fake,
        &format!("/model/{CLAUDE}/invoke"),
        &json!("not an object"),
    )
    .await;
    assert_eq!(response.status(), 400);
    let not_json = reqwest::Client::new()
        .post(format!("{}/model/{CLAUDE}/converse", fake.url()))
        .body("{oops")
        .send()
        .await
        .expect("answers");
    assert_eq!(not_json.status(), 400);
    assert_eq!(
        fake.requests().last().map(|r| r.body.clone()),
        Some(json!("{oops"))
    );
}

/// Claude Code's recorded turn-2 request, as the gateway's Invoke path is specified to rewrite it, is
/// accepted (strictness has no false positives on real traffic) and answered with the tool-result
/// echo; each unrewritten part is refused.
#[tokio::test]
async fn recorded_claude_code_turn_passes_once_rewritten() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/claude-code-2.1.332-turn2-request.json");
    let fixture: Value = serde_json::from_slice(&std::fs::read(&path).expect("fixture exists"))
        .expect("fixture JSON");
    let mut body = fixture["body"].clone();
    let object = body.as_object_mut().expect("object");
    object.remove("model");
    object.remove("stream");
    object.insert("anthropic_version".into(), json!("bedrock-2023-05-31"));
    let fake = FakeBedrock::start().await.expect("fake starts");
    // Each layer the gateway must fix is refused in turn: betas, the clear_thinking edit, the system role.
    let message = rejected(&fake, "invoke", &body).await;
    assert_eq!(
        message,
        "context_management: Extra inputs are not permitted"
    );
    body["anthropic_beta"] = json!(["context-management-2025-06-27"]);
    let message = rejected(&fake, "invoke", &body).await;
    assert!(message.contains("clear_thinking_20251015"), "{message}");
    let object = body.as_object_mut().expect("object");
    object.remove("context_management");
    let message = rejected(&fake, "invoke", &body).await;
    assert!(message.contains("messages.1.role"), "{message}");

    // Section 7: fold the system-role message into `system`; section 9: allowed betas only.
    let object = body.as_object_mut().expect("object");
    let messages = object["messages"].as_array_mut().expect("messages");
    let system_message = messages.remove(1);
    object["system"]
        .as_array_mut()
        .expect("system blocks")
        .push(json!({"type": "text", "text": system_message["content"]}));
    object.insert(
        "anthropic_beta".into(),
        json!([
            "interleaved-thinking-2025-05-14",
            "effort-2025-11-24",
            "tool-search-tool-2025-10-19",
            "tool-examples-2025-10-29"
        ]),
    );
    let out = client(&fake)
        .invoke_model()
        .model_id(CLAUDE)
        .body(to_blob(&body))
        .send()
        .await
        .expect("accepted");
    let reply: Value = serde_json::from_slice(out.body().as_ref()).expect("JSON");
    assert_eq!(reply["content"][0]["text"], "Tool said: hi-from-fake-tool");
}
