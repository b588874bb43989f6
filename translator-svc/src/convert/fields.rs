//! Top-level request fields whose rules are shared by both paths: `output_config` (with the
//! legacy `output_format`), `context_management` edits and `metadata.user_id` (spec 8, 10.1).

use serde_json::{Map, Value, json};

use super::options::RequestOptions;
use crate::error::ApiError;

/// `output_config` after the capability rules: `effort` as sent (the caller decides whether the
/// model takes it), `format` the JSON schema object.
#[derive(Debug, Default)]
pub(crate) struct OutputSettings {
    pub effort: Option<String>,
    pub schema: Option<Value>,
}

/// Reads `output_config` (left in place for the caller to replace or remove) and removes the
/// legacy `output_format`. A `format` on a model without structured output is a 400.
pub(crate) fn read_output_config(
    body: &mut Map<String, Value>,
    opts: &RequestOptions,
) -> Result<OutputSettings, ApiError> {
    let config = body.get("output_config").cloned();
    let legacy = body.shift_remove("output_format").filter(|f| !f.is_null());
    let format = config
        .as_ref()
        .and_then(|c| c.get("format"))
        .filter(|f| !f.is_null())
        .cloned();
    let (path, format) = match (format, legacy) {
        (Some(f), _) => ("output_config.format", Some(f)),
        (None, Some(f)) => ("output_format", Some(f)),
        (None, None) => ("", None),
    };
    if format.is_some() && !opts.route.capabilities().structured_output {
        return Err(ApiError::invalid_at(
            path,
            format!(
                "structured outputs are not supported for model {}",
                opts.route.requested_model
            ),
        ));
    }
    Ok(OutputSettings {
        effort: config
            .as_ref()
            .and_then(|c| c.get("effort"))
            .and_then(Value::as_str)
            .map(str::to_string),
        schema: format.and_then(|f| f.get("schema").cloned()),
    })
}

/// The Invoke `output_config`: `effort` only if the model has it, `format` as a JSON schema.
pub(crate) fn invoke_output_config(
    settings: &OutputSettings,
    effort_capable: bool,
) -> Option<Value> {
    let mut out = Map::new();
    if let Some(effort) = settings.effort.as_ref().filter(|_| effort_capable) {
        out.insert("effort".into(), Value::String(effort.clone()));
    }
    if let Some(schema) = &settings.schema {
        out.insert(
            "format".into(),
            json!({"type": "json_schema", "schema": schema}),
        );
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// Edits kept from `context_management` (types in `CONTEXT_EDITS_ALLOWED`). Bedrock rejects
/// `clear_thinking_20251015`, which Claude Code sends on every request.
pub(crate) fn kept_context_edits(body: &Map<String, Value>, allowed: &[String]) -> Vec<Value> {
    body.get("context_management")
        .and_then(|c| c.get("edits"))
        .and_then(Value::as_array)
        .map(|edits| {
            edits
                .iter()
                .filter(|e| {
                    e.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| allowed.iter().any(|a| a == t))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Anthropic's limit for `metadata.user_id`.
const USER_ID_MAX_CHARS: usize = 256;

/// `metadata` reduced to a `user_id` string of at most 256 characters, or nothing.
pub(crate) fn invoke_metadata(body: &Map<String, Value>) -> Option<Value> {
    let user_id = body.get("metadata")?.get("user_id")?.as_str()?;
    (user_id.chars().count() <= USER_ID_MAX_CHARS).then(|| json!({"user_id": user_id}))
}
