//! Model family detection from a Bedrock id (spec section 11, "id contains") and Claude version
//! parsing, the two facts every default capability is derived from. Pure string work.

use serde::{Deserialize, Serialize};

/// Model family; decides the default backend and the per-family translation quirks (spec 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Claude,
    Nova,
    Nova2,
    DeepSeek,
    Qwen,
    Kimi,
    GptOss,
    MiniMax,
    Glm,
    Mistral,
    Llama,
    Other,
}

impl Family {
    /// Detects the family from a resolved id, inference profile id or ARN. Application inference
    /// profile ARNs do not name the model and come out as `Other` (spec 6.3).
    pub fn detect(bedrock_id: &str) -> Family {
        let id = bedrock_id.to_ascii_lowercase();
        if id.contains("anthropic.claude") {
            Family::Claude
        } else if id.contains("amazon.nova-2-") {
            Family::Nova2
        } else if id.contains("amazon.nova-") {
            Family::Nova
        } else if id.contains("deepseek.") {
            Family::DeepSeek
        } else if id.contains("qwen.") {
            Family::Qwen
        } else if id.contains("moonshot") || id.contains("kimi") {
            Family::Kimi
        } else if id.contains("openai.gpt-oss") {
            Family::GptOss
        } else if id.contains("minimax") {
            Family::MiniMax
        } else if id.contains("glm") {
            Family::Glm
        } else if id.contains("mistral.") {
            Family::Mistral
        } else if id.contains("meta.llama") {
            Family::Llama
        } else {
            Family::Other
        }
    }
}

/// Claude model tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaudeTier {
    Opus,
    Sonnet,
    Haiku,
    Other,
}

/// A Claude generation such as Opus 4.5: tier plus `(major, minor)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaudeVersion {
    pub tier: ClaudeTier,
    pub major: u32,
    pub minor: u32,
}

impl ClaudeVersion {
    /// True when this version is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

fn tier_of(word: &str) -> Option<ClaudeTier> {
    match word {
        "opus" => Some(ClaudeTier::Opus),
        "sonnet" => Some(ClaudeTier::Sonnet),
        "haiku" => Some(ClaudeTier::Haiku),
        "instant" => Some(ClaudeTier::Other),
        _ => None,
    }
}

/// A one- or two-digit number: a version part (an 8-digit date is not one).
fn small_number(token: &str) -> Option<u32> {
    if (1..=2).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_digit()) {
        token.parse().ok()
    } else {
        None
    }
}

/// Parses the Claude generation out of a client name or Bedrock id. Handles both naming schemes:
/// `claude-opus-4-5-20251101` (tier first, since Claude 4) and `claude-3-7-sonnet-20250219`.
pub fn parse_claude_version(id: &str) -> Option<ClaudeVersion> {
    let lower = id.to_ascii_lowercase();
    let start = lower.find("claude-")? + "claude-".len();
    let tokens: Vec<&str> = lower[start..].split(['-', ':', '@']).collect();
    let first = *tokens.first()?;
    if let Some(tier) = tier_of(first) {
        let major = tokens.get(1).and_then(|t| small_number(t))?;
        let minor = tokens.get(2).and_then(|t| small_number(t)).unwrap_or(0);
        return Some(ClaudeVersion { tier, major, minor });
    }
    let major = small_number(first)?;
    let (minor, tier_at) = match tokens.get(1).and_then(|t| small_number(t)) {
        Some(minor) => (minor, 2),
        None => (0, 1),
    };
    let tier = tokens
        .get(tier_at)
        .and_then(|t| tier_of(t))
        .unwrap_or(ClaudeTier::Other);
    Some(ClaudeVersion { tier, major, minor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_families() {
        let cases = [
            ("global.anthropic.claude-opus-4-7", Family::Claude),
            (
                "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
                Family::Claude,
            ),
            ("us.amazon.nova-pro-v1:0", Family::Nova),
            ("global.amazon.nova-2-lite-v1:0", Family::Nova2),
            ("us.deepseek.r1-v1:0", Family::DeepSeek),
            ("qwen.qwen3-coder-480b-a35b-v1:0", Family::Qwen),
            ("moonshot.kimi-k2-thinking", Family::Kimi),
            ("openai.gpt-oss-120b-1:0", Family::GptOss),
            ("minimax.minimax-m2", Family::MiniMax),
            ("zai.glm-4.6", Family::Glm),
            ("mistral.mistral-large-2407-v1:0", Family::Mistral),
            ("us.meta.llama4-maverick-17b-instruct-v1:0", Family::Llama),
            (
                "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
                Family::Other,
            ),
        ];
        for (id, family) in cases {
            assert_eq!(Family::detect(id), family, "{id}");
        }
    }

    #[test]
    fn parses_both_claude_schemes() {
        let v = |id| parse_claude_version(id).map(|v| (v.tier, v.major, v.minor));
        assert_eq!(
            v("global.anthropic.claude-opus-4-7"),
            Some((ClaudeTier::Opus, 4, 7))
        );
        assert_eq!(
            v("global.anthropic.claude-opus-4-6-v1"),
            Some((ClaudeTier::Opus, 4, 6))
        );
        assert_eq!(
            v("anthropic.claude-sonnet-4-20250514-v1:0"),
            Some((ClaudeTier::Sonnet, 4, 0))
        );
        assert_eq!(
            v("claude-haiku-4-5-20251001"),
            Some((ClaudeTier::Haiku, 4, 5))
        );
        assert_eq!(
            v("us.anthropic.claude-3-7-sonnet-20250219-v1:0"),
            Some((ClaudeTier::Sonnet, 3, 7))
        );
        assert_eq!(
            v("anthropic.claude-3-haiku-20240307-v1:0"),
            Some((ClaudeTier::Haiku, 3, 0))
        );
        assert_eq!(v("claude-opus-5"), Some((ClaudeTier::Opus, 5, 0)));
        assert_eq!(v("claude-opus-5-5"), Some((ClaudeTier::Opus, 5, 5)));
        assert_eq!(v("anthropic.claude-v2"), None);
        assert_eq!(v("amazon.nova-pro-v1:0"), None);
    }
}
