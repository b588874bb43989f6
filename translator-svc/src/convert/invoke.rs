//! Anthropic request -> InvokeModel body (spec 8). Starts from the client's JSON object so unknown
//! blocks, citations and thinking signatures pass byte-exact and in place; only the listed fields
//! are rewritten, and top-level keys outside `INVOKE_TOP_LEVEL_ALLOW` are removed (Bedrock answers
//! "Extra inputs are not permitted").

use serde_json::{Map, Value, json};

use super::blocks::{block_type, sanitize_cache_control, text_block};
use super::fields::{
    invoke_metadata, invoke_output_config, kept_context_edits, read_output_config,
};
use super::normalize::{Mode, Normalized, Target, normalize};
use super::options::RequestOptions;
use super::tools::{ToolKind, filter_tools, parse_tool_choice, redirect_removed};
use crate::anthropic::request::block;
use crate::beta::{COMPACT, CONTEXT_MANAGEMENT, TOOL_EXAMPLES, TOOL_SEARCH};
use crate::error::ApiError;

/// The InvokeModel body Bedrock expects instead of an Anthropic `anthropic-version` header.
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// An InvokeModel call: the body, and the tier for the `X-Amzn-Bedrock-Service-Tier` header.
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeRequest {
    /// Ready to serialize: `anthropic_version` set, `anthropic_beta` set when non-empty, no
    /// `model` or `stream`.
    pub body: Value,
    pub service_tier: Option<String>,
}

/// Builds the InvokeModel body for a `/v1/messages` request (consumed: edited, not copied).
pub fn to_invoke_body(request: Value, opts: &RequestOptions) -> Result<InvokeRequest, ApiError> {
    let normalized = normalize(request, opts, Mode::Messages, Target::Invoke)?;
    Ok(InvokeRequest {
        body: Value::Object(build_invoke_body(normalized, opts)?),
        service_tier: opts.upstream_service_tier(),
    })
}

fn ensure(betas: &mut Vec<String>, flag: &str) {
    if !betas.iter().any(|b| b == flag) {
        betas.push(flag.to_string());
    }
}

/// Section 8 on a normalized body (shared with count_tokens).
pub(crate) fn build_invoke_body(
    normalized: Normalized,
    opts: &RequestOptions,
) -> Result<Map<String, Value>, ApiError> {
    let Normalized {
        mut body,
        mut betas,
    } = normalized;
    let caps = *opts.route.capabilities();
    let ttl = opts.cache_ttl_override.as_deref();

    // Tools.
    let filtered = filter_tools(&body, opts, Target::Invoke)?;
    let mut tools = Vec::with_capacity(filtered.kept.len());
    let mut memory_tool = false;
    for (kind, tool) in &filtered.kept {
        let mut tool = match kind {
            ToolKind::Custom => invoke_custom_tool(tool, opts, &betas),
            ToolKind::ToolSearch => {
                ensure(&mut betas, TOOL_SEARCH);
                renamed_tool(tool, opts)
            }
            _ => tool.clone(),
        };
        // PTC bookkeeping (`ptc.md` section 2): never sent upstream.
        if let Some(obj) = tool.as_object_mut() {
            obj.shift_remove("allowed_callers");
        }
        memory_tool |= tool
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.starts_with("memory_"));
        if tool.get("defer_loading") == Some(&Value::Bool(true)) {
            ensure(&mut betas, TOOL_SEARCH);
        }
        if tool.get("input_examples").is_some() {
            ensure(&mut betas, TOOL_EXAMPLES);
        }
        sanitize_cache_control(&mut tool, &caps, ttl);
        tools.push(tool);
    }
    let choice = parse_tool_choice(&body)?.map(|c| redirect_removed(c, &filtered.removed));
    if tools.is_empty() {
        // Nothing to choose from: `tool_choice` alone is rejected.
        body.shift_remove("tools");
        body.shift_remove("tool_choice");
    } else {
        body.insert("tools".into(), Value::Array(tools));
        match choice.map(serde_json::to_value) {
            Some(Ok(choice)) => body.insert("tool_choice".into(), choice),
            _ => body.shift_remove("tool_choice"),
        };
    }

    // context_management: only edits Bedrock accepts, and their betas.
    let edits = kept_context_edits(&body, opts.context_edits_allowed);
    if edits.is_empty() {
        body.shift_remove("context_management");
        if !memory_tool {
            betas.retain(|b| b != CONTEXT_MANAGEMENT && b != COMPACT);
        }
    } else {
        ensure(&mut betas, CONTEXT_MANAGEMENT);
        if edits.iter().any(|e| {
            e.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with("compact_"))
        }) {
            ensure(&mut betas, COMPACT);
        }
        if let Some(Value::Object(cm)) = body.get_mut("context_management") {
            cm.insert("edits".into(), Value::Array(edits));
        }
    }

    let output = read_output_config(&mut body, opts)?;
    match invoke_output_config(&output, caps.effort) {
        Some(config) => body.insert("output_config".into(), config),
        None => body.shift_remove("output_config"),
    };
    match invoke_metadata(&body) {
        Some(m) => body.insert("metadata".into(), m),
        None => body.shift_remove("metadata"),
    };
    if body
        .get("stop_sequences")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        body.shift_remove("stop_sequences");
    }
    body.shift_remove("mcp_servers");

    // Blocks: cache markers sanitized everywhere, tool_reference per capability.
    let tool_reference_ok = caps.tool_search && betas.iter().any(|b| b == TOOL_SEARCH);
    if let Some(Value::Array(system)) = body.get_mut("system") {
        system
            .iter_mut()
            .for_each(|b| sanitize_cache_control(b, &caps, ttl));
    }
    if let Some(Value::Array(messages)) = body.get_mut("messages") {
        for blk in messages
            .iter_mut()
            .filter_map(|m| m.get_mut("content")?.as_array_mut())
            .flatten()
        {
            sanitize_cache_control(blk, &caps, ttl);
            if block_type(blk) != Some(block::TOOL_RESULT) {
                continue;
            }
            for inner in blk
                .get_mut("content")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if !tool_reference_ok && block_type(inner) == Some(block::TOOL_REFERENCE) {
                    *inner = tool_reference_as_text(inner);
                }
                sanitize_cache_control(inner, &caps, ttl);
            }
        }
    }

    let mut out = Map::new();
    out.insert(
        "anthropic_version".into(),
        Value::from(BEDROCK_ANTHROPIC_VERSION),
    );
    if !betas.is_empty() {
        out.insert("anthropic_beta".into(), json!(betas));
    }
    for (key, value) in body {
        if opts.invoke_top_level_allow.contains(&key) && !out.contains_key(&key) {
            out.insert(key, value);
        } else {
            tracing::debug!(field = %key, "removed top-level field Bedrock does not accept");
        }
    }
    Ok(out)
}

/// `{"type":"text","text":"Tool loaded: <tool_name>"}`, keeping the block's cache marker.
pub(crate) fn tool_reference_as_text(b: &Value) -> Value {
    let name = b
        .get("tool_name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut text = text_block(&format!("Tool loaded: {name}"));
    if let (Some(cc), Some(obj)) = (b.get("cache_control"), text.as_object_mut()) {
        obj.insert("cache_control".into(), cc.clone());
    }
    text
}

/// A custom tool as Invoke takes it: schema verbatim (`$schema` included; an empty object schema
/// when missing), optional features only where the model and the effective betas allow them,
/// everything else removed.
fn invoke_custom_tool(tool: &Value, opts: &RequestOptions, betas: &[String]) -> Value {
    let caps = opts.route.capabilities();
    let examples_ok = caps.tool_examples && betas.iter().any(|b| b == TOOL_EXAMPLES);
    let hoisted = tool
        .get("custom")
        .and_then(|c| c.get("defer_loading"))
        .cloned();
    let mut out = Map::new();
    let Some(obj) = tool.as_object() else {
        return tool.clone();
    };
    for (key, value) in obj {
        let keep = match key.as_str() {
            "name" | "description" | "input_schema" | "cache_control" => true,
            "input_examples" => examples_ok,
            "defer_loading" => caps.tool_search,
            "strict" => caps.strict_tools,
            _ => false,
        };
        if keep {
            out.insert(key.clone(), value.clone());
        }
    }
    if let Some(defer) = hoisted.filter(|_| caps.tool_search && !out.contains_key("defer_loading"))
    {
        out.insert("defer_loading".into(), defer);
    }
    // A present schema is never touched; a missing one would be a Bedrock 400.
    if out.get("input_schema").is_none_or(Value::is_null) {
        out.insert(
            "input_schema".into(),
            json!({"type": "object", "properties": {}}),
        );
    }
    Value::Object(out)
}

/// Tool search tools under Bedrock's type names (`TOOL_TYPE_RENAME`).
fn renamed_tool(tool: &Value, opts: &RequestOptions) -> Value {
    let mut tool = tool.clone();
    let renamed = tool
        .get("type")
        .and_then(Value::as_str)
        .and_then(|t| opts.tool_type_rename.get(t))
        .cloned();
    if let (Some(new_type), Some(obj)) = (renamed, tool.as_object_mut()) {
        obj.insert("type".into(), Value::String(new_type));
    }
    tool
}
