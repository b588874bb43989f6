//! `/v1/messages/count_tokens` (spec 16): the CountTokens input built exactly like a messages
//! request (same folding, betas and tool rules), or the local estimate for models Bedrock cannot
//! count. Never adds anything to what is counted.

use serde_json::{Value, json};

use super::invoke::build_invoke_body;
use super::media::encode_base64;
use super::normalize::{Mode, Target, normalize};
use super::options::RequestOptions;
use super::to_converse::{build_converse, count_tokens_converse_input};
use crate::anthropic::request::block;
use crate::error::ApiError;
use crate::models::naming::{is_arn, strip_geo_prefix};
use crate::models::{CountTokensMode, Family};

/// How to answer a count_tokens request.
#[derive(Debug, Clone, PartialEq)]
pub enum CountTokensPlan {
    /// Call Bedrock CountTokens on `model_id` with `{"input": input}`; on any failure fall back
    /// to `estimate_input_tokens`.
    Bedrock { model_id: String, input: Value },
    /// Answer locally (header `x-gateway-token-estimate: true`).
    Estimate { input_tokens: u64 },
}

/// Validates and normalizes the body as `/v1/messages` would, then plans the count.
pub fn to_count_tokens_input(
    request: &Value,
    opts: &RequestOptions,
) -> Result<CountTokensPlan, ApiError> {
    let route = opts.route;
    let claude = route.family() == Family::Claude;
    let target = if claude {
        Target::Invoke
    } else {
        Target::Converse
    };
    let normalized = normalize(request.clone(), opts, Mode::CountTokens, target)?;
    let estimate = CountTokensPlan::Estimate {
        input_tokens: estimate_input_tokens(request),
    };
    if route.capabilities().count_tokens == CountTokensMode::Estimate {
        // Still validate the way the messages request would be converted.
        if !claude {
            build_converse(normalized, opts)?;
        }
        return Ok(estimate);
    }
    // ARNs do not name a countable model: without an explicit id, estimate.
    let model_id = match (&route.entry.count_tokens_id, is_arn(&route.resolved_id)) {
        (Some(id), _) => id.clone(),
        (None, true) => return Ok(estimate),
        (None, false) => strip_geo_prefix(&route.resolved_id).to_string(),
    };
    let input = if claude {
        let mut body = build_invoke_body(normalized, opts)?;
        // Bedrock validates the body as a real InvokeModel body: max_tokens must fit thinking.
        let budget = body
            .get("thinking")
            .filter(|t| t.get("type").and_then(Value::as_str) == Some("enabled"))
            .and_then(|t| t.get("budget_tokens"))
            .and_then(Value::as_u64);
        body.insert("max_tokens".into(), json!(budget.map_or(1, |b| b + 1)));
        let bytes = serde_json::to_vec(&Value::Object(body))
            .map_err(|e| ApiError::api(format!("serialize: {e}")))?;
        json!({"invokeModel": {"body": encode_base64(&bytes)}})
    } else {
        count_tokens_converse_input(&build_converse(normalized, opts)?)
    };
    Ok(CountTokensPlan::Bedrock { model_id, input })
}

const IMAGE_TOKENS: u64 = 1_600;
const DOCUMENT_TOKENS: u64 = 3_000;

/// Ideographs, kana and hangul: about one token per character.
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF | 0x3000..=0x303F | 0x3040..=0x30FF | 0x3130..=0x318F | 0x31F0..=0x31FF
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0xFF65..=0xFF9F
        | 0x20000..=0x2FA1F)
}

/// CJK characters count 1 each, others 1 per 4 (rounded up per string).
fn string_tokens(s: &str) -> u64 {
    let (cjk, other) = s.chars().fold((0u64, 0u64), |(c, o), ch| {
        if is_cjk(ch) { (c + 1, o) } else { (c, o + 1) }
    });
    cjk + other.div_ceil(4)
}

fn json_tokens(v: &Value) -> u64 {
    serde_json::to_string(v)
        .map(|s| string_tokens(&s))
        .unwrap_or(0)
}

/// Keys whose values are identifiers or opaque data, not text the model reads.
const OPAQUE_KEYS: &[&str] = &[
    "type",
    "id",
    "tool_use_id",
    "signature",
    "data",
    "media_type",
    "cache_control",
];

fn leaf_tokens(v: &Value) -> u64 {
    match v {
        Value::String(s) => string_tokens(s),
        Value::Array(items) => items.iter().map(leaf_tokens).sum(),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| !OPAQUE_KEYS.contains(&k.as_str()))
            .map(|(_, v)| leaf_tokens(v))
            .sum(),
        _ => 0,
    }
}

fn content_tokens(content: Option<&Value>) -> u64 {
    match content {
        Some(Value::String(s)) => string_tokens(s),
        Some(Value::Array(blocks)) => blocks.iter().map(block_tokens).sum(),
        _ => 0,
    }
}

fn block_tokens(b: &Value) -> u64 {
    let text = |key: &str| b.get(key).and_then(Value::as_str).map_or(0, string_tokens);
    match b.get("type").and_then(Value::as_str).unwrap_or_default() {
        block::TEXT => text("text"),
        block::IMAGE => IMAGE_TOKENS,
        block::DOCUMENT => DOCUMENT_TOKENS,
        block::THINKING => text("thinking"),
        block::REDACTED_THINKING => 0,
        block::TOOL_USE | block::SERVER_TOOL_USE => {
            text("name") + b.get("input").map_or(0, json_tokens)
        }
        block::TOOL_RESULT => content_tokens(b.get("content")),
        _ => leaf_tokens(b),
    }
}

/// The local estimate (spec 16) over system, messages and tool names, descriptions and schemas;
/// images 1,600 and documents 3,000 each; at least 1. Works on any JSON, never fails.
pub fn estimate_input_tokens(request: &Value) -> u64 {
    let system = content_tokens(request.get("system"));
    let messages: u64 = request
        .get("messages")
        .and_then(Value::as_array)
        .map(|m| m.iter().map(|msg| content_tokens(msg.get("content"))).sum())
        .unwrap_or(0);
    let tools: u64 = request
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .map(|t| {
                    let s = |k: &str| t.get(k).and_then(Value::as_str).map_or(0, string_tokens);
                    s("name") + s("description") + t.get("input_schema").map_or(0, json_tokens)
                })
                .sum()
        })
        .unwrap_or(0);
    (system + messages + tools).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_rules() {
        assert_eq!(estimate_input_tokens(&json!({})), 1);
        assert_eq!(
            estimate_input_tokens(&json!({"messages": [{"role": "user", "content": "abcde"}]})),
            2
        );
        // CJK: one each; other characters per string, rounded up.
        assert_eq!(
            estimate_input_tokens(&json!({"messages": [{"role": "user", "content": "日本語ab"}]})),
            4
        );
        assert_eq!(
            estimate_input_tokens(&json!({"messages": [{"role": "user", "content": "한글"}]})),
            2
        );
        let media = json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "AAAA"}}
        ]}]});
        assert_eq!(estimate_input_tokens(&media), 4_600);
        let tools = json!({"system": "abcd", "tools": [{"name": "abcd", "description": "abcd", "input_schema": {"type": "object"}}]});
        // "abcd" x3 = 3, {"type":"object"} is 17 characters = 5.
        assert_eq!(estimate_input_tokens(&tools), 8);
        assert_eq!(estimate_input_tokens(&json!("not an object")), 1);
    }
}
