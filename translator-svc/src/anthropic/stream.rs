//! Anthropic streaming wire types (spec 13.1, 20): the typed `MessageStreamEvent`s the gateway
//! builds, and `SseEvent`, one `event: <type>\ndata: <json>\n\n` frame as written to the client.
//! Serde and framing only; conversions live in `convert::stream`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::anthropic::response::{ContentBlock, Message, StopReason};
use crate::error::ApiError;

/// One SSE event: `event` is the event's `type`, `data` its JSON object (which carries `type` too).
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub data: Value,
}

impl SseEvent {
    pub fn new(event: impl Into<String>, data: Value) -> Self {
        SseEvent {
            event: event.into(),
            data,
        }
    }

    /// `event: ping` / `{"type":"ping"}`.
    pub fn ping() -> Self {
        Self::new("ping", json!({"type": "ping"}))
    }

    /// The Anthropic error envelope as an SSE `error` event (spec 13.6).
    pub fn error(err: &ApiError, request_id: &str) -> Self {
        Self::new("error", err.to_body(request_id))
    }

    /// `event: <type>\ndata: <compact one-line json>\n\n`. The `event:` line is mandatory: both
    /// SDKs ignore `data:` lines without one. Compact JSON escapes newlines, so `data` is one line.
    pub fn encode(&self) -> Bytes {
        Bytes::from(format!("event: {}\ndata: {}\n\n", self.event, self.data))
    }
}

/// The events of a Messages stream, in Anthropic's wire shape (`type`-tagged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessageStreamEvent {
    MessageStart {
        message: Message,
    },
    ContentBlockStart {
        index: u32,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: Delta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDelta,
        usage: DeltaUsage,
    },
    MessageStop,
    Ping,
}

impl MessageStreamEvent {
    /// The `type` value, which is also the SSE `event:` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            MessageStreamEvent::MessageStart { .. } => "message_start",
            MessageStreamEvent::ContentBlockStart { .. } => "content_block_start",
            MessageStreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            MessageStreamEvent::ContentBlockStop { .. } => "content_block_stop",
            MessageStreamEvent::MessageDelta { .. } => "message_delta",
            MessageStreamEvent::MessageStop => "message_stop",
            MessageStreamEvent::Ping => "ping",
        }
    }
}

/// `content_block_delta.delta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta {
    TextDelta { text: String },
    InputJsonDelta { partial_json: String },
    ThinkingDelta { thinking: String },
    SignatureDelta { signature: String },
}

/// `message_delta.delta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDelta {
    pub stop_reason: Option<StopReason>,
    pub stop_sequence: Option<String>,
}

/// `message_delta.usage`: final cumulative values, which both SDKs apply to the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}
