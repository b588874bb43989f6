//! Block-level rewrites shared by both paths (spec 7, 8): server-tool history removal, `caller`
//! removal, empty text removal with its cache marker moved, tool id sanitizing, message folding
//! and merging, and `cache_control` sanitizing. All work on the client's JSON in place.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::anthropic::request::{CacheControl, block};
use crate::ids::sanitize_tool_id;
use crate::models::Capabilities;

pub(crate) fn block_type(b: &Value) -> Option<&str> {
    b.get("type").and_then(Value::as_str)
}

pub(crate) fn role_of(m: &Value) -> Option<&str> {
    m.get("role").and_then(Value::as_str)
}

pub(crate) fn text_block(text: &str) -> Value {
    json!({"type": block::TEXT, "text": text})
}

fn has_cache_control(b: &Value) -> bool {
    b.get("cache_control").is_some_and(|c| !c.is_null())
}

/// Names of server tools Bedrock cannot run; their `server_tool_use` blocks leave the history.
const UNRUNNABLE_SERVER_TOOL_NAMES: &[&str] = &[
    "web_search",
    "web_fetch",
    "code_execution",
    "bash_code_execution",
    "text_editor_code_execution",
];

/// Removes results of server tools Bedrock cannot run and the `server_tool_use` blocks they
/// answer (spec 8). `keep_tool_search`: Bedrock's own tool search blocks stay (Invoke only;
/// Converse cannot express them).
pub(crate) fn remove_unrunnable_server_blocks(messages: &mut [Value], keep_tool_search: bool) {
    let removable = |t: &str| {
        block::UNRUNNABLE_SERVER_RESULTS.contains(&t)
            || (!keep_tool_search && t == block::TOOL_SEARCH_TOOL_RESULT)
    };
    let mut answered: HashSet<String> = HashSet::new();
    for blk in messages
        .iter()
        .filter_map(|m| m.get("content")?.as_array())
        .flatten()
    {
        if block_type(blk).is_some_and(removable)
            && let Some(id) = blk.get("tool_use_id").and_then(Value::as_str)
        {
            answered.insert(id.to_string());
        }
    }
    for content in messages
        .iter_mut()
        .filter_map(|m| m.get_mut("content")?.as_array_mut())
    {
        content.retain(|blk| match block_type(blk) {
            Some(block::SERVER_TOOL_USE) => {
                let id = blk.get("id").and_then(Value::as_str).unwrap_or_default();
                let name = blk.get("name").and_then(Value::as_str).unwrap_or_default();
                keep_tool_search
                    && !answered.contains(id)
                    && !UNRUNNABLE_SERVER_TOOL_NAMES.contains(&name)
            }
            Some(t) => !removable(t),
            None => true,
        });
    }
}

/// `tool_use.caller` is PTC bookkeeping (`ptc.md`); Bedrock rejects it.
pub(crate) fn strip_caller(messages: &mut [Value]) {
    for blk in messages
        .iter_mut()
        .filter_map(|m| m.get_mut("content")?.as_array_mut())
        .flatten()
    {
        if block_type(blk) == Some(block::TOOL_USE)
            && let Some(obj) = blk.as_object_mut()
        {
            obj.shift_remove("caller");
        }
    }
}

fn is_blank_text(b: &Value) -> bool {
    block_type(b) == Some(block::TEXT)
        && b.get("text")
            .and_then(Value::as_str)
            .is_none_or(|t| t.trim().is_empty())
}

/// Removes empty or whitespace-only text blocks (Bedrock rejects them). A cache marker they
/// carried moves to the nearest preceding block that can hold one, if any: thinking blocks
/// cannot. Never touches thinking, tool_use or tool_result blocks themselves.
pub(crate) fn remove_blank_text(blocks: &mut Vec<Value>) {
    let mut out: Vec<Value> = Vec::with_capacity(blocks.len());
    for mut b in blocks.drain(..) {
        if is_blank_text(&b) {
            if let Some(cc) = b
                .get_mut("cache_control")
                .filter(|c| !c.is_null())
                .map(Value::take)
            {
                let target = out.iter_mut().rev().find(|p| {
                    !matches!(
                        block_type(p),
                        Some(block::THINKING | block::REDACTED_THINKING)
                    )
                });
                if let Some(obj) = target
                    .filter(|p| !has_cache_control(p))
                    .and_then(Value::as_object_mut)
                {
                    obj.insert("cache_control".into(), cc);
                }
            }
            continue;
        }
        if block_type(&b) == Some(block::TOOL_RESULT)
            && let Some(inner) = b.get_mut("content").and_then(Value::as_array_mut)
        {
            remove_blank_text(inner);
        }
        out.push(b);
    }
    *blocks = out;
}

/// Content as a block list: a string becomes one text block (none if blank).
pub(crate) fn content_blocks(content: Option<&Value>) -> Vec<Value> {
    match content {
        Some(Value::String(s)) if s.trim().is_empty() => Vec::new(),
        Some(Value::String(s)) => vec![text_block(s)],
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    }
}

/// Empty text removal over every message (a blank string content becomes an empty message).
pub(crate) fn remove_blank_text_in_messages(messages: &mut [Value]) {
    for msg in messages.iter_mut() {
        match msg.get_mut("content") {
            Some(Value::Array(blocks)) => remove_blank_text(blocks),
            Some(content @ Value::String(_))
                if content.as_str().is_some_and(|s| s.trim().is_empty()) =>
            {
                *content = Value::Array(Vec::new());
            }
            _ => {}
        }
    }
}

/// Replaces tool ids Bedrock would reject, consistently in `tool_use` and `tool_result`.
pub(crate) fn sanitize_tool_ids(messages: &mut [Value]) {
    for blk in messages
        .iter_mut()
        .filter_map(|m| m.get_mut("content")?.as_array_mut())
        .flatten()
    {
        let field = match block_type(blk) {
            Some(block::TOOL_USE) => "id",
            Some(block::TOOL_RESULT) => "tool_use_id",
            _ => continue,
        };
        if let Some(Value::String(id)) = blk.get_mut(field) {
            let clean = sanitize_tool_id(id);
            if clean != *id {
                *id = clean;
            }
        }
    }
}

/// Moves `role:"system"` messages into the top-level `system`, in order, keeping their cache
/// markers (spec 7). A string `system` first becomes one text block.
pub(crate) fn fold_system_messages(body: &mut Map<String, Value>, messages: &mut Vec<Value>) {
    let mut folded: Vec<Value> = Vec::new();
    messages.retain(|m| {
        if role_of(m) == Some("system") {
            folded.extend(content_blocks(m.get("content")));
            false
        } else {
            true
        }
    });
    if folded.is_empty() {
        return;
    }
    let mut system = match body.get_mut("system").map(Value::take) {
        Some(Value::String(s)) => vec![text_block(&s)],
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    system.extend(folded);
    body.insert("system".into(), Value::Array(system));
}

fn is_empty_content(m: &Value) -> bool {
    match m.get("content") {
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::String(s)) => s.is_empty(),
        _ => true,
    }
}

/// Drops messages left without content and merges adjacent same-role messages by concatenating
/// their blocks in order (Bedrock requires alternation; blocks are never reordered).
pub(crate) fn merge_messages(messages: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(messages.len());
    for m in messages {
        if is_empty_content(&m) {
            continue;
        }
        match out.last_mut() {
            Some(prev) if role_of(prev) == role_of(&m) => {
                let mut merged = content_blocks(prev.get("content"));
                merged.extend(content_blocks(m.get("content")));
                if let Some(obj) = prev.as_object_mut() {
                    obj.insert("content".into(), Value::Array(merged));
                }
            }
            _ => out.push(m),
        }
    }
    out
}

/// The TTL to send for a marker: none unless the model takes TTLs; the per-key override wins.
pub(crate) fn marker_ttl(
    cc: &Value,
    caps: &Capabilities,
    ttl_override: Option<&str>,
) -> Option<String> {
    if !caps.cache_ttl {
        return None;
    }
    ttl_override
        .map(str::to_string)
        .or_else(|| cc.get("ttl").and_then(Value::as_str).map(str::to_string))
}

/// `cache_control` as forwarded: `scope` and unknown keys removed, TTL per capability/override.
pub(crate) fn sanitize_cache_control(
    b: &mut Value,
    caps: &Capabilities,
    ttl_override: Option<&str>,
) {
    let Some(obj) = b.as_object_mut() else { return };
    let Some(cc) = obj.get("cache_control").filter(|c| !c.is_null()) else {
        obj.shift_remove("cache_control");
        return;
    };
    let clean = CacheControl {
        kind: cc
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ephemeral")
            .to_string(),
        ttl: marker_ttl(cc, caps, ttl_override),
    };
    obj.insert(
        "cache_control".into(),
        serde_json::to_value(clean).unwrap_or(Value::Null),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_text_moves_marker_back_past_thinking() {
        let mut blocks = vec![
            json!({"type": "text", "text": "a"}),
            json!({"type": "thinking", "thinking": "", "signature": "s"}),
            json!({"type": "text", "text": "  ", "cache_control": {"type": "ephemeral"}}),
            json!({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": ""}]}),
        ];
        remove_blank_text(&mut blocks);
        assert_eq!(
            blocks,
            vec![
                json!({"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}),
                json!({"type": "thinking", "thinking": "", "signature": "s"}),
                json!({"type": "tool_result", "tool_use_id": "t", "content": []}),
            ]
        );
    }

    #[test]
    fn blank_text_marker_without_target_is_dropped() {
        let mut blocks = vec![
            json!({"type": "text", "text": "", "cache_control": {"type": "ephemeral"}}),
            json!({"type": "text", "text": "b"}),
        ];
        remove_blank_text(&mut blocks);
        assert_eq!(blocks, vec![json!({"type": "text", "text": "b"})]);
    }

    #[test]
    fn server_blocks_leave_with_their_use() {
        let mut messages = vec![json!({"role": "assistant", "content": [
            {"type": "text", "text": "searching"},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "server_tool_use", "id": "srvtoolu_2", "name": "tool_search_tool_regex", "input": {}},
            {"type": "tool_search_tool_result", "tool_use_id": "srvtoolu_2", "content": {}},
            {"type": "server_tool_use", "id": "srvtoolu_3", "name": "custom_thing", "input": {}},
            {"type": "bash_code_execution_tool_result", "tool_use_id": "srvtoolu_3", "content": {}}
        ]})];
        let mut converse = messages.clone();
        remove_unrunnable_server_blocks(&mut messages, true);
        let kinds = |m: &[Value]| -> Vec<String> {
            m[0]["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["type"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            kinds(&messages),
            ["text", "server_tool_use", "tool_search_tool_result"]
        );
        remove_unrunnable_server_blocks(&mut converse, false);
        assert_eq!(kinds(&converse), ["text"]);
    }

    #[test]
    fn merge_concatenates_in_order() {
        let merged = merge_messages(vec![
            json!({"role": "user", "content": "a"}),
            json!({"role": "assistant", "content": []}),
            json!({"role": "user", "content": [{"type": "text", "text": "b"}]}),
            json!({"role": "assistant", "content": "c"}),
        ]);
        assert_eq!(
            merged,
            vec![
                json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
                json!({"role": "assistant", "content": "c"}),
            ]
        );
    }
}
