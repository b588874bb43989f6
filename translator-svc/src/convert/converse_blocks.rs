//! Anthropic content blocks -> Converse content blocks (spec 10.3, 10.4). Input is a normalized
//! body (validated, server-tool history removed), so unexpected shapes here are 400s only as a
//! safety net.

use std::collections::HashSet;

use serde_json::Value;

use super::blocks::{block_type, marker_ttl};
use super::media::decode_base64;
use crate::anthropic::request::{PDF_MEDIA_TYPE, block, source};
use crate::converse::request::{
    Blob, CachePointBlock, CachePointType, ContentBlock, DocumentBlock, DocumentFormat,
    DocumentSource, ImageBlock, ImageFormat, ImageSource, ReasoningContentBlock, ReasoningText,
    ToolResultBlock, ToolResultContentBlock, ToolResultStatus, ToolUseBlock,
};
use crate::error::ApiError;
use crate::models::Capabilities;

/// Placeholder for a tool result without content: Converse rejects an empty list.
const NO_CONTENT: &str = "(no content)";

/// State shared across one request's blocks: document names must be unique per request.
pub(crate) struct BlockContext<'a> {
    pub caps: &'a Capabilities,
    pub ttl_override: Option<&'a str>,
    doc_names: HashSet<String>,
    doc_count: usize,
}

impl<'a> BlockContext<'a> {
    pub(crate) fn new(caps: &'a Capabilities, ttl_override: Option<&'a str>) -> Self {
        BlockContext {
            caps,
            ttl_override,
            doc_names: HashSet::new(),
            doc_count: 0,
        }
    }

    /// A cache point for a marked element, if the model caches at all (spec 10.4).
    pub(crate) fn cache_point(&self, marked: &Value) -> Option<CachePointBlock> {
        let cc = marked.get("cache_control").filter(|c| !c.is_null())?;
        self.caps.prompt_caching.then(|| CachePointBlock {
            kind: CachePointType::Default,
            ttl: marker_ttl(cc, self.caps, self.ttl_override),
        })
    }

    /// Document name from `title`: letters, digits, single spaces, `-()[]`; else
    /// `document-<n>`; made unique within the request (Bedrock rejects duplicates).
    fn document_name(&mut self, title: Option<&str>) -> String {
        self.doc_count += 1;
        let cleaned: String = title
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-()[]".contains(c) {
                    c
                } else {
                    ' '
                }
            })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let base = if cleaned.is_empty() {
            format!("document-{}", self.doc_count)
        } else {
            cleaned
        };
        let mut name = base.clone();
        let mut n = 2;
        while self.doc_names.contains(&name) {
            name = format!("{base} ({n})");
            n += 1;
        }
        self.doc_names.insert(name.clone());
        name
    }
}

fn str_field<'v>(b: &'v Value, key: &str) -> &'v str {
    b.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn invalid(path: &str, msg: &str) -> ApiError {
    ApiError::invalid_at(path, msg)
}

/// Converts one message's blocks; a marked block is followed by its own `cachePoint` element.
pub(crate) fn to_converse_content(
    blocks: &[Value],
    ctx: &mut BlockContext,
    path: &str,
) -> Result<Vec<ContentBlock>, ApiError> {
    let mut out = Vec::with_capacity(blocks.len());
    for (j, b) in blocks.iter().enumerate() {
        let block_path = format!("{path}.{j}");
        let Some(converted) = convert_block(b, ctx, &block_path)? else {
            continue;
        };
        let marker = if block_type(b) == Some(block::TOOL_RESULT) {
            result_marker(b)
        } else {
            Some(b)
        };
        out.push(converted);
        if let Some(point) = marker.and_then(|m| ctx.cache_point(m)) {
            out.push(ContentBlock::CachePoint(point));
        }
    }
    Ok(out)
}

/// A tool result's own marker, else the first marker inside its content (Converse has no cache
/// points inside tool results, so one point after the result stands for them).
fn result_marker(b: &Value) -> Option<&Value> {
    let has = |v: &&Value| v.get("cache_control").is_some_and(|c| !c.is_null());
    Some(b)
        .filter(has)
        .or_else(|| b.get("content")?.as_array()?.iter().find(has))
}

fn convert_block(
    b: &Value,
    ctx: &mut BlockContext,
    path: &str,
) -> Result<Option<ContentBlock>, ApiError> {
    Ok(match block_type(b).unwrap_or_default() {
        block::TEXT => Some(ContentBlock::Text(str_field(b, "text").to_string())),
        block::IMAGE => Some(ContentBlock::Image(image(b, path)?)),
        block::DOCUMENT => Some(ContentBlock::Document(document(b, ctx, path)?)),
        block::THINKING if ctx.caps.reasoning_history => Some(ContentBlock::ReasoningContent(
            ReasoningContentBlock::ReasoningText(ReasoningText {
                text: str_field(b, "thinking").to_string(),
                signature: b
                    .get("signature")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }),
        )),
        block::REDACTED_THINKING if ctx.caps.reasoning_history => {
            let data = str_field(b, "data");
            // Bedrock wants the opaque bytes; data that is not base64 is passed as its UTF-8.
            let bytes = decode_base64(data).unwrap_or_else(|| data.as_bytes().to_vec());
            Some(ContentBlock::ReasoningContent(
                ReasoningContentBlock::RedactedContent(Blob(bytes)),
            ))
        }
        // Models without reasoning history reject prior reasoning: drop it.
        block::THINKING | block::REDACTED_THINKING => None,
        block::TOOL_USE => Some(ContentBlock::ToolUse(ToolUseBlock {
            tool_use_id: str_field(b, "id").to_string(),
            name: str_field(b, "name").to_string(),
            input: b
                .get("input")
                .cloned()
                .unwrap_or_else(|| Value::Object(Default::default())),
        })),
        block::TOOL_RESULT => Some(ContentBlock::ToolResult(tool_result(b, ctx, path)?)),
        block::SEARCH_RESULT => Some(ContentBlock::Text(search_result_text(b))),
        block::COMPACTION => {
            let text = str_field(b, "content");
            (!text.trim().is_empty()).then(|| ContentBlock::Text(text.to_string()))
        }
        // Server-tool history Converse cannot express (normalization removed the rest).
        block::SERVER_TOOL_USE | block::TOOL_SEARCH_TOOL_RESULT => None,
        other if block::UNRUNNABLE_SERVER_RESULTS.contains(&other) => None,
        other => {
            return Err(invalid(
                &format!("{path}.type"),
                &format!("unsupported content block type '{other}'"),
            ));
        }
    })
}

fn image(b: &Value, path: &str) -> Result<ImageBlock, ApiError> {
    let src = b.get("source").cloned().unwrap_or_default();
    let format = match str_field(&src, "media_type") {
        "image/png" => ImageFormat::Png,
        "image/jpeg" => ImageFormat::Jpeg,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::Webp,
        _ => {
            return Err(invalid(
                &format!("{path}.source.media_type"),
                "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
            ));
        }
    };
    let bytes = decode_base64(str_field(&src, "data"))
        .ok_or_else(|| invalid(&format!("{path}.source.data"), "invalid base64 data"))?;
    Ok(ImageBlock {
        format,
        source: ImageSource::Bytes(Blob(bytes)),
    })
}

fn document(b: &Value, ctx: &mut BlockContext, path: &str) -> Result<DocumentBlock, ApiError> {
    let src = b.get("source").cloned().unwrap_or_default();
    let (format, bytes) = match str_field(&src, "type") {
        source::BASE64 if str_field(&src, "media_type") == PDF_MEDIA_TYPE => {
            let bytes = decode_base64(str_field(&src, "data"))
                .ok_or_else(|| invalid(&format!("{path}.source.data"), "invalid base64 data"))?;
            (DocumentFormat::Pdf, bytes)
        }
        source::TEXT => (
            DocumentFormat::Txt,
            str_field(&src, "data").as_bytes().to_vec(),
        ),
        source::CONTENT => (
            DocumentFormat::Txt,
            content_source_text(src.get("content")).into_bytes(),
        ),
        _ => {
            return Err(invalid(
                &format!("{path}.source"),
                "unsupported document source",
            ));
        }
    };
    let name = ctx.document_name(b.get("title").and_then(Value::as_str));
    Ok(DocumentBlock {
        format,
        name,
        source: DocumentSource::Bytes(Blob(bytes)),
    })
}

/// A content source's text blocks joined with newlines.
fn content_source_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter(|i| block_type(i) == Some(block::TEXT))
            .map(|i| str_field(i, "text"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// `title + "\n" + joined texts` (Converse search results need citations config; text is safe).
fn search_result_text(b: &Value) -> String {
    let body = content_source_text(b.get("content"));
    match b
        .get("title")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        Some(title) => format!("{title}\n{body}"),
        None => body,
    }
}

fn tool_result(b: &Value, ctx: &mut BlockContext, path: &str) -> Result<ToolResultBlock, ApiError> {
    let mut content = Vec::new();
    match b.get("content") {
        Some(Value::String(s)) if !s.is_empty() => {
            content.push(ToolResultContentBlock::Text(s.clone()))
        }
        Some(Value::Array(items)) => {
            for (k, item) in items.iter().enumerate() {
                let item_path = format!("{path}.content.{k}");
                content.push(match block_type(item).unwrap_or_default() {
                    block::TEXT => {
                        ToolResultContentBlock::Text(str_field(item, "text").to_string())
                    }
                    block::IMAGE => ToolResultContentBlock::Image(image(item, &item_path)?),
                    block::DOCUMENT => {
                        ToolResultContentBlock::Document(document(item, ctx, &item_path)?)
                    }
                    block::TOOL_REFERENCE => ToolResultContentBlock::Text(format!(
                        "Tool loaded: {}",
                        str_field(item, "tool_name")
                    )),
                    block::SEARCH_RESULT => ToolResultContentBlock::Text(search_result_text(item)),
                    _ => ToolResultContentBlock::Text(
                        serde_json::to_string(item).unwrap_or_default(),
                    ),
                });
            }
        }
        _ => {}
    }
    if content.is_empty() {
        content.push(ToolResultContentBlock::Text(NO_CONTENT.to_string()));
    }
    let is_error = b.get("is_error").and_then(Value::as_bool).unwrap_or(false);
    let status = (is_error && ctx.caps.tool_result_status).then_some(ToolResultStatus::Error);
    if is_error && status.is_none() {
        // No status field for this model: say it in the text instead.
        match content.iter_mut().find_map(|c| match c {
            ToolResultContentBlock::Text(t) => Some(t),
            _ => None,
        }) {
            Some(text) => text.insert_str(0, "Error: "),
            None => content.insert(0, ToolResultContentBlock::Text("Error".to_string())),
        }
    }
    Ok(ToolResultBlock {
        tool_use_id: str_field(b, "tool_use_id").to_string(),
        content,
        status,
    })
}
