//! Local replies in the Anthropic error shape:
//! `{"type":"error","error":{"type":..,"message":..},"request_id":"req_.."}`.
//! Only Anthropic error types exist here (spec 5.2), each with its status.

/// The Anthropic `error.type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    pub fn parse(s: &str) -> Option<Self> {
        [
            ErrorType::InvalidRequest,
            ErrorType::Authentication,
            ErrorType::Permission,
            ErrorType::NotFound,
            ErrorType::RequestTooLarge,
            ErrorType::RateLimit,
            ErrorType::Api,
            ErrorType::Overloaded,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    /// The usual type for a status, for answers that name only a status.
    pub fn for_status(status: u16) -> Self {
        match status {
            400 => ErrorType::InvalidRequest,
            401 => ErrorType::Authentication,
            403 => ErrorType::Permission,
            404 => ErrorType::NotFound,
            413 => ErrorType::RequestTooLarge,
            429 => ErrorType::RateLimit,
            529 => ErrorType::Overloaded,
            _ => ErrorType::Api,
        }
    }
}

/// A reply the gate sends itself instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub error_type: ErrorType,
    pub message: String,
    /// Seconds for `retry-after` (retryable answers only).
    pub retry_after_s: Option<u32>,
}

impl LocalReply {
    pub fn new(status: u16, error_type: ErrorType, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn missing_key() -> Self {
        Self::new(
            401,
            ErrorType::Authentication,
            "missing API key: send x-api-key or Authorization: Bearer",
        )
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, ErrorType::InvalidRequest, message)
    }

    pub fn too_large(max_body_bytes: u64) -> Self {
        Self::new(
            413,
            ErrorType::RequestTooLarge,
            format!("request body too large: the limit is {max_body_bytes} bytes"),
        )
    }

    /// The auth service failed or timed out: never a pass, and retryable.
    pub fn auth_unavailable() -> Self {
        Self {
            retry_after_s: Some(1),
            ..Self::new(
                529,
                ErrorType::Overloaded,
                "authentication service unavailable",
            )
        }
    }

    pub fn body(&self, request_id: &str) -> String {
        serde_json::json!({
            "type": "error",
            "error": {"type": self.error_type.as_str(), "message": self.message},
            "request_id": request_id,
        })
        .to_string()
    }

    pub fn headers(&self, request_id: &str) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("content-type", "application/json".to_owned()),
            ("request-id", request_id.to_owned()),
        ];
        if (400..500).contains(&self.status) && self.status != 429 {
            headers.push(("x-should-retry", "false".to_owned()));
        } else if self.retry_after_s.is_some() {
            headers.push(("x-should-retry", "true".to_owned()));
        }
        if let Some(seconds) = self.retry_after_s {
            headers.push(("retry-after", seconds.to_string()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_anthropic_shape() {
        let reply = LocalReply::missing_key();
        let body: serde_json::Value = serde_json::from_str(&reply.body("req_abc")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "error",
                "error": {
                    "type": "authentication_error",
                    "message": "missing API key: send x-api-key or Authorization: Bearer"
                },
                "request_id": "req_abc"
            })
        );
    }

    #[test]
    fn client_errors_say_do_not_retry() {
        let headers = LocalReply::invalid_request("x").headers("req_1");
        assert!(headers.contains(&("content-type", "application/json".into())));
        assert!(headers.contains(&("request-id", "req_1".into())));
        assert!(headers.contains(&("x-should-retry", "false".into())));
        assert!(!headers.iter().any(|(n, _)| *n == "retry-after"));
    }

    #[test]
    fn auth_outage_is_retryable_overload() {
        let reply = LocalReply::auth_unavailable();
        assert_eq!(
            (reply.status, reply.error_type),
            (529, ErrorType::Overloaded)
        );
        let headers = reply.headers("req_1");
        assert!(headers.contains(&("retry-after", "1".into())));
        assert!(headers.contains(&("x-should-retry", "true".into())));
    }

    #[test]
    fn error_types_round_trip() {
        for status in [400, 401, 403, 404, 413, 429, 500, 529] {
            let t = ErrorType::for_status(status);
            assert_eq!(ErrorType::parse(t.as_str()), Some(t));
        }
        assert_eq!(ErrorType::parse("internal_error"), None);
        assert_eq!(LocalReply::too_large(10).status, 413);
    }
}
