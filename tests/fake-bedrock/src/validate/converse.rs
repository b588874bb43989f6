//! Converse body strictness: known top-level keys, user-first alternating messages, one-member content
//! blocks, no blank text, tool blocks only with a non-empty `toolConfig`, `serviceTier` as an object.

use serde_json::{Map, Value};

use super::{
    Check, MessageTools, Pairing, SERVICE_TIERS, betas, cache_points, thinking, tool_id,
    tool_pairing,
};
use crate::error::BedrockError;
use crate::render::is_claude;

/// Top-level keys of a Converse / ConverseStream body.
pub const KEYS: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "serviceTier",
    "outputConfig",
    "guardrailConfig",
    "performanceConfig",
    "promptVariables",
    "requestMetadata",
];

/// Top-level keys of CountTokens' `input.converse`.
pub const COUNT_TOKENS_KEYS: &[&str] = &[
    "messages",
    "system",
    "toolConfig",
    "additionalModelRequestFields",
];

const CONTENT_MEMBERS: &[&str] = &[
    "text",
    "image",
    "document",
    "video",
    "audio",
    "toolUse",
    "toolResult",
    "guardContent",
    "cachePoint",
    "reasoningContent",
    "citationsContent",
    "searchResult",
    "toolAddition",
    "toolRemoval",
];

const SYSTEM_MEMBERS: &[&str] = &["text", "guardContent", "cachePoint"];

fn invalid(message: impl Into<String>) -> BedrockError {
    BedrockError::validation(message)
}

/// Validates a Converse body whose top-level keys must be within `keys`.
pub fn check(body: &Value, keys: &[&str], model_id: &str) -> Check {
    let object = body
        .as_object()
        .ok_or_else(|| invalid("The request body must be a JSON object."))?;
    if let Some(key) = object.keys().find(|key| !keys.contains(&key.as_str())) {
        return Err(invalid(format!(
            "Malformed input request: extraneous key [{key}] is not permitted, please reformat your input and try again."
        )));
    }
    service_tier(object.get("serviceTier"))?;
    let mut cache = system(object.get("system"))?;
    let (message_cache, has_tool_blocks) = messages(object.get("messages"), model_id)?;
    cache += message_cache;
    match object.get("toolConfig") {
        Some(config) => cache += tool_config(config)?,
        None if has_tool_blocks => {
            return Err(invalid(
                "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
            ));
        }
        None => {}
    }
    cache_points(cache)?;
    let max_tokens = body
        .pointer("/inferenceConfig/maxTokens")
        .and_then(Value::as_u64);
    if max_tokens == Some(0) {
        return Err(invalid(
            "1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ));
    }
    if is_claude(model_id) {
        let fields = object.get("additionalModelRequestFields");
        betas(
            fields.and_then(|f| f.get("anthropic_beta")),
            "anthropic_beta",
        )?;
        let temperature = body
            .pointer("/inferenceConfig/temperature")
            .and_then(Value::as_f64);
        thinking(
            fields.and_then(|f| f.get("thinking")),
            max_tokens,
            temperature,
        )?;
    }
    Ok(())
}

fn service_tier(tier: Option<&Value>) -> Check {
    let Some(tier) = tier else {
        return Ok(());
    };
    match tier.get("type").and_then(Value::as_str) {
        Some(kind)
            if tier.as_object().is_some_and(|o| o.len() == 1) && SERVICE_TIERS.contains(&kind) =>
        {
            Ok(())
        }
        _ => Err(invalid(format!(
            "1 validation error detected: Value '{tier}' at 'serviceTier' failed to satisfy constraint: Member must be a structure with 'type' one of [priority, default, flex, reserved]"
        ))),
    }
}

/// The one member of a union-shaped block, if it has exactly one known member.
fn member<'a>(block: &'a Value, members: &[&str]) -> Option<(&'a str, &'a Value)> {
    let object: &Map<String, Value> = block.as_object()?;
    let (key, value) = object.iter().next()?;
    (object.len() == 1 && members.contains(&key.as_str())).then_some((key.as_str(), value))
}

fn blank(value: &Value) -> bool {
    value.as_str().is_none_or(|text| text.trim().is_empty())
}

/// Returns the number of cache points.
fn system(system: Option<&Value>) -> Result<usize, BedrockError> {
    let Some(system) = system else {
        return Ok(0);
    };
    let blocks = system
        .as_array()
        .ok_or_else(|| invalid("system must be a list of SystemContentBlock objects."))?;
    let mut cache = 0;
    for (index, block) in blocks.iter().enumerate() {
        match member(block, SYSTEM_MEMBERS) {
            Some(("text", text)) if blank(text) => {
                return Err(invalid(format!(
                    "The text field in the SystemContentBlock object at system.{index} is blank. Add text to the text field, and try again."
                )));
            }
            Some(("cachePoint", _)) => cache += 1,
            Some(_) => {}
            None => {
                return Err(invalid(format!(
                    "system.{index}: a SystemContentBlock must set exactly one member."
                )));
            }
        }
    }
    Ok(cache)
}

/// Returns the number of cache points and whether any tool block appears.
fn messages(messages: Option<&Value>, model_id: &str) -> Result<(usize, bool), BedrockError> {
    let messages = messages
        .and_then(Value::as_array)
        .filter(|messages| !messages.is_empty())
        .ok_or_else(|| invalid("A conversation must start with a user message. Try again with a conversation that starts with a user message."))?;
    let allowed_roles: &[&str] = if is_claude(model_id) {
        &["user", "assistant"]
    } else {
        &["user", "assistant", "system"]
    };
    let (mut cache, mut has_tool_blocks) = (0, false);
    let mut tools = Vec::with_capacity(messages.len());
    let mut previous_role = None;
    for (i, message) in messages.iter().enumerate() {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !allowed_roles.contains(&role) {
            return Err(invalid(format!(
                "1 validation error detected: Value '{role}' at 'messages.{i}.role' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                allowed_roles.join(", ")
            )));
        }
        if i == 0 && role != "user" {
            return Err(invalid(
                "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
            ));
        }
        if previous_role == Some(role) {
            return Err(invalid(
                "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.",
            ));
        }
        previous_role = Some(role);
        let content = message
            .get("content")
            .and_then(Value::as_array)
            .filter(|content| !content.is_empty())
            .ok_or_else(|| invalid(format!("The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again.")))?;
        let mut message_tools = MessageTools {
            role: role.to_owned(),
            ..MessageTools::default()
        };
        for (j, block) in content.iter().enumerate() {
            match member(block, CONTENT_MEMBERS) {
                Some(("text", text)) if blank(text) => {
                    return Err(invalid(format!(
                        "The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text to the text field, and try again."
                    )));
                }
                Some(("cachePoint", _)) => cache += 1,
                Some(("toolUse", tool_use)) => {
                    has_tool_blocks = true;
                    let id = tool_use
                        .get("toolUseId")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    tool_id(id, &format!("messages.{i}.content.{j}.toolUse.toolUseId"))?;
                    message_tools.uses.push(id.to_owned());
                }
                Some(("toolResult", result)) => {
                    has_tool_blocks = true;
                    let id = result
                        .get("toolUseId")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    tool_id(
                        id,
                        &format!("messages.{i}.content.{j}.toolResult.toolUseId"),
                    )?;
                    message_tools.results.push((j, id.to_owned()));
                }
                Some(_) => {}
                None => {
                    return Err(invalid(format!(
                        "messages.{i}.content.{j}: a ContentBlock must set exactly one of {}.",
                        CONTENT_MEMBERS.join(", ")
                    )));
                }
            }
        }
        tools.push(message_tools);
    }
    tool_pairing(&tools).map_err(|pairing| match pairing {
        Pairing::TooMany(i) => invalid(format!("The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks of previous turn.")),
        Pairing::Missing(i, ids) => invalid(format!("Expected toolResult blocks at messages.{i}.content for the following Ids: {}", ids.join(", "))),
        Pairing::Unexpected(i, j, id) => invalid(format!("messages.{i}.content.{j}: unexpected tool_use_id found in tool_result blocks: {id}. Each tool_result block must have a corresponding tool_use block in the previous message.")),
    })?;
    Ok((cache, has_tool_blocks))
}

/// Returns the number of cache points.
fn tool_config(config: &Value) -> Result<usize, BedrockError> {
    let tools = config
        .get("tools")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("1 validation error detected: Value null at 'toolConfig.tools' failed to satisfy constraint: Member must not be null"))?;
    if tools.is_empty() {
        return Err(invalid(
            "1 validation error detected: Value '[]' at 'toolConfig.tools' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    let (mut cache, mut names) = (0, Vec::new());
    for (index, tool) in tools.iter().enumerate() {
        match member(tool, &["toolSpec", "cachePoint", "systemTool"]) {
            Some(("cachePoint", _)) => cache += 1,
            Some(("toolSpec", spec)) => {
                let name = spec.get("name").and_then(Value::as_str).unwrap_or_default();
                if name.is_empty() || spec.pointer("/inputSchema/json").is_none() {
                    return Err(invalid(format!(
                        "toolConfig.tools.{index}.toolSpec: name and inputSchema.json are required."
                    )));
                }
                if names.contains(&name) {
                    return Err(invalid(format!(
                        "The toolConfig.tools contain duplicate tool names: {name}"
                    )));
                }
                names.push(name);
            }
            Some(_) => {}
            None => {
                return Err(invalid(format!(
                    "toolConfig.tools.{index}: a Tool must set exactly one of toolSpec, cachePoint, systemTool."
                )));
            }
        }
    }
    if let Some(choice) = config.get("toolChoice")
        && member(choice, &["auto", "any", "tool"]).is_none()
    {
        return Err(invalid(
            "toolConfig.toolChoice must set exactly one of auto, any, tool.",
        ));
    }
    Ok(cache)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

    fn message_of(body: Value) -> String {
        check(&body, KEYS, CLAUDE)
            .err()
            .map(|e| e.message)
            .unwrap_or_default()
    }

    #[test]
    fn accepts_a_tool_round_trip() {
        let body = json!({
            "messages": [
                {"role": "user", "content": [{"text": "hi"}, {"cachePoint": {"type": "default"}}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "Bash", "input": {}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "ok"}]}}]}
            ],
            "system": [{"text": "sys"}],
            "toolConfig": {"tools": [{"toolSpec": {"name": "Bash", "inputSchema": {"json": {"type": "object"}}}}], "toolChoice": {"auto": {}}},
            "serviceTier": {"type": "priority"},
            "inferenceConfig": {"maxTokens": 10},
            "additionalModelRequestFields": {"anthropic_beta": ["interleaved-thinking-2025-05-14"]}
        });
        assert_eq!(check(&body, KEYS, CLAUDE), Ok(()));
    }

    #[test]
    fn rejects_what_bedrock_rejects() {
        let user = |text: &str| json!({"role": "user", "content": [{"text": text}]});
        assert!(
            message_of(json!({"messages": [user("hi")], "modelId": "x"}))
                .contains("extraneous key [modelId]")
        );
        assert!(message_of(json!({"messages": [user(" \n")]})).contains("is blank"));
        assert!(message_of(json!({"messages": [user("a"), user("b")]})).contains("alternate"));
        assert!(
            message_of(json!({"messages": [{"role": "assistant", "content": [{"text": "a"}]}]}))
                .contains("start with a user")
        );
        assert!(
            message_of(json!({"messages": [user("a")], "serviceTier": "priority"}))
                .contains("serviceTier")
        );
        assert!(
            message_of(json!({"messages": [user("a")], "toolConfig": {"tools": []}}))
                .contains("toolConfig.tools")
        );
        let history = json!({"messages": [
            user("a"),
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "Bash", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "ok"}]}}]}
        ]});
        assert!(message_of(history).contains("toolConfig field must be defined"));
        assert!(message_of(json!({"messages": [user("a")], "additionalModelRequestFields": {"anthropic_beta": ["nope"]}})).contains("invalid beta flag"));
        assert!(
            message_of(
                json!({"messages": [{"role": "user", "content": [{"text": "a", "image": {}}]}]})
            )
            .contains("exactly one")
        );
        let five_cache_points: Vec<Value> = (0..5)
            .flat_map(|_| {
                [
                    json!({"text": "x"}),
                    json!({"cachePoint": {"type": "default"}}),
                ]
            })
            .collect();
        assert!(
            message_of(json!({"messages": [{"role": "user", "content": five_cache_points}]}))
                .contains("maximum of 4")
        );
    }
}
