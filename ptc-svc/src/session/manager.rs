//! The session table and its operations (the use cases behind the gRPC methods): create, execute,
//! deliver results, inspect, store and fetch rounds, close, expire, drain.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::drive::{self, Action};
use super::{
    ExecutionRecord, Limits, Outcome, Phase, QueuedExecution, SegmentKey, SegmentSlot, Session,
    SessionRecord, StoredRound, millis, now_ms,
};
use crate::config::Config;
use crate::runner::conn::RunnerConn;
use crate::sandbox::{ContainerSpec, Sandbox};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("container not found or expired")]
    NotFound,
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{message}")]
    ResultsMismatch {
        message: String,
        missing: Vec<String>,
        duplicated: Vec<String>,
        unknown: Vec<String>,
    },
    #[error("container is busy")]
    Busy,
    #[error("container has pending tool calls: {}", .0.join(", "))]
    PendingCalls(Vec<String>),
    #[error("{0}")]
    WrongExecution(String),
    #[error("container id exists with another key")]
    AlreadyExists,
    #[error("too many sessions for this key (limit {0})")]
    KeyLimit(u32),
    #[error("code execution temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What CreateSession asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub container_id: String,
    pub key_id: String,
    pub caller_type: String,
    pub code_tool_name: String,
    /// Requested limits; zero fields mean "the replica's".
    pub limits: Limits,
}

pub struct Sessions {
    pub config: Arc<Config>,
    pub sandbox: Arc<dyn Sandbox>,
    table: std::sync::Mutex<HashMap<String, Arc<Session>>>,
    draining: AtomicBool,
}

/// Reads a record under its lock; a poisoned lock (a panic elsewhere) still yields the data.
pub(crate) fn record_of(session: &Session) -> std::sync::MutexGuard<'_, SessionRecord> {
    session
        .record
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sessions {
    pub fn new(config: Arc<Config>, sandbox: Arc<dyn Sandbox>) -> Arc<Self> {
        Arc::new(Self {
            config,
            sandbox,
            table: std::sync::Mutex::default(),
            draining: AtomicBool::new(false),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn max_lifetime(&self) -> Duration {
        self.config.session_max_lifetime
    }

    /// Live (not closed, not expired) sessions on this replica.
    pub fn active_sessions(&self) -> usize {
        let now = now_ms();
        self.table()
            .values()
            .filter(|s| record_of(s).is_live(now, self.max_lifetime()))
            .count()
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.table().values().cloned().collect()
    }

    pub(crate) fn forget(&self, container_id: &str) {
        self.table().remove(container_id);
    }

    /// The session, also when closed (for replays); NotFound when unknown or of another key.
    fn lookup(&self, container_id: &str, key_id: &str) -> Result<Arc<Session>, SessionError> {
        let session = self
            .table()
            .get(container_id)
            .cloned()
            .ok_or(SessionError::NotFound)?;
        if record_of(&session).key_id != key_id {
            return Err(SessionError::NotFound);
        }
        Ok(session)
    }

    /// Whether this replica holds `container_id` at all (for peers forwarding a call).
    pub fn holds(&self, container_id: &str) -> bool {
        self.table().contains_key(container_id)
    }

    pub fn resolve_limits(&self, requested: Limits) -> Limits {
        let config = &self.config;
        fn pick<T: Copy + Ord + Default>(requested: T, own: T) -> T {
            if requested == T::default() { own } else { requested.min(own) }
        }
        Limits {
            execution_timeout: pick(requested.execution_timeout, config.execution_timeout),
            max_stdout_bytes: pick(requested.max_stdout_bytes, config.max_stdout_bytes),
            max_stderr_bytes: pick(requested.max_stderr_bytes, config.max_stderr_bytes),
            max_calls_per_execution: pick(
                requested.max_calls_per_execution,
                config.max_calls_per_execution,
            ),
        }
    }

    pub async fn create(&self, new: NewSession) -> Result<(SessionRecord, bool), SessionError> {
        validate_container_id(&new.container_id)?;
        if new.key_id.is_empty() {
            return Err(SessionError::InvalidArgument("key_id is required".into()));
        }
        if self.is_draining() {
            return Err(SessionError::Unavailable("this replica is shutting down".into()));
        }
        let now = now_ms();
        let plan = 'plan: {
            let mut table = self.table();
            if let Some(existing) = table.get(&new.container_id).cloned() {
                let record = record_of(&existing);
                if record.key_id != new.key_id {
                    return Err(SessionError::AlreadyExists);
                }
                if record.is_live(now, self.max_lifetime()) {
                    drop(record);
                    break 'plan Err(existing);
                }
            }
            let live: Vec<SessionRecord> = table
                .values()
                .map(|s| record_of(s).clone())
                .filter(|r| r.is_live(now, self.max_lifetime()))
                .collect();
            if live.len() >= self.config.max_sessions_per_replica as usize {
                return Err(SessionError::Unavailable("no sandbox capacity left on this replica".into()));
            }
            let per_key = live.iter().filter(|r| r.key_id == new.key_id).count();
            if per_key >= self.config.max_sessions_per_key as usize {
                return Err(SessionError::KeyLimit(self.config.max_sessions_per_key));
            }
            let mut record = SessionRecord {
                container_id: new.container_id.clone(),
                key_id: new.key_id,
                caller_type: new.caller_type,
                code_tool_name: new.code_tool_name,
                limits: self.resolve_limits(new.limits),
                phase: Phase::Starting,
                execution: None,
                queue: Vec::new(),
                last_round: None,
                created_at_ms: now,
                last_activity_ms: now,
                expires_at_ms: now,
                closed_at_ms: None,
                engine_id: String::new(),
                runner_version: String::new(),
                segment: None,
            };
            record.touch(now, self.config.session_idle, self.max_lifetime());
            let session = Arc::new(Session {
                record: std::sync::Mutex::new(record),
                conn: tokio::sync::Mutex::new(None),
                rounds: watch::channel(0).0,
            });
            table.insert(new.container_id.clone(), Arc::clone(&session));
            Ok(session)
        };
        let session = match plan {
            Ok(session) => session,
            Err(existing) => return self.wait_started(existing).await,
        };
        // Concurrent creations of the same id wait here until the container is up.
        let mut conn_slot = session.conn.lock().await;
        match self.start_container(&new.container_id, now).await {
            Ok(conn) => {
                let mut record = record_of(&session);
                record.engine_id.clone_from(&conn.engine_id);
                record.runner_version.clone_from(&conn.runner_version);
                record.phase = Phase::Idle;
                record.touch(now_ms(), self.config.session_idle, self.max_lifetime());
                *conn_slot = Some(conn);
                tracing::info!(container = %new.container_id, engine_id = %record.engine_id, "session created");
                Ok((record.clone(), true))
            }
            Err(error) => {
                drop(conn_slot);
                self.forget(&new.container_id);
                Err(error)
            }
        }
    }

    /// A repeated creation: wait until the first one has started the container (it holds the
    /// connection lock meanwhile), then answer with the same session.
    async fn wait_started(&self, session: Arc<Session>) -> Result<(SessionRecord, bool), SessionError> {
        drop(session.conn.lock().await);
        let record = record_of(&session).clone();
        if record.phase == Phase::Starting || !self.holds(&record.container_id) {
            return Err(SessionError::Unavailable("the sandbox did not start".into()));
        }
        Ok((record, false))
    }

    async fn start_container(&self, container_id: &str, now: i64) -> Result<RunnerConn, SessionError> {
        let spec = ContainerSpec {
            container_id: container_id.to_owned(),
            replica_id: self.config.replica_id.clone(),
            expires_unix: (now + millis(self.max_lifetime())) / 1000 + 1,
        };
        let started = self
            .sandbox
            .start(&spec)
            .await
            .map_err(|e| SessionError::Unavailable(e.to_string()))?;
        let engine_id = started.engine_id.clone();
        match RunnerConn::start(
            started,
            self.config.max_line_bytes,
            self.config.runner_ready,
            container_id.to_owned(),
        )
        .await
        {
            Ok(conn) => Ok(conn),
            Err(error) => {
                let _ = self.sandbox.remove(&engine_id).await;
                Err(SessionError::Unavailable(format!("sandbox did not start: {error}")))
            }
        }
    }

    pub async fn execute(
        self: &Arc<Self>,
        container_id: &str,
        key_id: &str,
        execution: QueuedExecution,
        queue: Vec<QueuedExecution>,
    ) -> Result<Outcome, SessionError> {
        let session = self.lookup(container_id, key_id)?;
        let plan = 'plan: {
            let mut record = record_of(&session);
            let now = now_ms();
            if let Some(replay) = replay_of(&record, &SegmentKey::Start(execution.execution_id.clone())) {
                break 'plan Err(replay);
            }
            // The same execution id again, after it moved on (paused, resumed): never run it twice;
            // answer with its latest segment.
            let same = record.execution.as_ref().is_some_and(|e| e.execution_id == execution.execution_id);
            if let (true, Some(slot)) = (same, record.segment.as_ref()) {
                break 'plan Err(Replay {
                    receiver: slot.outcome.clone(),
                    replayed: true,
                });
            }
            if !record.is_live(now, self.max_lifetime()) {
                return Err(SessionError::NotFound);
            }
            check_can_start(&record)?;
            let mut queue = queue;
            queue.retain(|queued| queued.execution_id != execution.execution_id);
            record.queue = queue;
            record.execution = Some(ExecutionRecord {
                execution_id: execution.execution_id.clone(),
                code: execution.code,
                tool_names: execution.tool_names,
                clock_used: Duration::ZERO,
                calls_made: 0,
                pending: Vec::new(),
                last_outcome: None,
                last_delivery: Vec::new(),
            });
            Ok(self.begin_segment(&mut record, SegmentKey::Start(execution.execution_id), now))
        };
        let (sender, receiver) = match plan {
            Ok(channel) => channel,
            Err(replay) => return self.wait_outcome(replay).await,
        };
        drive::spawn(Arc::clone(self), session, Action::Start, sender);
        self.wait_outcome(Replay { receiver, replayed: false }).await
    }

    pub async fn deliver(
        self: &Arc<Self>,
        container_id: &str,
        key_id: &str,
        execution_id: &str,
        results: Vec<(String, bool, String)>,
    ) -> Result<Outcome, SessionError> {
        let session = self.lookup(container_id, key_id)?;
        let mut ids: Vec<String> = results.iter().map(|(id, _, _)| id.clone()).collect();
        ids.sort();
        let key = SegmentKey::Deliver(execution_id.to_owned(), ids);
        let plan = 'plan: {
            let mut record = record_of(&session);
            let now = now_ms();
            if let Some(replay) = replay_of(&record, &key) {
                break 'plan Err(replay);
            }
            if !record.is_live(now, self.max_lifetime()) {
                return Err(SessionError::NotFound);
            }
            let Some(execution) = record.execution.as_ref() else {
                return Err(SessionError::WrongExecution("no execution is paused".into()));
            };
            if execution.execution_id != execution_id {
                return Err(SessionError::WrongExecution(format!(
                    "execution {execution_id} is not the paused execution ({})",
                    execution.execution_id
                )));
            }
            match record.phase {
                Phase::Paused => {}
                Phase::Running | Phase::Starting => return Err(SessionError::Busy),
                _ => return Err(SessionError::WrongExecution(format!("execution {execution_id} is not paused"))),
            }
            let answers = match_results(&execution.pending, results)?;
            let (sender, receiver) = self.begin_segment(&mut record, key.clone(), now);
            if let (Some(execution), SegmentKey::Deliver(_, ids)) = (record.execution.as_mut(), key) {
                execution.pending.clear();
                execution.last_delivery = ids;
            }
            Ok((sender, receiver, answers))
        };
        let (sender, receiver, answers) = match plan {
            Ok(plan) => plan,
            Err(replay) => return self.wait_outcome(replay).await,
        };
        drive::spawn(Arc::clone(self), session, Action::Deliver(answers), sender);
        self.wait_outcome(Replay { receiver, replayed: false }).await
    }

    fn begin_segment(
        &self,
        record: &mut SessionRecord,
        key: SegmentKey,
        now: i64,
    ) -> (watch::Sender<Option<Outcome>>, watch::Receiver<Option<Outcome>>) {
        let (sender, receiver) = watch::channel(None);
        record.phase = Phase::Running;
        record.touch(now, self.config.session_idle, self.max_lifetime());
        record.segment = Some(SegmentSlot {
            key,
            outcome: receiver.clone(),
        });
        (sender, receiver)
    }

    async fn wait_outcome(&self, replay: Replay) -> Result<Outcome, SessionError> {
        let Replay { mut receiver, replayed } = replay;
        let outcome = receiver
            .wait_for(Option::is_some)
            .await
            .map_err(|_| SessionError::Internal("the execution driver stopped".into()))?
            .clone();
        let mut outcome = outcome.ok_or_else(|| SessionError::Internal("no outcome".into()))?;
        outcome.replayed = replayed;
        Ok(outcome)
    }

    /// The session record for a translator; refreshes the expiry (the request names it).
    pub fn get(&self, container_id: &str, key_id: &str) -> Result<SessionRecord, SessionError> {
        let session = self.lookup(container_id, key_id)?;
        let mut record = record_of(&session);
        let now = now_ms();
        if !record.is_live(now, self.max_lifetime()) {
            return Err(SessionError::NotFound);
        }
        record.touch(now, self.config.session_idle, self.max_lifetime());
        Ok(record.clone())
    }

    pub fn store_round(&self, container_id: &str, key_id: &str, mut round: StoredRound) -> Result<i64, SessionError> {
        let session = self.lookup(container_id, key_id)?;
        round.tool_use_ids.sort();
        let stored_at = round.stored_at_unix;
        record_of(&session).last_round = Some(round);
        session.rounds.send_modify(|version| *version += 1);
        Ok(stored_at + i64::try_from(self.config.replay_ttl.as_secs()).unwrap_or(i64::MAX))
    }

    /// The stored round answering exactly `ids` (as a set), waiting up to `wait` for it.
    pub async fn get_round(
        &self,
        container_id: &str,
        key_id: &str,
        mut ids: Vec<String>,
        wait: Duration,
    ) -> Result<Option<StoredRound>, SessionError> {
        let session = self.lookup(container_id, key_id)?;
        ids.sort();
        let mut changes = session.rounds.subscribe();
        let ttl = i64::try_from(self.config.replay_ttl.as_secs()).unwrap_or(i64::MAX);
        let find = || {
            record_of(&session).last_round.clone().filter(|round| {
                round.tool_use_ids == ids && round.stored_at_unix + ttl > now_ms() / 1000
            })
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(round) = find() {
                return Ok(Some(round));
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Ok(find()),
            }
        }
    }

    /// Closes a live session (removes its container). False when it was not live here.
    pub async fn close(&self, container_id: &str, key_id: &str) -> Result<bool, SessionError> {
        let Ok(session) = self.lookup(container_id, key_id) else {
            return Ok(false);
        };
        if record_of(&session).phase == Phase::Closed {
            return Ok(false);
        }
        drive::close_session(self, &session, "closed by request").await;
        Ok(true)
    }

    /// The sweeper's pass: close expired sessions, forget closed ones past the replay TTL.
    pub async fn sweep_expired(&self) {
        let now = now_ms();
        let ttl = millis(self.config.replay_ttl);
        for session in self.all() {
            let (expired, forget, container_id) = {
                let record = record_of(&session);
                (
                    record.phase != Phase::Closed && record.phase != Phase::Starting && record.expired(now, self.max_lifetime()),
                    record.closed_at_ms.is_some_and(|closed| closed + ttl <= now),
                    record.container_id.clone(),
                )
            };
            if expired {
                drive::close_session(self, &session, "expired").await;
            } else if forget {
                self.forget(&container_id);
            }
        }
    }

    /// Stops new sessions, lets running executions finish (up to PTC_DRAIN_S), removes all.
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + self.config.drain;
        while tokio::time::Instant::now() < deadline
            && self.all().iter().any(|s| record_of(s).phase == Phase::Running)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let closing = self
            .all()
            .into_iter()
            .filter(|s| record_of(s).phase != Phase::Closed)
            .collect::<Vec<_>>();
        let closes = closing.iter().map(|s| drive::close_session(self, s, "shutdown"));
        futures_util::future::join_all(closes).await;
    }
}

struct Replay {
    receiver: watch::Receiver<Option<Outcome>>,
    replayed: bool,
}

/// A repeat of the call that started the current (or last) segment: answer with its outcome.
fn replay_of(record: &SessionRecord, key: &SegmentKey) -> Option<Replay> {
    let slot = record.segment.as_ref()?;
    (slot.key == *key).then(|| Replay {
        receiver: slot.outcome.clone(),
        replayed: true,
    })
}

fn check_can_start(record: &SessionRecord) -> Result<(), SessionError> {
    match record.phase {
        Phase::Idle => Ok(()),
        Phase::Paused => Err(SessionError::PendingCalls(
            record
                .execution
                .iter()
                .flat_map(|e| e.pending.iter().map(|c| c.id.clone()))
                .collect(),
        )),
        Phase::Running | Phase::Starting => Err(SessionError::Busy),
        Phase::Closed => Err(SessionError::NotFound),
    }
}

/// Pairs every pending call with exactly one result, by exact id (never by position).
fn match_results(
    pending: &[super::ToolCall],
    results: Vec<(String, bool, String)>,
) -> Result<Vec<(u64, bool, String)>, SessionError> {
    let mut by_id: HashMap<String, (bool, String)> = HashMap::new();
    let mut duplicated = Vec::new();
    let mut unknown = Vec::new();
    for (id, is_error, content) in results {
        if !pending.iter().any(|call| call.id == id) {
            unknown.push(id);
        } else if by_id.contains_key(&id) {
            duplicated.push(id);
        } else {
            by_id.insert(id, (is_error, content));
        }
    }
    let missing: Vec<String> = pending
        .iter()
        .filter(|call| !by_id.contains_key(&call.id))
        .map(|call| call.id.clone())
        .collect();
    if !missing.is_empty() || !duplicated.is_empty() || !unknown.is_empty() {
        let mut parts = Vec::new();
        for (label, ids) in [("missing results for", &missing), ("duplicated results for", &duplicated), ("unknown tool_use ids", &unknown)] {
            if !ids.is_empty() {
                parts.push(format!("{label}: {}", ids.join(", ")));
            }
        }
        return Err(SessionError::ResultsMismatch {
            message: parts.join("; "),
            missing,
            duplicated,
            unknown,
        });
    }
    Ok(pending
        .iter()
        .filter_map(|call| {
            by_id
                .remove(&call.id)
                .map(|(is_error, content)| (call.seq, is_error, content))
        })
        .collect())
}

fn validate_container_id(id: &str) -> Result<(), SessionError> {
    let valid = id.strip_prefix("container_").is_some_and(|rest| {
        (16..=64).contains(&rest.len()) && rest.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    if valid {
        Ok(())
    } else {
        Err(SessionError::InvalidArgument(format!(
            "container id {id:?} is not container_ followed by 16-64 of [a-z0-9]"
        )))
    }
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
