//! `serde_json::Value` <-> `aws_smithy_types::Document`, for the free-JSON fields of Converse
//! (tool inputs and schemas, `additionalModelRequestFields`/`ResponseFields`, tool result `json`).
//! Numbers keep their kind (unsigned, negative, float); object keys come back sorted because the
//! SDK stores objects in a `HashMap` (Bedrock does not care about key order).

use aws_smithy_types::{Document, Number};
use serde_json::{Map, Value};

/// JSON value to SDK document. Integers stay integers (`PosInt`/`NegInt`), everything else that
/// is a number becomes `Float`.
pub fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(to_number(n)),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect(),
        ),
    }
}

fn to_number(n: &serde_json::Number) -> Number {
    if let Some(u) = n.as_u64() {
        Number::PosInt(u)
    } else if let Some(i) = n.as_i64() {
        // `as_u64` failed, so this is negative: the only case `NegInt` may hold.
        Number::NegInt(i)
    } else {
        Number::Float(n.as_f64().unwrap_or(0.0))
    }
}

/// SDK document to JSON value. Object keys are sorted so output is deterministic; a non-finite
/// float (JSON cannot carry it) becomes `null`.
pub fn to_json(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Document::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::with_capacity(map.len());
            for key in keys {
                if let Some(v) = map.get(key) {
                    out.insert(key.clone(), to_json(v));
                }
            }
            Value::Object(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_keep_their_kind() {
        let v = json!([0, 1, u64::MAX, -1, i64::MIN, 0.5, -2.25, 1e300]);
        let Document::Array(items) = to_document(&v) else {
            panic!("not an array");
        };
        assert_eq!(
            items,
            vec![
                Document::Number(Number::PosInt(0)),
                Document::Number(Number::PosInt(1)),
                Document::Number(Number::PosInt(u64::MAX)),
                Document::Number(Number::NegInt(-1)),
                Document::Number(Number::NegInt(i64::MIN)),
                Document::Number(Number::Float(0.5)),
                Document::Number(Number::Float(-2.25)),
                Document::Number(Number::Float(1e300)),
            ]
        );
        assert_eq!(to_json(&to_document(&v)), v);
        // 1.0 stays a float on the way back (serializes as 1.0, not 1).
        assert_eq!(
            to_json(&to_document(&json!(1.0))).to_string(),
            "1.0",
            "float kind lost"
        );
    }

    #[test]
    fn nesting_round_trips() {
        let v = json!({
            "type": "object",
            "properties": {"a": {"type": "array", "items": {"$ref": "#/$defs/x"}}, "b": {"enum": [null, true, false, "s"]}},
            "$defs": {"x": {"type": "object", "additionalProperties": false, "properties": {}}},
            "required": ["a"],
            "empty": [],
            "deep": [[[{"k": [1, -1, 1.5]}]]]
        });
        assert_eq!(to_json(&to_document(&v)), v);
    }

    #[test]
    fn object_keys_come_back_sorted() {
        let v = json!({"z": 1, "a": 2, "m": {"y": 1, "b": 2}});
        let text = to_json(&to_document(&v)).to_string();
        assert_eq!(text, r#"{"a":2,"m":{"b":2,"y":1},"z":1}"#);
    }

    #[test]
    fn non_finite_float_becomes_null() {
        assert_eq!(
            to_json(&Document::Number(Number::Float(f64::NAN))),
            Value::Null
        );
    }
}
