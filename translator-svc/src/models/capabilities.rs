//! What a model can do (spec section 11): per-family defaults derived from the Bedrock id, and
//! the operator's per-entry overrides. Translation reads only these flags, never model names.

use serde::{Deserialize, Serialize};

use super::family::{ClaudeTier, Family, parse_claude_version};

/// Which `thinking` shapes a model accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThinkingSupport {
    /// No thinking parameter at all.
    None,
    /// `{"type":"enabled","budget_tokens":N}` only.
    Budget,
    /// `{"type":"adaptive"}` only (Claude 4.7+: `enabled` is a Bedrock 400).
    Adaptive,
    /// Both shapes (Claude 4.6).
    Both,
}

impl ThinkingSupport {
    pub fn budget(self) -> bool {
        matches!(self, ThinkingSupport::Budget | ThinkingSupport::Both)
    }

    pub fn adaptive(self) -> bool {
        matches!(self, ThinkingSupport::Adaptive | ThinkingSupport::Both)
    }
}

/// How `/v1/messages/count_tokens` is answered (spec 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountTokensMode {
    Bedrock,
    Estimate,
}

/// Capability flags of one model entry (spec 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Capabilities {
    pub thinking: ThinkingSupport,
    pub thinking_display: bool,
    pub effort: bool,
    pub structured_output: bool,
    pub strict_tools: bool,
    pub prompt_caching: bool,
    pub cache_ttl: bool,
    pub reasoning_history: bool,
    pub tool_result_status: bool,
    pub forced_tool_choice: bool,
    pub tool_search: bool,
    pub system_role_messages: bool,
    pub images: bool,
    pub documents: bool,
    pub count_tokens: CountTokensMode,
    pub tool_examples: bool,
}

/// Operator overrides: every flag optional, applied over the derived defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapabilityOverrides {
    pub thinking: Option<ThinkingSupport>,
    pub thinking_display: Option<bool>,
    pub effort: Option<bool>,
    pub structured_output: Option<bool>,
    pub strict_tools: Option<bool>,
    pub prompt_caching: Option<bool>,
    pub cache_ttl: Option<bool>,
    pub reasoning_history: Option<bool>,
    pub tool_result_status: Option<bool>,
    pub forced_tool_choice: Option<bool>,
    pub tool_search: Option<bool>,
    pub system_role_messages: Option<bool>,
    pub images: Option<bool>,
    pub documents: Option<bool>,
    pub count_tokens: Option<CountTokensMode>,
    pub tool_examples: Option<bool>,
}

impl Capabilities {
    /// A model with no optional feature: the base every family starts from.
    const BASE: Capabilities = Capabilities {
        thinking: ThinkingSupport::None,
        thinking_display: false,
        effort: false,
        structured_output: false,
        strict_tools: false,
        prompt_caching: false,
        cache_ttl: false,
        reasoning_history: false,
        tool_result_status: false,
        forced_tool_choice: true,
        tool_search: false,
        system_role_messages: false,
        images: true,
        documents: true,
        count_tokens: CountTokensMode::Estimate,
        tool_examples: false,
    };

    /// Defaults for a model from its family and id (spec 11 table).
    pub fn derive(family: Family, bedrock_id: &str) -> Capabilities {
        let id = bedrock_id.to_ascii_lowercase();
        let base = Capabilities::BASE;
        match family {
            Family::Claude => claude_defaults(bedrock_id),
            Family::Nova | Family::Nova2 => {
                // Nova Micro is text-only.
                let multimodal = !id.contains("nova-micro");
                Capabilities {
                    thinking: if family == Family::Nova2 {
                        ThinkingSupport::Budget
                    } else {
                        ThinkingSupport::None
                    },
                    prompt_caching: true,
                    tool_result_status: true,
                    images: multimodal,
                    documents: multimodal,
                    ..base
                }
            }
            Family::DeepSeek => Capabilities {
                images: false,
                ..base
            },
            Family::Qwen => Capabilities {
                images: id.contains("-vl"),
                ..base
            },
            // Thinking maps to `reasoning_effort` for these two (spec 11).
            Family::Kimi | Family::GptOss => Capabilities {
                thinking: ThinkingSupport::Budget,
                images: false,
                ..base
            },
            Family::MiniMax | Family::Glm => Capabilities {
                forced_tool_choice: false,
                images: false,
                ..base
            },
            Family::Mistral | Family::Llama | Family::Other => Capabilities {
                forced_tool_choice: false,
                ..base
            },
        }
    }

    /// These capabilities with the operator's overrides applied.
    pub fn with_overrides(self, o: &CapabilityOverrides) -> Capabilities {
        Capabilities {
            thinking: o.thinking.unwrap_or(self.thinking),
            thinking_display: o.thinking_display.unwrap_or(self.thinking_display),
            effort: o.effort.unwrap_or(self.effort),
            structured_output: o.structured_output.unwrap_or(self.structured_output),
            strict_tools: o.strict_tools.unwrap_or(self.strict_tools),
            prompt_caching: o.prompt_caching.unwrap_or(self.prompt_caching),
            cache_ttl: o.cache_ttl.unwrap_or(self.cache_ttl),
            reasoning_history: o.reasoning_history.unwrap_or(self.reasoning_history),
            tool_result_status: o.tool_result_status.unwrap_or(self.tool_result_status),
            forced_tool_choice: o.forced_tool_choice.unwrap_or(self.forced_tool_choice),
            tool_search: o.tool_search.unwrap_or(self.tool_search),
            system_role_messages: o.system_role_messages.unwrap_or(self.system_role_messages),
            images: o.images.unwrap_or(self.images),
            documents: o.documents.unwrap_or(self.documents),
            count_tokens: o.count_tokens.unwrap_or(self.count_tokens),
            tool_examples: o.tool_examples.unwrap_or(self.tool_examples),
        }
    }
}

/// Claude defaults by generation: adaptive thinking on 4.6+, adaptive-only on 4.7+; effort on
/// Opus 4.5 and all 4.6+; cache TTL, structured output and strict tools on 4.5+; tool search and
/// input examples on Opus/Sonnet 4.5+. An unparsable id (legacy `claude-v2`) gets the base set.
fn claude_defaults(bedrock_id: &str) -> Capabilities {
    let common = Capabilities {
        reasoning_history: true,
        tool_result_status: true,
        count_tokens: CountTokensMode::Bedrock,
        ..Capabilities::BASE
    };
    let Some(v) = parse_claude_version(bedrock_id) else {
        return common;
    };
    let thinking = if v.at_least(4, 7) {
        ThinkingSupport::Adaptive
    } else if v.at_least(4, 6) {
        ThinkingSupport::Both
    } else if v.at_least(3, 7) {
        ThinkingSupport::Budget
    } else {
        ThinkingSupport::None
    };
    let gen45 = v.at_least(4, 5);
    let search = gen45 && v.tier != ClaudeTier::Haiku;
    Capabilities {
        thinking,
        effort: v.at_least(4, 6) || (v.tier == ClaudeTier::Opus && gen45),
        structured_output: gen45,
        strict_tools: gen45,
        prompt_caching: v.at_least(3, 5),
        cache_ttl: gen45,
        tool_search: search,
        tool_examples: search,
        ..common
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(id: &str) -> Capabilities {
        Capabilities::derive(Family::detect(id), id)
    }

    #[test]
    fn claude_generations() {
        let opus47 = caps("global.anthropic.claude-opus-4-7");
        assert_eq!(opus47.thinking, ThinkingSupport::Adaptive);
        assert!(opus47.effort && opus47.tool_search && opus47.cache_ttl);
        assert_eq!(
            caps("global.anthropic.claude-opus-4-6-v1").thinking,
            ThinkingSupport::Both
        );
        let sonnet45 = caps("global.anthropic.claude-sonnet-4-5-20250929-v1:0");
        assert_eq!(sonnet45.thinking, ThinkingSupport::Budget);
        assert!(!sonnet45.effort && sonnet45.tool_search);
        assert!(caps("global.anthropic.claude-opus-4-5-20251101-v1:0").effort);
        let haiku45 = caps("global.anthropic.claude-haiku-4-5-20251001-v1:0");
        assert!(!haiku45.tool_search && !haiku45.effort && haiku45.cache_ttl);
        let haiku35 = caps("us.anthropic.claude-3-5-haiku-20241022-v1:0");
        assert_eq!(haiku35.thinking, ThinkingSupport::None);
        assert!(haiku35.prompt_caching && !haiku35.cache_ttl);
        assert_eq!(haiku35.count_tokens, CountTokensMode::Bedrock);
    }

    #[test]
    fn other_families() {
        let nova = caps("us.amazon.nova-pro-v1:0");
        assert!(nova.prompt_caching && nova.tool_result_status && !nova.reasoning_history);
        assert_eq!(nova.thinking, ThinkingSupport::None);
        assert!(!caps("us.amazon.nova-micro-v1:0").images);
        assert_eq!(
            caps("global.amazon.nova-2-lite-v1:0").thinking,
            ThinkingSupport::Budget
        );
        let qwen = caps("qwen.qwen3-coder-480b-a35b-v1:0");
        assert!(!qwen.prompt_caching && !qwen.tool_result_status && qwen.forced_tool_choice);
        assert_eq!(qwen.count_tokens, CountTokensMode::Estimate);
        assert!(!caps("mistral.mistral-large-2407-v1:0").forced_tool_choice);
    }

    #[test]
    fn overrides_apply_per_flag() {
        let o = CapabilityOverrides {
            effort: Some(true),
            thinking: Some(ThinkingSupport::Both),
            ..Default::default()
        };
        let c = caps("qwen.qwen3-32b-v1:0").with_overrides(&o);
        assert!(c.effort);
        assert_eq!(c.thinking, ThinkingSupport::Both);
        assert!(!c.prompt_caching);
    }
}
