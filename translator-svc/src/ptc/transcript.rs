//! The client-visible PTC transcript and its model-facing rebuild (ptc.md sections 4 and 6):
//! id mapping, tool_result values for the code (6.2), the execution report for the model (6.3),
//! and the walk that turns PTC blocks back into ordinary tool_use/tool_result turns. Pure.

use std::collections::HashMap;

use serde_json::{Value, json};

pub const SANDBOX_ID_PREFIX: &str = "toolu_ptc_";

/// `toolu_<rest>` -> `srvtoolu_<rest>`; any other id -> `srvtoolu_<id>`.
pub fn to_server_id(model_id: &str) -> String {
    match model_id.strip_prefix("toolu_") {
        Some(rest) => format!("srvtoolu_{rest}"),
        None => format!("srvtoolu_{model_id}"),
    }
}

/// `srvtoolu_<rest>` -> `toolu_<rest>`.
pub fn to_model_id(server_id: &str) -> String {
    format!(
        "toolu_{}",
        server_id.strip_prefix("srvtoolu_").unwrap_or(server_id)
    )
}

fn kind(b: &Value) -> &str {
    b.get("type").and_then(Value::as_str).unwrap_or_default()
}

fn str_of<'a>(b: &'a Value, key: &str) -> &'a str {
    b.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A `tool_use` made by code: caller type is a code execution type, or the id has our prefix
/// (some SDKs drop `caller` when echoing).
pub fn is_sandbox_call(b: &Value) -> bool {
    kind(b) == "tool_use"
        && (str_of(b, "id").starts_with(SANDBOX_ID_PREFIX)
            || b.pointer("/caller/type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with("code_execution_")))
}

/// The string the awaited function returns for a `tool_result.content` (section 6.2).
pub fn render_result_content(content: Option<&Value>) -> String {
    match content {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(render_block)
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => other.to_string(),
    }
}

fn render_block(b: &Value) -> String {
    match kind(b) {
        "text" => str_of(b, "text").to_string(),
        "image" => {
            let data = b
                .pointer("/source/data")
                .and_then(Value::as_str)
                .unwrap_or("");
            let media = b
                .pointer("/source/media_type")
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("[image {media}, {} bytes]", data.len() * 3 / 4)
        }
        "document" => {
            let title = b
                .get("title")
                .and_then(Value::as_str)
                .or_else(|| b.pointer("/source/media_type").and_then(Value::as_str))
                .unwrap_or("");
            format!("[document {title}]")
        }
        "tool_reference" => format!("[tool_reference {}]", str_of(b, "tool_name")),
        _ => {
            let mut b = b.clone();
            if let Some(source) = b.get_mut("source").and_then(Value::as_object_mut)
                && source.contains_key("data")
            {
                source.insert("data".into(), json!("<elided>"));
            }
            b.to_string()
        }
    }
}

/// The execution report given to the model (6.3) from a `code_execution_tool_result.content`:
/// the JSON text and whether it is an error.
pub fn report(content: &Value) -> (String, bool) {
    if kind(content) == "code_execution_tool_result_error" {
        let text = json!({"error": str_of(content, "error_code"), "stdout": "", "stderr": ""});
        return (text.to_string(), true);
    }
    let code = content
        .get("return_code")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let text = json!({
        "stdout": str_of(content, "stdout"),
        "stderr": str_of(content, "stderr"),
        "return_code": code,
    });
    (text.to_string(), code != 0)
}

/// Names the rebuild needs.
pub struct Names<'a> {
    /// The client code-tool name; `None` (not in PTC mode): any `code_execution*` name.
    pub client_code_name: Option<&'a str>,
    pub code_tool_name: &'a str,
}

fn is_code_server_use(b: &Value, names: &Names) -> bool {
    kind(b) == "server_tool_use"
        && match names.client_code_name {
            Some(n) => str_of(b, "name") == n,
            None => str_of(b, "name").starts_with("code_execution"),
        }
}

/// True when the history carries any PTC block (a rebuild is needed).
pub fn has_ptc_blocks(messages: &[Value]) -> bool {
    messages
        .iter()
        .filter_map(|m| m.get("content")?.as_array())
        .flatten()
        .any(|b| {
            is_sandbox_call(b)
                || kind(b) == "code_execution_tool_result"
                || (kind(b) == "server_tool_use" && str_of(b, "name").starts_with("code_execution"))
        })
}

/// Section 4.3 rules 1-3: the model-facing conversation, code tool_uses possibly unanswered.
pub fn rebuild(messages: &[Value], names: &Names) -> Vec<Value> {
    let sandbox_ids: Vec<&str> = messages
        .iter()
        .filter_map(|m| m.get("content")?.as_array())
        .flatten()
        .filter(|b| is_sandbox_call(b))
        .map(|b| str_of(b, "id"))
        .collect();
    let mut out: Vec<Value> = Vec::new();
    for message in messages {
        let role = str_of(message, "role");
        let blocks = match message.get("content") {
            Some(Value::Array(blocks)) => blocks.clone(),
            Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
            _ => Vec::new(),
        };
        if role == "user" {
            let kept: Vec<Value> = blocks
                .into_iter()
                .filter(|b| {
                    !(kind(b) == "tool_result"
                        && (str_of(b, "tool_use_id").starts_with(SANDBOX_ID_PREFIX)
                            || sandbox_ids.contains(&str_of(b, "tool_use_id"))))
                })
                .collect();
            out.push(json!({"role": "user", "content": kept}));
            continue;
        }
        let mut segment: Vec<Value> = Vec::new();
        for b in blocks {
            if is_code_server_use(&b, names) {
                segment.push(json!({
                    "type": "tool_use",
                    "id": to_model_id(str_of(&b, "id")),
                    "name": names.code_tool_name,
                    "input": b.get("input").cloned().unwrap_or(json!({})),
                }));
            } else if is_sandbox_call(&b) {
                continue;
            } else if kind(&b) == "code_execution_tool_result" {
                let (text, is_error) = report(b.get("content").unwrap_or(&Value::Null));
                out.push(json!({"role": "assistant", "content": std::mem::take(&mut segment)}));
                out.push(json!({"role": "user", "content": [{
                    "type": "tool_result",
                    "tool_use_id": to_model_id(str_of(&b, "tool_use_id")),
                    "content": text,
                    "is_error": is_error,
                }]}));
            } else {
                let mut b = b;
                if kind(&b) == "tool_use"
                    && let Some(obj) = b.as_object_mut()
                {
                    obj.shift_remove("caller");
                }
                segment.push(b);
            }
        }
        out.push(json!({"role": "assistant", "content": segment}));
    }
    merge(out)
}

/// Code tool_uses (id, input) with no tool_result after them, in order.
pub fn unanswered_code_uses(messages: &[Value], code_tool_name: &str) -> Vec<(String, Value)> {
    let answered: Vec<&str> = messages
        .iter()
        .filter_map(|m| m.get("content")?.as_array())
        .flatten()
        .filter(|b| kind(b) == "tool_result")
        .map(|b| str_of(b, "tool_use_id"))
        .collect();
    messages
        .iter()
        .filter(|m| str_of(m, "role") == "assistant")
        .filter_map(|m| m.get("content")?.as_array())
        .flatten()
        .filter(|b| kind(b) == "tool_use" && str_of(b, "name") == code_tool_name)
        .filter(|b| !answered.contains(&str_of(b, "id")))
        .map(|b| {
            (
                str_of(b, "id").to_string(),
                b.get("input").cloned().unwrap_or(json!({})),
            )
        })
        .collect()
}

/// Rule 4: every unanswered code tool_use gets its result (from `results`, by model id) or
/// `execution result unavailable`, in the user message right after it.
pub fn fill_code_results(
    messages: Vec<Value>,
    code_tool_name: &str,
    results: &HashMap<String, (String, bool)>,
) -> Vec<Value> {
    let missing = unanswered_code_uses(&messages, code_tool_name);
    if missing.is_empty() {
        return messages;
    }
    let mut out = Vec::with_capacity(messages.len() + 1);
    for message in messages {
        let ids: Vec<String> = message
            .get("content")
            .and_then(Value::as_array)
            .map(|blocks| {
                blocks
                    .iter()
                    .map(|b| str_of(b, "id").to_string())
                    .filter(|id| missing.iter().any(|(m, _)| m == id))
                    .collect()
            })
            .unwrap_or_default();
        out.push(message);
        if str_of(out.last().unwrap_or(&Value::Null), "role") != "assistant" || ids.is_empty() {
            continue;
        }
        let blocks: Vec<Value> = ids
            .iter()
            .map(|id| {
                let (text, is_error) = results.get(id).cloned().unwrap_or_else(|| {
                    (json!({"error": "execution result unavailable"}).to_string(), true)
                });
                json!({"type": "tool_result", "tool_use_id": id, "content": text, "is_error": is_error})
            })
            .collect();
        out.push(json!({"role": "user", "content": blocks}));
    }
    merge(out)
}

/// Rule 3: drop empty messages, merge same-role neighbours; in a user message tool_results come
/// first, in the order of the tool_use blocks they answer.
pub fn merge(messages: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for message in messages {
        let role = str_of(&message, "role").to_string();
        let blocks = match message.get("content") {
            Some(Value::Array(b)) => b.clone(),
            _ => Vec::new(),
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if str_of(last, "role") == role => {
                if let Some(existing) = last.get_mut("content").and_then(Value::as_array_mut) {
                    existing.extend(blocks);
                }
            }
            _ => out.push(json!({"role": role, "content": blocks})),
        }
    }
    for i in 1..out.len() {
        if str_of(&out[i], "role") != "user" {
            continue;
        }
        let order: Vec<String> = out[i - 1]
            .get("content")
            .and_then(Value::as_array)
            .map(|b| b.iter().map(|b| str_of(b, "id").to_string()).collect())
            .unwrap_or_default();
        if let Some(blocks) = out[i].get_mut("content").and_then(Value::as_array_mut) {
            blocks.sort_by_key(|b| {
                if kind(b) != "tool_result" {
                    return usize::MAX;
                }
                let id = str_of(b, "tool_use_id");
                order.iter().position(|o| o == id).unwrap_or(usize::MAX - 1)
            });
        }
    }
    out
}

/// Sections 1 and 4.3 for a request that is not in PTC mode but whose history carries PTC blocks
/// (the client turned the feature off mid-conversation): the same model-facing rebuild, every
/// code call answered from the history or with "execution result unavailable", and the code
/// tool joins `tools` so the rebuilt `tool_use` blocks stay valid for Bedrock. Pure; a request
/// without PTC blocks is left untouched.
pub fn rebuild_inactive(request: &mut Value, code_tool_base: &str) {
    let Some(obj) = request.as_object_mut() else {
        return;
    };
    let messages = match obj.get("messages") {
        Some(Value::Array(messages)) if has_ptc_blocks(messages) => messages,
        _ => return,
    };
    let client_tools: Vec<Value> = match obj.get("tools") {
        Some(Value::Array(tools)) => tools.clone(),
        _ => Vec::new(),
    };
    let code_tool_name = super::tools::unique_name(code_tool_base, &client_tools);
    let names = Names {
        client_code_name: None,
        code_tool_name: &code_tool_name,
    };
    let rebuilt = rebuild(messages, &names);
    let rebuilt = fill_code_results(rebuilt, &code_tool_name, &Default::default());
    let calls_code = rebuilt
        .iter()
        .filter_map(|m| m.get("content")?.as_array())
        .flatten()
        .any(|b| {
            b.get("type").and_then(Value::as_str) == Some("tool_use")
                && b.get("name").and_then(Value::as_str) == Some(code_tool_name.as_str())
        });
    obj.insert("messages".into(), Value::Array(rebuilt));
    if calls_code {
        let view = super::tools::PtcTools {
            client_code_name: String::new(),
            caller_type: String::new(),
            code_tool_name,
            upstream: Vec::new(),
            callable: Vec::new(),
        };
        let mut tools = client_tools;
        tools.insert(0, super::tools::code_tool_definition(&view));
        obj.insert("tools".into(), Value::Array(tools));
    }
}

#[cfg(test)]
#[path = "transcript_tests.rs"]
mod tests;
