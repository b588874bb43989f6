//! Conversions between the session domain and the `gateway.ptc.v1` wire types, and the one
//! mapping from [`SessionError`] to gRPC status codes (documented in ptc.proto).

use std::time::Duration;

use gateway_proto::ptc::v1 as pb;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::session::manager::SessionError;
use crate::session::{
    self, ExecutionRecord, FailureCode, Limits, Outcome, OutcomeKind, Phase, QueuedExecution,
    SessionRecord, ToolCall, rfc3339,
};

pub fn to_status(error: SessionError) -> Status {
    let message = error.to_string();
    let (code, lists): (Code, Vec<(&str, Vec<String>)>) = match error {
        SessionError::NotFound => (Code::NotFound, vec![]),
        SessionError::InvalidArgument(_) => (Code::InvalidArgument, vec![]),
        SessionError::ResultsMismatch {
            missing,
            duplicated,
            unknown,
            ..
        } => (
            Code::InvalidArgument,
            vec![
                ("x-ptc-missing", missing),
                ("x-ptc-duplicated", duplicated),
                ("x-ptc-unknown", unknown),
            ],
        ),
        SessionError::Busy | SessionError::WrongExecution(_) => (Code::FailedPrecondition, vec![]),
        SessionError::PendingCalls(pending) => {
            (Code::FailedPrecondition, vec![("x-ptc-pending", pending)])
        }
        SessionError::AlreadyExists => (Code::AlreadyExists, vec![]),
        SessionError::KeyLimit(_) => (Code::ResourceExhausted, vec![]),
        SessionError::Unavailable(_) => (
            Code::Unavailable,
            vec![("retry-after", vec!["5".to_owned()])],
        ),
        SessionError::Internal(_) => (Code::Internal, vec![]),
    };
    let mut status = Status::new(code, message);
    for (key, ids) in lists {
        if ids.is_empty() {
            continue;
        }
        if let Ok(value) = MetadataValue::try_from(ids.join(",")) {
            status.metadata_mut().insert(key, value);
        }
    }
    status
}

pub fn limits_from(limits: Option<pb::Limits>) -> Limits {
    let limits = limits.unwrap_or_default();
    Limits {
        execution_timeout: Duration::from_millis(limits.execution_timeout_ms),
        max_stdout_bytes: limits.max_stdout_bytes,
        max_stderr_bytes: limits.max_stderr_bytes,
        max_calls_per_execution: limits.max_calls_per_execution,
        memory_bytes: limits.memory_bytes,
        milli_cpus: limits.milli_cpus,
        pids: limits.pids,
    }
}

fn limits_to(limits: Limits) -> pb::Limits {
    pb::Limits {
        execution_timeout_ms: u64::try_from(limits.execution_timeout.as_millis())
            .unwrap_or(u64::MAX),
        max_stdout_bytes: limits.max_stdout_bytes,
        max_stderr_bytes: limits.max_stderr_bytes,
        max_calls_per_execution: limits.max_calls_per_execution,
        memory_bytes: limits.memory_bytes,
        milli_cpus: limits.milli_cpus,
        pids: limits.pids,
    }
}

pub fn queued_from(queued: pb::QueuedExecution) -> QueuedExecution {
    QueuedExecution {
        execution_id: queued.execution_id,
        code: queued.code,
        tool_names: queued.tool_names,
    }
}

fn queued_to(queued: &QueuedExecution) -> pb::QueuedExecution {
    pb::QueuedExecution {
        execution_id: queued.execution_id.clone(),
        code: queued.code.clone(),
        tool_names: queued.tool_names.clone(),
    }
}

fn call_to(call: &ToolCall) -> pb::ToolCall {
    pb::ToolCall {
        id: call.id.clone(),
        tool: call.tool.clone(),
        arguments_json: call.arguments_json.clone(),
    }
}

pub fn outcome_to(outcome: &Outcome) -> pb::Outcome {
    let result = match &outcome.kind {
        OutcomeKind::Paused(calls) => pb::outcome::Result::Paused(pb::Paused {
            calls: calls.iter().map(call_to).collect(),
        }),
        OutcomeKind::Finished(finished) => pb::outcome::Result::Finished(pb::Finished {
            stdout: finished.stdout.clone(),
            stderr: finished.stderr.clone(),
            return_code: finished.return_code,
            truncated: finished.truncated,
            duration_ms: finished.duration_ms,
            return_value: finished.return_value.clone(),
        }),
        OutcomeKind::Failed {
            code,
            detail,
            duration_ms,
        } => pb::outcome::Result::Failed(pb::Failed {
            code: match code {
                FailureCode::ExecutionTimeExceeded => pb::FailureCode::ExecutionTimeExceeded,
                FailureCode::Unavailable => pb::FailureCode::Unavailable,
            } as i32,
            detail: detail.clone(),
            duration_ms: *duration_ms,
        }),
    };
    pb::Outcome {
        execution_id: outcome.execution_id.clone(),
        result: Some(result),
        expires_at: rfc3339(outcome.expires_at_unix),
        expires_at_unix: outcome.expires_at_unix,
        session_closed: outcome.session_closed,
        replayed: outcome.replayed,
        round_claimed: outcome.round_claimed,
    }
}

fn execution_to(execution: &ExecutionRecord) -> pb::Execution {
    pb::Execution {
        execution_id: execution.execution_id.clone(),
        code: execution.code.clone(),
        tool_names: execution.tool_names.clone(),
        clock_used_ms: u64::try_from(execution.clock_used.as_millis()).unwrap_or(u64::MAX),
        pending: execution.pending.iter().map(call_to).collect(),
        last_outcome: execution.last_outcome.as_ref().map(outcome_to),
        calls_made: u32::try_from(execution.calls_made).unwrap_or(u32::MAX),
    }
}

pub fn session_to(record: &SessionRecord, replica_id: &str) -> pb::Session {
    let state = match record.phase {
        Phase::Idle => pb::SessionState::Idle,
        Phase::Running | Phase::Starting => pb::SessionState::Running,
        Phase::Paused => pb::SessionState::Paused,
        Phase::Closed => pb::SessionState::Unspecified,
    };
    let expires_at_unix = record.expires_at_unix();
    pb::Session {
        container_id: record.container_id.clone(),
        key_id: record.key_id.clone(),
        caller_type: record.caller_type.clone(),
        code_tool_name: record.code_tool_name.clone(),
        state: state as i32,
        execution: record.execution.as_ref().map(execution_to),
        queue: record.queue.iter().map(queued_to).collect(),
        last_round: record.last_round.as_ref().map(|round| pb::RoundRef {
            tool_use_ids: round.tool_use_ids.clone(),
            stored_at_unix: round.stored_at_unix,
        }),
        expires_at: rfc3339(expires_at_unix),
        expires_at_unix,
        created_at_unix: record.created_at_ms / 1000,
        last_activity_unix: record.last_activity_ms / 1000,
        replica_id: replica_id.to_owned(),
        runner_version: record.runner_version.clone(),
        engine_container_id: record.engine_id.clone(),
        limits: Some(limits_to(record.limits)),
    }
}

pub fn now_unix() -> i64 {
    session::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_documented_codes_with_id_lists() {
        let status = to_status(SessionError::ResultsMismatch {
            message: "missing results for: a, b".into(),
            missing: vec!["a".into(), "b".into()],
            duplicated: vec![],
            unknown: vec!["c".into()],
        });
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.metadata().get("x-ptc-missing").unwrap(), "a,b");
        assert_eq!(status.metadata().get("x-ptc-unknown").unwrap(), "c");
        assert!(status.metadata().get("x-ptc-duplicated").is_none());
        assert_eq!(to_status(SessionError::NotFound).code(), Code::NotFound);
        assert_eq!(
            to_status(SessionError::KeyLimit(8)).code(),
            Code::ResourceExhausted
        );
        assert_eq!(
            to_status(SessionError::Unavailable("x".into())).code(),
            Code::Unavailable
        );
        let pending = to_status(SessionError::PendingCalls(vec!["toolu_ptc_1".into()]));
        assert_eq!(pending.code(), Code::FailedPrecondition);
        assert_eq!(
            pending.metadata().get("x-ptc-pending").unwrap(),
            "toolu_ptc_1"
        );
    }
}
