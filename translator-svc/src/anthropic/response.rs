//! Anthropic Messages API response types (spec 12, 14, 20): the non-streaming `message` object,
//! its content blocks, usage and stop reasons. Serde only, no logic. The Invoke path keeps
//! Bedrock's JSON as `serde_json::Value` so blocks unknown here pass verbatim.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A complete assistant message, keys in the order Anthropic sends them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    /// Always `"message"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `"assistant"`.
    pub role: String,
    /// The model string the client sent, never the Bedrock id.
    pub model: String,
    pub content: Vec<ContentBlock>,
    /// `null` only in `message_start`.
    pub stop_reason: Option<StopReason>,
    /// Always present (SDKs require the key), `null` unless a stop sequence matched.
    pub stop_sequence: Option<String>,
    pub usage: Usage,
}

impl Message {
    pub const TYPE: &'static str = "message";
    pub const ROLE: &'static str = "assistant";
}

/// The content blocks the gateway builds itself (Converse path and stream starts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    Thinking {
        thinking: String,
        /// `""` when the model sent none.
        signature: String,
    },
    RedactedThinking {
        /// Base64 of the opaque bytes.
        data: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

/// Token usage. Streams carry the four counts only; the full message adds `service_tier` and,
/// when Bedrock reports writes per TTL, `cache_creation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
}

/// Cache writes split by TTL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCreation {
    pub ephemeral_5m_input_tokens: u64,
    pub ephemeral_1h_input_tokens: u64,
}

/// Anthropic's stop reasons (spec 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    PauseTurn,
    Refusal,
    ModelContextWindowExceeded,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::MaxTokens => "max_tokens",
            StopReason::StopSequence => "stop_sequence",
            StopReason::ToolUse => "tool_use",
            StopReason::PauseTurn => "pause_turn",
            StopReason::Refusal => "refusal",
            StopReason::ModelContextWindowExceeded => "model_context_window_exceeded",
        }
    }
}
