//! The Converse response JSON (spec 21), as `bedrock/` renders it from SDK output: serde only.
//! Every field defaults, unknown keys (including Bedrock's `"p"` padding) are ignored, and content
//! members the gateway does not model are kept in `ContentBlock::other`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{"output":{"message":{...}}, "stopReason", "usage", "metrics", ...}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConverseResponse {
    pub output: ConverseOutput,
    /// Kept as a string: unknown values map to `end_turn` (spec 14).
    pub stop_reason: Option<String>,
    pub usage: Option<TokenUsage>,
    pub metrics: Option<Value>,
    pub additional_model_response_fields: Option<Value>,
    pub trace: Option<Value>,
    pub performance_config: Option<Value>,
    pub service_tier: Option<ServiceTier>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConverseOutput {
    pub message: Option<OutputMessage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OutputMessage {
    pub role: String,
    pub content: Vec<ContentBlock>,
}

/// One member of the Converse content union. Exactly one field is set on the wire; members not
/// modelled here (`image`, `document`, `guardContent`, ...) land in `other`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContentBlock {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<ReasoningContentBlock>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseBlock>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citations_content: Option<CitationsContentBlock>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `reasoningContent`: `{reasoningText:{text, signature?}}` or `{redactedContent:"<base64>"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReasoningContentBlock {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_text: Option<ReasoningText>,
    /// Base64 of the opaque bytes (blobs are base64 strings in Converse JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redacted_content: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReasoningText {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ToolUseBlock {
    pub tool_use_id: String,
    pub name: String,
    pub input: Value,
}

/// `citationsContent`: generated text with its citations; `content` holds `{text}` parts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CitationsContentBlock {
    pub content: Vec<CitationGeneratedContent>,
    pub citations: Vec<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CitationGeneratedContent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `usage` of a response or of the stream's `metadata` event. Absent counts are 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_write_input_tokens: u64,
    /// Cache writes per TTL; present only when Bedrock reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_details: Option<Vec<CacheDetail>>,
}

/// `{ttl: "5m" | "1h", inputTokens}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CacheDetail {
    pub ttl: String,
    pub input_tokens: u64,
}

/// `serviceTier: {type: "default" | "priority" | "flex" | "reserved"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceTier {
    #[serde(rename = "type")]
    pub kind: String,
}
