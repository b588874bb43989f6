//! Sessions: one container each, owned by this replica. The record is what travels with the
//! session (ptc.md section 8), so any translator replica can validate and resume a round from it.
//! `manager` holds the table and the operations, `drive` runs segments in the background (an
//! execution continues when its caller goes away), `execution` owns batching and the clock.

pub mod drive;
pub mod execution;
pub mod lifecycle;
pub mod manager;
pub mod run;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::runner::conn::RunnerConn;

pub use manager::Sessions;

/// A tool call the code made, by client id and runner call number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// `toolu_ptc_` + 24 lowercase hex.
    pub id: String,
    pub seq: u64,
    pub tool: String,
    pub arguments_json: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    ExecutionTimeExceeded,
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub stdout: String,
    pub stderr: String,
    pub return_code: i32,
    pub truncated: bool,
    pub duration_ms: u64,
    pub return_value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeKind {
    Paused(Vec<ToolCall>),
    Finished(Finished),
    Failed {
        code: FailureCode,
        detail: String,
        duration_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub execution_id: String,
    pub kind: OutcomeKind,
    pub expires_at_unix: i64,
    pub session_closed: bool,
    pub replayed: bool,
    /// DeliverResults: the caller now serves the round the delivery opened (see `OpenRound`).
    pub round_claimed: bool,
}

/// Limits in force for one session (the replica's, possibly tightened by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub execution_timeout: Duration,
    pub max_stdout_bytes: u32,
    pub max_stderr_bytes: u32,
    pub max_calls_per_execution: u32,
    /// The container's resources.
    pub memory_bytes: u64,
    pub milli_cpus: u32,
    pub pids: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedExecution {
    pub execution_id: String,
    pub code: String,
    pub tool_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRecord {
    pub execution_id: String,
    pub code: String,
    pub tool_names: Vec<String>,
    pub clock_used: Duration,
    pub calls_made: u64,
    /// The closed batch waiting for results (empty unless paused).
    pub pending: Vec<ToolCall>,
    pub last_outcome: Option<Outcome>,
    /// Sorted ids of the latest delivery, to recognise a repeated DeliverResults.
    pub last_delivery: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRound {
    /// Sorted, so a retry in another order matches.
    pub tool_use_ids: Vec<String>,
    pub response: Vec<u8>,
    pub content_type: String,
    pub stored_at_unix: i64,
}

/// The round a delivery of results opened (ptc.md 5.6), until its response is stored. While a
/// request serves it (`claimed`), identical retries wait for the stored response; once released
/// (client gone, model call failed), a retry re-delivers: it gets the delivery's outcome (the
/// results reach the code once) and finishes the round itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRound {
    pub execution_id: String,
    /// Sorted.
    pub tool_use_ids: Vec<String>,
    pub claimed: bool,
    /// Who serves it (`round_owner` of the delivery); empty when anonymous.
    pub owner: String,
    /// When the owner's claim runs out unless renewed (unix ms); `None`: no lease.
    pub lease_until_ms: Option<i64>,
}

impl OpenRound {
    /// A request still serves the round. A lease, not the owner's connection, decides: the owner
    /// may be between calls (a model call on Bedrock can last minutes), and a crashed translator
    /// sends no release, so a claim whose owner stopped renewing counts as released and an
    /// identical retry takes the round over within one lease instead of waiting out the round.
    pub fn held(&self, now_ms: i64) -> bool {
        self.claimed && self.lease_until_ms.is_none_or(|until| now_ms < until)
    }

    /// Claims the round for `owner` for `lease` from `now_ms` (`None`: until stored or released).
    pub fn claim(&mut self, owner: &str, lease: Option<Duration>, now_ms: i64) {
        self.claimed = true;
        owner.clone_into(&mut self.owner);
        self.lease_until_ms = lease.map(|lease| now_ms + millis(lease));
    }
}

/// What GetRound found for a set of ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundLookup {
    Found(StoredRound),
    /// A request still serves the round (the wait ran out).
    InProgress,
    /// Released and still resumable by re-delivering the same results.
    Resumable,
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The container is being created.
    Starting,
    Idle,
    Running,
    Paused,
    /// Container gone; the record stays for replays until PTC_REPLAY_TTL_S after `closed_at`.
    Closed,
}

/// What the running segment (if any) answers; repeats of the same call wait on the same one.
#[derive(Debug, Clone)]
pub struct SegmentSlot {
    pub key: SegmentKey,
    pub outcome: watch::Receiver<Option<Outcome>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentKey {
    Start(String),
    Deliver(String, Vec<String>),
}

#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub container_id: String,
    pub key_id: String,
    pub caller_type: String,
    pub code_tool_name: String,
    pub limits: Limits,
    pub phase: Phase,
    pub execution: Option<ExecutionRecord>,
    pub queue: Vec<QueuedExecution>,
    pub last_round: Option<StoredRound>,
    pub open_round: Option<OpenRound>,
    pub created_at_ms: i64,
    pub last_activity_ms: i64,
    pub expires_at_ms: i64,
    pub closed_at_ms: Option<i64>,
    pub engine_id: String,
    pub runner_version: String,
    pub segment: Option<SegmentSlot>,
}

impl SessionRecord {
    /// Activity refreshes the expiry: last activity + idle, capped at creation + max lifetime.
    pub fn touch(&mut self, now_ms: i64, idle: Duration, max_lifetime: Duration) {
        self.last_activity_ms = now_ms;
        self.expires_at_ms = (now_ms + millis(idle)).min(self.created_at_ms + millis(max_lifetime));
    }

    /// Expired sessions are treated as gone. A running execution is bounded by its own timeout,
    /// so only the hard lifetime cap applies to it.
    pub fn expired(&self, now_ms: i64, max_lifetime: Duration) -> bool {
        let hard_end = self.created_at_ms + millis(max_lifetime);
        now_ms >= hard_end || (self.phase != Phase::Running && now_ms >= self.expires_at_ms)
    }

    pub fn is_live(&self, now_ms: i64, max_lifetime: Duration) -> bool {
        self.phase != Phase::Closed && !self.expired(now_ms, max_lifetime)
    }

    /// Expiry in whole seconds (RFC 3339 has second precision), rounded up.
    pub fn expires_at_unix(&self) -> i64 {
        (self.expires_at_ms + 999).div_euclid(1000)
    }
}

/// One session: its record, and its runner connection (held by whoever drives a segment).
pub struct Session {
    pub record: std::sync::Mutex<SessionRecord>,
    pub conn: tokio::sync::Mutex<Option<RunnerConn>>,
    /// Bumped whenever a round is stored, for GetRound's wait.
    pub rounds: watch::Sender<u64>,
}

pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// `toolu_ptc_` + 24 lowercase hex (96 random bits).
pub fn new_call_id() -> String {
    format!("toolu_ptc_{}", hex::encode(rand::random::<[u8; 12]>()))
}

/// RFC 3339 UTC with `Z`, second precision.
pub fn rfc3339(unix_seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|at| {
            at.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// Appends the spec's truncation marker when the runner dropped bytes.
pub fn with_truncation(text: String, dropped: u64) -> String {
    if dropped == 0 {
        text
    } else {
        format!("{text}…[truncated {dropped} bytes]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_times_have_the_spec_shape() {
        let id = new_call_id();
        assert_eq!(id.len(), "toolu_ptc_".len() + 24);
        assert!(
            id["toolu_ptc_".len()..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(new_call_id(), id);
        assert_eq!(rfc3339(1_795_626_245), "2026-11-25T17:04:05Z");
        assert_eq!(with_truncation("ab".into(), 0), "ab");
        assert_eq!(with_truncation("ab".into(), 7), "ab…[truncated 7 bytes]");
    }
}
