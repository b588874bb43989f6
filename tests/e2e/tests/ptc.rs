//! Programmatic Tool Calling through the whole gateway: real Envoy + gate filter, translator-svc,
//! ptc-svc running the code in a real Docker sandbox, and the fake Bedrock, driven by the Python
//! SDK's beta client. The model (scripted) calls the code tool; the code calls the client tool
//! `get_weather`, which the SDK answers; the code finishes and the model answers.
// Test code: a failed step fails the test by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::clients::{self, Target};
use e2e::stack::{Stack, StackOptions};
use e2e::tools;
use fake_bedrock::{ContentBlock, Scenario};
use serde_json::{Value, json};

const MODEL: &str = "claude-sonnet-4-5-20250929";
const CODE_TOOL_ID: &str = "toolu_bdrk_01E2eCode";
const CODE: &str = r#"w = await get_weather(city="Paris")
print("weather=" + w)
"#;
const FINAL: &str = "It is sunny in Paris.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_answers_a_tool_call_made_by_sandboxed_code() {
    let Some(python) = tools::python().expect("python") else {
        return;
    };
    let clients_dir = tools::workspace_root().join("tests/clients");
    let Some(stack) = Stack::start(StackOptions::default().with_ptc())
        .await
        .expect("start the gateway")
    else {
        return;
    };
    // Round 1: the model calls the code tool; the code pauses on get_weather.
    stack.fake.enqueue(Scenario::with_content(vec![
        ContentBlock::Text {
            text: "Let me run code.".into(),
        },
        ContentBlock::ToolUse {
            id: Some(CODE_TOOL_ID.into()),
            name: "execute_code".into(),
            input: json!({"code": CODE}),
        },
    ]));
    // Round 2: the code finishes with the tool's value; the model is told and answers.
    stack.fake.enqueue(Scenario {
        on_tool_result: true,
        ..Scenario::text(FINAL)
    });
    let target = Target {
        base_url: &stack.url,
        key: &stack.master_key,
        bearer: false,
    };
    let out = clients::python_sdk(&python, &clients_dir, "ptc", MODEL, &target)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    let rounds = out["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{out}");
    assert_eq!(rounds[0]["stop_reason"], "tool_use", "{out}");
    let blocks = &rounds[0]["blocks"];
    assert!(
        blocks
            .as_array()
            .unwrap()
            .contains(&json!("server_tool_use")),
        "{out}"
    );
    assert!(
        blocks.as_array().unwrap().contains(&json!("tool_use")),
        "{out}"
    );
    assert_eq!(
        rounds[0]["callers"][0]["type"], "code_execution_20250825",
        "{out}"
    );
    assert_eq!(rounds[1]["stop_reason"], "end_turn", "{out}");
    assert_eq!(out["final_text"], FINAL, "{out}");
    let stdout = out["stdout"].as_str().unwrap_or_default();
    assert!(stdout.contains("weather=sunny-22C-in-Paris"), "{out}");
    let containers = out["containers"].as_array().unwrap();
    let first = containers[0].as_str().unwrap_or_default();
    assert!(first.starts_with("container_"), "{out}");
    assert!(containers.iter().all(|c| c == first), "{out}");

    // Bedrock was told the code tool's outcome.
    let seen: Vec<Value> = stack
        .fake
        .requests()
        .iter()
        .flat_map(|r| r.body["messages"].as_array().cloned().unwrap_or_default())
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["type"] == "tool_result" && b["tool_use_id"] == CODE_TOOL_ID)
        .collect();
    assert!(
        !seen.is_empty(),
        "no tool_result for the code tool reached Bedrock"
    );
    assert!(
        seen[0].to_string().contains("weather=sunny-22C-in-Paris"),
        "{}",
        seen[0]
    );
}
