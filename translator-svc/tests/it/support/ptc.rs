//! What the PTC tests (`ptc.rs`, `ptc_billing.rs`) script and read back the same way: the model
//! turns the fake Bedrock plays, the code that records what reached it, and the message a
//! stream describes.

use std::collections::HashMap;

use fake_bedrock::{ContentBlock, Scenario};
use serde_json::{Value, json};

/// The beta that turns Programmatic Tool Calling on.
pub const BETA: &str = "advanced-tool-use-2025-11-20";

/// Appends what it receives to a file of the session (evidence of how often the results reached
/// the code), then runs long enough for a retry or a duplicate to arrive while it runs.
pub const SEEN_CODE: &str = "v = await get_item(item_id='a')\nopen('/workspace/seen.txt', 'a').write(v + '\\n')\nimport time\ntime.sleep(1.5)\nprint('got', v)";

/// A model turn that runs `code` in the sandbox under tool-use id `id`.
pub fn code_turn(id: &str, code: &str) -> Scenario {
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

/// The model's last turn, answering the code's result.
pub fn final_turn(text: &str) -> Scenario {
    Scenario {
        on_tool_result: true,
        ..Scenario::text(text)
    }
}

/// The message a stream describes, from its events' data in order: blocks from their starts
/// and deltas, the end's fields from `message_delta`. An `error` event fails the test.
pub fn fold_events<'a>(events: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut message = json!({});
    let mut partial: HashMap<u64, String> = HashMap::new();
    for data in events {
        let index = data["index"].as_u64().unwrap_or(0);
        match data["type"].as_str().unwrap_or_default() {
            "message_start" => message = data["message"].clone(),
            "content_block_start" => message["content"]
                .as_array_mut()
                .unwrap()
                .push(data["content_block"].clone()),
            "content_block_delta" => {
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let block = &mut message["content"][index as usize];
                        block["text"] = json!(format!(
                            "{}{}",
                            block["text"].as_str().unwrap(),
                            delta["text"].as_str().unwrap()
                        ));
                    }
                    "input_json_delta" => partial
                        .entry(index)
                        .or_default()
                        .push_str(delta["partial_json"].as_str().unwrap()),
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(json) = partial.remove(&index) {
                    message["content"][index as usize]["input"] =
                        serde_json::from_str(&json).unwrap();
                }
            }
            "message_delta" => {
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["container"] = data["delta"]["container"].clone();
                message["usage"] = data["usage"].clone();
            }
            "error" => panic!("stream error: {data}"),
            _ => {}
        }
    }
    message
}
