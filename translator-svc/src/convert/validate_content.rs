//! Validation of `messages` and their content blocks, recursively into `tool_result`, with the
//! client's own indices in every error path. Capability checks that have no translation (an image
//! for a text-only model) and Converse's unknown block types are rejected here too.

use serde_json::{Map, Value};

use super::media::{URL_SOURCES_DISABLED, decode_base64};
use super::normalize::Target;
use super::options::RequestOptions;
use super::validate::{Result, err, validate_cache_control};
use crate::anthropic::request::{
    IMAGE_MEDIA_TYPES, PDF_MEDIA_TYPE, TEXT_MEDIA_TYPE, block, source,
};

/// Block types the Converse path knows how to convert or deliberately removes.
const CONVERSE_KNOWN: &[&str] = &[
    block::TEXT,
    block::IMAGE,
    block::DOCUMENT,
    block::THINKING,
    block::REDACTED_THINKING,
    block::TOOL_USE,
    block::TOOL_RESULT,
    block::SEARCH_RESULT,
    block::COMPACTION,
    block::SERVER_TOOL_USE,
    block::TOOL_SEARCH_TOOL_RESULT,
];

/// `messages`: shape, roles, content, and every block (recursively into `tool_result`).
pub(crate) fn validate_messages(
    body: &Map<String, Value>,
    opts: &RequestOptions,
    target: Target,
) -> Result<()> {
    let messages = match body.get("messages") {
        None => return Err(err("messages", "Field required")),
        Some(Value::Array(m)) => m,
        Some(_) => return Err(err("messages", "Input should be a valid list")),
    };
    if messages.is_empty() {
        return Err(err("messages", "at least one message is required"));
    }
    let checker = BlockChecker { opts, target };
    // Folded into `system`, which holds text only.
    let folds = !opts.route.capabilities().system_role_messages;
    let last = messages.len() - 1;
    for (i, msg) in messages.iter().enumerate() {
        let path = format!("messages.{i}");
        let Some(msg) = msg.as_object() else {
            return Err(err(&path, "Input should be an object"));
        };
        let role = msg.get("role").and_then(Value::as_str);
        if !matches!(role, Some("user" | "assistant" | "system")) {
            return Err(err(
                &format!("{path}.role"),
                "Input should be 'user' or 'assistant'",
            ));
        }
        let content_path = format!("{path}.content");
        let empty = match msg.get("content") {
            None => return Err(err(&content_path, "Field required")),
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Array(blocks)) => {
                for (j, b) in blocks.iter().enumerate() {
                    let block_path = format!("{content_path}.{j}");
                    if role == Some("system")
                        && folds
                        && b.get("type").and_then(Value::as_str) != Some(block::TEXT)
                    {
                        return Err(err(
                            &format!("{block_path}.type"),
                            "system messages may only contain text blocks",
                        ));
                    }
                    checker.block(b, &block_path, false)?;
                }
                blocks.is_empty()
            }
            Some(_) => {
                return Err(err(
                    &content_path,
                    "Input should be a valid string or list of content blocks",
                ));
            }
        };
        if empty && !(i == last && role == Some("assistant")) {
            return Err(err(
                &path,
                "all messages must have non-empty content except for the optional final assistant message",
            ));
        }
    }
    Ok(())
}

struct BlockChecker<'o, 'a> {
    opts: &'o RequestOptions<'a>,
    target: Target,
}

impl BlockChecker<'_, '_> {
    fn block(&self, b: &Value, path: &str, nested: bool) -> Result<()> {
        if !b.is_object() {
            return Err(err(path, "Input should be a content block object"));
        }
        let kind = match b.get("type") {
            Some(Value::String(t)) => t.as_str(),
            None => return Err(err(&format!("{path}.type"), "Field required")),
            Some(_) => {
                return Err(err(
                    &format!("{path}.type"),
                    "Input should be a valid string",
                ));
            }
        };
        validate_cache_control(b, path)?;
        let caps = self.opts.route.capabilities();
        let string_field = |field: &str, required: bool| -> Result<()> {
            match b.get(field) {
                Some(Value::String(_)) => Ok(()),
                None if !required => Ok(()),
                None => Err(err(&format!("{path}.{field}"), "Field required")),
                Some(_) => Err(err(
                    &format!("{path}.{field}"),
                    "Input should be a valid string",
                )),
            }
        };
        match kind {
            block::TEXT => string_field("text", true),
            block::IMAGE => {
                if !caps.images {
                    return Err(err(
                        path,
                        format!("model {} does not support image input", self.model()),
                    ));
                }
                validate_source(b, path, block::IMAGE)
            }
            block::DOCUMENT => {
                if !caps.documents {
                    return Err(err(
                        path,
                        format!("model {} does not support document input", self.model()),
                    ));
                }
                validate_source(b, path, block::DOCUMENT)
            }
            block::TOOL_USE => {
                string_field("id", true)?;
                string_field("name", true)?;
                if !b.get("input").is_some_and(Value::is_object) {
                    return Err(err(&format!("{path}.input"), "Input should be an object"));
                }
                Ok(())
            }
            block::TOOL_RESULT => self.tool_result(b, path),
            block::THINKING => {
                string_field("thinking", false)?;
                string_field("signature", false)
            }
            block::REDACTED_THINKING => string_field("data", true),
            block::TOOL_REFERENCE => string_field("tool_name", true),
            _ if nested => Ok(()),
            _ if self.target == Target::Invoke => Ok(()),
            _ if CONVERSE_KNOWN.contains(&kind)
                || block::UNRUNNABLE_SERVER_RESULTS.contains(&kind) =>
            {
                Ok(())
            }
            // Invoke passes unknown blocks and lets Bedrock decide; Converse has no place for them.
            other => Err(err(
                &format!("{path}.type"),
                format!("unsupported content block type '{other}'"),
            )),
        }
    }

    fn tool_result(&self, b: &Value, path: &str) -> Result<()> {
        if !b.get("tool_use_id").is_some_and(Value::is_string) {
            return Err(err(&format!("{path}.tool_use_id"), "Field required"));
        }
        if b.get("is_error")
            .is_some_and(|v| !v.is_boolean() && !v.is_null())
        {
            return Err(err(
                &format!("{path}.is_error"),
                "Input should be a valid boolean",
            ));
        }
        match b.get("content") {
            None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
            Some(Value::Array(items)) => {
                for (k, item) in items.iter().enumerate() {
                    self.block(item, &format!("{path}.content.{k}"), true)?;
                }
                Ok(())
            }
            Some(_) => Err(err(
                &format!("{path}.content"),
                "Input should be a valid string or list of content blocks",
            )),
        }
    }

    fn model(&self) -> &str {
        &self.opts.route.requested_model
    }
}

fn validate_source(b: &Value, path: &str, kind: &str) -> Result<()> {
    let src_path = format!("{path}.source");
    let Some(src) = b.get("source").filter(|s| s.is_object()) else {
        return Err(err(&src_path, "Field required"));
    };
    let media_type = src.get("media_type").and_then(Value::as_str);
    match src.get("type").and_then(Value::as_str) {
        Some(source::BASE64) => {
            if kind == block::IMAGE && !media_type.is_some_and(|m| IMAGE_MEDIA_TYPES.contains(&m)) {
                return Err(err(
                    &format!("{src_path}.media_type"),
                    "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
                ));
            }
            if kind == block::DOCUMENT && media_type != Some(PDF_MEDIA_TYPE) {
                return Err(err(
                    &format!("{src_path}.media_type"),
                    "Input should be 'application/pdf'",
                ));
            }
            let data = src.get("data").and_then(Value::as_str);
            if data.is_none_or(|d| decode_base64(d).is_none()) {
                return Err(err(&format!("{src_path}.data"), "invalid base64 data"));
            }
            Ok(())
        }
        Some(source::TEXT) if kind == block::DOCUMENT => {
            if media_type.is_some_and(|m| m != TEXT_MEDIA_TYPE) {
                return Err(err(
                    &format!("{src_path}.media_type"),
                    "Input should be 'text/plain'",
                ));
            }
            if !src.get("data").is_some_and(Value::is_string) {
                return Err(err(
                    &format!("{src_path}.data"),
                    "Input should be a valid string",
                ));
            }
            Ok(())
        }
        Some(source::CONTENT) if kind == block::DOCUMENT => match src.get("content") {
            Some(Value::String(_) | Value::Array(_)) => Ok(()),
            _ => Err(err(
                &format!("{src_path}.content"),
                "Input should be a valid string or list of content blocks",
            )),
        },
        Some(source::URL) => Err(err(&format!("{src_path}.type"), URL_SOURCES_DISABLED)),
        Some(source::FILE) => Err(err(
            &format!("{src_path}.type"),
            "file sources are not supported on this gateway (no Files API)",
        )),
        Some(other) => Err(err(
            &format!("{src_path}.type"),
            format!("unsupported source type '{other}'"),
        )),
        None => Err(err(&format!("{src_path}.type"), "Field required")),
    }
}
