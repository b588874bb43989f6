//! What the fake reads from a request: the operation and model id (routed on the raw path segment),
//! the recorded copy tests assert on, and a dialect-neutral view (last user message, size, tier).
//! No validation and no rendering here.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Bedrock runtime operation, named by its path suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    #[serde(rename = "converse")]
    Converse,
    #[serde(rename = "converse-stream")]
    ConverseStream,
    #[serde(rename = "invoke")]
    Invoke,
    #[serde(rename = "invoke-with-response-stream")]
    InvokeStream,
    #[serde(rename = "count-tokens")]
    CountTokens,
    /// A path the fake does not serve (answered 404 `UnknownOperationException`).
    #[serde(rename = "unknown")]
    Unknown,
}

impl Operation {
    fn from_suffix(suffix: &str) -> Self {
        match suffix {
            "converse" => Self::Converse,
            "converse-stream" => Self::ConverseStream,
            "invoke" => Self::Invoke,
            "invoke-with-response-stream" => Self::InvokeStream,
            "count-tokens" => Self::CountTokens,
            _ => Self::Unknown,
        }
    }

    /// The four operations that generate a reply.
    pub fn is_generation(self) -> bool {
        matches!(
            self,
            Self::Converse | Self::ConverseStream | Self::Invoke | Self::InvokeStream
        )
    }

    pub fn is_stream(self) -> bool {
        matches!(self, Self::ConverseStream | Self::InvokeStream)
    }

    pub fn is_converse(self) -> bool {
        matches!(self, Self::Converse | Self::ConverseStream)
    }
}

/// Splits `/model/{modelId}/{operation}` on the raw (still percent-encoded) path, then decodes the id,
/// so an ARN's `%2F` stays inside the id.
pub fn route(raw_path: &str) -> (Operation, String) {
    let mut parts = raw_path.split('/');
    let (Some(""), Some("model"), Some(segment), Some(suffix), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return (Operation::Unknown, String::new());
    };
    let model_id = percent_decode_str(segment).decode_utf8_lossy().into_owned();
    (Operation::from_suffix(suffix), model_id)
}

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub operation: Operation,
    /// Decoded model id (`arn:aws:bedrock:...:inference-profile/...` for ARNs).
    pub model_id: String,
    pub method: String,
    /// Raw path as sent (percent-encoded).
    pub path: String,
    /// Every header, names lower-case; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// JSON body, or the raw text when it is not JSON.
    pub body: Value,
    pub body_bytes: usize,
}

impl RecordedRequest {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The SDK attempt number from `amz-sdk-request: attempt=N; max=M`.
    pub fn attempt(&self) -> Option<u32> {
        let value = self.header("amz-sdk-request")?;
        value
            .split(';')
            .find_map(|part| part.trim().strip_prefix("attempt="))
            .and_then(|n| n.parse().ok())
    }
}

/// Header map -> recorded form.
pub fn record_headers(headers: &http::HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        out.entry(name.as_str().to_owned())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

/// The parts of a Converse or Anthropic body that scenario selection and rendering need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestView {
    /// Text blocks of the last user message (string content counts as one block).
    pub last_user_texts: Vec<String>,
    /// Text of the first tool result in the last user message, if it has one.
    pub last_user_tool_result: Option<String>,
    /// Characters of all text in system and messages (the token estimate is this / 4).
    pub text_chars: usize,
    /// Requested service tier (`serviceTier.type` or the `X-Amzn-Bedrock-Service-Tier` header).
    pub service_tier: Option<String>,
    pub stop_sequences: Vec<String>,
    /// Converse asked for `/stop_sequence` in `additionalModelResponseFieldPaths`.
    pub wants_stop_sequence_field: bool,
}

impl RequestView {
    /// View of a Converse body (also the `converse` input of CountTokens).
    pub fn from_converse(body: &Value) -> Self {
        let stop_sequences = string_list(body.pointer("/inferenceConfig/stopSequences"));
        let wants_stop_sequence_field = string_list(body.get("additionalModelResponseFieldPaths"))
            .iter()
            .any(|path| path == "/stop_sequence");
        Self {
            service_tier: body
                .pointer("/serviceTier/type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            stop_sequences,
            wants_stop_sequence_field,
            ..Self::from_messages(body)
        }
    }

    /// View of an Anthropic (InvokeModel) body; the tier comes from the request header.
    pub fn from_invoke(body: &Value, tier_header: Option<&str>) -> Self {
        Self {
            service_tier: tier_header.map(str::to_owned),
            stop_sequences: string_list(body.get("stop_sequences")),
            ..Self::from_messages(body)
        }
    }

    fn from_messages(body: &Value) -> Self {
        let empty = Vec::new();
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"));
        let mut view = Self {
            text_chars: text_chars(body.get("system")) + text_chars(body.get("messages")),
            ..Self::default()
        };
        let Some(last_user) = last_user else {
            return view;
        };
        match last_user.get("content") {
            Some(Value::String(text)) => view.last_user_texts.push(text.clone()),
            Some(Value::Array(blocks)) => {
                for block in blocks {
                    if let Some(text) = block_text(block) {
                        view.last_user_texts.push(text.to_owned());
                    } else if view.last_user_tool_result.is_none() {
                        view.last_user_tool_result = tool_result_text(block);
                    }
                }
            }
            _ => {}
        }
        view
    }
}

/// Text of a plain text block in either dialect (`{"text"}` or `{"type":"text","text"}`).
fn block_text(block: &Value) -> Option<&str> {
    let is_converse_text = block.as_object().is_some_and(|o| o.len() == 1);
    let is_anthropic_text = block.get("type").and_then(Value::as_str) == Some("text");
    if is_converse_text || is_anthropic_text {
        block.get("text").and_then(Value::as_str)
    } else {
        None
    }
}

/// The text of a `toolResult` / `tool_result` block: its text parts joined, JSON parts compacted.
fn tool_result_text(block: &Value) -> Option<String> {
    let content = if let Some(result) = block.get("toolResult") {
        result.get("content")
    } else if block.get("type").and_then(Value::as_str) == Some("tool_result") {
        block.get("content")
    } else {
        return None;
    };
    let text = match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| match (part.get("text"), part.get("json")) {
                (Some(Value::String(text)), _) => Some(text.clone()),
                (_, Some(json)) => Some(json.to_string()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    Some(text)
}

/// Characters in every `text` / `thinking` string and every plain string content below `value`.
pub fn text_chars(value: Option<&Value>) -> usize {
    match value {
        Some(Value::String(text)) => text.chars().count(),
        Some(Value::Array(items)) => items.iter().map(|item| text_chars(Some(item))).sum(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| match (key.as_str(), value) {
                ("text" | "thinking" | "content", Value::String(text)) => text.chars().count(),
                (_, Value::String(_)) => 0,
                (_, other) => text_chars(Some(other)),
            })
            .sum(),
        _ => 0,
    }
}

/// Token estimate used for usage and CountTokens: chars / 4, at least 1.
pub fn estimate_tokens(chars: usize) -> u64 {
    u64::try_from(chars / 4).unwrap_or(u64::MAX).max(1)
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes_on_the_raw_segment() {
        let (op, id) = route(
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-x/converse-stream",
        );
        assert_eq!(op, Operation::ConverseStream);
        assert_eq!(
            id,
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x"
        );
        assert_eq!(route("/model/a/b/invoke").0, Operation::Unknown);
        assert_eq!(route("/model/a/invoke").0, Operation::Invoke);
        assert_eq!(route("/other").0, Operation::Unknown);
    }

    #[test]
    fn views_the_last_user_message_of_both_dialects() {
        let converse = json!({"messages": [
            {"role": "user", "content": [{"text": "first"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "Bash", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": [{"text": "out"}]}}, {"text": "[[fake:x]]"}]}
        ], "serviceTier": {"type": "flex"}});
        let view = RequestView::from_converse(&converse);
        assert_eq!(view.last_user_texts, vec!["[[fake:x]]"]);
        assert_eq!(view.last_user_tool_result.as_deref(), Some("out"));
        assert_eq!(view.service_tier.as_deref(), Some("flex"));
        assert_eq!(view.text_chars, 5 + 3 + 10);

        let invoke = json!({"system": "sys", "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "done"}]}
        ]});
        let view = RequestView::from_invoke(&invoke, Some("priority"));
        assert!(view.last_user_texts.is_empty());
        assert_eq!(view.last_user_tool_result.as_deref(), Some("done"));
        assert_eq!(view.text_chars, 7);
        assert_eq!(estimate_tokens(view.text_chars), 1);
    }
}
