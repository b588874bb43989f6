//! Tool classification and filtering (spec 8 tools table, 10.5) and `tool_choice` parsing: which
//! tools each path can forward, which the `SERVER_TOOLS` policy rejects or strips, and the
//! `tool_choice` fix-up when a named tool was removed.

use serde_json::{Map, Value};

use super::normalize::Target;
use super::options::{RequestOptions, ServerToolsPolicy};
use crate::anthropic::request::ToolChoice;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolKind {
    /// No `type`, or `type:"custom"`.
    Custom,
    /// `bash_*`, `text_editor_*`, `computer_*`, `memory_*`: run by the client.
    AnthropicClient,
    /// `tool_search_tool_regex_*`, `tool_search_tool_bm25_*`: Bedrock runs these for Claude.
    ToolSearch,
    /// `web_search_*`, `web_fetch_*`, `code_execution_*`, `mcp_toolset`: Bedrock cannot run them.
    /// `code_execution_20250825` belongs to PTC (`ptc.md`); until PTC lands it is treated here.
    Server,
    Unknown,
}

pub(crate) fn tool_type(tool: &Value) -> Option<&str> {
    tool.get("type").and_then(Value::as_str)
}

pub(crate) fn tool_name(tool: &Value) -> &str {
    tool.get("name").and_then(Value::as_str).unwrap_or_default()
}

pub(crate) fn classify(tool: &Value) -> ToolKind {
    let Some(t) = tool_type(tool) else {
        return ToolKind::Custom;
    };
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| t.starts_with(p));
    if t == "custom" {
        ToolKind::Custom
    } else if starts(&["bash_", "text_editor_", "computer_", "memory_"]) {
        ToolKind::AnthropicClient
    } else if starts(&["tool_search_tool_regex", "tool_search_tool_bm25"]) {
        ToolKind::ToolSearch
    } else if starts(&["web_search_", "web_fetch_", "code_execution_"]) || t == "mcp_toolset" {
        ToolKind::Server
    } else {
        ToolKind::Unknown
    }
}

/// Tools that survive filtering, and the names of the ones stripped.
pub(crate) struct ToolFilter {
    pub kept: Vec<(ToolKind, Value)>,
    pub removed: Vec<String>,
}

/// Applies the per-path rules: Invoke passes Anthropic-defined tools listed in `TOOL_TYPES_PASS`
/// and tool search (when the model has it); Converse forwards custom tools only.
pub(crate) fn filter_tools(
    body: &Map<String, Value>,
    opts: &RequestOptions,
    target: Target,
) -> Result<ToolFilter, ApiError> {
    let mut out = ToolFilter {
        kept: Vec::new(),
        removed: Vec::new(),
    };
    let Some(tools) = body.get("tools").and_then(Value::as_array) else {
        return Ok(out);
    };
    let caps = opts.route.capabilities();
    let passes = |t: &str| opts.tool_types_pass.iter().any(|p| p == t);
    for (i, tool) in tools.iter().enumerate() {
        let kind = classify(tool);
        let type_name = tool_type(tool).unwrap_or_default();
        let path = format!("tools.{i}.type");
        let invoke = target == Target::Invoke;
        match kind {
            ToolKind::Custom => out.kept.push((kind, tool.clone())),
            ToolKind::AnthropicClient | ToolKind::Unknown if invoke && passes(type_name) => {
                out.kept.push((kind, tool.clone()));
            }
            ToolKind::AnthropicClient | ToolKind::Unknown if invoke => {
                return Err(ApiError::invalid_at(
                    &path,
                    format!("tool type '{type_name}' is not enabled on this gateway"),
                ));
            }
            ToolKind::AnthropicClient | ToolKind::Unknown => {
                return Err(ApiError::invalid_at(
                    &path,
                    format!(
                        "tool type '{type_name}' is not supported for model {}",
                        opts.route.requested_model
                    ),
                ));
            }
            ToolKind::ToolSearch if invoke && caps.tool_search => {
                out.kept.push((kind, tool.clone()))
            }
            ToolKind::ToolSearch | ToolKind::Server => match opts.server_tools {
                ServerToolsPolicy::Reject => {
                    return Err(ApiError::invalid_at(
                        &path,
                        format!("server tool '{type_name}' is not available on this gateway"),
                    ));
                }
                ServerToolsPolicy::Strip => out.removed.push(tool_name(tool).to_string()),
            },
        }
    }
    Ok(out)
}

/// Parses `tool_choice` (object form, or the bare strings `auto`/`any`/`none`).
pub(crate) fn parse_tool_choice(body: &Map<String, Value>) -> Result<Option<ToolChoice>, ApiError> {
    let Some(v) = body.get("tool_choice") else {
        return Ok(None);
    };
    let bad_type = || {
        ApiError::invalid_at(
            "tool_choice.type",
            "Input should be 'auto', 'any', 'tool' or 'none'",
        )
    };
    if let Some(s) = v.as_str() {
        return match s {
            "auto" => Ok(Some(ToolChoice::Auto {
                disable_parallel_tool_use: None,
            })),
            "any" => Ok(Some(ToolChoice::Any {
                disable_parallel_tool_use: None,
            })),
            "none" => Ok(Some(ToolChoice::None)),
            _ => Err(bad_type()),
        };
    }
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::invalid_at("tool_choice", "Input should be an object"))?;
    let disable_parallel_tool_use = match obj.get("disable_parallel_tool_use") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(ApiError::invalid_at(
                "tool_choice.disable_parallel_tool_use",
                "Input should be a valid boolean",
            ));
        }
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("auto") => Ok(Some(ToolChoice::Auto {
            disable_parallel_tool_use,
        })),
        Some("any") => Ok(Some(ToolChoice::Any {
            disable_parallel_tool_use,
        })),
        Some("none") => Ok(Some(ToolChoice::None)),
        Some("tool") => match obj.get("name").and_then(Value::as_str) {
            Some(name) => Ok(Some(ToolChoice::Tool {
                name: name.to_string(),
                disable_parallel_tool_use,
            })),
            None => Err(ApiError::invalid_at("tool_choice.name", "Field required")),
        },
        _ => Err(bad_type()),
    }
}

/// A choice naming a tool that was stripped becomes `auto` (keeping `disable_parallel_tool_use`).
pub(crate) fn redirect_removed(choice: ToolChoice, removed: &[String]) -> ToolChoice {
    match choice {
        ToolChoice::Tool {
            name,
            disable_parallel_tool_use,
        } if removed.contains(&name) => ToolChoice::Auto {
            disable_parallel_tool_use,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_tool_types() {
        let kind = |t: Value| classify(&t);
        assert_eq!(kind(json!({"name": "a"})), ToolKind::Custom);
        assert_eq!(
            kind(json!({"type": "custom", "name": "a"})),
            ToolKind::Custom
        );
        assert_eq!(
            kind(json!({"type": "bash_20250124", "name": "bash"})),
            ToolKind::AnthropicClient
        );
        assert_eq!(
            kind(json!({"type": "memory_20250818", "name": "memory"})),
            ToolKind::AnthropicClient
        );
        assert_eq!(
            kind(json!({"type": "tool_search_tool_bm25_20251119"})),
            ToolKind::ToolSearch
        );
        assert_eq!(
            kind(json!({"type": "web_search_20250305"})),
            ToolKind::Server
        );
        assert_eq!(
            kind(json!({"type": "code_execution_20250825"})),
            ToolKind::Server
        );
        assert_eq!(kind(json!({"type": "mcp_toolset"})), ToolKind::Server);
        assert_eq!(
            kind(json!({"type": "hologram_20990101"})),
            ToolKind::Unknown
        );
    }

    #[test]
    fn tool_choice_forms() {
        let parse = |v: Value| parse_tool_choice(json!({"tool_choice": v}).as_object().unwrap());
        assert_eq!(
            parse(json!("auto")).unwrap(),
            Some(ToolChoice::Auto {
                disable_parallel_tool_use: None
            })
        );
        assert_eq!(
            parse(json!("any")).unwrap(),
            Some(ToolChoice::Any {
                disable_parallel_tool_use: None
            })
        );
        assert_eq!(
            parse(json!({"type": "tool", "name": "x", "disable_parallel_tool_use": true})).unwrap(),
            Some(ToolChoice::Tool {
                name: "x".into(),
                disable_parallel_tool_use: Some(true)
            })
        );
        assert_eq!(
            parse(json!({"type": "tool"})).unwrap_err().message,
            "tool_choice.name: Field required"
        );
        assert!(parse(json!("sometimes")).is_err());
        assert!(parse(json!({"type": "auto", "disable_parallel_tool_use": "yes"})).is_err());
        assert!(parse(json!(3)).is_err());
    }
}
