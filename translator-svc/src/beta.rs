//! The `anthropic-beta` policy (spec 9): rename, drop, allow, unknown, then per-model narrowing.
//! Bedrock fails a whole request on a flag it does not know, so nothing reaches it unless allowed.
//! Pure: the lists come from configuration; flags required by kept features are added in convert/.

use std::collections::{HashMap, HashSet};

use crate::models::{Family, Route};

pub const CONTEXT_1M: &str = "context-1m-2025-08-07";
pub const EFFORT: &str = "effort-2025-11-24";
pub const CONTEXT_MANAGEMENT: &str = "context-management-2025-06-27";
pub const COMPACT: &str = "compact-2026-01-12";
pub const TOOL_SEARCH: &str = "tool-search-tool-2025-10-19";
pub const TOOL_EXAMPLES: &str = "tool-examples-2025-10-29";
/// Original-list token that activates PTC (`ptc.md` section 1).
pub const ADVANCED_TOOL_USE: &str = "advanced-tool-use-2025-11-20";

const DEFAULT_RENAME: &[(&str, &[&str])] = &[(ADVANCED_TOOL_USE, &[TOOL_SEARCH, TOOL_EXAMPLES])];

const DEFAULT_DROP: &[&str] = &[
    "claude-code-20250219",
    "oauth-2025-04-20",
    "prompt-caching-scope-2026-01-05",
    "prompt-caching-2024-07-31",
    "extended-cache-ttl-2025-04-11",
    "files-api-2025-04-14",
    "code-execution-2025-05-22",
    "code-execution-2025-08-25",
    "memory-2025-08-18",
    "fast-mode-2026-02-01",
    "redact-thinking-2026-02-12",
    "thinking-token-count-2026-05-13",
    "per-turn-control-2026-07-01",
    "mid-conversation-tool-changes-2026-07-01",
    "mid-conversation-system-2026-04-07",
    "thinking-display-updates-2026-08-18",
    "dangerous-tool-use-2026-09-03",
    "afk-mode-2026-01-31",
    "token-counting-2024-11-01",
];

const DEFAULT_ALLOW: &[&str] = &[
    "interleaved-thinking-2025-05-14",
    CONTEXT_MANAGEMENT,
    COMPACT,
    CONTEXT_1M,
    EFFORT,
    "fine-grained-tool-streaming-2025-05-14",
    "token-efficient-tools-2025-02-19",
    "output-128k-2025-02-19",
    TOOL_SEARCH,
    TOOL_EXAMPLES,
    "model-context-window-exceeded-2025-08-26",
    "computer-use-2025-01-24",
    "computer-use-2024-10-22",
    "search-results-2025-06-09",
    "pdfs-2024-09-25",
    "dev-full-thinking-2025-05-14",
    "mcp-client-2025-04-04",
    "mcp-client-2025-11-20",
];

/// What happens to a flag that is neither dropped nor allowed (`BETA_FLAGS_UNKNOWN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownBetas {
    Drop,
    Pass,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BetaPolicy {
    rename: HashMap<String, Vec<String>>,
    drop: HashSet<String>,
    allow: HashSet<String>,
    unknown: UnknownBetas,
}

fn set(items: &[&str]) -> HashSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn csv_set(csv: &str) -> HashSet<String> {
    BetaPolicy::parse_header_values(&[csv])
        .into_iter()
        .collect()
}

impl BetaPolicy {
    /// The spec 9 defaults.
    pub fn default_policy() -> Self {
        BetaPolicy {
            rename: DEFAULT_RENAME
                .iter()
                .map(|(from, to)| (from.to_string(), to.iter().map(|s| s.to_string()).collect()))
                .collect(),
            drop: set(DEFAULT_DROP),
            allow: set(DEFAULT_ALLOW),
            unknown: UnknownBetas::Drop,
        }
    }

    /// Builds the policy from `BETA_FLAGS_RENAME` (JSON object, value a string or a list),
    /// `BETA_FLAGS_DROP`, `BETA_FLAGS_ALLOW` (comma-separated; a given list replaces the default)
    /// and `BETA_FLAGS_UNKNOWN` (`drop` | `pass`). The error names the variable.
    pub fn from_env_values(
        rename_json: Option<&str>,
        drop_csv: Option<&str>,
        allow_csv: Option<&str>,
        unknown: Option<&str>,
    ) -> Result<Self, String> {
        let mut policy = BetaPolicy::default_policy();
        if let Some(json) = rename_json {
            policy.rename = parse_rename(json)?;
        }
        if let Some(csv) = drop_csv {
            policy.drop = csv_set(csv);
        }
        if let Some(csv) = allow_csv {
            policy.allow = csv_set(csv);
        }
        if let Some(value) = unknown {
            policy.unknown = match value.trim().to_ascii_lowercase().as_str() {
                "drop" => UnknownBetas::Drop,
                "pass" => UnknownBetas::Pass,
                other => {
                    return Err(format!(
                        "BETA_FLAGS_UNKNOWN: expected drop or pass, got {other:?}"
                    ));
                }
            };
        }
        Ok(policy)
    }

    /// Splits `anthropic-beta` header lines (several lines concatenate in order): trimmed, empty
    /// items dropped, order kept.
    pub fn parse_header_values(values: &[&str]) -> Vec<String> {
        values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Rename, then drop/allow/unknown, for one client value.
    fn admit(&self, value: &str) -> Vec<String> {
        let renamed = match self.rename.get(value) {
            Some(list) => list.clone(),
            None => vec![value.to_string()],
        };
        renamed
            .into_iter()
            .filter(|v| {
                !self.drop.contains(v)
                    && (self.allow.contains(v) || self.unknown == UnknownBetas::Pass)
            })
            .collect()
    }

    /// The effective list for `route`: policy applied in order, deduplicated keeping the first
    /// occurrence, narrowed to what the model can use, plus `context-1m` when `[1m]` asked for it
    /// and the entry needs it. Non-Claude models get no flags (spec 9, output rule).
    pub fn apply(&self, client: &[String], route: &Route) -> Vec<String> {
        if route.entry.family != Family::Claude {
            return Vec::new();
        }
        let caps = &route.entry.capabilities;
        let usable = |flag: &str| match flag {
            EFFORT => caps.effort,
            CONTEXT_1M => route.entry.needs_context_1m,
            TOOL_SEARCH => caps.tool_search,
            TOOL_EXAMPLES => caps.tool_examples,
            _ => true,
        };
        let mut out: Vec<String> = Vec::new();
        let wanted_1m = route.context_1m.then(|| CONTEXT_1M.to_string());
        for flag in client.iter().flat_map(|v| self.admit(v)).chain(wanted_1m) {
            if usable(&flag) && !out.contains(&flag) {
                out.push(flag);
            }
        }
        out
    }

    /// Client values the policy drops as unknown (for the caller's log-once-per-value).
    pub fn unknown_values(&self, client: &[String]) -> Vec<String> {
        client
            .iter()
            .flat_map(|v| match self.rename.get(v) {
                Some(list) => list.clone(),
                None => vec![v.clone()],
            })
            .filter(|v| !self.drop.contains(v) && !self.allow.contains(v))
            .collect()
    }
}

fn parse_rename(json: &str) -> Result<HashMap<String, Vec<String>>, String> {
    let bad = |detail: &str| format!("BETA_FLAGS_RENAME: {detail}");
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| bad(&format!("invalid JSON: {e}")))?;
    let map = value
        .as_object()
        .ok_or_else(|| bad("expected a JSON object"))?;
    map.iter()
        .map(|(from, to)| {
            let list = match to {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad(&format!("{from}: expected strings")))?,
                _ => return Err(bad(&format!("{from}: expected a string or a list"))),
            };
            Ok((from.clone(), list))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelTable;

    /// The header Claude Code 2.1.332 sent (`shared/fixtures/claude-code-2.1.332-turn2-request.json`).
    const CLAUDE_CODE: &str = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,per-turn-control-2026-07-01,mid-conversation-tool-changes-2026-07-01,thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,effort-2025-11-24";

    fn route(model: &str) -> Route {
        ModelTable::builtin("global", true).resolve(model).unwrap()
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_header_lines() {
        assert_eq!(
            BetaPolicy::parse_header_values(&[" a, ,b ,", "c", "", "a"]),
            list(&["a", "b", "c", "a"])
        );
    }

    #[test]
    fn claude_code_header_on_default_model() {
        let client = BetaPolicy::parse_header_values(&[CLAUDE_CODE]);
        let out = BetaPolicy::default_policy().apply(&client, &route("claude-opus-5-5"));
        assert_eq!(
            out,
            list(&[
                "interleaved-thinking-2025-05-14",
                CONTEXT_MANAGEMENT,
                TOOL_SEARCH,
                TOOL_EXAMPLES,
                EFFORT
            ])
        );
    }

    #[test]
    fn claude_code_header_narrowed_for_haiku() {
        let client = BetaPolicy::parse_header_values(&[CLAUDE_CODE]);
        let out = BetaPolicy::default_policy().apply(&client, &route("claude-haiku-4-5"));
        assert_eq!(
            out,
            list(&["interleaved-thinking-2025-05-14", CONTEXT_MANAGEMENT])
        );
    }

    #[test]
    fn non_claude_gets_nothing() {
        let client = BetaPolicy::parse_header_values(&[CLAUDE_CODE]);
        assert!(
            BetaPolicy::default_policy()
                .apply(&client, &route("qwen.qwen3-32b-v1:0"))
                .is_empty()
        );
    }

    #[test]
    fn context_1m_only_where_needed() {
        let p = BetaPolicy::default_policy();
        let client = list(&[CONTEXT_1M]);
        assert_eq!(
            p.apply(&client, &route("claude-sonnet-4-5")),
            list(&[CONTEXT_1M])
        );
        assert!(p.apply(&client, &route("claude-opus-4-7")).is_empty());
        assert_eq!(
            p.apply(&[], &route("claude-sonnet-4-5[1m]")),
            list(&[CONTEXT_1M])
        );
        assert!(p.apply(&[], &route("claude-opus-4-7[1m]")).is_empty());
        // Deduplicated when both the header and the marker ask for it.
        assert_eq!(
            p.apply(&client, &route("claude-sonnet-4-5[1m]")),
            list(&[CONTEXT_1M])
        );
    }

    #[test]
    fn unknown_drop_and_pass() {
        let client = list(&["brand-new-2099-01-01", "interleaved-thinking-2025-05-14"]);
        let r = route("claude-sonnet-4-5");
        let drop = BetaPolicy::default_policy();
        assert_eq!(
            drop.apply(&client, &r),
            list(&["interleaved-thinking-2025-05-14"])
        );
        assert_eq!(
            drop.unknown_values(&client),
            list(&["brand-new-2099-01-01"])
        );
        let pass = BetaPolicy::from_env_values(None, None, None, Some("pass")).unwrap();
        assert_eq!(pass.apply(&client, &r), client);
        // Dropped flags stay dropped under `pass`.
        assert!(pass.apply(&list(&["claude-code-20250219"]), &r).is_empty());
    }

    #[test]
    fn env_lists_replace_defaults() {
        let p = BetaPolicy::from_env_values(
            Some(r#"{"old-flag": "new-flag", "multi": ["a", "b"]}"#),
            Some("interleaved-thinking-2025-05-14"),
            Some("new-flag, a, b, claude-code-20250219"),
            Some("DROP"),
        )
        .unwrap();
        let r = route("claude-sonnet-4-5");
        let client = list(&[
            "old-flag",
            "multi",
            "interleaved-thinking-2025-05-14",
            "claude-code-20250219",
            "a",
        ]);
        assert_eq!(
            p.apply(&client, &r),
            list(&["new-flag", "a", "b", "claude-code-20250219"])
        );
        // The default rename is replaced too.
        assert!(p.apply(&list(&[ADVANCED_TOOL_USE]), &r).is_empty());
    }

    #[test]
    fn env_errors_name_the_variable() {
        let err = BetaPolicy::from_env_values(Some("[1]"), None, None, None).unwrap_err();
        assert!(err.starts_with("BETA_FLAGS_RENAME"), "{err}");
        let err = BetaPolicy::from_env_values(Some(r#"{"a": 1}"#), None, None, None).unwrap_err();
        assert!(err.starts_with("BETA_FLAGS_RENAME"), "{err}");
        let err = BetaPolicy::from_env_values(None, None, None, Some("maybe")).unwrap_err();
        assert!(err.starts_with("BETA_FLAGS_UNKNOWN"), "{err}");
    }

    #[test]
    fn effort_needs_capability() {
        let p = BetaPolicy::default_policy();
        let client = list(&[EFFORT]);
        assert_eq!(p.apply(&client, &route("claude-opus-4-5")), client);
        assert!(p.apply(&client, &route("claude-sonnet-4-5")).is_empty());
        assert_eq!(p.apply(&client, &route("claude-sonnet-4-6")), client);
    }
}
