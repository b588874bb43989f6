//! ConverseStream events (spec 13.4, 21) in the externally tagged JSON `bedrock/` produces:
//! `{"<eventType>": <payload as on the wire>}`. Serde only. Bedrock's random `"p"` padding and
//! other unknown fields are ignored; an unknown event type becomes `StreamEvent::Unknown`.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::converse::response::{ServiceTier, TokenUsage};

/// One ConverseStream event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamEvent {
    MessageStart(MessageStartEvent),
    ContentBlockStart(ContentBlockStartEvent),
    ContentBlockDelta(ContentBlockDeltaEvent),
    ContentBlockStop(ContentBlockStopEvent),
    MessageStop(MessageStopEvent),
    Metadata(MetadataEvent),
    /// An event type this gateway does not know (the SDK's `Unknown` variant); ignored.
    #[serde(skip)]
    Unknown,
}

impl StreamEvent {
    /// The Bedrock `contentBlockIndex` of block-scoped events.
    pub fn content_block_index(&self) -> Option<u32> {
        match self {
            StreamEvent::ContentBlockStart(e) => Some(e.content_block_index),
            StreamEvent::ContentBlockDelta(e) => Some(e.content_block_index),
            StreamEvent::ContentBlockStop(e) => Some(e.content_block_index),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageStartEvent {
    pub role: String,
}

/// Only tool use blocks get a start event; text and reasoning blocks start with their first delta.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContentBlockStartEvent {
    pub content_block_index: u32,
    pub start: ContentBlockStart,
}

/// `start` union: `toolUse` is the one the gateway maps; others (`toolResult`, `image`) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContentBlockStart {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseBlockStart>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ToolUseBlockStart {
    pub tool_use_id: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContentBlockDeltaEvent {
    pub content_block_index: u32,
    pub delta: ContentBlockDelta,
}

/// `delta` union: one of these is set; `citation`, `image`, `toolResult` and unknown members are
/// ignored by the converter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContentBlockDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<ReasoningContentDelta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseBlockDelta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citation: Option<Value>,
}

/// `reasoningContent` delta: `text`, `signature` or `redactedContent` (base64 string).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReasoningContentDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redacted_content: Option<String>,
}

/// `toolUse` delta: one fragment of the tool input JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ToolUseBlockDelta {
    pub input: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContentBlockStopEvent {
    pub content_block_index: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageStopEvent {
    /// Kept as a string: unknown values map to `end_turn` (spec 14).
    pub stop_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_model_response_fields: Option<Value>,
}

/// Sent after `messageStop`; the only source of usage on this path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetadataEvent {
    pub usage: Option<TokenUsage>,
    pub metrics: Option<Value>,
    pub service_tier: Option<ServiceTier>,
    pub trace: Option<Value>,
    pub performance_config: Option<Value>,
}

impl<'de> Deserialize<'de> for StreamEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = StreamEvent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a ConverseStream event object {"<eventType>": {...}}"#)
    }

    /// The first known key wins; unknown keys are skipped, so a future event type is `Unknown`.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StreamEvent, A::Error> {
        let mut event = None;
        while let Some(key) = map.next_key::<String>()? {
            if event.is_some() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            event = match key.as_str() {
                "messageStart" => Some(StreamEvent::MessageStart(map.next_value()?)),
                "contentBlockStart" => Some(StreamEvent::ContentBlockStart(map.next_value()?)),
                "contentBlockDelta" => Some(StreamEvent::ContentBlockDelta(map.next_value()?)),
                "contentBlockStop" => Some(StreamEvent::ContentBlockStop(map.next_value()?)),
                "messageStop" => Some(StreamEvent::MessageStop(map.next_value()?)),
                "metadata" => Some(StreamEvent::Metadata(map.next_value()?)),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    None
                }
            };
        }
        Ok(event.unwrap_or(StreamEvent::Unknown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_tagged_events_and_ignores_padding() {
        let ev: StreamEvent = serde_json::from_value(json!({
            "contentBlockDelta": {"contentBlockIndex": 2, "delta": {"text": "Hi"}, "p": "abcdef"}
        }))
        .unwrap();
        assert_eq!(ev.content_block_index(), Some(2));
        let StreamEvent::ContentBlockDelta(d) = ev else {
            panic!("wrong variant")
        };
        assert_eq!(d.delta.text.as_deref(), Some("Hi"));
    }

    #[test]
    fn unknown_event_type_is_unknown() {
        let ev: StreamEvent =
            serde_json::from_value(json!({"futureEvent": {"x": 1}, "p": "zz"})).unwrap();
        assert_eq!(ev, StreamEvent::Unknown);
    }

    #[test]
    fn metadata_with_cache_details() {
        let ev: StreamEvent = serde_json::from_value(json!({"metadata": {
            "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7,
                      "cacheDetails": [{"ttl": "1h", "inputTokens": 5}]},
            "metrics": {"latencyMs": 10}, "serviceTier": {"type": "priority"}
        }}))
        .unwrap();
        let StreamEvent::Metadata(m) = ev else {
            panic!("wrong variant")
        };
        let usage = m.usage.unwrap();
        assert_eq!(usage.input_tokens, 3);
        assert_eq!(usage.cache_details.unwrap()[0].ttl, "1h");
        assert_eq!(m.service_tier.unwrap().kind, "priority");
    }

    #[test]
    fn known_type_with_bad_payload_is_an_error() {
        assert!(
            serde_json::from_value::<StreamEvent>(json!({"contentBlockStop": "nope"})).is_err()
        );
    }
}
