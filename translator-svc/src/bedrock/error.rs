//! Bedrock failures (`BedrockError`) and their one mapping to client errors: before the response
//! is committed (spec 5.3, 5.4) and mid-stream (spec 13.6). Client-visible messages never carry
//! account ids, ARNs, internal endpoints or AWS request ids; those stay in `message` for logs.

use crate::error::ApiError;

/// `retry-after` (seconds) sent with a 429 that Bedrock caused.
pub const RATE_LIMIT_RETRY_AFTER_SECS: u64 = 5;
/// `retry-after` (seconds) sent with a 529 that Bedrock caused.
pub const OVERLOADED_RETRY_AFTER_SECS: u64 = 10;

/// Prefix of errors produced locally while mapping Converse JSON to SDK types.
const LOCAL_PREFIX: &str = "invalid Converse request: ";

/// Which Bedrock exception (or local failure) happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExceptionKind {
    Validation,
    AccessDenied,
    ResourceNotFound,
    Throttling,
    ServiceQuotaExceeded,
    ModelNotReady,
    ServiceUnavailable,
    ModelTimeout,
    ModelError,
    ModelStreamError,
    InternalServer,
    Conflict,
    /// Connect, DNS, TLS or I/O failure, also a connection lost mid-stream.
    Transport,
    /// Connect or read timeout before the first byte.
    Timeout,
    /// A response or event frame that could not be decoded.
    Decode,
    /// An exception code this gateway does not know (kept for logs).
    Unknown(String),
}

impl ExceptionKind {
    /// From an error code as in `x-amzn-errortype` or `:exception-type` (`ThrottlingException`,
    /// `throttlingException`, optionally followed by `:<namespace>`).
    pub fn from_code(code: &str) -> Self {
        let name = code.split(':').next().unwrap_or(code).trim();
        let name = name.strip_suffix("Exception").unwrap_or(name);
        match name.to_ascii_lowercase().as_str() {
            "validation" => Self::Validation,
            "accessdenied" => Self::AccessDenied,
            "resourcenotfound" => Self::ResourceNotFound,
            "throttling" => Self::Throttling,
            "servicequotaexceeded" => Self::ServiceQuotaExceeded,
            "modelnotready" => Self::ModelNotReady,
            "serviceunavailable" => Self::ServiceUnavailable,
            "modeltimeout" => Self::ModelTimeout,
            "modelerror" => Self::ModelError,
            "modelstreamerror" => Self::ModelStreamError,
            "internalserver" => Self::InternalServer,
            "conflict" => Self::Conflict,
            _ => Self::Unknown(code.to_owned()),
        }
    }

    /// A stable label for logs and metrics.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Validation => "ValidationException",
            Self::AccessDenied => "AccessDeniedException",
            Self::ResourceNotFound => "ResourceNotFoundException",
            Self::Throttling => "ThrottlingException",
            Self::ServiceQuotaExceeded => "ServiceQuotaExceededException",
            Self::ModelNotReady => "ModelNotReadyException",
            Self::ServiceUnavailable => "ServiceUnavailableException",
            Self::ModelTimeout => "ModelTimeoutException",
            Self::ModelError => "ModelErrorException",
            Self::ModelStreamError => "ModelStreamErrorException",
            Self::InternalServer => "InternalServerException",
            Self::Conflict => "ConflictException",
            Self::Transport => "transport",
            Self::Timeout => "timeout",
            Self::Decode => "decode",
            Self::Unknown(code) => code,
        }
    }
}

/// A failed Bedrock call: the exception, Bedrock's own text, and what logs need.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct BedrockError {
    pub kind: ExceptionKind,
    /// Bedrock's message (for transport/decode failures, the internal detail). Not client-safe
    /// as is: `to_api_error` rewrites and scrubs it.
    pub message: String,
    /// `originalStatusCode` of `ModelErrorException` / `modelStreamErrorException`.
    pub original_status_code: Option<u16>,
    /// `x-amzn-requestid`, for logs only.
    pub aws_request_id: Option<String>,
}

impl BedrockError {
    pub fn new(kind: ExceptionKind, message: impl Into<String>) -> Self {
        BedrockError {
            kind,
            message: message.into(),
            original_status_code: None,
            aws_request_id: None,
        }
    }

    /// A Converse JSON body this module cannot express as SDK types (a 400, never a panic).
    pub fn invalid_request(path: &str, message: impl AsRef<str>) -> Self {
        let message = if path.is_empty() {
            format!("{LOCAL_PREFIX}{}", message.as_ref())
        } else {
            format!("{LOCAL_PREFIX}{path}: {}", message.as_ref())
        };
        Self::new(ExceptionKind::Validation, message)
    }

    pub fn with_original_status_code(mut self, code: Option<u16>) -> Self {
        self.original_status_code = code;
        self
    }

    pub fn with_request_id(mut self, id: Option<String>) -> Self {
        self.aws_request_id = id;
        self
    }

    /// The client error before the response is committed (spec 5.3 table, 5.4 rewriting).
    pub fn to_api_error(&self, requested_model: &str) -> ApiError {
        let text = || client_message(&self.message);
        match &self.kind {
            ExceptionKind::Validation => ApiError::invalid_request(text()),
            ExceptionKind::AccessDenied => ApiError::permission(format!(
                "the gateway is not permitted to use model: {}",
                scrub(requested_model)
            )),
            ExceptionKind::ResourceNotFound => {
                ApiError::not_found(format!("model: {} not found", scrub(requested_model)))
            }
            ExceptionKind::Throttling | ExceptionKind::ServiceQuotaExceeded => rate_limited(text()),
            ExceptionKind::ModelNotReady | ExceptionKind::ServiceUnavailable => overloaded(text()),
            ExceptionKind::ModelTimeout | ExceptionKind::InternalServer => ApiError::api(text()),
            ExceptionKind::ModelError | ExceptionKind::ModelStreamError => {
                match self.original_status_code {
                    Some(400) => ApiError::invalid_request(text()),
                    Some(429) => rate_limited(text()),
                    Some(503 | 529) => overloaded(text()),
                    _ => ApiError::api(text()),
                }
            }
            ExceptionKind::Conflict | ExceptionKind::Unknown(_) => ApiError::api(
                "unexpected error from the model service; quote the request_id when reporting it",
            ),
            ExceptionKind::Transport | ExceptionKind::Timeout => {
                ApiError::api("upstream request failed")
            }
            ExceptionKind::Decode => ApiError::api("upstream returned an invalid response"),
        }
    }

    /// The SSE `error` after the response is committed (spec 13.6 table).
    pub fn to_stream_api_error(&self) -> ApiError {
        let text = || client_message(&self.message);
        match &self.kind {
            ExceptionKind::Throttling => ApiError::rate_limit(text()),
            ExceptionKind::ServiceUnavailable => ApiError::overloaded(text()),
            ExceptionKind::ModelStreamError | ExceptionKind::ModelError => {
                match self.original_status_code {
                    Some(429) => ApiError::rate_limit(text()),
                    Some(503 | 529) => ApiError::overloaded(text()),
                    _ => ApiError::api(text()),
                }
            }
            ExceptionKind::Validation => ApiError::invalid_request(text()),
            ExceptionKind::Transport => ApiError::api("upstream connection lost"),
            ExceptionKind::Timeout => ApiError::api("upstream request timed out"),
            ExceptionKind::Decode => ApiError::api("upstream stream could not be decoded"),
            ExceptionKind::Conflict | ExceptionKind::Unknown(_) => {
                ApiError::api("unexpected error from the model service")
            }
            ExceptionKind::ModelTimeout
            | ExceptionKind::InternalServer
            | ExceptionKind::AccessDenied
            | ExceptionKind::ResourceNotFound
            | ExceptionKind::ServiceQuotaExceeded
            | ExceptionKind::ModelNotReady => ApiError::api(text()),
        }
    }

    /// Bedrock refused the requested service tier (spec 10.6): the relay retries once without it.
    pub fn is_service_tier_rejection(&self) -> bool {
        if self.kind != ExceptionKind::Validation || self.message.starts_with(LOCAL_PREFIX) {
            return false;
        }
        let lower = self.message.to_ascii_lowercase();
        [
            "service tier",
            "servicetier",
            "service_tier",
            "service-tier",
        ]
        .iter()
        .any(|needle| lower.contains(needle))
    }
}

fn rate_limited(message: String) -> ApiError {
    ApiError::rate_limit(message).with_retry_after(RATE_LIMIT_RETRY_AFTER_SECS)
}

fn overloaded(message: String) -> ApiError {
    ApiError::overloaded(message).with_retry_after(OVERLOADED_RETRY_AFTER_SECS)
}

const WRAPPER_PREFIX: &str = "The model returned the following errors: ";
const BEDROCK_TOO_LONG: &str = "Input is too long for requested model.";
const ANTHROPIC_TOO_LONG: &str = "prompt is too long: input is too long for requested model";

/// Bedrock's text made client-ready (spec 5.4): wrapper prefix stripped, Bedrock's context
/// overflow phrased the Anthropic way, internals scrubbed. Never empty.
pub fn client_message(raw: &str) -> String {
    let mut text = raw.trim();
    if let Some(pos) = text.find(WRAPPER_PREFIX) {
        text = text[pos + WRAPPER_PREFIX.len()..].trim_start();
    }
    let text = text.replace(BEDROCK_TOO_LONG, ANTHROPIC_TOO_LONG);
    let text = scrub(text.trim());
    if text.is_empty() {
        "the model service returned an error without a message".to_owned()
    } else {
        text
    }
}

/// Removes ARNs, internal AWS endpoints and 12-digit account ids from a message.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in text.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end_matches(char::is_whitespace);
        let space = &piece[word.len()..];
        out.push_str(&scrub_word(word));
        out.push_str(space);
    }
    redact_account_ids(&out)
}

fn scrub_word(word: &str) -> String {
    const OPEN: &[char] = &['(', '[', '{', '<', '"', '\'', '`'];
    const CLOSE: &[char] = &[
        ')', ']', '}', '>', '"', '\'', '`', '.', ',', ';', ':', '!', '?',
    ];
    let core = word.trim_start_matches(OPEN);
    let lead = &word[..word.len() - core.len()];
    let core = core.trim_end_matches(CLOSE);
    let tail = &word[lead.len() + core.len()..];
    let lower = core.to_ascii_lowercase();
    let replacement = if lower.contains("arn:aws") {
        "[redacted-arn]"
    } else if lower.contains("amazonaws.com") || lower.contains("amazon.com") {
        "[redacted-endpoint]"
    } else {
        return word.to_owned();
    };
    format!("{lead}{replacement}{tail}")
}

/// Replaces every run of exactly 12 ASCII digits (an AWS account id) not part of a longer
/// alphanumeric token.
fn redact_account_ids(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
            let after_ok = i == bytes.len() || !bytes[i].is_ascii_alphanumeric();
            if i - start == 12 && before_ok && after_ok {
                out.push_str(&text[copied..start]);
                out.push_str("[redacted-account]");
                copied = i;
            }
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
