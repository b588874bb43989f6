//! Bedrock answers -> Anthropic messages (spec 12, 14): the Converse response conversion, the
//! InvokeModel passthrough, stop reason, stop sequence and usage mapping. Pure: no I/O, no clock,
//! no environment; ids come in through `ResponseOptions`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::anthropic::response::{CacheCreation, ContentBlock, Message, StopReason, Usage};
use crate::anthropic::stream::SseEvent;
use crate::converse::response::{
    self as converse, ConverseResponse, ReasoningContentBlock, ServiceTier, ToolUseBlock,
};
use crate::error::ApiError;
use crate::ids;

/// What the response side needs to know about the request it answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseOptions {
    /// The `model` string the client sent; reported back instead of the Bedrock id.
    pub requested_model: String,
    /// `ids::message_id()`; used on the Converse path and when Invoke omits an id.
    pub message_id: String,
    /// This call's `req_` id, for the `request_id` of stream `error` events.
    pub request_id: String,
    /// The stop sequences the client sent, for `stop_sequence` reporting on the Converse path.
    pub stop_sequences: Vec<String>,
    /// Whether the resolved model is Claude (its Converse answers carry `stop_sequence`).
    pub is_claude: bool,
}

/// Token counts for metering, exactly as reported to the client.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
}

impl From<&converse::TokenUsage> for TokenUsage {
    fn from(u: &converse::TokenUsage) -> Self {
        TokenUsage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_input_tokens: u.cache_read_input_tokens,
            cache_creation_input_tokens: u.cache_write_input_tokens,
        }
    }
}

/// A Converse response as the full Anthropic message JSON (spec 12.2).
pub fn to_messages_response(resp: ConverseResponse, opts: &ResponseOptions) -> Value {
    to_json(&to_message(resp, opts))
}

/// The typed form of [`to_messages_response`].
pub fn to_message(resp: ConverseResponse, opts: &ResponseOptions) -> Message {
    let blocks = resp.output.message.map(|m| m.content).unwrap_or_default();
    let content: Vec<ContentBlock> = blocks.into_iter().filter_map(to_content_block).collect();
    let has_tool_use = content
        .iter()
        .any(|b| matches!(b, ContentBlock::ToolUse { .. }));
    let stop_reason = map_converse_stop_reason(resp.stop_reason.as_deref(), has_tool_use);
    let stop_sequence = converse_stop_sequence(
        stop_reason,
        resp.additional_model_response_fields.as_ref(),
        opts,
    );
    let mut usage = to_usage(resp.usage.as_ref());
    usage.service_tier = Some(service_tier(resp.service_tier.as_ref()).to_string());
    Message {
        id: opts.message_id.clone(),
        kind: Message::TYPE.to_string(),
        role: Message::ROLE.to_string(),
        model: opts.requested_model.clone(),
        content,
        stop_reason: Some(stop_reason),
        stop_sequence,
        usage,
    }
}

/// One Converse output block as an Anthropic block; `None` when it has nothing to show.
pub fn to_content_block(block: converse::ContentBlock) -> Option<ContentBlock> {
    if let Some(text) = block.text {
        // Anthropic never sends empty text blocks, and clients echo them back to a 400.
        return (!text.is_empty()).then_some(ContentBlock::Text { text });
    }
    if let Some(reasoning) = block.reasoning_content {
        return reasoning_block(reasoning);
    }
    if let Some(tool) = block.tool_use {
        return Some(tool_use_block(tool));
    }
    let text = text_rendering(&block);
    if text.is_none() {
        let kinds: Vec<&str> = block.other.keys().map(String::as_str).collect();
        tracing::info!(?kinds, "skipping a Converse output block without text");
    }
    text.map(|text| ContentBlock::Text { text })
}

fn reasoning_block(reasoning: ReasoningContentBlock) -> Option<ContentBlock> {
    if let Some(r) = reasoning.reasoning_text {
        return Some(ContentBlock::Thinking {
            thinking: r.text,
            signature: r.signature.unwrap_or_default(),
        });
    }
    reasoning
        .redacted_content
        .map(|blob| ContentBlock::RedactedThinking {
            // Re-encoded so the data is canonical base64; opaque data that fails to decode is kept.
            data: decode_blob(&blob).map_or(blob, |bytes| BASE64.encode(bytes)),
        })
}

fn tool_use_block(tool: ToolUseBlock) -> ContentBlock {
    ContentBlock::ToolUse {
        id: tool_use_id(&tool.tool_use_id),
        name: tool.name,
        input: match tool.input {
            Value::Null => Value::Object(Map::new()),
            input => input,
        },
    }
}

/// A tool use id as clients get it: sanitized (spec 15), generated when Bedrock sent none.
pub fn tool_use_id(upstream: &str) -> String {
    if upstream.is_empty() {
        ids::tool_use_id()
    } else {
        ids::sanitize_tool_id(upstream)
    }
}

/// The text of `citationsContent` or of another member that carries `text`.
fn text_rendering(block: &converse::ContentBlock) -> Option<String> {
    let text = if let Some(citations) = &block.citations_content {
        citations
            .content
            .iter()
            .filter_map(|part| part.text.as_deref())
            .collect::<String>()
    } else {
        let found = block
            .other
            .values()
            .find_map(|value| match value.get("text") {
                Some(Value::String(s)) => Some(s.as_str()),
                Some(nested) => nested.get("text").and_then(Value::as_str),
                None => None,
            });
        found.unwrap_or_default().to_string()
    };
    (!text.is_empty()).then_some(text)
}

/// Base64 blob as it appears in Converse JSON.
pub(crate) fn decode_blob(blob: &str) -> Option<Vec<u8>> {
    BASE64.decode(blob).ok()
}

pub(crate) fn encode_blob(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Converse `stopReason` -> Anthropic `stop_reason` (spec 14), with the consistency fixes:
/// `tool_use` without a tool block is `end_turn`, `end_turn` with tool blocks is `tool_use`.
pub fn map_converse_stop_reason(reason: Option<&str>, has_tool_use: bool) -> StopReason {
    let mapped = match reason {
        Some("end_turn") => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("stop_sequence") => StopReason::StopSequence,
        Some("model_context_window_exceeded") => StopReason::ModelContextWindowExceeded,
        Some("guardrail_intervened" | "content_filtered") => StopReason::Refusal,
        other => {
            tracing::warn!(
                metric = "converse_stop_reason_unmapped",
                stop_reason = other.unwrap_or("<absent>"),
                "Converse stop reason reported as end_turn"
            );
            StopReason::EndTurn
        }
    };
    match (mapped, has_tool_use) {
        (StopReason::ToolUse, false) => StopReason::EndTurn,
        (StopReason::EndTurn, true) => StopReason::ToolUse,
        (mapped, _) => mapped,
    }
}

/// The `stop_sequence` value: only for `stop_sequence` stops; Claude reports the matched sequence
/// in `additionalModelResponseFields.stop_sequence`, otherwise the single sequence the client sent
/// is the one that matched; with several candidates it is unknown (`null`).
pub fn converse_stop_sequence(
    stop_reason: StopReason,
    additional_fields: Option<&Value>,
    opts: &ResponseOptions,
) -> Option<String> {
    if stop_reason != StopReason::StopSequence {
        return None;
    }
    let reported = additional_fields
        .filter(|_| opts.is_claude)
        .and_then(|fields| fields.get("stop_sequence"))
        .and_then(Value::as_str);
    match (reported, opts.stop_sequences.as_slice()) {
        (Some(seq), _) => Some(seq.to_string()),
        (None, [only]) => Some(only.clone()),
        (None, _) => None,
    }
}

/// Converse usage -> Anthropic usage, copied without arithmetic (Bedrock's `inputTokens` already
/// excludes cache reads and writes). `cache_creation` only when Bedrock reports TTLs.
pub fn to_usage(usage: Option<&converse::TokenUsage>) -> Usage {
    let Some(u) = usage else {
        return Usage::default();
    };
    let cache_creation = u.cache_details.as_ref().map(|details| {
        let per_ttl = |ttl: &str| {
            details
                .iter()
                .filter(|d| d.ttl == ttl)
                .map(|d| d.input_tokens)
                .sum()
        };
        CacheCreation {
            ephemeral_5m_input_tokens: per_ttl("5m"),
            ephemeral_1h_input_tokens: per_ttl("1h"),
        }
    });
    Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cache_creation_input_tokens: u.cache_write_input_tokens,
        cache_read_input_tokens: u.cache_read_input_tokens,
        cache_creation,
        service_tier: None,
    }
}

/// Anthropic's `service_tier`: `priority` when Bedrock ran the call at priority, else `standard`.
pub fn service_tier(tier: Option<&ServiceTier>) -> &'static str {
    match tier {
        Some(t) if t.kind == "priority" => "priority",
        _ => "standard",
    }
}

/// Keys Bedrock adds to Anthropic JSON that clients must not see.
pub fn is_vendor_key(key: &str) -> bool {
    key.starts_with("amazon-bedrock-")
}

/// InvokeModel's Anthropic message, passed through (spec 12.1): `model` replaced by the requested
/// string, `id` kept (generated if absent), vendor keys removed, every block kept verbatim.
pub fn from_invoke_response(body: Value, opts: &ResponseOptions) -> Result<Value, ApiError> {
    let Value::Object(upstream) = body else {
        return Err(ApiError::api(
            "upstream returned a response that is not a JSON object",
        ));
    };
    let mut message = Map::with_capacity(upstream.len() + 1);
    let has_id = matches!(upstream.get("id"), Some(Value::String(id)) if !id.is_empty());
    if !has_id {
        message.insert("id".into(), Value::String(opts.message_id.clone()));
    }
    // SDKs require `stop_sequence` to be present; it goes after `stop_reason` if Bedrock left it out.
    let add_stop_sequence = !upstream.contains_key("stop_sequence");
    for (key, value) in upstream {
        if is_vendor_key(&key) || (key == "id" && !has_id) {
            continue;
        }
        let after_stop_reason = key == "stop_reason";
        message.insert(key, value);
        if after_stop_reason && add_stop_sequence {
            message.insert("stop_sequence".into(), Value::Null);
        }
    }
    let model = Value::String(opts.requested_model.clone());
    message.insert("model".into(), model);
    message.entry("stop_sequence").or_insert(Value::Null);
    Ok(Value::Object(message))
}

/// Usage of an Anthropic message JSON (either path), for metering. Absent counts are 0.
pub fn usage_of(message: &Value) -> TokenUsage {
    let usage = message.get("usage");
    let count = |key: &str| {
        usage
            .and_then(|u| u.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    TokenUsage {
        input_tokens: count("input_tokens"),
        output_tokens: count("output_tokens"),
        cache_read_input_tokens: count("cache_read_input_tokens"),
        cache_creation_input_tokens: count("cache_creation_input_tokens"),
    }
}

/// 1-hour cache writes of an Anthropic message JSON (`usage.cache_creation`, either path); `None`
/// when the usage reports only the total (the 5-minute/1-hour split is then unknown).
pub fn cache_write_1h_of(message: &Value) -> Option<u64> {
    message
        .pointer("/usage/cache_creation/ephemeral_1h_input_tokens")
        .and_then(Value::as_u64)
}

/// 1-hour cache writes reported by one upstream stream event: an Invoke `message_start` or
/// `message_delta` carrying `usage.cache_creation`, or a Converse `metadata` carrying
/// `usage.cacheDetails`. `None` when the event reports no split.
pub fn upstream_cache_write_1h(event: &Value) -> Option<u64> {
    let invoke = event
        .pointer("/message/usage/cache_creation")
        .or_else(|| event.pointer("/usage/cache_creation"));
    if let Some(split) = invoke {
        return split
            .get("ephemeral_1h_input_tokens")
            .and_then(Value::as_u64);
    }
    let details = event.pointer("/metadata/usage/cacheDetails")?.as_array()?;
    Some(
        details
            .iter()
            .filter(|d| d.get("ttl").and_then(Value::as_str) == Some("1h"))
            .filter_map(|d| d.get("inputTokens").and_then(Value::as_u64))
            .sum(),
    )
}

/// The tier Bedrock reports in a Converse response (`serviceTier.type`) or in a ConverseStream
/// `metadata` event.
pub fn converse_service_tier(response_or_event: &Value) -> Option<String> {
    response_or_event
        .pointer("/serviceTier/type")
        .or_else(|| response_or_event.pointer("/metadata/serviceTier/type"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Whether every cache marker of an upstream body (Invoke `cache_control`, Converse `cachePoint`)
/// asks for a 1-hour TTL. When Bedrock reports cache writes without their TTL split (Converse
/// without `cacheDetails`, older models), this decides their price: all 1-hour if every marker
/// asked for it, otherwise 5 minutes, Bedrock's default TTL (a mix cannot be split).
pub fn requests_only_1h_cache(body: &Value) -> bool {
    fn walk(v: &Value, seen: &mut (usize, usize)) {
        match v {
            Value::Object(map) => {
                for (key, value) in map {
                    if key == "cache_control" || key == "cachePoint" {
                        seen.0 += 1;
                        if value.get("ttl").and_then(Value::as_str) == Some("1h") {
                            seen.1 += 1;
                        }
                    } else {
                        walk(value, seen);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, seen)),
            _ => {}
        }
    }
    let mut seen = (0, 0);
    walk(body, &mut seen);
    seen.0 > 0 && seen.0 == seen.1
}

/// Output tokens streamed to the client so far, estimated from the deltas with the local rule of
/// spec 16 (CJK characters 1 each, other characters 1 per 4). Bedrock reports output tokens only
/// at the end of a stream; a client that disconnects earlier still consumed what was generated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutputEstimate {
    cjk_chars: u64,
    other_chars: u64,
}

impl OutputEstimate {
    /// Counts the text of a `content_block_delta` (text, thinking, tool input JSON).
    pub fn on_event(&mut self, event: &SseEvent) {
        if event.event != "content_block_delta" {
            return;
        }
        let Some(delta) = event.data.get("delta") else {
            return;
        };
        for key in ["text", "thinking", "partial_json"] {
            if let Some(text) = delta.get(key).and_then(Value::as_str) {
                for c in text.chars() {
                    if crate::convert::count_tokens::is_cjk(c) {
                        self.cjk_chars += 1;
                    } else {
                        self.other_chars += 1;
                    }
                }
            }
        }
    }

    pub fn tokens(&self) -> u64 {
        self.cjk_chars + self.other_chars.div_ceil(4)
    }
}

/// Serializes a response type; these types cannot fail, so a failure is logged, not propagated.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|err| {
        tracing::error!(%err, "serializing an Anthropic response type failed");
        Value::Null
    })
}

#[cfg(test)]
mod tests;
