//! InvokeModel (Anthropic body) strictness: `anthropic_version` present, no `model`/`stream` or other
//! extra keys, known beta flags, no `clear_thinking` edit, non-blank text, paired tool blocks.

use serde_json::Value;

use super::{
    Check, MessageTools, Pairing, beta_enabled, betas, cache_points, thinking, tool_id,
    tool_pairing,
};
use crate::error::BedrockError;
use crate::render::is_claude;

/// Top-level keys Bedrock accepts in a Claude body.
pub const KEYS: &[&str] = &[
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "output_config",
    "context_management",
];

/// Context-management edits Bedrock rejects.
const REJECTED_EDITS: &[&str] = &["clear_thinking_20251015"];

fn invalid(message: impl Into<String>) -> BedrockError {
    BedrockError::validation(message)
}

fn malformed(detail: &str) -> BedrockError {
    invalid(format!(
        "Malformed input request: {detail}, please reformat your input and try again."
    ))
}

/// Validates an Anthropic body sent to InvokeModel / InvokeModelWithResponseStream.
pub fn check(body: &Value, model_id: &str) -> Check {
    if !is_claude(model_id) {
        return Err(malformed(&format!(
            "the body is not in the native format of model {model_id}"
        )));
    }
    let object = body
        .as_object()
        .ok_or_else(|| malformed("#: expected type: JSONObject"))?;
    for required in ["anthropic_version", "max_tokens", "messages"] {
        if !object.contains_key(required) {
            return Err(malformed(&format!(
                "#: required key [{required}] not found"
            )));
        }
    }
    match object.get("anthropic_version").and_then(Value::as_str) {
        Some("bedrock-2023-05-31") => {}
        other => {
            return Err(malformed(&format!(
                "#/anthropic_version: {} is not a valid enum value",
                other.unwrap_or("null")
            )));
        }
    }
    if let Some(key) = object.keys().find(|key| !KEYS.contains(&key.as_str())) {
        return Err(invalid(format!("{key}: Extra inputs are not permitted")));
    }
    let max_tokens = object
        .get("max_tokens")
        .and_then(Value::as_u64)
        .filter(|n| *n >= 1);
    if max_tokens.is_none() {
        return Err(invalid(
            "max_tokens: Input should be greater than or equal to 1",
        ));
    }
    let beta = object.get("anthropic_beta");
    betas(beta, "anthropic_beta")?;
    context_management(object.get("context_management"), beta)?;
    let temperature = object.get("temperature").and_then(Value::as_f64);
    thinking(object.get("thinking"), max_tokens, temperature)?;
    let mut cache = system(object.get("system"))?;
    cache += messages(object.get("messages"))?;
    cache += tools(object.get("tools"))?;
    cache_points(cache)
}

fn context_management(value: Option<&Value>, beta: Option<&Value>) -> Check {
    let Some(value) = value else {
        return Ok(());
    };
    if !beta_enabled(beta, "context-management-2025-06-27") {
        return Err(invalid(
            "context_management: Extra inputs are not permitted",
        ));
    }
    let edits = value
        .get("edits")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (index, edit) in edits.iter().enumerate() {
        let kind = edit.get("type").and_then(Value::as_str).unwrap_or_default();
        if REJECTED_EDITS.contains(&kind) {
            return Err(invalid(format!(
                "context_management.edits.{index}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags"
            )));
        }
    }
    Ok(())
}

fn has_cache_control(block: &Value) -> usize {
    usize::from(block.get("cache_control").is_some_and(|c| !c.is_null()))
}

/// Text blocks must carry non-whitespace text.
fn text_block(block: &Value, path: &str) -> Check {
    if block.get("type").and_then(Value::as_str) != Some("text") {
        return Ok(());
    }
    let text = block
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if text.is_empty() {
        return Err(invalid(format!(
            "{path}: text content blocks must be non-empty"
        )));
    }
    if text.trim().is_empty() {
        return Err(invalid(format!(
            "{path}: text content blocks must contain non-whitespace text"
        )));
    }
    Ok(())
}

/// Returns the number of cache breakpoints.
fn system(system: Option<&Value>) -> Result<usize, BedrockError> {
    match system {
        None | Some(Value::String(_)) => Ok(0),
        Some(Value::Array(blocks)) => {
            let mut cache = 0;
            for block in blocks {
                text_block(block, "system")?;
                cache += has_cache_control(block);
            }
            Ok(cache)
        }
        Some(_) => Err(invalid("system: Input should be a valid string or list")),
    }
}

/// Returns the number of cache breakpoints.
fn messages(messages: Option<&Value>) -> Result<usize, BedrockError> {
    let messages = messages
        .and_then(Value::as_array)
        .filter(|messages| !messages.is_empty())
        .ok_or_else(|| invalid("messages: at least one message is required"))?;
    let mut cache = 0;
    let mut tools = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if role != "user" && role != "assistant" {
            return Err(invalid(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            )));
        }
        let is_final_assistant = i + 1 == messages.len() && role == "assistant";
        let mut message_tools = MessageTools {
            role: role.to_owned(),
            ..MessageTools::default()
        };
        match message.get("content") {
            Some(Value::String(text)) if text.is_empty() && !is_final_assistant => {
                return Err(invalid(format!(
                    "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
                )));
            }
            Some(Value::String(_)) => {}
            Some(Value::Array(blocks)) => {
                if blocks.is_empty() && !is_final_assistant {
                    return Err(invalid(format!(
                        "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
                    )));
                }
                for (j, block) in blocks.iter().enumerate() {
                    text_block(block, "messages")?;
                    cache += has_cache_control(block);
                    let id_at = |key: &str| {
                        block
                            .get(key)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    match block.get("type").and_then(Value::as_str) {
                        Some("tool_use") => {
                            let id = id_at("id");
                            tool_id(&id, &format!("messages.{i}.content.{j}.tool_use.id"))?;
                            message_tools.uses.push(id);
                        }
                        Some("tool_result") => {
                            let id = id_at("tool_use_id");
                            tool_id(
                                &id,
                                &format!("messages.{i}.content.{j}.tool_result.tool_use_id"),
                            )?;
                            message_tools.results.push((j, id));
                            if let Some(Value::Array(parts)) = block.get("content") {
                                cache += parts.iter().map(has_cache_control).sum::<usize>();
                            }
                        }
                        Some(_) => {}
                        None => {
                            return Err(invalid(format!(
                                "messages.{i}.content.{j}: Field required: type"
                            )));
                        }
                    }
                }
            }
            _ => {
                return Err(invalid(format!(
                    "messages.{i}.content: Input should be a valid string or list"
                )));
            }
        }
        tools.push(message_tools);
    }
    tool_pairing(&tools).map_err(|pairing| match pairing {
        Pairing::Unexpected(i, j, id) => invalid(format!("messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")),
        Pairing::TooMany(i) => invalid(format!("messages.{i}: each `tool_result` block must have a corresponding `tool_use` block in the previous message.")),
        Pairing::Missing(i, ids) => invalid(format!("messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.", ids.join(", "))),
    })?;
    Ok(cache)
}

/// Returns the number of cache breakpoints.
fn tools(tools: Option<&Value>) -> Result<usize, BedrockError> {
    let Some(tools) = tools else {
        return Ok(0);
    };
    let tools = tools
        .as_array()
        .ok_or_else(|| invalid("tools: Input should be a valid list"))?;
    let mut names: Vec<&str> = Vec::new();
    let mut cache = 0;
    for tool in tools {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
        if names.contains(&name) {
            return Err(invalid("tools: Tool names must be unique."));
        }
        names.push(name);
        cache += has_cache_control(tool);
    }
    Ok(cache)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLAUDE: &str = "global.anthropic.claude-sonnet-4-5-20250929-v1:0";

    fn base() -> Value {
        json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
    }

    fn message_of(patch: Value) -> String {
        let mut body = base();
        if let (Some(body), Some(patch)) = (body.as_object_mut(), patch.as_object()) {
            for (key, value) in patch {
                if value.is_null() {
                    body.remove(key);
                } else {
                    body.insert(key.clone(), value.clone());
                }
            }
        }
        check(&body, CLAUDE)
            .err()
            .map(|e| e.message)
            .unwrap_or_default()
    }

    #[test]
    fn accepts_a_minimal_body() {
        assert_eq!(check(&base(), CLAUDE), Ok(()));
        assert!(check(&base(), "qwen.qwen3-32b-v1:0").is_err());
    }

    #[test]
    fn rejects_what_bedrock_rejects() {
        assert_eq!(
            message_of(json!({"model": "claude"})),
            "model: Extra inputs are not permitted"
        );
        assert_eq!(
            message_of(json!({"stream": true})),
            "stream: Extra inputs are not permitted"
        );
        assert_eq!(
            message_of(json!({"service_tier": "auto"})),
            "service_tier: Extra inputs are not permitted"
        );
        assert!(
            message_of(json!({"anthropic_version": null}))
                .contains("required key [anthropic_version]")
        );
        assert!(
            message_of(json!({"anthropic_beta": ["claude-code-20250219"]}))
                .contains("invalid beta flag")
        );
        let clear = json!({"edits": [{"type": "clear_thinking_20251015"}]});
        assert!(message_of(json!({"context_management": clear})).contains("context_management"));
        let beta = json!(["context-management-2025-06-27"]);
        assert!(
            message_of(json!({"context_management": clear, "anthropic_beta": beta}))
                .contains("clear_thinking_20251015")
        );
        let kept = json!({"edits": [{"type": "clear_tool_uses_20250919"}]});
        assert_eq!(
            message_of(json!({"context_management": kept, "anthropic_beta": beta})),
            ""
        );
        let blank = json!([{"role": "user", "content": [{"type": "text", "text": "  "}]}]);
        assert!(message_of(json!({"messages": blank})).contains("non-whitespace"));
        let orphan = json!([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "r"}]}]);
        assert!(message_of(json!({"messages": orphan})).contains("unexpected `tool_use_id`"));
        let bad_id = json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "tool_use", "id": "a.b", "name": "x", "input": {}}]}]);
        assert!(message_of(json!({"messages": bad_id})).contains("should match pattern"));
    }
}
