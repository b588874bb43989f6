//! Small path-tracking readers over Converse JSON, so a body the SDK types cannot express fails
//! with a 400 naming the exact field instead of being dropped silently or panicking.

use super::error::BedrockError;
use aws_smithy_types::Blob;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

pub(crate) type Result<T> = std::result::Result<T, BedrockError>;

pub(crate) fn join(path: &str, key: impl std::fmt::Display) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A JSON object with its path.
#[derive(Clone, Copy)]
pub(crate) struct Obj<'a> {
    pub map: &'a Map<String, Value>,
    pub path: &'a str,
}

impl<'a> Obj<'a> {
    pub fn new(value: &'a Value, path: &'a str) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Obj { map, path }),
            _ => Err(BedrockError::invalid_request(path, "expected an object")),
        }
    }

    /// Rejects keys outside `allowed` (nulls are treated as absent).
    pub fn only(&self, allowed: &[&str]) -> Result<()> {
        for (key, value) in self.map {
            if !value.is_null() && !allowed.contains(&key.as_str()) {
                return Err(BedrockError::invalid_request(
                    &join(self.path, key),
                    "unsupported field",
                ));
            }
        }
        Ok(())
    }

    pub fn path_of(&self, key: &str) -> String {
        join(self.path, key)
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn req(&self, key: &str) -> Result<&'a Value> {
        self.get(key)
            .ok_or_else(|| BedrockError::invalid_request(&self.path_of(key), "field required"))
    }

    pub fn str(&self, key: &str) -> Result<&'a str> {
        self.req(key)?
            .as_str()
            .ok_or_else(|| BedrockError::invalid_request(&self.path_of(key), "expected a string"))
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.str(key).map(Some),
        }
    }

    pub fn arr(&self, key: &str) -> Result<&'a [Value]> {
        match self.req(key)? {
            Value::Array(items) => Ok(items),
            _ => Err(BedrockError::invalid_request(
                &self.path_of(key),
                "expected an array",
            )),
        }
    }

    pub fn opt_arr(&self, key: &str) -> Result<Option<&'a [Value]>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.arr(key).map(Some),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| {
                BedrockError::invalid_request(&self.path_of(key), "expected a boolean")
            }),
        }
    }

    pub fn blob(&self, key: &str) -> Result<Blob> {
        let text = self.str(key)?;
        STANDARD
            .decode(text)
            .map(Blob::new)
            .map_err(|_| BedrockError::invalid_request(&self.path_of(key), "invalid base64"))
    }
}

/// A union value: an object with exactly one member, e.g. `{"text": "..."}`.
pub(crate) fn union<'a>(value: &'a Value, path: &str) -> Result<(&'a str, &'a Value)> {
    let map = match value {
        Value::Object(map) => map,
        _ => return Err(BedrockError::invalid_request(path, "expected an object")),
    };
    let mut members = map.iter().filter(|(_, v)| !v.is_null());
    match (members.next(), members.next()) {
        (Some((key, v)), None) => Ok((key.as_str(), v)),
        _ => Err(BedrockError::invalid_request(
            path,
            "expected exactly one member",
        )),
    }
}

pub(crate) fn base64(blob: &Blob) -> Value {
    Value::String(STANDARD.encode(blob.as_ref()))
}

pub(crate) fn strings(items: &[Value], path: &str) -> Result<Vec<String>> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| BedrockError::invalid_request(&join(path, i), "expected a string"))
        })
        .collect()
}

/// Maps an SDK builder error (a missing required member) to a 400.
pub(crate) fn built<T>(
    result: std::result::Result<T, aws_smithy_types::error::operation::BuildError>,
    path: &str,
) -> Result<T> {
    result.map_err(|e| BedrockError::invalid_request(path, e.to_string()))
}
