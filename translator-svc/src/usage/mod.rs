//! Usage metering: one record per request, handed to a sink behind a small trait. The sink must
//! never block or fail the user's response; the DynamoDB sink (key store issue) plugs in here.

pub mod dynamo;

use std::time::Duration;

use crate::convert::response::TokenUsage;

/// How a request ended, for usage and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// An Anthropic error type (tokens may still have been spent, e.g. a mid-stream failure).
    Error(&'static str),
    ClientDisconnected,
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error(kind) => kind,
            Outcome::ClientDisconnected => "client_disconnected",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub request_id: String,
    pub key_id: Option<String>,
    pub requested_model: String,
    pub resolved_model: String,
    /// `invoke` or `converse`.
    pub api: &'static str,
    pub tier: Option<String>,
    pub stream: bool,
    pub usage: TokenUsage,
    pub latency: Duration,
    pub time_to_first_token: Option<Duration>,
    pub outcome: Outcome,
}

pub trait UsageSink: Send + Sync {
    /// Record without blocking the caller; failures are the sink's to retry and count.
    fn record(&self, record: UsageRecord);
}

/// Logs each record and counts tokens in metrics; the default until a store is configured.
pub struct LogSink;

impl UsageSink for LogSink {
    fn record(&self, r: UsageRecord) {
        let model = r.requested_model.clone();
        metrics::counter!("translator_tokens_total", "model" => model.clone(), "kind" => "input")
            .increment(r.usage.input_tokens);
        metrics::counter!("translator_tokens_total", "model" => model.clone(), "kind" => "output")
            .increment(r.usage.output_tokens);
        metrics::counter!("translator_tokens_total", "model" => model.clone(), "kind" => "cache_read").increment(r.usage.cache_read_input_tokens);
        metrics::counter!("translator_tokens_total", "model" => model, "kind" => "cache_write")
            .increment(r.usage.cache_creation_input_tokens);
        tracing::info!(
            request_id = %r.request_id,
            key_id = r.key_id.as_deref().unwrap_or("-"),
            requested_model = %r.requested_model,
            resolved_model = %r.resolved_model,
            api = r.api,
            tier = r.tier.as_deref().unwrap_or("default"),
            stream = r.stream,
            input_tokens = r.usage.input_tokens,
            output_tokens = r.usage.output_tokens,
            cache_read_input_tokens = r.usage.cache_read_input_tokens,
            cache_creation_input_tokens = r.usage.cache_creation_input_tokens,
            latency_ms = r.latency.as_millis() as u64,
            ttft_ms = r.time_to_first_token.map(|d| d.as_millis() as u64),
            outcome = r.outcome.label(),
            "usage"
        );
    }
}
