//! What PTC does to the tool list (ptc.md sections 1-3): find the code execution tool, check the
//! activation rules, split tools by role, and render the synthetic code tool and the system guide
//! from the editable resources. Pure: same tool list, byte-identical output.

use serde_json::{Map, Value, json};

use super::config::PtcConfig;
use crate::error::ApiError;

const GUIDE: &str = include_str!("../../resources/ptc_guide.md");
const CODE_TOOL_DESCRIPTION: &str = include_str!("../../resources/ptc_code_tool.md");
pub const BETA: &str = "advanced-tool-use-2025-11-20";

/// The PTC view of one request's tools.
#[derive(Debug, Clone)]
pub struct PtcTools {
    /// The client's code execution tool name (normally `code_execution`).
    pub client_code_name: String,
    /// Its type: the caller type of sandbox-called `tool_use` blocks.
    pub caller_type: String,
    /// The model-facing code tool name (`execute_code`, made unique).
    pub code_tool_name: String,
    /// Tools offered to the model, `allowed_callers` removed, code tool first.
    pub upstream: Vec<Value>,
    /// Tools callable from code (original definitions), in client order.
    pub callable: Vec<Value>,
}

impl PtcTools {
    pub fn callable_names(&self) -> Vec<String> {
        self.callable
            .iter()
            .map(|t| name_of(t).to_string())
            .collect()
    }
}

fn name_of(tool: &Value) -> &str {
    tool.get("name").and_then(Value::as_str).unwrap_or_default()
}

fn type_of(tool: &Value) -> Option<&str> {
    tool.get("type").and_then(Value::as_str)
}

fn tools_of(request: &Value) -> &[Value] {
    request
        .get("tools")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// True when the request declares a code execution tool of one of `tool_types`.
pub fn declares_code_tool(request: &Value, tool_types: &[String]) -> bool {
    tools_of(request)
        .iter()
        .any(|t| type_of(t).is_some_and(|ty| tool_types.iter().any(|x| x == ty)))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid_request(message)
}

/// Checks section 1 and splits the tools by role (section 2).
pub fn analyze(
    request: &Value,
    client_betas: &[String],
    config: &PtcConfig,
) -> Result<PtcTools, ApiError> {
    let is_code_type = |t: &str| t.starts_with("code_execution_");
    let tools = tools_of(request);
    let code_tools: Vec<&Value> = tools
        .iter()
        .filter(|t| type_of(t).is_some_and(|ty| config.tool_types.iter().any(|x| x == ty)))
        .collect();
    let [code] = code_tools.as_slice() else {
        return Err(invalid("only one code execution tool allowed"));
    };
    if config.require_beta && !client_betas.iter().any(|b| b == BETA) {
        return Err(invalid(format!(
            "code execution with tool calling requires `anthropic-beta: {BETA}`"
        )));
    }
    let caller_type = type_of(code).unwrap_or_default().to_string();
    let client_code_name = match name_of(code) {
        "" => "code_execution".to_string(),
        n => n.to_string(),
    };
    let mut upstream = Vec::new();
    let mut callable = Vec::new();
    let mut sandbox_only = Vec::new();
    for tool in tools {
        if std::ptr::eq(tool, *code) {
            continue;
        }
        let name = name_of(tool);
        let custom = matches!(type_of(tool), None | Some("custom"));
        let (mut direct, mut from_code) = (true, false);
        if let Some(callers) = tool.get("allowed_callers") {
            let list = callers
                .as_array()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| {
                    invalid(format!(
                        "tool {name}: allowed_callers must be a non-empty list"
                    ))
                })?;
            direct = false;
            for value in list {
                match value.as_str() {
                    Some("direct") => direct = true,
                    Some(t) if t == caller_type => from_code = true,
                    Some(t) if is_code_type(t) => {
                        return Err(invalid(format!(
                            "tool {name}: allowed_callers names {t}, but the declared code execution tool is {caller_type}"
                        )));
                    }
                    _ => {
                        return Err(invalid(format!(
                            "tool {name}: unknown allowed_callers value {value}"
                        )));
                    }
                }
            }
        }
        if from_code && !custom {
            return Err(invalid(format!(
                "tool {name}: only custom tools can be called from code"
            )));
        }
        if from_code {
            callable.push(tool.clone());
        }
        if direct {
            let mut t = tool.clone();
            if let Some(obj) = t.as_object_mut() {
                obj.shift_remove("allowed_callers");
            }
            upstream.push(t);
        } else {
            sandbox_only.push(name.to_string());
        }
    }
    let code_tool_name = unique_name(&config.code_tool_name, tools);
    if let Some(choice) = request.get("tool_choice")
        && let Some(name) = choice.get("name").and_then(Value::as_str)
        && sandbox_only.iter().any(|n| n == name)
    {
        return Err(invalid(format!(
            "tool_choice: tool {name} can only be called from code"
        )));
    }
    let mut out = PtcTools {
        client_code_name,
        caller_type,
        code_tool_name,
        upstream,
        callable,
    };
    out.upstream.insert(0, code_tool_definition(&out));
    Ok(out)
}

/// `execute_code`, then `_1`, `_2`, ... until no client tool has the name.
pub fn unique_name(base: &str, tools: &[Value]) -> String {
    let taken = |n: &str| tools.iter().any(|t| name_of(t) == n);
    if !taken(base) {
        return base.to_string();
    }
    (1..)
        .map(|i| format!("{base}_{i}"))
        .find(|n| !taken(n))
        .unwrap_or_else(|| base.to_string())
}

const PY_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// The name a tool is bound under in Python (the rule of `ExecuteRequest.tool_names`).
pub fn python_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if PY_KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

fn python_type(schema: &Value) -> &'static str {
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => "str",
        Some("integer") => "int",
        Some("number") => "float",
        Some("boolean") => "bool",
        Some("array") => "list",
        Some("object") => "dict",
        _ => "object",
    }
}

/// `async def name(*, a: str, b: int = None) -> str`: required parameters first.
pub fn signature(tool: &Value) -> String {
    let schema = tool.get("input_schema").cloned().unwrap_or(json!({}));
    let empty = Map::new();
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut params: Vec<String> = Vec::new();
    for (key, prop) in props.iter().filter(|(k, _)| required.contains(&k.as_str())) {
        params.push(format!("{key}: {}", python_type(prop)));
    }
    for (key, prop) in props
        .iter()
        .filter(|(k, _)| !required.contains(&k.as_str()))
    {
        params.push(format!("{key}: {} = None", python_type(prop)));
    }
    let params = if params.is_empty() {
        String::new()
    } else {
        format!("*, {}", params.join(", "))
    };
    format!("async def {}({params}) -> str", python_name(name_of(tool)))
}

fn first_line(tool: &Value) -> &str {
    tool.get("description")
        .and_then(Value::as_str)
        .and_then(|d| d.lines().next())
        .unwrap_or_default()
}

/// The synthetic code tool (section 3.1).
pub fn code_tool_definition(tools: &PtcTools) -> Value {
    let signatures: Vec<String> = tools
        .callable
        .iter()
        .map(|t| format!("- {}: {}", signature(t), first_line(t)))
        .collect();
    let signatures = if signatures.is_empty() {
        "(none)".to_string()
    } else {
        signatures.join("\n")
    };
    json!({
        "name": tools.code_tool_name,
        "description": CODE_TOOL_DESCRIPTION.trim_end().replace("{{signatures}}", &signatures),
        "input_schema": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Python 3 source; top-level await is allowed"}},
            "required": ["code"],
            "additionalProperties": false
        }
    })
}

/// The system guide (section 3.2).
pub fn guide(tools: &PtcTools, config: &PtcConfig) -> String {
    let functions: Vec<String> = tools
        .callable
        .iter()
        .map(|t| {
            let schema = t.get("input_schema").cloned().unwrap_or(json!({}));
            format!(
                "### `{}`\n{}\nInput schema: `{}`",
                signature(t),
                t.get("description").and_then(Value::as_str).unwrap_or(""),
                schema
            )
        })
        .collect();
    GUIDE
        .trim_end()
        .replace("{{code_tool}}", &tools.code_tool_name)
        .replace(
            "{{timeout_s}}",
            &config.execution_timeout.as_secs().to_string(),
        )
        .replace("{{max_stdout_bytes}}", &config.max_stdout_bytes.to_string())
        .replace("{{functions}}", &functions.join("\n\n"))
}

/// Appends the guide as the last text block of `system` (a string becomes one text block).
pub fn append_guide(body: &mut Map<String, Value>, guide: String) {
    let block = json!({"type": "text", "text": guide});
    match body.get_mut("system") {
        Some(Value::Array(blocks)) => blocks.push(block),
        Some(Value::String(s)) if !s.trim().is_empty() => {
            let first = json!({"type": "text", "text": s.clone()});
            body.insert("system".into(), Value::Array(vec![first, block]));
        }
        _ => {
            body.insert("system".into(), Value::Array(vec![block]));
        }
    }
}

/// `tool_choice` naming the client code-tool name names the code tool instead.
pub fn rewrite_tool_choice(body: &mut Map<String, Value>, tools: &PtcTools) {
    if let Some(choice) = body.get_mut("tool_choice").and_then(Value::as_object_mut)
        && choice.get("name").and_then(Value::as_str) == Some(tools.client_code_name.as_str())
    {
        choice.insert("name".into(), Value::String(tools.code_tool_name.clone()));
    }
}

#[cfg(test)]
#[path = "tools_tests.rs"]
mod tests;
