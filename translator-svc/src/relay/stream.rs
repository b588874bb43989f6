//! The async shell around the synchronous stream state machines: commit point, keepalive pings,
//! upstream idle timeout, the wait for Converse `metadata`, the final `error` event, and usage
//! metering that survives a client disconnect (dropping the body drops the upstream call).

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::sleep_until;

use super::{Outcome, Plan, Relay, Served, SseChunk};
use crate::anthropic::stream::SseEvent;
use crate::bedrock::EventStream;
use crate::convert::response::{
    OutputEstimate, ResponseOptions, TokenUsage, converse_service_tier, upstream_cache_write_1h,
};
use crate::convert::stream::{ConverseStreamState, InvokeStreamState, StreamEnd};
use crate::error::ApiError;
use crate::ratelimit::{TokenCharge, TokenCharger};
use crate::usage::{Outcome as UsageOutcome, UsageSink};

/// One of the two state machines, behind the same small surface.
pub enum Machine {
    Invoke(Box<InvokeStreamState>),
    Converse(Box<ConverseStreamState>, Duration),
}

impl Machine {
    pub fn invoke(opts: ResponseOptions) -> Self {
        Machine::Invoke(Box::new(InvokeStreamState::new(opts)))
    }

    pub fn converse(opts: ResponseOptions, metadata_wait: Duration) -> Self {
        Machine::Converse(Box::new(ConverseStreamState::new(opts)), metadata_wait)
    }

    fn api(&self) -> &'static str {
        match self {
            Machine::Invoke(_) => "invoke",
            Machine::Converse(..) => "converse",
        }
    }

    fn on_upstream(&mut self, event: Value) -> Vec<SseEvent> {
        match self {
            Machine::Invoke(state) => state.on_chunk(event),
            Machine::Converse(state, _) => match serde_json::from_value(event) {
                Ok(event) => state.on_event(event),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an upstream event that does not parse");
                    Vec::new()
                }
            },
        }
    }

    /// While Converse `metadata` is awaited after `messageStop`: how long to wait for it.
    fn metadata_wait(&self) -> Option<Duration> {
        match self {
            Machine::Converse(state, wait) if state.awaiting_metadata() => Some(*wait),
            _ => None,
        }
    }

    fn usage(&self) -> TokenUsage {
        match self {
            Machine::Invoke(state) => state.usage(),
            Machine::Converse(state, _) => state.usage(),
        }
    }

    fn finish(self, end: StreamEnd) -> Vec<SseEvent> {
        match self {
            Machine::Invoke(state) => state.finish(end),
            Machine::Converse(state, _) => state.finish(end),
        }
    }
}

/// Records usage exactly once: at the end of the stream, or when the client goes away.
struct Meter {
    plan: Plan,
    api: &'static str,
    sink: std::sync::Arc<dyn UsageSink>,
    usage: TokenUsage,
    first_token: Option<Duration>,
    outcome: Option<UsageOutcome>,
    served: Served,
    /// Output streamed to the client so far (Bedrock reports output only at the end).
    streamed: OutputEstimate,
    charger: Option<TokenCharger>,
}

impl Meter {
    /// The client went away before the end: the Bedrock call is cancelled, but what it consumed
    /// until then is billed. Usage reported so far is the floor: the input known at
    /// `message_start` (Invoke) or the local estimate (Converse reports usage only at the end),
    /// plus the output streamed so far. Envoy cannot charge it (no trailer on a reset stream), so
    /// it is charged to the key's TPM limit here, counted as the trailer counts it.
    fn abandoned(&mut self) {
        let usage = &mut self.usage;
        usage.output_tokens = usage.output_tokens.max(self.streamed.tokens());
        let reported_input =
            usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens;
        if reported_input == 0 {
            usage.input_tokens = self.served.input_estimate;
        }
        let tokens = usage.input_tokens + usage.cache_creation_input_tokens + usage.output_tokens;
        let call = &self.plan.call;
        if let (Some(charger), Some(key_id), Some(tpm)) = (&self.charger, &call.key_id, call.tpm) {
            charger.charge(TokenCharge {
                request_id: call.request_id.clone(),
                key_id: key_id.clone(),
                tpm,
                tokens,
            });
        }
    }

    /// The billing facts some upstream events carry: cache writes per TTL (Invoke `message_start`,
    /// Converse `metadata`) and the tier Bedrock ran (Converse `metadata`).
    fn observe_upstream(&mut self, event: &Value) {
        if let Some(one_hour) = upstream_cache_write_1h(event) {
            self.served.cache_write_1h = Some(one_hour);
        }
        if let Some(tier) = converse_service_tier(event) {
            self.served.reported_tier = Some(tier);
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .take()
            .unwrap_or(UsageOutcome::ClientDisconnected);
        if outcome == UsageOutcome::ClientDisconnected {
            metrics::counter!("translator_client_disconnects_total").increment(1);
            self.abandoned();
        }
        self.served.observe();
        let record = self.plan.usage_record(
            self.api,
            self.usage,
            outcome,
            self.first_token,
            &self.served,
        );
        self.sink.record(record);
    }
}

/// Wait for the first upstream event (the commit point, spec 13.2), then hand back the SSE body.
pub(super) async fn start(
    relay: &Relay,
    plan: Plan,
    mut machine: Machine,
    mut upstream: EventStream<Value>,
    permit: OwnedSemaphorePermit,
    served: Served,
) -> Result<Outcome, ApiError> {
    let requested_model = plan.route.requested_model.clone();
    let first = match upstream.next().await {
        Some(Ok(event)) => event,
        Some(Err(e)) => return Err(relay.fail(&plan, machine.api(), e)),
        None => return Err(ApiError::api("upstream stream ended before any event")),
    };
    let ping_interval = relay.config.sse_ping_interval;
    let idle_timeout = relay.config.upstream_idle_timeout;
    let request_id = plan.call.request_id.clone();
    let mut meter = Meter {
        api: machine.api(),
        sink: relay.usage.clone(),
        usage: TokenUsage::default(),
        first_token: None,
        outcome: None,
        served,
        streamed: OutputEstimate::default(),
        charger: relay.charger.clone(),
        plan,
    };
    meter.observe_upstream(&first);

    let body = async_stream::stream! {
        // Held until the stream ends so the concurrency cap counts live streams.
        let _permit = permit;
        let mut last_write = Instant::now();
        let mut last_upstream = Instant::now();
        let mut out: Vec<SseEvent> = machine.on_upstream(first);
        let mut stop_seen_at: Option<Instant> = None;
        let end = loop {
            for event in out.drain(..) {
                if meter.first_token.is_none() && event.event == "content_block_delta" {
                    meter.first_token = Some(meter.plan.started.elapsed());
                }
                meter.streamed.on_event(&event);
                last_write = Instant::now();
                yield SseChunk::Event(event.encode());
            }
            meter.usage = machine.usage();
            let metadata_deadline = machine
                .metadata_wait()
                .map(|wait| *stop_seen_at.get_or_insert_with(Instant::now) + wait);
            let ping_at = last_write + ping_interval;
            let idle_at = last_upstream + idle_timeout;
            tokio::select! {
                next = upstream.next() => match next {
                    Some(Ok(event)) => {
                        last_upstream = Instant::now();
                        meter.observe_upstream(&event);
                        out = machine.on_upstream(event);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(request_id = %request_id, kind = ?e.kind, message = %e.message, "bedrock stream failed after commit");
                        break StreamEnd::Error(e.to_stream_api_error());
                    }
                    None => break StreamEnd::Completed,
                },
                _ = sleep_until(ping_at.into()) => {
                    out = vec![SseEvent::ping()];
                }
                _ = sleep_until(idle_at.into()) => {
                    break StreamEnd::Error(ApiError::api("upstream idle timeout"));
                }
                _ = sleep_until(metadata_deadline.unwrap_or(idle_at).into()), if metadata_deadline.is_some() => {
                    break StreamEnd::MetadataTimeout;
                }
            }
        };
        let outcome = match &end {
            StreamEnd::Error(e) => UsageOutcome::Error(e.metric_label()),
            _ => UsageOutcome::Ok,
        };
        meter.usage = machine.usage();
        for event in machine.finish(end) {
            yield SseChunk::Event(event.encode());
        }
        // Before the last yield: the body ends at the trailers, and hyper never polls this
        // stream again, so code after that yield does not run.
        meter.outcome = Some(outcome);
        yield SseChunk::End(meter.usage);
        drop(meter);
    };
    tracing::debug!(model = %requested_model, "stream committed");
    let span = tracing::info_span!("stream");
    Ok(Outcome::Stream(
        Box::pin(in_span(span, body)) as super::SseBody
    ))
}

/// The stream polled inside `span` (a child of the request's): its lines and the usage record
/// written when it ends belong to the request, and the span lasts as long as the stream.
fn in_span<S: futures::Stream + Send + 'static>(
    span: tracing::Span,
    stream: S,
) -> impl futures::Stream<Item = S::Item> + Send + 'static {
    let mut stream = Box::pin(stream);
    futures::stream::poll_fn(move |cx| {
        let _entered = span.enter();
        stream.as_mut().poll_next(cx)
    })
}
