//! Bedrock's error shapes: the HTTP error (status, `x-amzn-errortype`, `{"message"}`) answered before a
//! reply, and the exception frame sent inside a stream. One table of names and statuses.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::eventstream;
use crate::scenario::{ErrorSpec, StreamErrorSpec};

/// Exception name, HTTP status, default message.
const EXCEPTIONS: &[(&str, u16, &str)] = &[
    ("ValidationException", 400, "Validation error."),
    (
        "AccessDeniedException",
        403,
        "You don't have access to the model with the specified model ID.",
    ),
    (
        "ResourceNotFoundException",
        404,
        "The provided model identifier is invalid.",
    ),
    (
        "ModelTimeoutException",
        408,
        "Model has timed out in processing the request. Try your request again.",
    ),
    (
        "ModelErrorException",
        424,
        "The system encountered an unexpected error during processing. Try your request again.",
    ),
    (
        "ThrottlingException",
        429,
        "Too many requests, please wait before trying again.",
    ),
    (
        "ModelNotReadyException",
        429,
        "Model is not ready to serve inference requests. The AWS SDK will automatically retry the operation up to 5 times.",
    ),
    (
        "ServiceQuotaExceededException",
        400,
        "Your request exceeds the service quota for your account.",
    ),
    (
        "InternalServerException",
        500,
        "The system encountered an unexpected error during processing. Try your request again.",
    ),
    (
        "ServiceUnavailableException",
        503,
        "Bedrock is unable to process your request.",
    ),
];

/// Real Bedrock appends a coral namespace to the error type; the SDKs strip it.
const ERRORTYPE_SUFFIX: &str = ":http://internal.amazon.com/coral/com.amazon.bedrock/";

/// An error answered before any reply byte.
#[derive(Debug, Clone, PartialEq)]
pub struct BedrockError {
    /// Exception name, e.g. `ThrottlingException`.
    pub name: String,
    pub status: u16,
    pub message: String,
    pub original_status_code: Option<u16>,
}

impl BedrockError {
    pub fn new(name: &str, message: impl Into<String>) -> Self {
        let name = pascal_case(name);
        let status = EXCEPTIONS
            .iter()
            .find(|(known, _, _)| *known == name)
            .map_or(500, |(_, status, _)| *status);
        Self {
            name,
            status,
            message: message.into(),
            original_status_code: None,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", message)
    }

    /// From a scenario's `error`, filling the status and message Bedrock would use.
    pub fn from_spec(spec: &ErrorSpec) -> Self {
        let name = pascal_case(&spec.kind);
        let default_message = EXCEPTIONS
            .iter()
            .find(|(known, _, _)| *known == name)
            .map_or("Unexpected error.", |(_, _, message)| *message);
        let mut error = Self::new(&name, spec.message.as_deref().unwrap_or(default_message));
        if let Some(status) = spec.status {
            error.status = status;
        }
        error.original_status_code = spec
            .original_status_code
            .or_else(|| (error.name == "ModelErrorException").then_some(500));
        error
    }

    /// The HTTP response: status, `x-amzn-errortype`, `x-amzn-requestid`, `{"message": ...}`.
    pub fn into_response(self, request_id: &str) -> Response {
        let mut body = Map::new();
        body.insert("message".into(), Value::String(self.message));
        if let Some(code) = self.original_status_code {
            body.insert("originalStatusCode".into(), json!(code));
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Value::Object(body).to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let errortype = format!("{}{ERRORTYPE_SUFFIX}", self.name);
        if let Ok(value) = HeaderValue::from_str(&errortype) {
            headers.insert("x-amzn-errortype", value);
        }
        if let Ok(value) = HeaderValue::from_str(request_id) {
            headers.insert("x-amzn-requestid", value);
        }
        response
    }
}

/// The `:message-type: exception` frame for a scenario's `stream_error`.
pub fn exception_frame(spec: &StreamErrorSpec) -> anyhow::Result<Bytes> {
    let kind = camel_case(&spec.kind);
    let mut payload = Map::new();
    let message = spec.message.clone().unwrap_or_else(|| match kind.as_str() {
        "throttlingException" => "Too many requests, please wait before trying again.".into(),
        "modelStreamErrorException" => "The model stream failed.".into(),
        _ => format!("{kind} raised by the fake stream"),
    });
    payload.insert("message".into(), Value::String(message.clone()));
    if kind == "modelStreamErrorException" {
        payload.insert(
            "originalStatusCode".into(),
            json!(spec.original_status_code.unwrap_or(500)),
        );
        payload.insert(
            "originalMessage".into(),
            Value::String(spec.original_message.clone().unwrap_or(message)),
        );
    }
    eventstream::exception_frame(&kind, &Value::Object(payload))
}

/// `throttlingException` / `Throttling` -> `ThrottlingException`.
fn pascal_case(name: &str) -> String {
    let mut out = upper_first(name);
    if !out.ends_with("Exception") {
        out.push_str("Exception");
    }
    out
}

/// `ThrottlingException` -> `throttlingException`.
fn camel_case(name: &str) -> String {
    let pascal = pascal_case(name);
    let mut chars = pascal.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

fn upper_first(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_statuses_follow_bedrock() {
        assert_eq!(BedrockError::new("throttlingException", "x").status, 429);
        assert_eq!(
            BedrockError::new("ThrottlingException", "x").name,
            "ThrottlingException"
        );
        assert_eq!(BedrockError::new("ServiceQuotaExceeded", "x").status, 400);
        assert_eq!(BedrockError::new("ModelErrorException", "x").status, 424);
        assert_eq!(
            camel_case("ModelStreamErrorException"),
            "modelStreamErrorException"
        );
        let spec = ErrorSpec {
            status: None,
            kind: "ModelErrorException".into(),
            message: None,
            original_status_code: Some(529),
        };
        let error = BedrockError::from_spec(&spec);
        assert_eq!((error.status, error.original_status_code), (424, Some(529)));
    }

    #[test]
    fn renders_the_http_error() {
        let response = BedrockError::validation("bad").into_response("rid");
        assert_eq!(response.status(), 400);
        let errortype = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok());
        assert!(errortype.is_some_and(|v| v.starts_with("ValidationException:")));
        assert_eq!(
            response
                .headers()
                .get("x-amzn-requestid")
                .map(|v| v.as_bytes()),
            Some(&b"rid"[..])
        );
    }
}
