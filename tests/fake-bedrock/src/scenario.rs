//! `Scenario`: an API-neutral script of one reply (content, stop reason, usage, errors, timing) that the
//! renderers turn into Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream or CountTokens
//! output. Plain serde data: no I/O and no rendering here.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::request::Operation;

/// One scripted reply. Every field is optional; see the crate docs for the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Only consumed by calls whose decoded model id equals this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Only consumed by these operations. Unset: count-tokens only when `count_tokens` is set,
    /// otherwise the four generation operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operations: Option<Vec<Operation>>,
    /// Reply content; unset means the default text `Hello from fake Bedrock (<model id>)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentBlock>>,
    /// Rendered verbatim; unset means `tool_use` when the content has a tool use, else `end_turn`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// Unset with `stop_sequence` stop reason: the first `stopSequences`/`stop_sequences` of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequence: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Answered before anything else (HTTP error with `x-amzn-errortype`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorSpec>,
    /// Unset: the error is answered once and the scenario is consumed. `n`: `n` calls get the error,
    /// the next one gets the success reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_times: Option<u32>,
    /// An exception frame after `after_events` events (streams only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_error: Option<StreamErrorSpec>,
    /// Delay before the first stream event, or before a non-stream reply.
    pub first_event_delay_ms: u64,
    /// Delay between stream events.
    pub event_delay_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
    /// A request asking for one of these service tiers gets a ValidationException naming the tier;
    /// the scenario stays queued for the retry without the tier.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reject_service_tiers: Vec<String>,
    /// The tier Bedrock reports it ran the call at (Converse `serviceTier`, Invoke
    /// `x-amzn-bedrock-service-tier`), e.g. `default` for a `priority` or `reserved` request that
    /// overflowed to the standard tier. Unset: the requested tier, reported only when one was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_tier: Option<String>,
    /// ConverseStream ends after `messageStop` without `metadata`.
    pub omit_metadata: bool,
    /// The stream just ends after this many events (no stop event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncate_after_events: Option<usize>,
    /// CountTokens answer; unset means the chars/4 estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count_tokens: Option<u64>,
    /// May answer a call whose last user message carries a tool result (otherwise those calls get
    /// the automatic `Tool said: ...` reply and leave this scenario queued).
    pub on_tool_result: bool,
}

/// A content block of the reply, in Anthropic terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ContentBlock {
    Text {
        text: String,
    },
    Thinking {
        thinking: String,
        /// Unset: a generated signature.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    RedactedThinking {
        /// Base64 of the opaque redacted bytes.
        data: String,
    },
    ToolUse {
        /// Unset: a generated `toolu_bdrk_...` id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        name: String,
        #[serde(default = "empty_object")]
        input: Value,
    },
}

fn empty_object() -> Value {
    json!({})
}

/// Token counts; unset counts are estimated (input: request chars / 4; output: content chars / 4;
/// cache: 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Usage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// How many of the cache writes were 1-hour writes (the rest are 5-minute ones). Set: Invoke
    /// reports `usage.cache_creation` per TTL and Converse `usage.cacheDetails`, as Bedrock does
    /// for Claude; unset: only the total, as for models without TTL reporting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation_1h_input_tokens: Option<u64>,
}

/// An error answered before any reply byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorSpec {
    /// Unset: the status Bedrock uses for `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Exception name, e.g. `ThrottlingException` (`throttlingException` is accepted too).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `ModelErrorException`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_status_code: Option<u16>,
}

/// An exception frame in the middle of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamErrorSpec {
    /// Number of event frames sent before the exception frame.
    #[serde(default)]
    pub after_events: usize,
    /// `:exception-type`, e.g. `throttlingException` (`ThrottlingException` is accepted too).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `modelStreamErrorException`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_status_code: Option<u16>,
    /// For `modelStreamErrorException`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_message: Option<String>,
}

/// A one-off silence inside a stream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pause {
    pub after_events: usize,
    pub ms: u64,
}

impl Scenario {
    /// A plain text reply.
    pub fn text(text: impl Into<String>) -> Self {
        Self::with_content(vec![ContentBlock::text(text)])
    }

    /// A reply with the given content blocks.
    pub fn with_content(content: Vec<ContentBlock>) -> Self {
        Self {
            content: Some(content),
            ..Self::default()
        }
    }

    /// An error answered once, before anything else.
    pub fn error(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: Some(ErrorSpec {
                status: None,
                kind: kind.into(),
                message: Some(message.into()),
                original_status_code: None,
            }),
            ..Self::default()
        }
    }

    /// A named built-in scenario (the ones the `[[fake:NAME]]` markers pick).
    pub fn builtin(name: &str) -> Option<Self> {
        crate::builtin::builtin(name)
    }

    /// Whether this scenario may answer `operation` (see [`Scenario::operations`]).
    pub fn applies_to(&self, operation: Operation) -> bool {
        match &self.operations {
            Some(operations) => operations.contains(&operation),
            None if self.count_tokens.is_some() => operation == Operation::CountTokens,
            None => operation.is_generation(),
        }
    }
}

impl ContentBlock {
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }

    pub fn tool_use(id: impl Into<String>, name: impl Into<String>, input: Value) -> Self {
        Self::ToolUse {
            id: Some(id.into()),
            name: name.into(),
            input,
        }
    }

    pub fn thinking(thinking: impl Into<String>, signature: impl Into<String>) -> Self {
        Self::Thinking {
            thinking: thinking.into(),
            signature: Some(signature.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let scenario: Scenario = serde_json::from_value(json!({
            "model": "m",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "AAEC"},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 6},
            "error": {"status": 429, "type": "ThrottlingException", "message": "slow down", "original_status_code": null},
            "error_times": 1,
            "stream_error": {"after_events": 2, "type": "throttlingException", "message": "x", "original_status_code": 529},
            "first_event_delay_ms": 0, "event_delay_ms": 0, "pause": {"after_events": 1, "ms": 5},
            "reject_service_tiers": ["priority", "flex"],
            "omit_metadata": false, "truncate_after_events": null, "count_tokens": null
        }))
        .expect("documented shape parses");
        assert_eq!(scenario.content.as_ref().map(Vec::len), Some(4));
        assert_eq!(scenario.error_times, Some(1));
        assert_eq!(
            scenario.pause,
            Some(Pause {
                after_events: 1,
                ms: 5
            })
        );
    }

    #[test]
    fn rejects_unknown_fields() {
        assert!(serde_json::from_value::<Scenario>(json!({"stop_reasn": "x"})).is_err());
    }

    #[test]
    fn operations_default_by_count_tokens() {
        assert!(Scenario::text("x").applies_to(Operation::Converse));
        assert!(!Scenario::text("x").applies_to(Operation::CountTokens));
        let counting = Scenario {
            count_tokens: Some(7),
            ..Scenario::default()
        };
        assert!(counting.applies_to(Operation::CountTokens));
        assert!(!counting.applies_to(Operation::InvokeStream));
    }
}
