//! Rendering a scenario: `Reply` resolves its defaults (content, stop reason, usage, ids) against the
//! request once; `converse` and `invoke` turn a `Reply` into each API's JSON and stream events.
//! Pure functions: no I/O, no clock.

pub mod converse;
pub mod invoke;

use rand::Rng;
use rand::distr::Alphanumeric;

use crate::request::{RequestView, estimate_tokens};
use crate::scenario::{ContentBlock, Scenario};

/// Text deltas in streams are this many characters long.
const TEXT_PIECE_CHARS: usize = 16;

/// A scenario with every default resolved for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub model_id: String,
    /// Content with tool-use ids and thinking signatures filled in.
    pub content: Vec<ContentBlock>,
    pub stop_reason: String,
    pub stop_sequence: Option<String>,
    pub usage: ResolvedUsage,
    /// The tier Bedrock reports it ran: the scenario's `served_tier`, else the requested one.
    pub service_tier: Option<String>,
    /// The request asked Converse for `/stop_sequence`.
    pub wants_stop_sequence_field: bool,
    /// Reported latency (the scripted delays, at least 1 ms).
    pub latency_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    /// The 1-hour share of `cache_creation_input_tokens`, when the scenario reports TTLs.
    pub cache_creation_1h_input_tokens: Option<u64>,
}

impl ResolvedUsage {
    /// `(5m, 1h)` cache writes, when reported per TTL.
    pub fn cache_creation_by_ttl(&self) -> Option<(u64, u64)> {
        self.cache_creation_1h_input_tokens.map(|one_hour| {
            let one_hour = one_hour.min(self.cache_creation_input_tokens);
            (self.cache_creation_input_tokens - one_hour, one_hour)
        })
    }
}

impl Reply {
    pub fn resolve(scenario: &Scenario, view: &RequestView, model_id: &str) -> Self {
        let content: Vec<ContentBlock> = scenario
            .content
            .clone()
            .unwrap_or_else(|| {
                vec![ContentBlock::text(format!(
                    "Hello from fake Bedrock ({model_id})"
                ))]
            })
            .into_iter()
            .map(fill_ids)
            .collect();
        let has_tool_use = content
            .iter()
            .any(|block| matches!(block, ContentBlock::ToolUse { .. }));
        let stop_reason = scenario
            .stop_reason
            .clone()
            .unwrap_or_else(|| if has_tool_use { "tool_use" } else { "end_turn" }.to_owned());
        let stop_sequence = (stop_reason == "stop_sequence")
            .then(|| {
                scenario
                    .stop_sequence
                    .clone()
                    .or_else(|| view.stop_sequences.first().cloned())
            })
            .flatten();
        let usage = scenario.usage.clone().unwrap_or_default();
        let usage = ResolvedUsage {
            input_tokens: usage
                .input_tokens
                .unwrap_or_else(|| estimate_tokens(view.text_chars)),
            output_tokens: usage
                .output_tokens
                .unwrap_or_else(|| estimate_tokens(content_chars(&content))),
            cache_read_input_tokens: usage.cache_read_input_tokens.unwrap_or(0),
            cache_creation_input_tokens: usage.cache_creation_input_tokens.unwrap_or(0),
            cache_creation_1h_input_tokens: usage.cache_creation_1h_input_tokens,
        };
        let pause_ms = scenario.pause.map_or(0, |pause| pause.ms);
        Self {
            model_id: model_id.to_owned(),
            content,
            stop_reason,
            stop_sequence,
            usage,
            service_tier: scenario
                .served_tier
                .clone()
                .or_else(|| view.service_tier.clone()),
            wants_stop_sequence_field: view.wants_stop_sequence_field,
            latency_ms: (scenario.first_event_delay_ms + pause_ms).max(1),
        }
    }

    /// Claude on Bedrock: the id names an Anthropic model (ARNs are trusted to).
    pub fn is_claude(&self) -> bool {
        is_claude(&self.model_id)
    }
}

/// Whether a model id names a Claude model; opaque ARNs (application inference profiles) count.
pub fn is_claude(model_id: &str) -> bool {
    model_id.contains("anthropic.")
        || (model_id.starts_with("arn:") && !model_id.contains("foundation-model/"))
}

fn fill_ids(block: ContentBlock) -> ContentBlock {
    match block {
        ContentBlock::ToolUse {
            id: None,
            name,
            input,
        } => ContentBlock::ToolUse {
            id: Some(format!("toolu_bdrk_01{}", random_alphanumeric(22))),
            name,
            input,
        },
        ContentBlock::Thinking {
            thinking,
            signature: None,
        } => ContentBlock::Thinking {
            thinking,
            signature: Some(format!("EqQBCkgIARAB{}==", random_alphanumeric(64))),
        },
        other => other,
    }
}

fn content_chars(content: &[ContentBlock]) -> usize {
    content
        .iter()
        .map(|block| match block {
            ContentBlock::Text { text } => text.chars().count(),
            ContentBlock::Thinking { thinking, .. } => thinking.chars().count(),
            ContentBlock::RedactedThinking { data } => data.len(),
            ContentBlock::ToolUse { input, .. } => input.to_string().len(),
        })
        .sum()
}

/// `msg_bdrk_01` + 22 base62, like Bedrock's Invoke message ids.
pub fn message_id() -> String {
    format!("msg_bdrk_01{}", random_alphanumeric(22))
}

/// A UUID-shaped request id for `x-amzn-requestid`.
pub fn request_id() -> String {
    let hex: String = (0..32)
        .map(|_| char::from(b"0123456789abcdef"[rand::rng().random_range(0..16)]))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Splits text into ~16-character deltas on char boundaries (one empty piece for empty text).
pub fn text_pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars
        .chunks(TEXT_PIECE_CHARS)
        .map(|chunk| chunk.iter().collect())
        .collect()
}

/// Splits a tool input's JSON into at least two fragments (when it has two characters or more).
pub fn json_fragments(json: &str) -> Vec<String> {
    let chars: Vec<char> = json.chars().collect();
    let size = (chars.len() / 3).clamp(1, 24);
    chars
        .chunks(size)
        .map(|chunk| chunk.iter().collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Usage;
    use serde_json::json;

    #[test]
    fn defaults_come_from_request_and_content() {
        let view = RequestView {
            text_chars: 40,
            stop_sequences: vec!["STOP".into()],
            ..RequestView::default()
        };
        let reply = Reply::resolve(&Scenario::default(), &view, "m1");
        assert_eq!(
            reply.content,
            vec![ContentBlock::text("Hello from fake Bedrock (m1)")]
        );
        assert_eq!(reply.stop_reason, "end_turn");
        assert_eq!(reply.usage.input_tokens, 10);
        assert_eq!(reply.usage.output_tokens, 7);

        let tool = Scenario::with_content(vec![ContentBlock::ToolUse {
            id: None,
            name: "Bash".into(),
            input: json!({}),
        }]);
        let reply = Reply::resolve(&tool, &view, "m1");
        assert_eq!(reply.stop_reason, "tool_use");
        assert!(
            matches!(&reply.content[0], ContentBlock::ToolUse { id: Some(id), .. } if id.starts_with("toolu_bdrk_01"))
        );

        let stop = Scenario {
            stop_reason: Some("stop_sequence".into()),
            usage: Some(Usage {
                output_tokens: Some(3),
                ..Usage::default()
            }),
            ..Scenario::text("x")
        };
        let reply = Reply::resolve(&stop, &view, "m1");
        assert_eq!(reply.stop_sequence.as_deref(), Some("STOP"));
        assert_eq!(reply.usage.output_tokens, 3);
    }

    #[test]
    fn splits_text_and_json() {
        let pieces = text_pieces("é".repeat(40).as_str());
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.concat(), "é".repeat(40));
        let fragments = json_fragments(r#"{"a":1}"#);
        assert!(fragments.len() >= 2);
        assert_eq!(fragments.concat(), r#"{"a":1}"#);
    }

    #[test]
    fn ids_have_bedrock_shapes() {
        assert!(message_id().starts_with("msg_bdrk_01"));
        assert_eq!(request_id().len(), 36);
        assert!(is_claude(
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
        ));
        assert!(!is_claude("qwen.qwen3-32b-v1:0"));
    }
}
