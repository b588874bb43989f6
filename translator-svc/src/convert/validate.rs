//! Top-level request validation the Anthropic API itself would do, before anything is rewritten,
//! so error paths name the client's own fields and indices. Never panics: every shape problem is a
//! 400 `invalid_request_error`. Messages and blocks: `validate_content`.

use serde_json::{Map, Value};

use super::normalize::Mode;
use crate::anthropic::request::block;
use crate::error::ApiError;

pub(crate) type Result<T> = std::result::Result<T, ApiError>;

pub(crate) fn err(path: &str, msg: impl AsRef<str>) -> ApiError {
    ApiError::invalid_at(path, msg)
}

fn is_positive_int(v: &Value) -> bool {
    v.as_u64()
        .is_some_and(|n| n >= 1 && n <= u64::from(u32::MAX))
}

/// Scalar and container types of the top-level fields.
pub(crate) fn validate_top_level(body: &Map<String, Value>, mode: Mode) -> Result<()> {
    if mode == Mode::Messages {
        match body.get("max_tokens") {
            None => return Err(err("max_tokens", "Field required")),
            Some(v) if !is_positive_int(v) => {
                return Err(err(
                    "max_tokens",
                    "Input should be an integer greater than or equal to 1",
                ));
            }
            Some(_) => {}
        }
    }
    for key in ["temperature", "top_p"] {
        if body.get(key).is_some_and(|v| !v.is_number()) {
            return Err(err(key, "Input should be a valid number"));
        }
    }
    if body.get("top_k").is_some_and(|v| v.as_u64().is_none()) {
        return Err(err("top_k", "Input should be a non-negative integer"));
    }
    if let Some(v) = body.get("stop_sequences") {
        let ok = v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return Err(err("stop_sequences", "Input should be a list of strings"));
        }
    }
    if let Some(v) = body.get("mcp_servers") {
        match v.as_array() {
            None => return Err(err("mcp_servers", "Input should be a valid list")),
            Some(list) if !list.is_empty() => {
                return Err(err("mcp_servers", "MCP connector is not available"));
            }
            Some(_) => {}
        }
    }
    for key in [
        "metadata",
        "output_config",
        "output_format",
        "context_management",
    ] {
        if body.get(key).is_some_and(|v| !v.is_object()) {
            return Err(err(key, "Input should be an object"));
        }
    }
    if let Some(edits) = body.get("context_management").and_then(|c| c.get("edits")) {
        let ok = edits.as_array().is_some_and(|a| {
            a.iter()
                .all(|e| e.get("type").is_some_and(Value::is_string))
        });
        if !ok {
            return Err(err(
                "context_management.edits",
                "Input should be a list of edits with a type",
            ));
        }
    }
    if body
        .get("output_config")
        .and_then(|c| c.get("effort"))
        .is_some_and(|e| !e.is_string() && !e.is_null())
    {
        return Err(err(
            "output_config.effort",
            "Input should be a valid string",
        ));
    }
    for (key, fmt) in [
        (
            "output_config.format",
            body.get("output_config").and_then(|c| c.get("format")),
        ),
        ("output_format", body.get("output_format")),
    ] {
        if let Some(fmt) = fmt.filter(|f| !f.is_null()) {
            let schema_ok = fmt.get("schema").is_some_and(Value::is_object);
            if fmt.get("type").and_then(Value::as_str) != Some("json_schema") || !schema_ok {
                return Err(err(
                    key,
                    "expected {\"type\":\"json_schema\",\"schema\":{...}}",
                ));
            }
        }
    }
    validate_system(body.get("system"))?;
    validate_tools_shape(body.get("tools"))
}

fn validate_system(system: Option<&Value>) -> Result<()> {
    match system {
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                let path = format!("system.{i}");
                if b.get("type").and_then(Value::as_str) != Some(block::TEXT) {
                    return Err(err(&format!("{path}.type"), "Input should be 'text'"));
                }
                if !b.get("text").is_some_and(Value::is_string) {
                    return Err(err(
                        &format!("{path}.text"),
                        "Input should be a valid string",
                    ));
                }
                validate_cache_control(b, &path)?;
            }
            Ok(())
        }
        Some(_) => Err(err(
            "system",
            "Input should be a valid string or list of text blocks",
        )),
    }
}

fn validate_tools_shape(tools: Option<&Value>) -> Result<()> {
    let Some(tools) = tools else { return Ok(()) };
    let list = tools
        .as_array()
        .ok_or_else(|| err("tools", "Input should be a valid list"))?;
    for (i, tool) in list.iter().enumerate() {
        let path = format!("tools.{i}");
        if !tool.is_object() {
            return Err(err(&path, "Input should be an object"));
        }
        if !tool.get("name").is_some_and(Value::is_string) {
            return Err(err(&format!("{path}.name"), "Field required"));
        }
        if tool.get("type").is_some_and(|t| !t.is_string()) {
            return Err(err(
                &format!("{path}.type"),
                "Input should be a valid string",
            ));
        }
        if tool
            .get("input_schema")
            .is_some_and(|s| !s.is_object() && !s.is_null())
        {
            return Err(err(
                &format!("{path}.input_schema"),
                "Input should be an object",
            ));
        }
        validate_cache_control(tool, &path)?;
    }
    Ok(())
}

pub(crate) fn validate_cache_control(b: &Value, path: &str) -> Result<()> {
    match b.get("cache_control") {
        None | Some(Value::Null) => Ok(()),
        Some(cc) if cc.is_object() => {
            if cc
                .get("ttl")
                .is_some_and(|t| !t.is_string() && !t.is_null())
            {
                return Err(err(
                    &format!("{path}.cache_control.ttl"),
                    "Input should be '5m' or '1h'",
                ));
            }
            Ok(())
        }
        Some(_) => Err(err(
            &format!("{path}.cache_control"),
            "Input should be an object",
        )),
    }
}
