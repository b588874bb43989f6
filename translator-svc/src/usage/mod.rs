//! Usage metering: one record per request, handed to a sink behind a small trait. The sink must
//! never block or fail the user's response; the DynamoDB sink (key store issue) plugs in here.

mod batch;
pub mod catalog;
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
    /// How many of `usage.cache_creation_input_tokens` were 1-hour cache writes (priced at 2x
    /// input instead of 1.25x); the rest were 5-minute writes.
    pub cache_write_1h_tokens: u64,
    pub latency: Duration,
    pub time_to_first_token: Option<Duration>,
    pub outcome: Outcome,
    /// Set for the model calls of a PTC round: several records then share one request id.
    pub ptc: Option<PtcCall>,
}

/// Where a model call sits in a PTC round (ptc.md 16): each call is its own usage record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PtcCall {
    /// 1-based number of the model call within the round; keeps the records' keys apart.
    pub model_call: u32,
    /// The round's session, once one exists.
    pub container_id: Option<String>,
    /// The execution whose output this call follows (`srvtoolu_...`), if any.
    pub execution_id: Option<String>,
}

pub trait UsageSink: Send + Sync {
    /// Record without blocking the caller; failures are the sink's to retry and count.
    fn record(&self, record: UsageRecord);
}

/// Wraps the store's sink: every record also becomes metrics (tokens, latency, time to first
/// token) and one structured log line (never the prompt or the key, only ids and counts).
pub struct Metered {
    inner: std::sync::Arc<dyn UsageSink>,
}

impl Metered {
    pub fn new(inner: std::sync::Arc<dyn UsageSink>) -> Self {
        Metered { inner }
    }
}

impl UsageSink for Metered {
    fn record(&self, r: UsageRecord) {
        observe(&r);
        self.inner.record(r);
    }
}

/// Latency buckets (seconds) for the request and time-to-first-token histograms: streams with
/// long thinking run for minutes.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

fn observe(r: &UsageRecord) {
    let model = r.requested_model.clone();
    for (kind, count) in [
        ("input", r.usage.input_tokens),
        ("output", r.usage.output_tokens),
        ("cache_read", r.usage.cache_read_input_tokens),
        ("cache_write", r.usage.cache_creation_input_tokens),
    ] {
        metrics::counter!("translator_tokens_total", "model" => model.clone(), "kind" => kind)
            .increment(count);
    }
    metrics::histogram!("translator_request_duration_seconds",
        "model" => model.clone(),
        "api" => r.api,
        "stream" => if r.stream { "true" } else { "false" },
        "outcome" => r.outcome.label())
    .record(r.latency.as_secs_f64());
    if let Some(ttft) = r.time_to_first_token {
        metrics::histogram!("translator_time_to_first_token_seconds", "model" => model, "api" => r.api)
            .record(ttft.as_secs_f64());
    }
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
        cache_write_1h_tokens = r.cache_write_1h_tokens,
        latency_ms = r.latency.as_millis() as u64,
        ttft_ms = r.time_to_first_token.map(|d| d.as_millis() as u64),
        outcome = r.outcome.label(),
        ptc_model_call = r.ptc.as_ref().map(|p| p.model_call),
        container_id = r.ptc.as_ref().and_then(|p| p.container_id.as_deref()),
        execution_id = r.ptc.as_ref().and_then(|p| p.execution_id.as_deref()),
        "usage"
    );
}
