//! Image and document sources: base64 checks, and the URL pre-pass. Bedrock never fetches URLs,
//! and conversion is pure, so the relay lists URL sources with `url_sources`, downloads them
//! (spec 7 rules: https, no private addresses, size and type limits) and hands the bytes back to
//! `inline_fetched`. A URL source still present at conversion time is a 400.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Value, json};

use crate::anthropic::request::{
    IMAGE_MEDIA_TYPES, PDF_MEDIA_TYPE, TEXT_MEDIA_TYPE, block, source,
};
use crate::error::ApiError;

/// Message for URL sources when fetching is off (or they were not inlined).
pub const URL_SOURCES_DISABLED: &str = "url sources are disabled on this gateway";
/// Download limits of spec 7.
pub const MAX_IMAGE_BYTES: usize = 20 * 1024 * 1024;
pub const MAX_DOCUMENT_BYTES: usize = 32 * 1024 * 1024;

/// Standard alphabet; padding optional, as clients are not consistent about it.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(crate) fn decode_base64(data: &str) -> Option<Vec<u8>> {
    LENIENT.decode(data.trim().as_bytes()).ok()
}

pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Document,
}

impl MediaKind {
    pub fn max_bytes(self) -> usize {
        match self {
            MediaKind::Image => MAX_IMAGE_BYTES,
            MediaKind::Document => MAX_DOCUMENT_BYTES,
        }
    }

    /// Whether a downloaded `content-type` (parameters ignored) may be inlined.
    pub fn accepts(self, content_type: &str) -> bool {
        let media_type = essence(content_type);
        match self {
            MediaKind::Image => IMAGE_MEDIA_TYPES.contains(&media_type.as_str()),
            MediaKind::Document => media_type == PDF_MEDIA_TYPE || media_type == TEXT_MEDIA_TYPE,
        }
    }
}

fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// One `source.type:"url"` in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlSource {
    /// JSON pointer to the `source` object (for `inline_fetched`).
    pub pointer: String,
    /// Dotted path for error messages (`messages.3.content.0.source`).
    pub path: String,
    pub url: String,
    pub kind: MediaKind,
}

/// A downloaded URL source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMedia {
    pub pointer: String,
    /// The response `content-type`.
    pub media_type: String,
    pub bytes: Vec<u8>,
}

fn kind_of(block: &Value) -> Option<MediaKind> {
    match block.get("type").and_then(Value::as_str)? {
        block::IMAGE => Some(MediaKind::Image),
        block::DOCUMENT => Some(MediaKind::Document),
        _ => None,
    }
}

fn url_of(block: &Value) -> Option<&str> {
    let src = block.get("source")?;
    (src.get("type").and_then(Value::as_str) == Some(source::URL))
        .then(|| src.get("url").and_then(Value::as_str))
        .flatten()
}

/// Every URL image/document source, in message order, including inside `tool_result` content.
pub fn url_sources(request: &Value) -> Vec<UrlSource> {
    let mut out = Vec::new();
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return out;
    };
    let mut visit = |blk: &Value, pointer: String, path: String| {
        if let (Some(kind), Some(url)) = (kind_of(blk), url_of(blk)) {
            out.push(UrlSource {
                pointer: format!("{pointer}/source"),
                path: format!("{path}.source"),
                url: url.to_string(),
                kind,
            });
        }
    };
    for (i, msg) in messages.iter().enumerate() {
        let Some(blocks) = msg.get("content").and_then(Value::as_array) else {
            continue;
        };
        for (j, blk) in blocks.iter().enumerate() {
            visit(
                blk,
                format!("/messages/{i}/content/{j}"),
                format!("messages.{i}.content.{j}"),
            );
            if let Some(inner) = blk.get("content").and_then(Value::as_array) {
                for (k, nested) in inner.iter().enumerate() {
                    visit(
                        nested,
                        format!("/messages/{i}/content/{j}/content/{k}"),
                        format!("messages.{i}.content.{j}.content.{k}"),
                    );
                }
            }
        }
    }
    out
}

/// Replaces fetched URL sources by inline ones: images and PDFs as base64, text as a text source.
pub fn inline_fetched(request: &mut Value, fetched: Vec<FetchedMedia>) -> Result<(), ApiError> {
    for media in fetched {
        let block_pointer = media
            .pointer
            .strip_suffix("/source")
            .unwrap_or(&media.pointer);
        let path = block_pointer.trim_start_matches('/').replace('/', ".");
        let kind = request.pointer(block_pointer).and_then(kind_of);
        let Some(kind) = kind else {
            return Err(ApiError::api("fetched media does not match the request"));
        };
        let media_type = essence(&media.media_type);
        if !kind.accepts(&media_type) {
            return Err(ApiError::invalid_at(
                &format!("{path}.source.url"),
                format!("unsupported media type {media_type} at the URL"),
            ));
        }
        let inline = if media_type == TEXT_MEDIA_TYPE {
            let text = String::from_utf8(media.bytes).map_err(|_| {
                ApiError::invalid_at(
                    &format!("{path}.source.url"),
                    "text document is not valid UTF-8",
                )
            })?;
            json!({"type": source::TEXT, "media_type": TEXT_MEDIA_TYPE, "data": text})
        } else {
            json!({"type": source::BASE64, "media_type": media_type, "data": encode_base64(&media.bytes)})
        };
        match request.pointer_mut(&media.pointer) {
            Some(slot) => *slot = inline,
            None => return Err(ApiError::api("fetched media does not match the request")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Value {
        json!({"messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "tool_result", "tool_use_id": "t", "content": [
                    {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
                ]}
            ]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [
                {"type": "document", "source": {"type": "url", "url": "https://example.com/a.txt"}}
            ]}
        ]})
    }

    #[test]
    fn lists_url_sources_with_pointers() {
        let found = url_sources(&request());
        let pointers: Vec<(&str, &str, MediaKind)> = found
            .iter()
            .map(|u| (u.pointer.as_str(), u.url.as_str(), u.kind))
            .collect();
        assert_eq!(
            pointers,
            vec![
                (
                    "/messages/0/content/1/source",
                    "https://example.com/a.png",
                    MediaKind::Image
                ),
                (
                    "/messages/0/content/2/content/0/source",
                    "https://example.com/a.pdf",
                    MediaKind::Document
                ),
                (
                    "/messages/2/content/0/source",
                    "https://example.com/a.txt",
                    MediaKind::Document
                ),
            ]
        );
        assert_eq!(found[0].path, "messages.0.content.1.source");
        assert!(url_sources(&json!({"messages": "x"})).is_empty());
    }

    #[test]
    fn inlines_fetched_media() {
        let mut req = request();
        let fetched = vec![
            FetchedMedia {
                pointer: "/messages/0/content/1/source".into(),
                media_type: "image/png".into(),
                bytes: vec![1, 2, 3],
            },
            FetchedMedia {
                pointer: "/messages/0/content/2/content/0/source".into(),
                media_type: "application/pdf; x=y".into(),
                bytes: b"%PDF".to_vec(),
            },
            FetchedMedia {
                pointer: "/messages/2/content/0/source".into(),
                media_type: "text/plain; charset=utf-8".into(),
                bytes: b"hello".to_vec(),
            },
        ];
        inline_fetched(&mut req, fetched).unwrap();
        assert_eq!(
            req["messages"][0]["content"][1]["source"],
            json!({"type":"base64","media_type":"image/png","data":"AQID"})
        );
        assert_eq!(
            req["messages"][0]["content"][2]["content"][0]["source"]["media_type"],
            "application/pdf"
        );
        assert_eq!(
            req["messages"][2]["content"][0]["source"],
            json!({"type":"text","media_type":"text/plain","data":"hello"})
        );
        assert!(url_sources(&req).is_empty());
    }

    #[test]
    fn rejects_wrong_fetched_type() {
        let mut req = request();
        let err = inline_fetched(
            &mut req,
            vec![FetchedMedia {
                pointer: "/messages/0/content/1/source".into(),
                media_type: "text/html".into(),
                bytes: vec![],
            }],
        )
        .unwrap_err();
        assert_eq!(err.status.as_u16(), 400);
        assert!(
            err.message.starts_with("messages.0.content.1.source.url:"),
            "{}",
            err.message
        );
        let err = inline_fetched(
            &mut req,
            vec![FetchedMedia {
                pointer: "/messages/9/content/0/source".into(),
                media_type: "image/png".into(),
                bytes: vec![],
            }],
        )
        .unwrap_err();
        assert_eq!(err.status.as_u16(), 500);
    }

    #[test]
    fn base64_is_lenient_on_padding_only() {
        assert_eq!(decode_base64("AQID"), Some(vec![1, 2, 3]));
        assert_eq!(decode_base64("AQI"), Some(vec![1, 2]));
        assert_eq!(decode_base64("AQI="), Some(vec![1, 2]));
        assert_eq!(decode_base64("not base64!"), None);
    }
}
