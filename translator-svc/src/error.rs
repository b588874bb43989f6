//! The one client-facing error type, `ApiError`, and its single renderer to the Anthropic error
//! envelope. Every boundary (Bedrock, key store, conversion) converts into it; nothing else writes
//! error bodies. Upstream internals (ARNs, AWS request ids) never go into `message`.

use http::StatusCode;
use serde_json::json;

/// Anthropic's error types (spec section 5.2). Nothing outside this list is ever emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    RequestTooLarge,
    RateLimit,
    Api,
    Overloaded,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request_error",
            ErrorType::Authentication => "authentication_error",
            ErrorType::Permission => "permission_error",
            ErrorType::NotFound => "not_found_error",
            ErrorType::RequestTooLarge => "request_too_large",
            ErrorType::RateLimit => "rate_limit_error",
            ErrorType::Api => "api_error",
            ErrorType::Overloaded => "overloaded_error",
        }
    }

    /// The HTTP status Anthropic uses for this type.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorType::Authentication => StatusCode::UNAUTHORIZED,
            ErrorType::Permission => StatusCode::FORBIDDEN,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::RateLimit => StatusCode::TOO_MANY_REQUESTS,
            ErrorType::Api => StatusCode::INTERNAL_SERVER_ERROR,
            // 529 is not a registered status; it is what Anthropic sends for overload.
            ErrorType::Overloaded => {
                StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }
        }
    }

    /// Whether the SDKs should retry (they honour `x-should-retry` before their own heuristics).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorType::RateLimit | ErrorType::Api | ErrorType::Overloaded
        )
    }
}

/// A client-visible error: type, message and optional retry hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub error_type: ErrorType,
    pub status: StatusCode,
    pub message: String,
    /// Seconds for `retry-after` (429/529).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        ApiError {
            error_type,
            status: error_type.status(),
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorType::InvalidRequest, message)
    }

    /// A validation error at a JSON path, in the `messages.3.content.0.source.type: ...` style.
    pub fn invalid_at(path: &str, message: impl AsRef<str>) -> Self {
        if path.is_empty() {
            Self::invalid_request(message.as_ref())
        } else {
            Self::invalid_request(format!("{path}: {}", message.as_ref()))
        }
    }

    pub fn authentication(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Authentication, message)
    }

    pub fn permission(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Permission, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorType::NotFound, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorType::RequestTooLarge, message)
    }

    pub fn rate_limit(message: impl Into<String>) -> Self {
        Self::new(ErrorType::RateLimit, message)
    }

    pub fn api(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Api, message)
    }

    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Overloaded, message)
    }

    /// 405 keeps Anthropic's `invalid_request_error` type with its own status.
    pub fn method_not_allowed() -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            ..Self::invalid_request("method not allowed for this endpoint")
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Label for metrics: the Anthropic error type.
    pub fn metric_label(&self) -> &'static str {
        self.error_type.as_str()
    }

    /// The Anthropic error envelope, used for JSON bodies and SSE `error` events alike.
    pub fn to_body(&self, request_id: &str) -> serde_json::Value {
        json!({
            "type": "error",
            "error": {"type": self.error_type.as_str(), "message": self.message},
            "request_id": request_id,
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overloaded_is_529() {
        assert_eq!(ApiError::overloaded("x").status.as_u16(), 529);
    }

    #[test]
    fn body_has_anthropic_shape() {
        let body = ApiError::invalid_at("messages.0.content", "bad").to_body("req_1");
        assert_eq!(
            body,
            json!({"type":"error","error":{"type":"invalid_request_error","message":"messages.0.content: bad"},"request_id":"req_1"})
        );
    }
}
