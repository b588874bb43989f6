//! The built-in model table (spec 6.2). `{p}` is `MODEL_DEFAULT_PROFILE`; rows without a global
//! profile use `us` when the default is `global`.

use super::ModelEntry;

struct Row {
    /// Client names; the first is the canonical (listed) one, the rest are aliases.
    names: &'static [&'static str],
    /// Model id without its geo prefix.
    model: &'static str,
    /// Bedrock has no `global.` profile for this model.
    no_global: bool,
    max_output_tokens: Option<u32>,
    needs_context_1m: bool,
}

const ROWS: &[Row] = &[
    Row {
        names: &["claude-opus-4-7"],
        model: "anthropic.claude-opus-4-7",
        no_global: false,
        max_output_tokens: Some(128_000),
        needs_context_1m: false,
    },
    Row {
        // The id really has no `:0` suffix.
        names: &["claude-opus-4-6"],
        model: "anthropic.claude-opus-4-6-v1",
        no_global: false,
        max_output_tokens: Some(128_000),
        needs_context_1m: true,
    },
    Row {
        names: &["claude-sonnet-4-6"],
        model: "anthropic.claude-sonnet-4-6",
        no_global: false,
        max_output_tokens: Some(64_000),
        needs_context_1m: true,
    },
    Row {
        names: &["claude-opus-4-5-20251101", "claude-opus-4-5"],
        model: "anthropic.claude-opus-4-5-20251101-v1:0",
        no_global: false,
        max_output_tokens: Some(64_000),
        needs_context_1m: false,
    },
    Row {
        names: &["claude-sonnet-4-5-20250929", "claude-sonnet-4-5"],
        model: "anthropic.claude-sonnet-4-5-20250929-v1:0",
        no_global: false,
        max_output_tokens: Some(64_000),
        needs_context_1m: true,
    },
    Row {
        names: &["claude-haiku-4-5-20251001", "claude-haiku-4-5"],
        model: "anthropic.claude-haiku-4-5-20251001-v1:0",
        no_global: false,
        max_output_tokens: Some(64_000),
        needs_context_1m: false,
    },
    Row {
        names: &["claude-sonnet-4-20250514", "claude-sonnet-4-0"],
        model: "anthropic.claude-sonnet-4-20250514-v1:0",
        no_global: false,
        max_output_tokens: Some(64_000),
        needs_context_1m: true,
    },
    Row {
        names: &["claude-opus-4-1-20250805", "claude-opus-4-1"],
        model: "anthropic.claude-opus-4-1-20250805-v1:0",
        no_global: true,
        max_output_tokens: Some(32_000),
        needs_context_1m: false,
    },
    Row {
        // 64K by default, 128K with `output-128k-2025-02-19`: no clamp, Bedrock decides.
        names: &["claude-3-7-sonnet-20250219", "claude-3-7-sonnet-latest"],
        model: "anthropic.claude-3-7-sonnet-20250219-v1:0",
        no_global: true,
        max_output_tokens: None,
        needs_context_1m: false,
    },
    Row {
        names: &["claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"],
        model: "anthropic.claude-3-5-haiku-20241022-v1:0",
        no_global: true,
        max_output_tokens: Some(8_192),
        needs_context_1m: false,
    },
];

/// One entry per client name, canonical names listed, aliases not.
pub fn entries(default_profile: &str) -> Vec<ModelEntry> {
    let mut out = Vec::new();
    for row in ROWS {
        let profile = if row.no_global && default_profile == "global" {
            "us"
        } else {
            default_profile
        };
        let bedrock_id = format!("{profile}.{}", row.model);
        for (i, name) in row.names.iter().enumerate() {
            let mut entry = ModelEntry::derived(name, &bedrock_id);
            entry.listed = i == 0;
            entry.max_output_tokens = row.max_output_tokens;
            entry.needs_context_1m = row.needs_context_1m;
            // Aliases show the canonical name (`claude-opus-4-5` is "Claude Opus 4.5" too).
            entry.display_name = super::naming::display_name(row.names[0]);
            out.push(entry);
        }
    }
    out
}
