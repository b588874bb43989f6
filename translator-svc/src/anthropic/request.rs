//! Anthropic Messages API request vocabulary: block and tool type names, and the typed shapes of
//! the small request objects the gateway interprets (`thinking`, `tool_choice`, `cache_control`).
//! Serde only, no logic. Message bodies stay `serde_json::Value` so unknown fields and thinking
//! signatures pass through untouched on the Invoke path.

use serde::{Deserialize, Serialize};

/// Content block `type` values.
pub mod block {
    pub const TEXT: &str = "text";
    pub const IMAGE: &str = "image";
    pub const DOCUMENT: &str = "document";
    pub const THINKING: &str = "thinking";
    pub const REDACTED_THINKING: &str = "redacted_thinking";
    pub const TOOL_USE: &str = "tool_use";
    pub const TOOL_RESULT: &str = "tool_result";
    pub const TOOL_REFERENCE: &str = "tool_reference";
    pub const SEARCH_RESULT: &str = "search_result";
    pub const COMPACTION: &str = "compaction";
    pub const SERVER_TOOL_USE: &str = "server_tool_use";
    pub const TOOL_SEARCH_TOOL_RESULT: &str = "tool_search_tool_result";
    pub const CODE_EXECUTION_TOOL_RESULT: &str = "code_execution_tool_result";

    /// Results of server tools Bedrock cannot run (spec 8): removed from history together with
    /// the `server_tool_use` they answer.
    pub const UNRUNNABLE_SERVER_RESULTS: &[&str] = &[
        "web_search_tool_result",
        "web_fetch_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
        CODE_EXECUTION_TOOL_RESULT,
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
    ];
}

/// `source.type` values of image and document blocks.
pub mod source {
    pub const BASE64: &str = "base64";
    pub const URL: &str = "url";
    pub const FILE: &str = "file";
    pub const TEXT: &str = "text";
    pub const CONTENT: &str = "content";
}

/// Image media types the Messages API accepts.
pub const IMAGE_MEDIA_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];
pub const PDF_MEDIA_TYPE: &str = "application/pdf";
pub const TEXT_MEDIA_TYPE: &str = "text/plain";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    /// Not in the public API, but Claude Code sends `role:"system"` messages mid-conversation.
    System,
}

/// The `thinking` request object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Thinking {
    Enabled {
        budget_tokens: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display: Option<String>,
    },
    Adaptive {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display: Option<String>,
    },
    Disabled,
}

/// `tool_choice`, object form (the bare strings `"auto"`/`"any"`/`"none"` are mapped to it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ToolChoice {
    Auto {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

/// `cache_control` as forwarded upstream: `scope` and unknown keys are not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheControl {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}
