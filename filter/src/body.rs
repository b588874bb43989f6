//! The cheap body check on the messages endpoints: a JSON object with `model` (string),
//! `messages` (array) and, on `/v1/messages`, `max_tokens` (positive integer). Streams over the
//! JSON once, keeping only those fields; it never builds a tree of the (up to 32 MiB) body.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// What the rest of the gateway needs from a valid body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyFacts {
    pub model: String,
    pub stream: bool,
}

/// Checks a messages (`require_max_tokens = true`) or count_tokens body. The error is the
/// client-facing message, prefixed with the JSON path it concerns.
pub fn check(body: &[u8], require_max_tokens: bool) -> Result<BodyFacts, String> {
    let probe: Probe = serde_json::from_slice(body).map_err(|e| {
        if body.iter().all(u8::is_ascii_whitespace) {
            "body: must be a JSON object, got an empty body".to_owned()
        } else {
            format!("body: invalid JSON: {e}")
        }
    })?;
    let Probe::Object {
        model,
        messages,
        max_tokens,
        stream,
    } = probe
    else {
        return Err("body: must be a JSON object".to_owned());
    };
    let model = match model {
        None | Some(Shape::Null) => return Err("model: field required".to_owned()),
        Some(Shape::String(s)) if !crate::headers::is_header_safe(&s) => {
            return Err("model: must contain only printable ASCII characters".to_owned());
        }
        Some(Shape::String(s)) => s,
        Some(_) => return Err("model: must be a string".to_owned()),
    };
    match messages {
        None | Some(Shape::Null) => return Err("messages: field required".to_owned()),
        Some(Shape::Array) => {}
        Some(_) => return Err("messages: must be an array".to_owned()),
    }
    if require_max_tokens {
        match max_tokens {
            None | Some(Shape::Null) => return Err("max_tokens: field required".to_owned()),
            Some(Shape::PositiveInteger) => {}
            Some(_) => return Err("max_tokens: must be a positive integer".to_owned()),
        }
    }
    let stream = match stream {
        None | Some(Shape::Null) => false,
        Some(Shape::Bool(b)) => b,
        Some(_) => return Err("stream: must be a boolean".to_owned()),
    };
    Ok(BodyFacts { model, stream })
}

/// The JSON type of a field (and the content of a string, which only `model` needs).
#[derive(Debug)]
enum Shape {
    Null,
    Bool(bool),
    PositiveInteger,
    OtherNumber,
    String(String),
    Array,
    Object,
}

enum Probe {
    Object {
        model: Option<Shape>,
        messages: Option<Shape>,
        max_tokens: Option<Shape>,
        stream: Option<Shape>,
    },
    NotObject,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Shape, E> {
        Ok(Shape::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Shape, E> {
        Ok(if v > 0 {
            Shape::PositiveInteger
        } else {
            Shape::OtherNumber
        })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Shape, E> {
        Ok(if v > 0 {
            Shape::PositiveInteger
        } else {
            Shape::OtherNumber
        })
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::OtherNumber)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Shape, E> {
        Ok(Shape::String(v.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Object)
    }
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ProbeVisitor)
    }
}

struct ProbeVisitor;

impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = Probe;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
        let (mut model, mut messages, mut max_tokens, mut stream) = (None, None, None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = match key.as_ref() {
                "model" => &mut model,
                "messages" => &mut messages,
                "max_tokens" => &mut max_tokens,
                "stream" => &mut stream,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value::<Shape>()?);
        }
        Ok(Probe::Object {
            model,
            messages,
            max_tokens,
            stream,
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Probe, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Probe::NotObject)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Probe, E> {
        Ok(Probe::NotObject)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Probe, E> {
        Ok(Probe::NotObject)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Probe, E> {
        Ok(Probe::NotObject)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Probe, E> {
        Ok(Probe::NotObject)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Probe, E> {
        Ok(Probe::NotObject)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Probe, E> {
        Ok(Probe::NotObject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(body: &str) -> Result<BodyFacts, String> {
        check(body.as_bytes(), true)
    }

    #[test]
    fn valid_messages_body() {
        let facts = messages(
            r#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,
                "messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],
                "tools":[{"name":"t","input_schema":{"type":"object"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            facts,
            BodyFacts {
                model: "claude-sonnet-4-5".into(),
                stream: true
            }
        );
        let facts = messages(r#"{"model":"m","max_tokens":1,"messages":[]}"#).unwrap();
        assert!(!facts.stream);
        let facts =
            messages(r#"{"model":"m","max_tokens":1,"messages":[],"stream":null}"#).unwrap();
        assert!(!facts.stream);
    }

    #[test]
    fn count_tokens_does_not_need_max_tokens() {
        let facts = check(
            br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
            false,
        );
        assert_eq!(facts.unwrap().model, "m");
        assert_eq!(
            messages(r#"{"model":"m","messages":[]}"#).unwrap_err(),
            "max_tokens: field required"
        );
    }

    #[test]
    fn missing_and_mistyped_fields_name_their_path() {
        let cases = [
            (r#"{"max_tokens":1,"messages":[]}"#, "model: field required"),
            (
                r#"{"model":null,"max_tokens":1,"messages":[]}"#,
                "model: field required",
            ),
            (
                r#"{"model":7,"max_tokens":1,"messages":[]}"#,
                "model: must be a string",
            ),
            (
                r#"{"model":"m","max_tokens":1}"#,
                "messages: field required",
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":{}}"#,
                "messages: must be an array",
            ),
            (
                r#"{"model":"m","max_tokens":0,"messages":[]}"#,
                "max_tokens: must be a positive integer",
            ),
            (
                r#"{"model":"m","max_tokens":-5,"messages":[]}"#,
                "max_tokens: must be a positive integer",
            ),
            (
                r#"{"model":"m","max_tokens":1.5,"messages":[]}"#,
                "max_tokens: must be a positive integer",
            ),
            (
                r#"{"model":"m","max_tokens":"9","messages":[]}"#,
                "max_tokens: must be a positive integer",
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":[],"stream":"yes"}"#,
                "stream: must be a boolean",
            ),
            (
                r#"{"model":"a\nb","max_tokens":1,"messages":[]}"#,
                "model: must contain only printable ASCII characters",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(messages(body).unwrap_err(), want, "{body}");
        }
    }

    #[test]
    fn not_an_object() {
        for body in ["[]", "[1,2]", "\"x\"", "3", "true", "null"] {
            assert_eq!(
                messages(body).unwrap_err(),
                "body: must be a JSON object",
                "{body}"
            );
        }
        assert_eq!(
            messages("").unwrap_err(),
            "body: must be a JSON object, got an empty body"
        );
    }

    #[test]
    fn invalid_json() {
        for body in ["{", "{\"model\":", "not json", "{\"model\":\"m\"} trailing"] {
            assert!(
                messages(body)
                    .unwrap_err()
                    .starts_with("body: invalid JSON: "),
                "{body}"
            );
        }
    }

    #[test]
    fn escaped_keys_and_large_bodies() {
        let facts = messages(r#"{"mod\u0065l":"m","max_tokens":1,"messages":[]}"#).unwrap();
        assert_eq!(facts.model, "m");
        let big = "x".repeat(5 * 1024 * 1024);
        let body = format!(
            r#"{{"model":"m","max_tokens":8,"messages":[{{"role":"user","content":"{big}"}}]}}"#
        );
        assert!(messages(&body).is_ok());
    }
}
