//! Anthropic request -> Converse request (spec 10, 11): system and messages, tools and tool
//! choice, inference settings, and the per-family `additionalModelRequestFields` (Claude thinking
//! and betas, Nova topK and reasoningConfig, Kimi/gpt-oss reasoning_effort).

use serde_json::{Map, Value, json};

use super::blocks::role_of;
use super::converse_blocks::{BlockContext, to_converse_content};
use super::fields::{OutputSettings, read_output_config};
use super::normalize::{Mode, Normalized, Target, normalize};
use super::options::RequestOptions;
use super::thinking::{parse_thinking, reasoning_effort};
use super::tools::{ToolKind, filter_tools, parse_tool_choice, redirect_removed, tool_name};
use crate::anthropic::request::ToolChoice;
use crate::beta::{COMPACT, CONTEXT_MANAGEMENT, TOOL_EXAMPLES, TOOL_SEARCH};
use crate::converse::request::{
    ContentBlock, ConversationRole, ConverseRequest, Empty, InferenceConfig, JsonSchemaDefinition,
    Message, OutputConfig, ServiceTier, SpecificToolChoice, SystemContentBlock, TextFormat,
    TextFormatStructure, Tool, ToolChoice as ConverseToolChoice, ToolConfig, ToolInputSchema,
    ToolSpecification,
};
use crate::error::ApiError;
use crate::models::Family;

/// Description of tools synthesized for history that names tools no longer offered.
const RETIRED_TOOL_DESCRIPTION: &str = "Tool no longer offered; do not call.";

/// Builds the Converse request for a `/v1/messages` request (`modelId` goes in the URL); the
/// request is consumed (edited, not copied).
pub fn to_converse_request(
    request: Value,
    opts: &RequestOptions,
) -> Result<ConverseRequest, ApiError> {
    let normalized = normalize(request, opts, Mode::Messages, Target::Converse)?;
    build_converse(normalized, opts)
}

/// What the response side needs to know about the request it answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConverseContext {
    /// The stop sequences sent, for `stop_sequence` reporting (spec 14).
    pub stop_sequences: Vec<String>,
    /// Bedrock returns `additionalModelResponseFields.stop_sequence` (Claude).
    pub reports_stop_sequence: bool,
}

impl ConverseContext {
    pub fn from_request(request: &ConverseRequest) -> Self {
        ConverseContext {
            stop_sequences: request
                .inference_config
                .as_ref()
                .map(|c| c.stop_sequences.clone())
                .unwrap_or_default(),
            reports_stop_sequence: request
                .additional_model_response_field_paths
                .iter()
                .any(|p| p == "/stop_sequence"),
        }
    }

    /// The sequence to report when Bedrock does not say which one matched: the only one sent.
    pub fn single_stop_sequence(&self) -> Option<&str> {
        match self.stop_sequences.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }
}

fn f64_field(body: &Map<String, Value>, key: &str) -> Option<f64> {
    body.get(key).and_then(Value::as_f64)
}

/// Section 10 on a normalized body (shared with count_tokens).
pub(crate) fn build_converse(
    normalized: Normalized,
    opts: &RequestOptions,
) -> Result<ConverseRequest, ApiError> {
    let Normalized { mut body, betas } = normalized;
    let route = opts.route;
    let caps = *route.capabilities();
    let mut ctx = BlockContext::new(&caps, opts.cache_ttl_override.as_deref());

    let system = system_blocks(body.get("system"), &ctx);
    let messages = messages(body.get("messages"), &mut ctx)?;
    if messages.is_empty() {
        // Everything left was reasoning this model cannot take back.
        return Err(ApiError::invalid_at(
            "messages",
            "no content this model accepts is left to send",
        ));
    }
    let tool_config = tool_config(&body, opts, &messages)?;
    let output = read_output_config(&mut body, opts)?;
    let thinking = parse_thinking(&body)?;

    let mut inference = InferenceConfig {
        max_tokens: body
            .get("max_tokens")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
        temperature: f64_field(&body, "temperature"),
        top_p: f64_field(&body, "top_p"),
        stop_sequences: body
            .get("stop_sequences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    };
    let top_k = body.get("top_k").cloned();
    let mut fields = Map::new();
    let mut response_paths = Vec::new();
    match route.family() {
        Family::Claude => {
            if let Some(k) = top_k {
                fields.insert("top_k".into(), k);
            }
            if let Some(t) = body.get("thinking") {
                fields.insert("thinking".into(), t.clone());
            }
            if let Some(effort) = output.effort.as_ref().filter(|_| caps.effort) {
                fields.insert("output_config".into(), json!({"effort": effort}));
            }
            // Converse drops context_management, defer_loading and input_examples: their betas
            // would only be noise.
            let betas: Vec<&String> = betas
                .iter()
                .filter(|b| {
                    ![CONTEXT_MANAGEMENT, COMPACT, TOOL_SEARCH, TOOL_EXAMPLES].contains(&b.as_str())
                })
                .collect();
            if !betas.is_empty() {
                fields.insert("anthropic_beta".into(), json!(betas));
            }
            response_paths.push("/stop_sequence".to_string());
        }
        family @ (Family::Nova | Family::Nova2) => {
            if let Some(k) = top_k {
                fields.insert("inferenceConfig".into(), json!({"topK": k}));
            }
            let effort = thinking
                .as_ref()
                .and_then(|t| reasoning_effort(t, output.effort.as_deref()));
            if let (Family::Nova2, Some(effort)) = (family, effort) {
                fields.insert(
                    "reasoningConfig".into(),
                    json!({"type": "enabled", "maxReasoningEffort": effort}),
                );
                // Nova 2 rejects these while reasoning.
                inference.temperature = None;
                inference.top_p = None;
                inference.max_tokens = None;
            }
        }
        Family::Kimi | Family::GptOss => {
            if let Some(effort) = thinking
                .as_ref()
                .and_then(|t| reasoning_effort(t, output.effort.as_deref()))
            {
                fields.insert("reasoning_effort".into(), json!(effort));
            }
        }
        // Unknown fields make these models fail: top_k and thinking are dropped.
        _ => {}
    }

    let inference_empty = inference == InferenceConfig::default();
    Ok(ConverseRequest {
        messages,
        system,
        inference_config: (!inference_empty).then_some(inference),
        tool_config,
        additional_model_request_fields: (!fields.is_empty()).then_some(fields),
        additional_model_response_field_paths: response_paths,
        output_config: output_config(&output)?,
        service_tier: opts
            .upstream_service_tier()
            .map(|kind| ServiceTier { kind }),
        ..ConverseRequest::default()
    })
}

fn system_blocks(system: Option<&Value>, ctx: &BlockContext) -> Vec<SystemContentBlock> {
    let mut out = Vec::new();
    match system {
        Some(Value::String(s)) => out.push(SystemContentBlock::Text(s.clone())),
        Some(Value::Array(blocks)) => {
            for b in blocks {
                out.push(SystemContentBlock::Text(
                    b.get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                ));
                if let Some(point) = ctx.cache_point(b) {
                    out.push(SystemContentBlock::CachePoint(point));
                }
            }
        }
        _ => {}
    }
    out
}

/// Converts messages, then drops the ones left empty and merges same-role neighbours (Converse
/// requires alternation).
fn messages(messages: Option<&Value>, ctx: &mut BlockContext) -> Result<Vec<Message>, ApiError> {
    let mut out: Vec<Message> = Vec::new();
    for (i, m) in messages
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let role = match role_of(m) {
            Some("assistant") => ConversationRole::Assistant,
            Some("system") => ConversationRole::System,
            _ => ConversationRole::User,
        };
        let blocks = super::blocks::content_blocks(m.get("content"));
        let content = to_converse_content(&blocks, ctx, &format!("messages.{i}.content"))?;
        if content
            .iter()
            .all(|c| matches!(c, ContentBlock::CachePoint(_)))
        {
            continue;
        }
        match out.last_mut() {
            Some(prev) if prev.role == role => prev.content.extend(content),
            _ => out.push(Message { role, content }),
        }
    }
    Ok(out)
}

fn history_tools(messages: &[Message]) -> (bool, Vec<String>) {
    let mut has_tool_blocks = false;
    let mut names: Vec<String> = Vec::new();
    for c in messages.iter().flat_map(|m| &m.content) {
        match c {
            ContentBlock::ToolUse(u) => {
                has_tool_blocks = true;
                if !names.contains(&u.name) {
                    names.push(u.name.clone());
                }
            }
            ContentBlock::ToolResult(_) => has_tool_blocks = true,
            _ => {}
        }
    }
    (has_tool_blocks, names)
}

/// A custom tool's `inputSchema.json`: the whole schema minus the root `$schema` keyword; a
/// missing schema or root `type` defaults to an object.
fn input_schema(tool: &Value) -> Value {
    let mut schema = match tool.get("input_schema") {
        Some(Value::Object(s)) => s.clone(),
        _ => return json!({"type": "object", "properties": {}}),
    };
    schema.shift_remove("$schema");
    if !schema.contains_key("type") {
        let mut with_type = Map::new();
        with_type.insert("type".into(), json!("object"));
        with_type.extend(schema);
        schema = with_type;
    }
    Value::Object(schema)
}

fn tool_config(
    body: &Map<String, Value>,
    opts: &RequestOptions,
    messages: &[Message],
) -> Result<Option<ToolConfig>, ApiError> {
    let caps = opts.route.capabilities();
    let filtered = filter_tools(body, opts, Target::Converse)?;
    let ctx = BlockContext::new(caps, opts.cache_ttl_override.as_deref());
    let mut tools = Vec::new();
    let mut offered: Vec<&str> = Vec::new();
    for (kind, tool) in &filtered.kept {
        if *kind != ToolKind::Custom {
            continue;
        }
        let description = tool
            .get("description")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty());
        offered.push(tool_name(tool));
        tools.push(Tool::ToolSpec(ToolSpecification {
            name: tool_name(tool).to_string(),
            description: description.map(str::to_string),
            input_schema: ToolInputSchema::Json(input_schema(tool)),
        }));
        if let Some(point) = ctx.cache_point(tool) {
            tools.push(Tool::CachePoint(point));
        }
    }
    let (has_tool_blocks, used) = history_tools(messages);
    let all_retired = offered.is_empty();
    // Converse requires toolConfig whenever history has tool blocks, and a spec for every
    // tool name used there.
    for name in used.iter().filter(|n| !offered.contains(&n.as_str())) {
        tools.push(Tool::ToolSpec(ToolSpecification {
            name: name.clone(),
            description: Some(RETIRED_TOOL_DESCRIPTION.to_string()),
            input_schema: ToolInputSchema::Json(json!({"type": "object"})),
        }));
    }
    let choice = parse_tool_choice(body)?.map(|c| redirect_removed(c, &filtered.removed));
    if matches!(choice, Some(ToolChoice::None)) && !has_tool_blocks {
        return Ok(None);
    }
    if !tools.iter().any(|t| matches!(t, Tool::ToolSpec(_))) {
        return Ok(None);
    }
    let forced_ok = caps.forced_tool_choice;
    let tool_choice = match choice {
        _ if all_retired => None,
        None | Some(ToolChoice::None) => None,
        Some(ToolChoice::Auto { .. }) => Some(ConverseToolChoice::Auto(Empty {})),
        Some(ToolChoice::Any { .. }) if forced_ok => Some(ConverseToolChoice::Any(Empty {})),
        Some(ToolChoice::Tool { name, .. }) if forced_ok => {
            Some(ConverseToolChoice::Tool(SpecificToolChoice { name }))
        }
        Some(_) => {
            tracing::warn!(model = %opts.route.requested_model, "forced tool_choice not supported; using auto");
            Some(ConverseToolChoice::Auto(Empty {}))
        }
    };
    Ok(Some(ToolConfig { tools, tool_choice }))
}

fn output_config(output: &OutputSettings) -> Result<Option<OutputConfig>, ApiError> {
    let Some(schema) = &output.schema else {
        return Ok(None);
    };
    let schema = serde_json::to_string(schema).map_err(|_| {
        ApiError::invalid_at("output_config.format.schema", "schema is not serializable")
    })?;
    Ok(Some(OutputConfig {
        text_format: TextFormat {
            kind: "json_schema".to_string(),
            structure: TextFormatStructure::JsonSchema(JsonSchemaDefinition {
                schema,
                name: "response".to_string(),
                description: None,
            }),
        },
    }))
}

/// The Converse input of a CountTokens call: only the fields CountTokens accepts.
pub(crate) fn count_tokens_converse_input(request: &ConverseRequest) -> Value {
    let mut input = Map::new();
    let mut put = |key: &str, v: Result<Value, serde_json::Error>| {
        if let Ok(v) = v {
            input.insert(key.to_string(), v);
        }
    };
    put("messages", serde_json::to_value(&request.messages));
    if !request.system.is_empty() {
        put("system", serde_json::to_value(&request.system));
    }
    if let Some(tc) = &request.tool_config {
        put("toolConfig", serde_json::to_value(tc));
    }
    if let Some(fields) = &request.additional_model_request_fields {
        input.insert(
            "additionalModelRequestFields".into(),
            Value::Object(fields.clone()),
        );
    }
    json!({"converse": input})
}
