//! The model's side of a Programmatic Tool Calling conversation as the fake Bedrock plays it, and
//! what reached the model back: shared by the PTC end-to-end tests.

use fake_bedrock::{ContentBlock, FakeBedrock, Scenario};
use serde_json::{Value, json};

/// A model turn that runs `code` through the code tool (`execute_code`, as translator-svc
/// declares it to Bedrock) under the tool-use id `id`.
pub fn code_call(id: &str, code: &str) -> Scenario {
    Scenario::with_content(vec![
        ContentBlock::Text {
            text: "Let me run code.".into(),
        },
        ContentBlock::ToolUse {
            id: Some(id.into()),
            name: "execute_code".into(),
            input: json!({"code": code}),
        },
    ])
}

/// The model's answer once the code's result reached it.
pub fn after_code(text: &str) -> Scenario {
    Scenario {
        on_tool_result: true,
        ..Scenario::text(text)
    }
}

/// Every `tool_result` block for `tool_use_id` that reached the fake Bedrock, in request order.
pub fn tool_results_seen(fake: &FakeBedrock, tool_use_id: &str) -> Vec<Value> {
    fake.requests()
        .iter()
        .flat_map(|r| r.body["messages"].as_array().cloned().unwrap_or_default())
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["type"] == "tool_result" && b["tool_use_id"] == tool_use_id)
        .collect()
}
