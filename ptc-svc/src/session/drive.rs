//! Drives one segment of an execution in its own task, so an execution keeps running (and its
//! outcome is kept for replay) when the gRPC caller goes away. Also closes sessions: failures,
//! expiry, explicit close and shutdown all end here, and the container is always removed.

use std::sync::Arc;

use tokio::sync::watch;

use super::execution::{BatchPolicy, ExecutionClock, SegmentEnd, run_segment};
use super::manager::{Sessions, record_of};
use super::{
    FailureCode, Finished, Outcome, OutcomeKind, Phase, Session, new_call_id, now_ms,
    with_truncation,
};
use crate::runner::protocol::{CallResult, HostMessage, PROTOCOL_VERSION};
use crate::sandbox::ExitReason;

pub enum Action {
    Start,
    /// (runner call number, is_error, content) for every call of the closed batch.
    Deliver(Vec<(u64, bool, String)>),
}

pub fn spawn(
    sessions: Arc<Sessions>,
    session: Arc<Session>,
    action: Action,
    outcome: watch::Sender<Option<Outcome>>,
) {
    tokio::spawn(async move {
        let result = drive(&sessions, &session, action).await;
        sessions.metrics.segment_ended(&result.kind);
        log_end(&session, &result);
        let _ = outcome.send(Some(result));
    });
}

async fn drive(sessions: &Sessions, session: &Arc<Session>, action: Action) -> Outcome {
    let config = &sessions.config;
    let mut conn_slot = session.conn.lock().await;
    let snapshot = {
        let record = record_of(session);
        record.execution.as_ref().map(|execution| {
            (
                ExecutionClock {
                    execution_id: execution.execution_id.clone(),
                    tool_names: execution.tool_names.clone(),
                    timeout: record.limits.execution_timeout,
                    used: execution.clock_used,
                    calls_made: execution.calls_made,
                    max_calls: u64::from(record.limits.max_calls_per_execution),
                },
                execution.code.clone(),
                record.limits,
                record.container_id.clone(),
            )
        })
    };
    let Some((mut clock, code, limits, container_id)) = snapshot else {
        drop(conn_slot);
        return fail(
            sessions,
            session,
            FailureCode::Unavailable,
            "no execution".into(),
            0,
        )
        .await;
    };
    let Some(conn) = conn_slot.as_mut() else {
        drop(conn_slot);
        return fail(
            sessions,
            session,
            FailureCode::Unavailable,
            "the sandbox is gone".into(),
            0,
        )
        .await;
    };
    let sent = match &action {
        Action::Start => {
            conn.send(&HostMessage::Execute {
                v: PROTOCOL_VERSION,
                execution_id: &clock.execution_id,
                code: &code,
                tools: &clock.tool_names,
                max_calls: limits.max_calls_per_execution,
                max_stdout_bytes: limits.max_stdout_bytes,
                max_stderr_bytes: limits.max_stderr_bytes,
            })
            .await
        }
        Action::Deliver(answers) => {
            let results = answers
                .iter()
                .map(|(seq, is_error, content)| CallResult {
                    seq: *seq,
                    ok: !is_error,
                    value: (!is_error).then_some(content.as_str()),
                    error: is_error.then_some(content.as_str()),
                })
                .collect();
            conn.send(&HostMessage::Results {
                v: PROTOCOL_VERSION,
                execution_id: &clock.execution_id,
                results,
            })
            .await
        }
    };
    let policy = BatchPolicy {
        idle: config.batch_idle,
        max_wait: config.batch_max_wait,
        max_calls: config.batch_max_calls as usize,
    };
    let end = match sent {
        Ok(()) => run_segment(conn, &mut clock, policy, &mut new_call_id).await,
        Err(error) => SegmentEnd::Violation(format!("cannot write to the runner: {error}")),
    };
    let engine_id = conn.engine_id.clone();
    let duration_ms = u64::try_from(clock.used.as_millis()).unwrap_or(u64::MAX);
    {
        let mut record = record_of(session);
        if let Some(execution) = record.execution.as_mut() {
            execution.clock_used = clock.used;
            execution.calls_made = clock.calls_made;
        }
    }
    let (code, detail) = match end {
        SegmentEnd::Paused(calls) => {
            return settle(sessions, session, OutcomeKind::Paused(calls), Phase::Paused);
        }
        SegmentEnd::Done(done) => {
            let truncated = done.stdout_dropped > 0 || done.stderr_dropped > 0;
            let finished = Finished {
                stdout: with_truncation(done.stdout, done.stdout_dropped),
                stderr: with_truncation(done.stderr, done.stderr_dropped),
                return_code: done.return_code,
                truncated,
                duration_ms,
                return_value: done.return_value,
            };
            return settle(
                sessions,
                session,
                OutcomeKind::Finished(finished),
                Phase::Idle,
            );
        }
        SegmentEnd::TimedOut => (
            FailureCode::ExecutionTimeExceeded,
            format!(
                "execution time limit of {:?} exceeded",
                limits.execution_timeout
            ),
        ),
        SegmentEnd::Exited => {
            let reason = sessions.sandbox.exit_reason(&engine_id).await;
            let detail = match reason {
                ExitReason::OutOfMemory => format!(
                    "out of memory (limit {} bytes)",
                    config.sandbox.memory_bytes
                ),
                ExitReason::Exited(code) => format!("the sandbox exited with status {code}"),
                ExitReason::Unknown(why) => format!("the sandbox stopped: {why}"),
            };
            (FailureCode::Unavailable, detail)
        }
        SegmentEnd::Violation(reason) => (
            FailureCode::Unavailable,
            format!("runner protocol violation: {reason}"),
        ),
    };
    tracing::warn!(container = %container_id, ?code, %detail, "execution failed; closing the session");
    drop(conn_slot);
    fail(sessions, session, code, detail, duration_ms).await
}

/// Sandbox time per ended execution (ptc.md 16), for operators beside the metric.
fn log_end(session: &Session, outcome: &Outcome) {
    let (result, duration_ms) = match &outcome.kind {
        OutcomeKind::Paused(_) => return,
        OutcomeKind::Finished(done) => ("finished", done.duration_ms),
        OutcomeKind::Failed { duration_ms, .. } => ("failed", *duration_ms),
    };
    let container = record_of(session).container_id.clone();
    tracing::info!(
        container = %container,
        execution_id = %outcome.execution_id,
        result,
        duration_ms,
        "execution ended"
    );
}

/// Records a paused or finished segment and returns its outcome.
fn settle(sessions: &Sessions, session: &Session, kind: OutcomeKind, phase: Phase) -> Outcome {
    let mut record = record_of(session);
    record.phase = phase;
    record.touch(
        now_ms(),
        sessions.config.session_idle,
        sessions.max_lifetime(),
    );
    let outcome = Outcome {
        execution_id: record
            .execution
            .as_ref()
            .map(|e| e.execution_id.clone())
            .unwrap_or_default(),
        kind: kind.clone(),
        expires_at_unix: record.expires_at_unix(),
        session_closed: false,
        replayed: false,
        round_claimed: false,
    };
    if let Some(execution) = record.execution.as_mut() {
        if let OutcomeKind::Paused(calls) = kind {
            execution.pending = calls;
        }
        execution.last_outcome = Some(outcome.clone());
    }
    outcome
}

/// A failed execution closes its session (ptc.md section 10); the outcome stays for replay.
async fn fail(
    sessions: &Sessions,
    session: &Arc<Session>,
    code: FailureCode,
    detail: String,
    duration_ms: u64,
) -> Outcome {
    let outcome = {
        let mut record = record_of(session);
        let outcome = Outcome {
            execution_id: record
                .execution
                .as_ref()
                .map(|e| e.execution_id.clone())
                .unwrap_or_default(),
            kind: OutcomeKind::Failed {
                code,
                detail,
                duration_ms,
            },
            expires_at_unix: record.expires_at_unix(),
            session_closed: true,
            replayed: false,
            round_claimed: false,
        };
        if let Some(execution) = record.execution.as_mut() {
            execution.pending.clear();
            execution.last_outcome = Some(outcome.clone());
        }
        outcome
    };
    close_session(sessions, session, "execution failed").await;
    outcome
}

/// Marks the session closed, asks the runner to exit and removes the container. Safe to call
/// while a segment runs: removing the container ends it (its outcome is then `unavailable`).
pub async fn close_session(sessions: &Sessions, session: &Arc<Session>, why: &str) {
    let (engine_id, container_id) = {
        let mut record = record_of(session);
        if record.phase == Phase::Closed {
            return;
        }
        record.phase = Phase::Closed;
        record.closed_at_ms = Some(now_ms());
        record.queue.clear();
        (record.engine_id.clone(), record.container_id.clone())
    };
    sessions.metrics.session_closed(why);
    // Idle sessions give their connection back at once; a running segment keeps it until the
    // container's removal ends its output.
    let idle_conn = session
        .conn
        .try_lock()
        .ok()
        .and_then(|mut slot| slot.take());
    if let Some(mut conn) = idle_conn {
        conn.shutdown().await;
    }
    if !engine_id.is_empty()
        && let Err(error) = sessions.sandbox.remove(&engine_id).await
    {
        tracing::warn!(container = %container_id, %error, "cannot remove the sandbox container");
    }
    tracing::info!(container = %container_id, reason = why, "session closed");
}
