//! Converse content blocks from their JSON to SDK types (request messages, system, tools).
//! Blobs arrive as base64 strings. Members the gateway never sends (`searchResult`,
//! `toolAddition`, `toolRemoval`, S3 sources) are rejected with a 400 naming the path.

use super::document::to_document;
use super::error::BedrockError;
use super::json::{Obj, Result, built, join, strings, union};
use aws_sdk_bedrockruntime::types::{
    AudioBlock, AudioFormat, AudioSource, CachePointBlock, CachePointType, CacheTtl,
    CitationsConfig, ContentBlock, DocumentBlock, DocumentContentBlock, DocumentFormat,
    DocumentSource, GuardrailConverseContentBlock, GuardrailConverseContentQualifier,
    GuardrailConverseImageBlock, GuardrailConverseImageFormat, GuardrailConverseImageSource,
    GuardrailConverseTextBlock, ImageBlock, ImageFormat, ImageSource, ReasoningContentBlock,
    ReasoningTextBlock, ToolResultBlock, ToolResultContentBlock, ToolResultStatus, ToolUseBlock,
    ToolUseType, VideoBlock, VideoFormat, VideoSource,
};
use serde_json::{Value, json};

/// One message content block from its Converse JSON.
pub(crate) fn to_content_block(value: &Value, path: &str) -> Result<ContentBlock> {
    let (member, inner) = union(value, path)?;
    let path = &join(path, member);
    Ok(match member {
        "text" => ContentBlock::Text(text(inner, path)?),
        "image" => ContentBlock::Image(to_image(inner, path)?),
        "document" => ContentBlock::Document(to_document_block(inner, path)?),
        "video" => ContentBlock::Video(to_video(inner, path)?),
        "audio" => ContentBlock::Audio(to_audio(inner, path)?),
        "toolUse" => ContentBlock::ToolUse(to_tool_use(inner, path)?),
        "toolResult" => ContentBlock::ToolResult(to_tool_result(inner, path)?),
        "cachePoint" => ContentBlock::CachePoint(to_cache_point(inner, path)?),
        "reasoningContent" => ContentBlock::ReasoningContent(to_reasoning(inner, path)?),
        "guardContent" => ContentBlock::GuardContent(to_guard_content(inner, path)?),
        _ => {
            return Err(BedrockError::invalid_request(
                path,
                "unsupported content block",
            ));
        }
    })
}

fn text(value: &Value, path: &str) -> Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| BedrockError::invalid_request(path, "expected a string"))
}

fn bytes_source<'a>(o: &Obj<'a>, path: &'a str) -> Result<(&'a str, Obj<'a>)> {
    let source = o.req("source")?;
    let (member, _) = union(source, path)?;
    Ok((member, Obj::new(source, path)?))
}

fn to_image(value: &Value, path: &str) -> Result<ImageBlock> {
    let o = Obj::new(value, path)?;
    o.only(&["format", "source"])?;
    let source_path = o.path_of("source");
    let (member, source) = bytes_source(&o, &source_path)?;
    let source = match member {
        "bytes" => ImageSource::Bytes(source.blob("bytes")?),
        _ => return Err(unsupported_source(&source_path, member)),
    };
    built(
        ImageBlock::builder()
            .format(ImageFormat::from(o.str("format")?))
            .source(source)
            .build(),
        path,
    )
}

fn to_video(value: &Value, path: &str) -> Result<VideoBlock> {
    let o = Obj::new(value, path)?;
    o.only(&["format", "source"])?;
    let source_path = o.path_of("source");
    let (member, source) = bytes_source(&o, &source_path)?;
    let source = match member {
        "bytes" => VideoSource::Bytes(source.blob("bytes")?),
        _ => return Err(unsupported_source(&source_path, member)),
    };
    built(
        VideoBlock::builder()
            .format(VideoFormat::from(o.str("format")?))
            .source(source)
            .build(),
        path,
    )
}

fn to_audio(value: &Value, path: &str) -> Result<AudioBlock> {
    let o = Obj::new(value, path)?;
    o.only(&["format", "source"])?;
    let source_path = o.path_of("source");
    let (member, source) = bytes_source(&o, &source_path)?;
    let source = match member {
        "bytes" => AudioSource::Bytes(source.blob("bytes")?),
        _ => return Err(unsupported_source(&source_path, member)),
    };
    built(
        AudioBlock::builder()
            .format(AudioFormat::from(o.str("format")?))
            .source(source)
            .build(),
        path,
    )
}

fn unsupported_source(path: &str, member: &str) -> BedrockError {
    BedrockError::invalid_request(&join(path, member), "unsupported source")
}

fn to_document_block(value: &Value, path: &str) -> Result<DocumentBlock> {
    let o = Obj::new(value, path)?;
    o.only(&["format", "name", "source", "context", "citations"])?;
    let source_path = o.path_of("source");
    let (member, source) = bytes_source(&o, &source_path)?;
    let source = match member {
        "bytes" => DocumentSource::Bytes(source.blob("bytes")?),
        "text" => DocumentSource::Text(source.str("text")?.to_owned()),
        "content" => {
            let content_path = source.path_of("content");
            let mut blocks = Vec::new();
            for (i, item) in source.arr("content")?.iter().enumerate() {
                let item_path = join(&content_path, i);
                let (kind, inner) = union(item, &item_path)?;
                let kind_path = join(&item_path, kind);
                match kind {
                    "text" => blocks.push(DocumentContentBlock::Text(text(inner, &kind_path)?)),
                    _ => return Err(BedrockError::invalid_request(&kind_path, "unsupported")),
                }
            }
            DocumentSource::Content(blocks)
        }
        _ => return Err(unsupported_source(&source_path, member)),
    };
    let citations = match o.get("citations") {
        None => None,
        Some(c) => {
            let c_path = o.path_of("citations");
            let c = Obj::new(c, &c_path)?;
            c.only(&["enabled"])?;
            let enabled = c.opt_bool("enabled")?.unwrap_or(false);
            Some(built(
                CitationsConfig::builder().enabled(enabled).build(),
                &c_path,
            )?)
        }
    };
    built(
        DocumentBlock::builder()
            .format(DocumentFormat::from(o.str("format")?))
            .name(o.str("name")?)
            .source(source)
            .set_context(o.opt_str("context")?.map(str::to_owned))
            .set_citations(citations)
            .build(),
        path,
    )
}

fn to_tool_use(value: &Value, path: &str) -> Result<ToolUseBlock> {
    let o = Obj::new(value, path)?;
    o.only(&["toolUseId", "name", "input", "type"])?;
    built(
        ToolUseBlock::builder()
            .tool_use_id(o.str("toolUseId")?)
            .name(o.str("name")?)
            .input(to_document(o.req("input")?))
            .set_type(o.opt_str("type")?.map(ToolUseType::from))
            .build(),
        path,
    )
}

fn to_tool_result(value: &Value, path: &str) -> Result<ToolResultBlock> {
    let o = Obj::new(value, path)?;
    o.only(&["toolUseId", "content", "status", "type"])?;
    let content_path = o.path_of("content");
    let mut content = Vec::new();
    for (i, item) in o.arr("content")?.iter().enumerate() {
        let item_path = join(&content_path, i);
        let (member, inner) = union(item, &item_path)?;
        let p = &join(&item_path, member);
        content.push(match member {
            "text" => ToolResultContentBlock::Text(text(inner, p)?),
            "json" => ToolResultContentBlock::Json(to_document(inner)),
            "image" => ToolResultContentBlock::Image(to_image(inner, p)?),
            "document" => ToolResultContentBlock::Document(to_document_block(inner, p)?),
            "video" => ToolResultContentBlock::Video(to_video(inner, p)?),
            _ => {
                return Err(BedrockError::invalid_request(
                    p,
                    "unsupported tool result content",
                ));
            }
        });
    }
    built(
        ToolResultBlock::builder()
            .tool_use_id(o.str("toolUseId")?)
            .set_content(Some(content))
            .set_status(o.opt_str("status")?.map(ToolResultStatus::from))
            .set_type(o.opt_str("type")?.map(str::to_owned))
            .build(),
        path,
    )
}

/// `{"type":"default","ttl"?:"5m"|"1h"}`, used in messages, system and tools alike.
pub(crate) fn to_cache_point(value: &Value, path: &str) -> Result<CachePointBlock> {
    let o = Obj::new(value, path)?;
    o.only(&["type", "ttl"])?;
    built(
        CachePointBlock::builder()
            .r#type(CachePointType::from(o.str("type")?))
            .set_ttl(o.opt_str("ttl")?.map(CacheTtl::from))
            .build(),
        path,
    )
}

fn to_reasoning(value: &Value, path: &str) -> Result<ReasoningContentBlock> {
    let (member, inner) = union(value, path)?;
    let p = &join(path, member);
    match member {
        "reasoningText" => {
            let o = Obj::new(inner, p)?;
            o.only(&["text", "signature"])?;
            Ok(ReasoningContentBlock::ReasoningText(built(
                ReasoningTextBlock::builder()
                    .text(o.str("text")?)
                    .set_signature(o.opt_str("signature")?.map(str::to_owned))
                    .build(),
                p,
            )?))
        }
        "redactedContent" => {
            let wrapper = json!({ "redactedContent": inner });
            let o = Obj::new(&wrapper, path)?;
            Ok(ReasoningContentBlock::RedactedContent(
                o.blob("redactedContent")?,
            ))
        }
        _ => Err(BedrockError::invalid_request(
            p,
            "unsupported reasoning content",
        )),
    }
}

/// `guardContent` in messages and system: `{text:{text, qualifiers?}}` or `{image:{...}}`.
pub(crate) fn to_guard_content(value: &Value, path: &str) -> Result<GuardrailConverseContentBlock> {
    let (member, inner) = union(value, path)?;
    let p = &join(path, member);
    let o = Obj::new(inner, p)?;
    match member {
        "text" => {
            o.only(&["text", "qualifiers"])?;
            let qualifiers = o
                .opt_arr("qualifiers")?
                .map(|q| strings(q, &o.path_of("qualifiers")))
                .transpose()?
                .map(|q| {
                    q.iter()
                        .map(|s| GuardrailConverseContentQualifier::from(s.as_str()))
                        .collect()
                });
            Ok(GuardrailConverseContentBlock::Text(built(
                GuardrailConverseTextBlock::builder()
                    .text(o.str("text")?)
                    .set_qualifiers(qualifiers)
                    .build(),
                p,
            )?))
        }
        "image" => {
            o.only(&["format", "source"])?;
            let source_path = o.path_of("source");
            let (kind, source) = bytes_source(&o, &source_path)?;
            if kind != "bytes" {
                return Err(unsupported_source(&source_path, kind));
            }
            Ok(GuardrailConverseContentBlock::Image(built(
                GuardrailConverseImageBlock::builder()
                    .format(GuardrailConverseImageFormat::from(o.str("format")?))
                    .source(GuardrailConverseImageSource::Bytes(source.blob("bytes")?))
                    .build(),
                p,
            )?))
        }
        _ => Err(BedrockError::invalid_request(
            p,
            "unsupported guard content",
        )),
    }
}
