//! `Timed`: wraps any `Bedrock` and records every call as metrics: its latency by operation and
//! outcome, and each failure by exception (also exceptions that arrive mid-stream). Changes no
//! request, response or error; the relay never has to remember to count.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::future::BoxFuture;

use super::error::{BedrockError, ExceptionKind};
use super::{Bedrock, ConverseCall, EventStream, InvokeCall, InvokeOutput, InvokeStream};

/// Call latency histogram: until Bedrock answered (for streams: until the response headers; the
/// first token is `translator_time_to_first_token_seconds`).
pub const CALL_DURATION: &str = "translator_bedrock_call_duration_seconds";
/// Failed calls and mid-stream exceptions, by operation and exception.
pub const ERRORS: &str = "translator_bedrock_errors_total";

/// A bounded label for an exception: an unknown code from Bedrock must not mint new series.
pub fn exception_label(kind: &ExceptionKind) -> &'static str {
    match kind {
        ExceptionKind::Validation => "ValidationException",
        ExceptionKind::AccessDenied => "AccessDeniedException",
        ExceptionKind::ResourceNotFound => "ResourceNotFoundException",
        ExceptionKind::Throttling => "ThrottlingException",
        ExceptionKind::ServiceQuotaExceeded => "ServiceQuotaExceededException",
        ExceptionKind::ModelNotReady => "ModelNotReadyException",
        ExceptionKind::ServiceUnavailable => "ServiceUnavailableException",
        ExceptionKind::ModelTimeout => "ModelTimeoutException",
        ExceptionKind::ModelError => "ModelErrorException",
        ExceptionKind::ModelStreamError => "ModelStreamErrorException",
        ExceptionKind::InternalServer => "InternalServerException",
        ExceptionKind::Conflict => "ConflictException",
        ExceptionKind::Transport => "transport",
        ExceptionKind::Timeout => "timeout",
        ExceptionKind::Decode => "decode",
        ExceptionKind::Unknown(_) => "unknown",
    }
}

pub struct Timed {
    inner: Arc<dyn Bedrock>,
}

impl Timed {
    pub fn new(inner: Arc<dyn Bedrock>) -> Self {
        Timed { inner }
    }
}

fn count_error(operation: &'static str, error: &BedrockError) {
    metrics::counter!(ERRORS, "operation" => operation, "exception" => exception_label(&error.kind))
        .increment(1);
}

/// Records one finished call (its outcome is `ok` or the exception label).
fn observe<T>(operation: &'static str, started: Instant, result: &Result<T, BedrockError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => {
            count_error(operation, e);
            exception_label(&e.kind)
        }
    };
    metrics::histogram!(CALL_DURATION, "operation" => operation, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
}

/// Counts exceptions that end a stream after it started.
fn watch_stream<T: Send + 'static>(
    operation: &'static str,
    events: EventStream<T>,
) -> EventStream<T> {
    Box::pin(events.inspect(move |item| {
        if let Err(e) = item {
            count_error(operation, e);
        }
    }))
}

async fn timed<T>(
    operation: &'static str,
    call: impl std::future::Future<Output = Result<T, BedrockError>>,
) -> Result<T, BedrockError> {
    let started = Instant::now();
    let result = call.await;
    observe(operation, started, &result);
    result
}

impl Bedrock for Timed {
    fn invoke(&self, call: InvokeCall) -> BoxFuture<'_, Result<InvokeOutput, BedrockError>> {
        Box::pin(timed("invoke", self.inner.invoke(call)))
    }

    fn invoke_stream(&self, call: InvokeCall) -> BoxFuture<'_, Result<InvokeStream, BedrockError>> {
        Box::pin(async move {
            let stream = timed("invoke_stream", self.inner.invoke_stream(call)).await?;
            Ok(InvokeStream {
                events: watch_stream("invoke_stream", stream.events),
                service_tier: stream.service_tier,
            })
        })
    }

    fn converse(
        &self,
        call: ConverseCall,
    ) -> BoxFuture<'_, Result<serde_json::Value, BedrockError>> {
        Box::pin(timed("converse", self.inner.converse(call)))
    }

    fn converse_stream(
        &self,
        call: ConverseCall,
    ) -> BoxFuture<'_, Result<EventStream<serde_json::Value>, BedrockError>> {
        Box::pin(async move {
            let events = timed("converse_stream", self.inner.converse_stream(call)).await?;
            Ok(watch_stream("converse_stream", events))
        })
    }

    fn count_tokens(
        &self,
        model_id: String,
        input: serde_json::Value,
    ) -> BoxFuture<'_, Result<u64, BedrockError>> {
        Box::pin(timed(
            "count_tokens",
            self.inner.count_tokens(model_id, input),
        ))
    }
}
