//! One run segment of an execution: from `execute` (or delivered results) until the code pauses
//! on a closed batch of tool calls, finishes, or fails. Owns the batching rules (ptc.md 6.4) and
//! the execution clock, which runs only inside segments (time waiting for the client never counts).

use std::time::Duration;

use tokio::time::Instant;

use super::ToolCall;
use crate::runner::conn::{RunnerConn, RunnerEvent};
use crate::runner::protocol::{Done, RunnerMessage};

/// When a batch of pending calls closes (ptc.md 6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// No new call for this long after the latest one.
    pub idle: Duration,
    /// This long after the first call of the batch.
    pub max_wait: Duration,
    /// This many calls pending.
    pub max_calls: usize,
}

/// The running state of an execution that a segment reads and advances.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionClock {
    pub execution_id: String,
    pub tool_names: Vec<String>,
    /// Running-time budget of the whole execution.
    pub timeout: Duration,
    /// Running time used by earlier segments (and this one, once it ends).
    pub used: Duration,
    /// Tool calls made so far (the runner numbers them 1, 2, ...).
    pub calls_made: u64,
    pub max_calls: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SegmentEnd {
    /// The code waits for these calls (in issue order).
    Paused(Vec<ToolCall>),
    Done(Done),
    TimedOut,
    /// The runner's output ended: the container exited (OOM, crash).
    Exited,
    /// A protocol violation: the container must be destroyed.
    Violation(String),
}

/// Reads runner events until the segment ends. The caller has already sent `execute` or
/// `results`; `clock.used` and `clock.calls_made` are updated in place.
pub async fn run_segment(
    conn: &mut RunnerConn,
    clock: &mut ExecutionClock,
    policy: BatchPolicy,
    new_call_id: &mut (dyn FnMut() -> String + Send),
) -> SegmentEnd {
    let started = Instant::now();
    let deadline = started + clock.timeout.saturating_sub(clock.used);
    let mut batch: Vec<ToolCall> = Vec::new();
    let mut first_call_at: Option<Instant> = None;
    let mut last_call_at = started;
    let end = loop {
        let batch_close =
            first_call_at.map(|first| (first + policy.max_wait).min(last_call_at + policy.idle));
        let wake = batch_close.map_or(deadline, |close| close.min(deadline));
        let event = tokio::select! {
            event = conn.next() => event,
            () = tokio::time::sleep_until(wake) => {
                if Instant::now() >= deadline {
                    break SegmentEnd::TimedOut;
                }
                break SegmentEnd::Paused(std::mem::take(&mut batch));
            }
        };
        match event {
            RunnerEvent::Message(RunnerMessage::ToolCall {
                execution_id,
                seq,
                tool,
                arguments,
                ..
            }) => {
                if execution_id != clock.execution_id {
                    break SegmentEnd::Violation(format!("tool call for execution {execution_id}"));
                }
                if seq != clock.calls_made + 1 || seq > clock.max_calls {
                    break SegmentEnd::Violation(format!("unexpected call number {seq}"));
                }
                if !clock.tool_names.contains(&tool) {
                    break SegmentEnd::Violation(format!("call of unexposed tool {tool:?}"));
                }
                clock.calls_made = seq;
                let now = Instant::now();
                first_call_at.get_or_insert(now);
                last_call_at = now;
                batch.push(ToolCall {
                    id: new_call_id(),
                    seq,
                    tool,
                    arguments_json: serde_json::Value::Object(arguments).to_string(),
                });
                if batch.len() >= policy.max_calls {
                    break SegmentEnd::Paused(std::mem::take(&mut batch));
                }
            }
            RunnerEvent::Message(RunnerMessage::Blocked {
                execution_id,
                calls,
                ..
            }) => {
                // A report that crossed our own batch timer describes an older state: ignore it.
                if execution_id == clock.execution_id
                    && !batch.is_empty()
                    && calls == clock.calls_made
                {
                    break SegmentEnd::Paused(std::mem::take(&mut batch));
                }
            }
            RunnerEvent::Message(RunnerMessage::Done(done)) => {
                if done.execution_id != clock.execution_id {
                    break SegmentEnd::Violation(format!(
                        "done for execution {}",
                        done.execution_id
                    ));
                }
                break SegmentEnd::Done(done);
            }
            RunnerEvent::Message(RunnerMessage::Ready { .. }) => {
                break SegmentEnd::Violation("a second ready message".into());
            }
            RunnerEvent::Violation(reason) => break SegmentEnd::Violation(reason),
            RunnerEvent::Closed => break SegmentEnd::Exited,
        }
    };
    clock.used = match end {
        SegmentEnd::TimedOut => clock.timeout,
        _ => (clock.used + started.elapsed()).min(clock.timeout),
    };
    end
}

#[cfg(test)]
#[path = "execution_tests.rs"]
mod tests;
