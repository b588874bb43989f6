//! The only module that builds or calls the AWS SDK Bedrock Runtime client. Everything else talks
//! to Bedrock through the object-safe `Bedrock` trait in Converse JSON / Anthropic JSON terms, so
//! the relay can be tested with a fake. Errors map to `ApiError` here (spec 5.3, 5.4, 13.6).

mod client;
mod content;
mod content_json;
mod converse_input;
mod converse_output;
mod document;
mod error;
mod json;
mod sdk_error;
pub mod timed;

#[cfg(test)]
mod fake_error_tests;
#[cfg(test)]
mod fake_tests;

pub use client::{BedrockSettings, connect, connect_with_credentials};
pub use error::{
    BedrockError, ExceptionKind, OVERLOADED_RETRY_AFTER_SECS, RATE_LIMIT_RETRY_AFTER_SECS,
    client_message, scrub,
};
pub use timed::{Timed, exception_label};

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;
use std::pin::Pin;

/// Upstream events; dropping the stream drops the HTTP response body, which cancels the call.
pub type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, BedrockError>> + Send>>;

/// `InvokeModel` / `InvokeModelWithResponseStream`.
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeCall {
    /// Model id, inference profile id or ARN, exactly as Bedrock takes it (the SDK encodes it).
    pub model_id: String,
    /// The native Anthropic JSON body.
    pub body: Bytes,
    /// Sent as `X-Amzn-Bedrock-Service-Tier` when set.
    pub service_tier: Option<String>,
}

/// A non-streaming Invoke answer.
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeOutput {
    /// The Anthropic message JSON, as Bedrock returned it.
    pub body: Bytes,
    /// The tier Bedrock ran (`x-amzn-bedrock-service-tier`), for billing.
    pub service_tier: Option<String>,
}

/// A streaming Invoke answer with the tier Bedrock reported in the response headers.
pub struct InvokeStream {
    /// One decoded Anthropic event JSON per `chunk`.
    pub events: EventStream<serde_json::Value>,
    pub service_tier: Option<String>,
}

/// `Converse` / `ConverseStream`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConverseCall {
    pub model_id: String,
    /// The Converse JSON body (camelCase, blobs base64), without `modelId`.
    pub request: serde_json::Value,
    /// When set, sent as `serviceTier: {"type": ...}`, replacing any `serviceTier` in `request`.
    pub service_tier: Option<String>,
}

/// Bedrock Runtime as the gateway uses it. Object safe; one real implementation over the SDK.
pub trait Bedrock: Send + Sync {
    fn invoke(&self, call: InvokeCall) -> BoxFuture<'_, Result<InvokeOutput, BedrockError>>;

    /// One decoded Anthropic event JSON per `chunk` (base64 already decoded, JSON parsed), with
    /// the tier Bedrock reported in the response headers (spec 10.6).
    fn invoke_stream(&self, call: InvokeCall) -> BoxFuture<'_, Result<InvokeStream, BedrockError>>;

    /// The Converse response JSON exactly as the HTTP API returns it.
    fn converse(
        &self,
        call: ConverseCall,
    ) -> BoxFuture<'_, Result<serde_json::Value, BedrockError>>;

    /// Each event as `{"<eventType>": <payload>}`, exactly as on the wire.
    fn converse_stream(
        &self,
        call: ConverseCall,
    ) -> BoxFuture<'_, Result<EventStream<serde_json::Value>, BedrockError>>;

    /// `CountTokens`; `input` is `{"invokeModel":{"body":"<base64>"}}` or `{"converse":{...}}`.
    fn count_tokens(
        &self,
        model_id: String,
        input: serde_json::Value,
    ) -> BoxFuture<'_, Result<u64, BedrockError>>;
}
