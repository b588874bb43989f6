//! Name rules of model resolution (spec 6.1): the `[1m]` marker, Bedrock-shaped ids, the
//! Claude derive rule, geo prefixes, and the derived display name and creation date (spec 17).

use super::family::{ClaudeTier, parse_claude_version};

/// Cross-region inference profile prefixes (spec 6.1.3).
pub const GEO_PREFIXES: &[&str] = &["global", "us", "eu", "apac", "jp", "au", "ca", "us-gov"];

/// Claude Code's 1M-context marker, appended to the model name.
const CONTEXT_1M_MARKER: &str = "[1m]";

/// Splits a trailing `[1m]` (any case) off a requested model name.
pub fn strip_context_1m(requested: &str) -> (&str, bool) {
    let cut = requested.len().saturating_sub(CONTEXT_1M_MARKER.len());
    match (requested.get(..cut), requested.get(cut..)) {
        (Some(name), Some(tail)) if tail.eq_ignore_ascii_case(CONTEXT_1M_MARKER) => {
            (name.trim_end(), true)
        }
        _ => (requested, false),
    }
}

/// The id without a leading geo prefix (`us.anthropic.x` -> `anthropic.x`); ARNs unchanged.
pub fn strip_geo_prefix(id: &str) -> &str {
    match id.split_once('.') {
        Some((geo, rest)) if GEO_PREFIXES.contains(&geo) && rest.contains('.') => rest,
        _ => id,
    }
}

pub fn is_arn(id: &str) -> bool {
    id.starts_with("arn:aws") && id.contains(":bedrock:")
}

/// True for strings Bedrock itself understands: ARNs and `[<geo>.]<provider>.<model>`.
pub fn is_bedrock_shaped(id: &str) -> bool {
    if is_arn(id) {
        return true;
    }
    let Some((provider, model)) = strip_geo_prefix(id).split_once('.') else {
        return false;
    };
    // A geo word is never a provider: `us.claude` is not a model id.
    let provider_ok = !GEO_PREFIXES.contains(&provider)
        && provider.starts_with(|c: char| c.is_ascii_lowercase())
        && provider
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let model_ok = !model.is_empty()
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    provider_ok && model_ok
}

fn is_digits(s: &str, lens: std::ops::RangeInclusive<usize>) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Rule 6.1.4: `claude-<family>-<major>[-<minor>]` -> `<profile>.anthropic.<name>` (the undated
/// scheme Bedrock uses since Opus 4.7); with a trailing `-YYYYMMDD` -> `...<name>-v1:0`.
pub fn derive_claude_id(name: &str, profile: &str) -> Option<String> {
    let rest = name.strip_prefix("claude-")?;
    let parts: Vec<&str> = rest.split('-').collect();
    let family = parts.first()?;
    if family.is_empty() || !family.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let mut numbers = &parts[1..];
    let dated = numbers.last().is_some_and(|p| is_digits(p, 8..=8));
    if dated {
        numbers = &numbers[..numbers.len() - 1];
    }
    let shape_ok = matches!(numbers.len(), 1 | 2) && numbers.iter().all(|p| is_digits(p, 1..=2));
    if !shape_ok {
        return None;
    }
    Some(if dated {
        format!("{profile}.anthropic.{name}-v1:0")
    } else {
        format!("{profile}.anthropic.{name}")
    })
}

/// Display name for a listing (spec 17): `claude-opus-4-7` -> `Claude Opus 4.7`; other keys as is.
pub fn display_name(key: &str) -> String {
    let Some(v) = parse_claude_version(key) else {
        return key.to_string();
    };
    let tier = match v.tier {
        ClaudeTier::Opus => "Opus",
        ClaudeTier::Sonnet => "Sonnet",
        ClaudeTier::Haiku => "Haiku",
        ClaudeTier::Other => return key.to_string(),
    };
    if v.minor == 0 {
        format!("Claude {tier} {}", v.major)
    } else {
        format!("Claude {tier} {}.{}", v.major, v.minor)
    }
}

/// RFC 3339 date from an 8-digit `YYYYMMDD` run in any of the strings (spec 17).
pub fn created_at_from(names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        name.split(|c: char| !c.is_ascii_digit())
            .find(|run| run.len() == 8 && plausible_date(run))
            .map(|d| format!("{}-{}-{}T00:00:00Z", &d[..4], &d[4..6], &d[6..8]))
    })
}

fn plausible_date(d: &str) -> bool {
    let num = |r: std::ops::Range<usize>| d.get(r).and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
    (2000..=2099).contains(&num(0..4))
        && (1..=12).contains(&num(4..6))
        && (1..=31).contains(&num(6..8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_marker() {
        assert_eq!(
            strip_context_1m("claude-sonnet-4-5[1m]"),
            ("claude-sonnet-4-5", true)
        );
        assert_eq!(
            strip_context_1m("claude-sonnet-4-5[1M]"),
            ("claude-sonnet-4-5", true)
        );
        assert_eq!(
            strip_context_1m("claude-sonnet-4-5"),
            ("claude-sonnet-4-5", false)
        );
        assert_eq!(strip_context_1m("[1m]"), ("", true));
        assert_eq!(strip_context_1m("é"), ("é", false));
    }

    #[test]
    fn bedrock_shapes() {
        assert!(is_bedrock_shaped(
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
        ));
        assert!(is_bedrock_shaped("qwen.qwen3-coder-480b-a35b-v1:0"));
        assert!(is_bedrock_shaped(
            "us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0"
        ));
        assert!(is_bedrock_shaped(
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"
        ));
        assert!(!is_bedrock_shaped("claude-opus-4-7"));
        assert!(!is_bedrock_shaped("us.claude"));
        assert!(!is_bedrock_shaped("My Model.x"));
        assert_eq!(
            strip_geo_prefix("global.anthropic.claude-opus-4-7"),
            "anthropic.claude-opus-4-7"
        );
        assert_eq!(
            strip_geo_prefix("anthropic.claude-opus-4-7"),
            "anthropic.claude-opus-4-7"
        );
    }

    #[test]
    fn derive_rule() {
        let d = |n| derive_claude_id(n, "global");
        assert_eq!(
            d("claude-opus-5-5").as_deref(),
            Some("global.anthropic.claude-opus-5-5")
        );
        assert_eq!(
            d("claude-opus-5").as_deref(),
            Some("global.anthropic.claude-opus-5")
        );
        assert_eq!(
            d("claude-opus-4-8").as_deref(),
            Some("global.anthropic.claude-opus-4-8")
        );
        assert_eq!(
            d("claude-sonnet-5-20270101").as_deref(),
            Some("global.anthropic.claude-sonnet-5-20270101-v1:0")
        );
        assert_eq!(
            d("claude-haiku-5-1-20270101").as_deref(),
            Some("global.anthropic.claude-haiku-5-1-20270101-v1:0")
        );
        assert_eq!(
            derive_claude_id("claude-sonnet-5", "eu").as_deref(),
            Some("eu.anthropic.claude-sonnet-5")
        );
        for bad in [
            "claude-opus",
            "claude-3-9-sonnet",
            "claude-opus-4-7-8-9",
            "gpt-4",
            "claude-opus-x",
            "claude-Opus-5",
        ] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn display_and_dates() {
        assert_eq!(display_name("claude-opus-4-7"), "Claude Opus 4.7");
        assert_eq!(display_name("claude-sonnet-4-20250514"), "Claude Sonnet 4");
        assert_eq!(
            display_name("claude-3-7-sonnet-20250219"),
            "Claude Sonnet 3.7"
        );
        assert_eq!(display_name("opus"), "opus");
        assert_eq!(
            created_at_from(&["claude-sonnet-4-5-20250929"]).as_deref(),
            Some("2025-09-29T00:00:00Z")
        );
        assert_eq!(
            created_at_from(&["claude-opus-4-7", "global.anthropic.claude-opus-4-7"]),
            None
        );
        assert_eq!(created_at_from(&["x-99999999"]), None);
    }
}
