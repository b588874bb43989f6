//! `thinking` and `max_tokens` normalization (spec 7, 11): parse and validate, clamp to the
//! entry's output limit, map between budget and adaptive per model capability, drop `display`
//! unless supported, and derive the reasoning effort for families that take one.

use serde_json::{Map, Value};

use super::normalize::Mode;
use super::options::RequestOptions;
use crate::anthropic::request::Thinking;
use crate::error::ApiError;
use crate::models::Family;

/// Anthropic's minimum thinking budget.
pub(crate) const MIN_BUDGET: u32 = 1024;

/// Parses `thinking` with Anthropic's validation (`budget_tokens` ≥ 1024 when enabled).
pub(crate) fn parse_thinking(body: &Map<String, Value>) -> Result<Option<Thinking>, ApiError> {
    let Some(v) = body.get("thinking") else {
        return Ok(None);
    };
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::invalid_at("thinking", "Input should be an object"))?;
    let display = match obj.get("display") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::invalid_at(
                "thinking.display",
                "Input should be a valid string",
            ));
        }
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            let budget = match obj.get("budget_tokens") {
                None => {
                    return Err(ApiError::invalid_at(
                        "thinking.budget_tokens",
                        "Field required",
                    ));
                }
                Some(b) => b.as_u64().and_then(|b| u32::try_from(b).ok()),
            };
            match budget {
                Some(budget_tokens) if budget_tokens >= MIN_BUDGET => Ok(Some(Thinking::Enabled {
                    budget_tokens,
                    display,
                })),
                _ => Err(ApiError::invalid_at(
                    "thinking.budget_tokens",
                    "Input should be an integer greater than or equal to 1024",
                )),
            }
        }
        Some("adaptive") => Ok(Some(Thinking::Adaptive { display })),
        Some("disabled") => Ok(Some(Thinking::Disabled)),
        _ => Err(ApiError::invalid_at(
            "thinking.type",
            "Input should be 'enabled', 'adaptive' or 'disabled'",
        )),
    }
}

fn max_tokens(body: &Map<String, Value>) -> Option<u32> {
    body.get("max_tokens")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

/// Clamps `max_tokens` to the entry's `max_output_tokens` and rewrites `thinking` for the model.
pub(crate) fn normalize_thinking(
    body: &mut Map<String, Value>,
    opts: &RequestOptions,
    mode: Mode,
) -> Result<(), ApiError> {
    let thinking = parse_thinking(body)?;
    let entry = &opts.route.entry;
    let caps = &entry.capabilities;
    let mut limit = if mode == Mode::Messages {
        max_tokens(body)
    } else {
        None
    };
    let mut clamped = false;
    if let (Some(requested), Some(max_out)) = (limit, entry.max_output_tokens)
        && requested > max_out
    {
        limit = Some(max_out);
        clamped = true;
        body.insert("max_tokens".into(), Value::from(max_out));
    }
    let keep_display = |d: Option<String>| d.filter(|_| caps.thinking_display);
    let mut out = match thinking {
        None => None,
        Some(Thinking::Enabled {
            budget_tokens,
            display,
        }) if caps.thinking.budget() => Some(Thinking::Enabled {
            budget_tokens,
            display: keep_display(display),
        }),
        // `enabled` on an adaptive-only model is a Bedrock 400.
        Some(Thinking::Enabled { display, .. }) if caps.thinking.adaptive() => {
            Some(Thinking::Adaptive {
                display: keep_display(display),
            })
        }
        Some(Thinking::Adaptive { display }) if caps.thinking.adaptive() => {
            Some(Thinking::Adaptive {
                display: keep_display(display),
            })
        }
        Some(Thinking::Adaptive { display }) if caps.thinking.budget() => {
            let cap = limit.map_or(u32::MAX, |m| m.saturating_sub(1));
            let budget_tokens = opts.adaptive_fallback_budget.min(cap);
            (budget_tokens >= MIN_BUDGET).then(|| Thinking::Enabled {
                budget_tokens,
                display: keep_display(display),
            })
        }
        Some(Thinking::Disabled) if entry.family == Family::Claude => Some(Thinking::Disabled),
        Some(_) => None,
    };
    if let (true, Some(Thinking::Enabled { budget_tokens, .. }), Some(limit)) =
        (clamped, out.as_mut(), limit)
    {
        if *budget_tokens >= limit {
            *budget_tokens = limit.saturating_sub(1);
        }
        if *budget_tokens < MIN_BUDGET {
            out = None;
        }
    }
    match out.map(serde_json::to_value) {
        Some(Ok(v)) => body.insert("thinking".into(), v),
        _ => body.shift_remove("thinking"),
    };
    Ok(())
}

/// `low` / `medium` / `high` for Nova 2 `maxReasoningEffort` and Kimi/gpt-oss `reasoning_effort`:
/// from `output_config.effort` when given, else from the budget (< 4096 low, ≤ 16384 medium).
pub(crate) fn reasoning_effort(thinking: &Thinking, effort: Option<&str>) -> Option<&'static str> {
    let budget = match thinking {
        Thinking::Enabled { budget_tokens, .. } => *budget_tokens,
        Thinking::Adaptive { .. } => super::options::DEFAULT_ADAPTIVE_FALLBACK_BUDGET,
        Thinking::Disabled => return None,
    };
    Some(match effort {
        Some("low") => "low",
        Some("medium") => "medium",
        Some("high" | "max" | "xhigh") => "high",
        _ if budget < 4096 => "low",
        _ if budget <= 16_384 => "medium",
        _ => "high",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beta::BetaPolicy;
    use crate::models::ModelTable;
    use serde_json::json;

    fn run(model: &str, body: Value, mode: Mode) -> Result<Value, ApiError> {
        let route = ModelTable::builtin("global", true).resolve(model).unwrap();
        let policy = BetaPolicy::default_policy();
        let opts = RequestOptions::new(&route, &[], &policy);
        let mut map = body.as_object().unwrap().clone();
        normalize_thinking(&mut map, &opts, mode)?;
        Ok(Value::Object(map))
    }

    fn thinking_of(model: &str, max_tokens: u32, thinking: Value) -> Value {
        let out = run(
            model,
            json!({"max_tokens": max_tokens, "thinking": thinking}),
            Mode::Messages,
        )
        .unwrap();
        json!({"max_tokens": out["max_tokens"], "thinking": out.get("thinking").cloned().unwrap_or(Value::Null)})
    }

    #[test]
    fn adaptive_on_budget_model_becomes_budget() {
        assert_eq!(
            thinking_of(
                "claude-sonnet-4-5",
                32_000,
                json!({"type": "adaptive", "display": "omitted"})
            ),
            json!({"max_tokens": 32_000, "thinking": {"type": "enabled", "budget_tokens": 16_000}})
        );
        assert_eq!(
            thinking_of("claude-sonnet-4-5", 8_000, json!({"type": "adaptive"})),
            json!({"max_tokens": 8_000, "thinking": {"type": "enabled", "budget_tokens": 7_999}})
        );
        // Fallback under 1024: dropped.
        assert_eq!(
            thinking_of("claude-sonnet-4-5", 1_000, json!({"type": "adaptive"})),
            json!({"max_tokens": 1_000, "thinking": null})
        );
    }

    #[test]
    fn enabled_on_adaptive_only_model_becomes_adaptive() {
        assert_eq!(
            thinking_of(
                "claude-opus-4-7",
                64_000,
                json!({"type": "enabled", "budget_tokens": 31_999, "display": "omitted"})
            ),
            json!({"max_tokens": 64_000, "thinking": {"type": "adaptive"}})
        );
        // Both shapes on 4.6.
        assert_eq!(
            thinking_of(
                "claude-opus-4-6",
                64_000,
                json!({"type": "enabled", "budget_tokens": 31_999})
            ),
            json!({"max_tokens": 64_000, "thinking": {"type": "enabled", "budget_tokens": 31_999}})
        );
    }

    #[test]
    fn disabled_passes_on_claude_only() {
        assert_eq!(
            thinking_of("claude-3-5-haiku-latest", 100, json!({"type": "disabled"})),
            json!({"max_tokens": 100, "thinking": {"type": "disabled"}})
        );
        assert_eq!(
            thinking_of("qwen.qwen3-32b-v1:0", 100, json!({"type": "disabled"})),
            json!({"max_tokens": 100, "thinking": null})
        );
        assert_eq!(
            thinking_of(
                "qwen.qwen3-32b-v1:0",
                10_000,
                json!({"type": "enabled", "budget_tokens": 2000})
            ),
            json!({"max_tokens": 10_000, "thinking": null})
        );
    }

    #[test]
    fn clamp_lowers_budget_or_drops_thinking() {
        assert_eq!(
            thinking_of(
                "claude-haiku-4-5",
                128_000,
                json!({"type": "enabled", "budget_tokens": 100_000})
            ),
            json!({"max_tokens": 64_000, "thinking": {"type": "enabled", "budget_tokens": 63_999}})
        );
        assert_eq!(
            thinking_of(
                "claude-3-5-haiku-latest",
                20_000,
                json!({"type": "disabled"})
            ),
            json!({"max_tokens": 8_192, "thinking": {"type": "disabled"}})
        );
        // Not clamped: budget ≥ max_tokens is left to Bedrock (interleaved thinking allows it).
        assert_eq!(
            thinking_of(
                "claude-haiku-4-5",
                4_000,
                json!({"type": "enabled", "budget_tokens": 5_000})
            ),
            json!({"max_tokens": 4_000, "thinking": {"type": "enabled", "budget_tokens": 5_000}})
        );
    }

    #[test]
    fn count_tokens_mode_uses_the_fallback_budget() {
        let out = run(
            "claude-sonnet-4-5",
            json!({"thinking": {"type": "adaptive"}}),
            Mode::CountTokens,
        )
        .unwrap();
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": 16_000})
        );
    }

    #[test]
    fn invalid_thinking_is_400_with_path() {
        let bad = [
            (
                json!({"type": "enabled"}),
                "thinking.budget_tokens: Field required",
            ),
            (
                json!({"type": "enabled", "budget_tokens": 1023}),
                "thinking.budget_tokens: Input should be an integer greater than or equal to 1024",
            ),
            (
                json!({"type": "enabled", "budget_tokens": "2000"}),
                "thinking.budget_tokens: Input should be an integer greater than or equal to 1024",
            ),
            (
                json!({"type": "sometimes"}),
                "thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'",
            ),
            (json!("adaptive"), "thinking: Input should be an object"),
            (
                json!({"type": "adaptive", "display": 1}),
                "thinking.display: Input should be a valid string",
            ),
        ];
        for (thinking, message) in bad {
            let err = run(
                "claude-opus-4-7",
                json!({"max_tokens": 10, "thinking": thinking}),
                Mode::Messages,
            )
            .unwrap_err();
            assert_eq!(err.message, message);
            assert_eq!(err.status.as_u16(), 400);
        }
    }

    #[test]
    fn effort_mapping() {
        let enabled = |b| Thinking::Enabled {
            budget_tokens: b,
            display: None,
        };
        assert_eq!(reasoning_effort(&enabled(2000), None), Some("low"));
        assert_eq!(reasoning_effort(&enabled(16_384), None), Some("medium"));
        assert_eq!(reasoning_effort(&enabled(16_385), None), Some("high"));
        assert_eq!(reasoning_effort(&enabled(2000), Some("high")), Some("high"));
        assert_eq!(reasoning_effort(&enabled(20_000), Some("low")), Some("low"));
        assert_eq!(reasoning_effort(&Thinking::Disabled, Some("high")), None);
    }
}
