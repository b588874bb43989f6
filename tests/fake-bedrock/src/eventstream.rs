//! AWS event-stream framing (prelude, string headers, payload, CRC32s) for the two stream operations,
//! encoded with `aws-smithy-eventstream`, plus a decoder for tests. Knows nothing about scenarios.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use rand::Rng;
use serde_json::{Map, Value};

/// `content-type` of an event-stream HTTP response.
pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// Alphabet real Bedrock draws its `"p"` padding from (a prefix of it, of random length).
const PADDING_ALPHABET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// An `:message-type: event` frame with a JSON payload.
pub fn event_frame(event_type: &str, payload: &Value) -> anyhow::Result<Bytes> {
    frame(
        vec![
            string_header(":event-type", event_type),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "event"),
        ],
        payload,
    )
}

/// An `:message-type: exception` frame with a JSON payload.
pub fn exception_frame(exception_type: &str, payload: &Value) -> anyhow::Result<Bytes> {
    frame(
        vec![
            string_header(":exception-type", exception_type),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "exception"),
        ],
        payload,
    )
}

/// Adds Bedrock's random-length `"p"` padding field to an event payload object.
pub fn with_padding(mut payload: Value) -> Value {
    if let Value::Object(map) = &mut payload {
        map.insert("p".into(), Value::String(padding()));
    }
    payload
}

fn padding() -> String {
    let len = rand::rng().random_range(1..=PADDING_ALPHABET.len());
    PADDING_ALPHABET[..len].to_owned()
}

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn frame(headers: Vec<Header>, payload: &Value) -> anyhow::Result<Bytes> {
    let message = Message::new_from_parts(headers, Bytes::from(serde_json::to_vec(payload)?));
    let mut buffer = Vec::new();
    write_message_to(&message, &mut buffer)?;
    Ok(Bytes::from(buffer))
}

/// One decoded frame: its string headers and JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub headers: Map<String, Value>,
    pub payload: Value,
}

impl Frame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }
}

/// Decodes a whole event-stream body (CRCs checked) into frames.
pub fn decode_all(mut body: &[u8]) -> anyhow::Result<Vec<Frame>> {
    let mut decoder = MessageFrameDecoder::new();
    let mut frames = Vec::new();
    while !body.is_empty() {
        match decoder.decode_frame(&mut body)? {
            DecodedFrame::Complete(message) => {
                let mut headers = Map::new();
                for header in message.headers() {
                    if let HeaderValue::String(value) = header.value() {
                        headers.insert(
                            header.name().as_str().to_owned(),
                            Value::String(value.as_str().to_owned()),
                        );
                    }
                }
                let payload = serde_json::from_slice(message.payload())?;
                frames.push(Frame { headers, payload });
            }
            DecodedFrame::Incomplete => anyhow::bail!("event stream ends inside a frame"),
        }
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frame_layout_matches_the_spec() {
        let bytes = event_frame("messageStart", &json!({"role": "assistant"})).expect("encodes");
        let u32_at = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let total = u32_at(0) as usize;
        let headers_len = u32_at(4) as usize;
        assert_eq!(total, bytes.len());
        assert_eq!(u32_at(8), crc32fast::hash(&bytes[..8]));
        assert_eq!(u32_at(total - 4), crc32fast::hash(&bytes[..total - 4]));
        let payload = &bytes[12 + headers_len..total - 4];
        assert_eq!(payload, br#"{"role":"assistant"}"#);
        // Every header value is a string (type 7).
        let headers = &bytes[12..12 + headers_len];
        let name_len = headers[0] as usize;
        assert_eq!(&headers[1..1 + name_len], b":event-type");
        assert_eq!(headers[1 + name_len], 7);
    }

    #[test]
    fn round_trips_through_the_decoder() {
        let mut body = event_frame("chunk", &with_padding(json!({"bytes": "e30="})))
            .expect("encodes")
            .to_vec();
        body.extend_from_slice(
            &exception_frame("throttlingException", &json!({"message": "slow"})).expect("encodes"),
        );
        let frames = decode_all(&body).expect("decodes");
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].header(":event-type"), Some("chunk"));
        assert!(
            frames[0].payload["p"]
                .as_str()
                .is_some_and(|p| !p.is_empty())
        );
        assert_eq!(frames[1].header(":message-type"), Some("exception"));
        assert_eq!(
            frames[1].header(":exception-type"),
            Some("throttlingException")
        );
        assert!(decode_all(&body[..body.len() - 1]).is_err());
    }
}
