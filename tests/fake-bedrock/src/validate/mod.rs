//! Bedrock's request strictness, cheap parts only, so gateway bugs surface as 400 ValidationException:
//! `converse` for Converse bodies, `invoke` for Anthropic bodies, `count_tokens` for both wrappers.
//! Shared rules (beta flags, cache breakpoints, tool pairing) live here.

pub mod converse;
pub mod invoke;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::error::BedrockError;
use crate::request::RequestView;

pub type Check = Result<(), BedrockError>;

/// Bedrock refuses InvokeModel bodies larger than this.
pub const MAX_INVOKE_BODY_BYTES: usize = 25_000_000;

/// Beta flags Bedrock knows (spec section 9 allow list); any other makes the request fail.
pub const KNOWN_BETAS: &[&str] = &[
    "interleaved-thinking-2025-05-14",
    "context-management-2025-06-27",
    "compact-2026-01-12",
    "context-1m-2025-08-07",
    "effort-2025-11-24",
    "fine-grained-tool-streaming-2025-05-14",
    "token-efficient-tools-2025-02-19",
    "output-128k-2025-02-19",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
    "model-context-window-exceeded-2025-08-26",
    "computer-use-2025-01-24",
    "computer-use-2024-10-22",
    "search-results-2025-06-09",
    "pdfs-2024-09-25",
    "dev-full-thinking-2025-05-14",
    "mcp-client-2025-04-04",
    "mcp-client-2025-11-20",
];

/// Service tiers Bedrock accepts.
pub const SERVICE_TIERS: &[&str] = &["priority", "default", "flex", "reserved"];

/// At most this many cache breakpoints per request.
const MAX_CACHE_POINTS: usize = 4;

/// The inner request of a CountTokens call, validated, as a view for the estimate.
pub fn count_tokens(body: &Value, model_id: &str) -> Result<RequestView, BedrockError> {
    if !crate::render::is_claude(model_id) {
        return Err(BedrockError::validation(
            "The provided model doesn't support counting tokens.",
        ));
    }
    let input = body
        .as_object()
        .filter(|object| object.len() == 1)
        .and_then(|object| object.get("input"))
        .and_then(Value::as_object)
        .filter(|input| input.len() == 1)
        .ok_or_else(|| {
            BedrockError::validation(
                "The request body must be {\"input\": {\"converse\": {...}}} or {\"input\": {\"invokeModel\": {\"body\": ...}}}.",
            )
        })?;
    if let Some(converse) = input.get("converse") {
        converse::check(converse, converse::COUNT_TOKENS_KEYS, model_id)?;
        return Ok(RequestView::from_converse(converse));
    }
    let encoded = input
        .get("invokeModel")
        .and_then(|invoke| invoke.get("body"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            BedrockError::validation("input: exactly one of converse or invokeModel is required.")
        })?;
    let inner: Value = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| {
            BedrockError::validation("input.invokeModel.body must be base64 of a JSON object.")
        })?;
    invoke::check(&inner, model_id)?;
    Ok(RequestView::from_invoke(&inner, None))
}

/// `x-amzn-bedrock-service-tier` must name a known tier.
pub fn service_tier(tier: Option<&str>) -> Check {
    match tier {
        Some(tier) if !SERVICE_TIERS.contains(&tier) => Err(BedrockError::validation(format!(
            "1 validation error detected: Value '{tier}' at 'serviceTier' failed to satisfy constraint: Member must satisfy enum value set: [priority, default, flex, reserved]"
        ))),
        _ => Ok(()),
    }
}

/// Every flag must be known to Bedrock.
fn betas(value: Option<&Value>, path: &str) -> Check {
    let Some(value) = value else {
        return Ok(());
    };
    let Some(flags) = value.as_array() else {
        return Err(BedrockError::validation(format!(
            "{path}: Input should be a valid list"
        )));
    };
    for flag in flags {
        match flag.as_str() {
            Some(flag) if KNOWN_BETAS.contains(&flag) => {}
            _ => {
                return Err(BedrockError::validation(format!(
                    "invalid beta flag: {flag}"
                )));
            }
        }
    }
    Ok(())
}

fn beta_enabled(value: Option<&Value>, flag: &str) -> bool {
    value
        .and_then(Value::as_array)
        .is_some_and(|flags| flags.iter().any(|f| f.as_str() == Some(flag)))
}

fn cache_points(found: usize) -> Check {
    if found > MAX_CACHE_POINTS {
        return Err(BedrockError::validation(format!(
            "A maximum of {MAX_CACHE_POINTS} blocks with cache_control may be provided. Found {found}."
        )));
    }
    Ok(())
}

/// `thinking` rules Anthropic enforces (budget bounds, temperature only 1).
fn thinking(thinking: Option<&Value>, max_tokens: Option<u64>, temperature: Option<f64>) -> Check {
    let Some(thinking) = thinking else {
        return Ok(());
    };
    let kind = thinking.get("type").and_then(Value::as_str);
    if !matches!(kind, Some("enabled" | "adaptive")) {
        return Ok(());
    }
    if temperature.is_some_and(|t| (t - 1.0).abs() > f64::EPSILON) {
        return Err(BedrockError::validation(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#important-considerations-when-using-extended-thinking",
        ));
    }
    if kind == Some("enabled") {
        let budget = thinking.get("budget_tokens").and_then(Value::as_u64);
        match budget {
            None => {
                return Err(BedrockError::validation(
                    "thinking.enabled.budget_tokens: Field required",
                ));
            }
            Some(budget) if budget < 1024 => {
                return Err(BedrockError::validation(
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                ));
            }
            Some(budget) if max_tokens.is_some_and(|max| budget >= max) => {
                return Err(BedrockError::validation(
                    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Tool blocks of one message, in either dialect.
#[derive(Debug, Default)]
struct MessageTools {
    role: String,
    uses: Vec<String>,
    /// (content index, tool use id)
    results: Vec<(usize, String)>,
}

/// Tool ids must be well formed.
fn tool_id(id: &str, path: &str) -> Check {
    let ok = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        return Ok(());
    }
    Err(BedrockError::validation(format!(
        "{path}: String should match pattern '^[a-zA-Z0-9_-]+$'"
    )))
}

/// How tool results fail to answer the previous assistant turn's tool uses.
#[derive(Debug, PartialEq)]
enum Pairing {
    /// More results than the previous turn had uses (message index).
    TooMany(usize),
    /// A result for an id the previous turn did not use (message index, content index, id).
    Unexpected(usize, usize, String),
    /// Uses left unanswered by the next message (index of the answering message, ids).
    Missing(usize, Vec<String>),
}

/// Each tool result answers a tool use of the previous message; each tool use is answered by the next.
fn tool_pairing(messages: &[MessageTools]) -> Result<(), Pairing> {
    for (index, message) in messages.iter().enumerate() {
        let previous_uses: &[String] = match index.checked_sub(1).and_then(|i| messages.get(i)) {
            Some(previous) if previous.role == "assistant" => &previous.uses,
            _ => &[],
        };
        if message.results.len() > previous_uses.len() && !message.results.is_empty() {
            if previous_uses.is_empty() {
                let (block, id) = &message.results[0];
                return Err(Pairing::Unexpected(index, *block, id.clone()));
            }
            return Err(Pairing::TooMany(index));
        }
        if let Some((block, id)) = message
            .results
            .iter()
            .find(|(_, id)| !previous_uses.contains(id))
        {
            return Err(Pairing::Unexpected(index, *block, id.clone()));
        }
        let missing: Vec<String> = previous_uses
            .iter()
            .filter(|id| !message.results.iter().any(|(_, answered)| answered == *id))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Pairing::Missing(index, missing));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(role: &str, uses: &[&str], results: &[&str]) -> MessageTools {
        MessageTools {
            role: role.into(),
            uses: uses.iter().map(|s| (*s).to_owned()).collect(),
            results: results
                .iter()
                .enumerate()
                .map(|(i, s)| (i, (*s).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn tool_results_must_answer_the_previous_turn() {
        let ok = [
            message("user", &[], &[]),
            message("assistant", &["a", "b"], &[]),
            message("user", &[], &["a", "b"]),
        ];
        assert_eq!(tool_pairing(&ok), Ok(()));
        let missing = [
            message("user", &[], &[]),
            message("assistant", &["a", "b"], &[]),
            message("user", &[], &["a"]),
        ];
        assert_eq!(
            tool_pairing(&missing),
            Err(Pairing::Missing(2, vec!["b".into()]))
        );
        let unexpected = [
            message("user", &[], &[]),
            message("assistant", &["a"], &[]),
            message("user", &[], &["z"]),
        ];
        assert_eq!(
            tool_pairing(&unexpected),
            Err(Pairing::Unexpected(2, 0, "z".into()))
        );
        let orphan = [message("user", &[], &["a"])];
        assert_eq!(
            tool_pairing(&orphan),
            Err(Pairing::Unexpected(0, 0, "a".into()))
        );
        let too_many = [
            message("user", &[], &[]),
            message("assistant", &["a"], &[]),
            message("user", &[], &["a", "a"]),
        ];
        assert_eq!(tool_pairing(&too_many), Err(Pairing::TooMany(2)));
        let prefill = [message("user", &[], &[]), message("assistant", &["a"], &[])];
        assert_eq!(tool_pairing(&prefill), Ok(()));
    }

    #[test]
    fn betas_thinking_and_tiers() {
        assert!(
            betas(
                Some(&json!(["interleaved-thinking-2025-05-14"])),
                "anthropic_beta"
            )
            .is_ok()
        );
        let error = betas(Some(&json!(["claude-code-20250219"])), "anthropic_beta").err();
        assert!(error.is_some_and(|e| e.message.contains("invalid beta flag")));
        assert!(
            thinking(
                Some(&json!({"type": "enabled", "budget_tokens": 2000})),
                Some(4000),
                None
            )
            .is_ok()
        );
        assert!(
            thinking(
                Some(&json!({"type": "enabled", "budget_tokens": 500})),
                Some(4000),
                None
            )
            .is_err()
        );
        assert!(
            thinking(
                Some(&json!({"type": "enabled", "budget_tokens": 4000})),
                Some(4000),
                None
            )
            .is_err()
        );
        assert!(thinking(Some(&json!({"type": "adaptive"})), Some(4000), Some(0.5)).is_err());
        assert!(service_tier(Some("priority")).is_ok());
        assert!(service_tier(Some("fast")).is_err());
        assert!(tool_id("toolu_01-x", "p").is_ok());
        assert!(tool_id("tool.1", "p").is_err());
    }
}
