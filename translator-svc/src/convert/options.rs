//! Options of the request conversions: the route, the client's beta list, and the operator
//! settings that change translation (spec 7-10). Values come from `config.rs`; nothing here reads
//! the environment.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::beta::BetaPolicy;
use crate::models::Route;

/// `SERVER_TOOLS`: what to do with server tools Bedrock cannot run (spec 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerToolsPolicy {
    /// 400 `invalid_request_error` naming the tool type (default).
    #[default]
    Reject,
    /// Remove the tool; a `tool_choice` naming it becomes `auto`.
    Strip,
}

/// `CONTEXT_EDITS_ALLOWED` default.
pub const DEFAULT_CONTEXT_EDITS_ALLOWED: &[&str] = &["compact_20260112"];

/// `INVOKE_TOP_LEVEL_ALLOW` default: Bedrock answers "Extra inputs are not permitted" otherwise.
pub const DEFAULT_INVOKE_TOP_LEVEL_ALLOW: &[&str] = &[
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "output_config",
    "context_management",
];

/// `TOOL_TYPE_RENAME` default: Bedrock names the tool search tools without the date suffix.
pub const DEFAULT_TOOL_TYPE_RENAME: &[(&str, &str)] = &[
    ("tool_search_tool_regex_20251119", "tool_search_tool_regex"),
    ("tool_search_tool_bm25_20251119", "tool_search_tool_bm25"),
];

/// `ADAPTIVE_FALLBACK_BUDGET` default.
pub const DEFAULT_ADAPTIVE_FALLBACK_BUDGET: u32 = 16_000;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

static CONTEXT_EDITS_ALLOWED: LazyLock<Vec<String>> =
    LazyLock::new(|| strings(DEFAULT_CONTEXT_EDITS_ALLOWED));
static INVOKE_TOP_LEVEL_ALLOW: LazyLock<Vec<String>> =
    LazyLock::new(|| strings(DEFAULT_INVOKE_TOP_LEVEL_ALLOW));
static TOOL_TYPE_RENAME: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    DEFAULT_TOOL_TYPE_RENAME
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
});

/// Everything a request conversion needs besides the body.
#[derive(Debug, Clone)]
pub struct RequestOptions<'a> {
    pub route: &'a Route,
    /// The original parsed `anthropic-beta` list (before the policy).
    pub client_betas: &'a [String],
    pub policy: &'a BetaPolicy,
    pub server_tools: ServerToolsPolicy,
    /// `CONTEXT_EDITS_ALLOWED`: `context_management.edits[].type` values forwarded on Invoke.
    pub context_edits_allowed: &'a [String],
    /// `TOOL_TYPES_PASS`: Anthropic-defined client tool types forwarded on Invoke.
    pub tool_types_pass: &'a [String],
    /// `TOOL_TYPE_RENAME`: tool `type` renames on Invoke.
    pub tool_type_rename: &'a HashMap<String, String>,
    /// `INVOKE_TOP_LEVEL_ALLOW`: top-level keys kept in the Invoke body.
    pub invoke_top_level_allow: &'a [String],
    /// `STRIP_BILLING_HEADER_BLOCK`: drop Claude Code's `x-anthropic-billing-header` system block.
    pub strip_billing_header: bool,
    /// Per-key TTL override (`5m` | `1h`) replacing every cache marker's TTL.
    pub cache_ttl_override: Option<String>,
    /// `ADAPTIVE_FALLBACK_BUDGET`: budget for `adaptive` on budget-only models.
    pub adaptive_fallback_budget: u32,
    /// Bedrock service tier for this key/route (`default`, `flex`, `priority`, `reserved`).
    pub service_tier: Option<String>,
}

impl<'a> RequestOptions<'a> {
    /// Options with every operator setting at its documented default.
    pub fn new(route: &'a Route, client_betas: &'a [String], policy: &'a BetaPolicy) -> Self {
        RequestOptions {
            route,
            client_betas,
            policy,
            server_tools: ServerToolsPolicy::Reject,
            context_edits_allowed: &CONTEXT_EDITS_ALLOWED,
            tool_types_pass: &[],
            tool_type_rename: &TOOL_TYPE_RENAME,
            invoke_top_level_allow: &INVOKE_TOP_LEVEL_ALLOW,
            strip_billing_header: false,
            cache_ttl_override: None,
            adaptive_fallback_budget: DEFAULT_ADAPTIVE_FALLBACK_BUDGET,
            service_tier: None,
        }
    }

    /// The Bedrock tier to request, `None` for the default tier.
    pub fn upstream_service_tier(&self) -> Option<String> {
        self.service_tier
            .as_deref()
            .filter(|t| !t.is_empty() && *t != "default")
            .map(str::to_string)
    }
}
