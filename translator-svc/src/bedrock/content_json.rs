//! SDK content blocks back to their Converse JSON (response messages, and the round-trip tests).
//! Blobs become base64 strings; members the gateway never consumes become `{"unknown":{}}`.

use super::document::to_json;
use super::json::base64;
use aws_sdk_bedrockruntime::types::{
    AudioSource, CachePointBlock, CitationGeneratedContent, ContentBlock, DocumentBlock,
    DocumentContentBlock, DocumentSource, GuardrailConverseContentBlock,
    GuardrailConverseImageSource, ImageBlock, ImageSource, ReasoningContentBlock, ToolResultBlock,
    ToolResultContentBlock, VideoSource,
};
use serde_json::{Map, Value, json};

/// One content block as Converse JSON (responses, and the round-trip tests).
pub(crate) fn content_block_json(block: &ContentBlock) -> Value {
    match block {
        ContentBlock::Text(t) => json!({ "text": t }),
        ContentBlock::Image(i) => json!({ "image": image_json(i) }),
        ContentBlock::Document(d) => json!({ "document": document_json(d) }),
        ContentBlock::Video(v) => {
            let source = match &v.source {
                Some(VideoSource::Bytes(b)) => json!({ "bytes": base64(b) }),
                _ => json!({}),
            };
            json!({ "video": { "format": v.format.as_str(), "source": source } })
        }
        ContentBlock::Audio(a) => {
            let source = match &a.source {
                Some(AudioSource::Bytes(b)) => json!({ "bytes": base64(b) }),
                _ => json!({}),
            };
            json!({ "audio": { "format": a.format.as_str(), "source": source } })
        }
        ContentBlock::ToolUse(t) => {
            let mut o = Map::new();
            o.insert("toolUseId".into(), json!(t.tool_use_id));
            o.insert("name".into(), json!(t.name));
            o.insert("input".into(), to_json(&t.input));
            if let Some(kind) = &t.r#type {
                o.insert("type".into(), json!(kind.as_str()));
            }
            json!({ "toolUse": o })
        }
        ContentBlock::ToolResult(r) => json!({ "toolResult": tool_result_json(r) }),
        ContentBlock::CachePoint(c) => json!({ "cachePoint": cache_point_json(c) }),
        ContentBlock::ReasoningContent(r) => json!({ "reasoningContent": reasoning_json(r) }),
        ContentBlock::GuardContent(g) => json!({ "guardContent": guard_content_json(g) }),
        ContentBlock::CitationsContent(c) => {
            let content: Vec<Value> = c
                .content()
                .iter()
                .filter_map(|g| match g {
                    CitationGeneratedContent::Text(t) => Some(json!({ "text": t })),
                    _ => None,
                })
                .collect();
            json!({ "citationsContent": { "content": content } })
        }
        other => {
            tracing::warn!(block = ?other, "unsupported Converse content block in a response");
            json!({ "unknown": {} })
        }
    }
}

fn image_json(i: &ImageBlock) -> Value {
    let source = match &i.source {
        Some(ImageSource::Bytes(b)) => json!({ "bytes": base64(b) }),
        _ => json!({}),
    };
    json!({ "format": i.format.as_str(), "source": source })
}

fn document_json(d: &DocumentBlock) -> Value {
    let source = match &d.source {
        Some(DocumentSource::Bytes(b)) => json!({ "bytes": base64(b) }),
        Some(DocumentSource::Text(t)) => json!({ "text": t }),
        Some(DocumentSource::Content(items)) => {
            let items: Vec<Value> = items
                .iter()
                .filter_map(|c| match c {
                    DocumentContentBlock::Text(t) => Some(json!({ "text": t })),
                    _ => None,
                })
                .collect();
            json!({ "content": items })
        }
        _ => json!({}),
    };
    let mut o = Map::new();
    o.insert("format".into(), json!(d.format.as_str()));
    o.insert("name".into(), json!(d.name));
    o.insert("source".into(), source);
    if let Some(context) = &d.context {
        o.insert("context".into(), json!(context));
    }
    if let Some(c) = &d.citations {
        o.insert("citations".into(), json!({ "enabled": c.enabled }));
    }
    Value::Object(o)
}

fn tool_result_json(r: &ToolResultBlock) -> Value {
    let content: Vec<Value> = r
        .content
        .iter()
        .map(|c| match c {
            ToolResultContentBlock::Text(t) => json!({ "text": t }),
            ToolResultContentBlock::Json(d) => json!({ "json": to_json(d) }),
            ToolResultContentBlock::Image(i) => json!({ "image": image_json(i) }),
            ToolResultContentBlock::Document(d) => json!({ "document": document_json(d) }),
            ToolResultContentBlock::Video(v) => content_block_json(&ContentBlock::Video(v.clone())),
            _ => json!({ "unknown": {} }),
        })
        .collect();
    let mut o = Map::new();
    o.insert("toolUseId".into(), json!(r.tool_use_id));
    o.insert("content".into(), Value::Array(content));
    if let Some(status) = &r.status {
        o.insert("status".into(), json!(status.as_str()));
    }
    if let Some(kind) = &r.r#type {
        o.insert("type".into(), json!(kind));
    }
    Value::Object(o)
}

pub(crate) fn cache_point_json(c: &CachePointBlock) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!(c.r#type.as_str()));
    if let Some(ttl) = &c.ttl {
        o.insert("ttl".into(), json!(ttl.as_str()));
    }
    Value::Object(o)
}

fn reasoning_json(r: &ReasoningContentBlock) -> Value {
    match r {
        ReasoningContentBlock::ReasoningText(t) => {
            let mut o = Map::new();
            o.insert("text".into(), json!(t.text));
            if let Some(signature) = &t.signature {
                o.insert("signature".into(), json!(signature));
            }
            json!({ "reasoningText": o })
        }
        ReasoningContentBlock::RedactedContent(b) => json!({ "redactedContent": base64(b) }),
        _ => json!({ "unknown": {} }),
    }
}

pub(crate) fn guard_content_json(g: &GuardrailConverseContentBlock) -> Value {
    match g {
        GuardrailConverseContentBlock::Text(t) => {
            let mut o = Map::new();
            o.insert("text".into(), json!(t.text));
            if let Some(q) = &t.qualifiers {
                let q: Vec<&str> = q.iter().map(|q| q.as_str()).collect();
                o.insert("qualifiers".into(), json!(q));
            }
            json!({ "text": o })
        }
        GuardrailConverseContentBlock::Image(i) => {
            let source = match &i.source {
                Some(GuardrailConverseImageSource::Bytes(b)) => json!({ "bytes": base64(b) }),
                _ => json!({}),
            };
            json!({ "image": { "format": i.format.as_str(), "source": source } })
        }
        _ => json!({ "unknown": {} }),
    }
}
