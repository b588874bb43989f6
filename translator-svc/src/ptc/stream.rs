//! The async shell of a streaming PTC round (ptc.md section 7): drives the round future, feeds
//! what it reports to the `LiveRound` machine, pings through silence (model calls, code runs, the
//! gaps between them), and ends with `message_delta`/`message_stop` or an `error` event. Failures
//! before the commit stay plain HTTP errors. Dropping the body (client gone) drops a new round
//! (the inner Bedrock stream is cancelled and metered by the relay, the model calls the round
//! finished are charged when its `Round` is dropped, an execution in ptc-svc runs on); a
//! continuation round runs on in its own task and is stored for the client's retry.

use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::sleep_until;

use super::live::{Emit, LiveRound};
use super::{Answer, Failed, Prepared, Ptc, detached, serve_round};
use crate::anthropic::stream::SseEvent;
use crate::error::ApiError;
use crate::relay::{CallContext, Outcome, Relay, SseBody, SseChunk};

/// Serves a streaming round: returns once the round committed (or ended or failed before).
pub async fn serve(
    ptc: std::sync::Arc<Ptc>,
    relay: Relay,
    call: CallContext,
    prepared: Prepared,
) -> Result<Outcome, ApiError> {
    let ping_interval = relay.sse_ping_interval();
    let request_id = call.request_id.clone();
    let mut live = LiveRound::new(
        prepared.message_id.clone(),
        prepared.base.get("model").cloned().unwrap_or(Value::Null),
        &prepared.tools.code_tool_name,
        &prepared.tools.client_code_name,
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<Emit>();
    // An error answered before the commit carries no usage for Envoy: charged from here.
    let charge_to = (relay.clone(), call.clone());
    let mut round: BoxFuture<'static, Result<Answer, Failed>> = if prepared.is_continuation() {
        Box::pin(detached(ptc, relay, call, prepared, Some(tx)))
    } else {
        Box::pin(async move { serve_round(&ptc, &relay, call, prepared, Some(tx)).await })
    };

    // Before the commit: validation, session checks, the first model call's start.
    let mut out: Vec<SseEvent> = Vec::new();
    while !live.committed() {
        tokio::select! {
            emit = rx.recv() => {
                if let Some(emit) = emit {
                    out.extend(live.on_emit(emit));
                }
            }
            result = &mut round => {
                // Ended without a commit: a replayed round, or an error for the HTTP status.
                let answer = result.map_err(|failed| failed.charge(&charge_to.0, &charge_to.1))?;
                let events = live.finish(&answer.message);
                let mut chunks: Vec<SseChunk> =
                    events.iter().map(|e| SseChunk::Event(e.encode())).collect();
                chunks.push(SseChunk::End(answer.spent));
                return Ok(Outcome::Stream(Box::pin(futures::stream::iter(chunks))));
            }
        }
    }

    let body = async_stream::stream! {
        let mut last_write = Instant::now();
        let result = loop {
            for event in out.drain(..) {
                last_write = Instant::now();
                yield SseChunk::Event(event.encode());
            }
            tokio::select! {
                emit = rx.recv() => {
                    if let Some(emit) = emit {
                        out = live.on_emit(emit);
                    }
                }
                result = &mut round => break result,
                _ = sleep_until((last_write + ping_interval).into()) => {
                    out = vec![SseEvent::ping()];
                }
            }
        };
        // The round is done, so its sender is gone: whatever it reported last is queued here.
        while let Ok(emit) = rx.try_recv() {
            out.extend(live.on_emit(emit));
        }
        // The trailer charges what this request spent: nothing for a replay, the model calls
        // that ran for a failed round (ptc.md 16).
        let usage = match &result {
            Ok(answer) => answer.spent,
            Err(failed) => failed.spent,
        };
        match result {
            Ok(answer) => out.extend(live.finish(&answer.message)),
            Err(Failed { error, .. }) => {
                tracing::warn!(request_id = %request_id, error_type = error.error_type.as_str(), message = %error.message, "PTC round failed after the stream was committed");
                out.push(SseEvent::error(&error, &request_id));
            }
        }
        for event in out {
            yield SseChunk::Event(event.encode());
        }
        yield SseChunk::End(usage);
    };
    Ok(Outcome::Stream(Box::pin(body) as SseBody))
}
