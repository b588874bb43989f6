//! The session table and session creation (capacity, per-key limits, idempotent retries).
//! Executions live in `run`, inspection, rounds and closing in `lifecycle`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::{Limits, Phase, Session, SessionRecord, millis, now_ms};
use crate::config::Config;
use crate::runner::conn::RunnerConn;
use crate::sandbox::{ContainerSpec, Resources, Sandbox};

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
    pub(super) draining: AtomicBool,
    pub metrics: crate::metrics::Metrics,
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
            metrics: crate::metrics::Metrics::new(),
        })
    }

    pub(super) fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    pub(super) fn lookup(
        &self,
        container_id: &str,
        key_id: &str,
    ) -> Result<Arc<Session>, SessionError> {
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
            if requested == T::default() {
                own
            } else {
                requested.min(own)
            }
        }
        Limits {
            execution_timeout: pick(requested.execution_timeout, config.execution_timeout),
            max_stdout_bytes: pick(requested.max_stdout_bytes, config.max_stdout_bytes),
            max_stderr_bytes: pick(requested.max_stderr_bytes, config.max_stderr_bytes),
            max_calls_per_execution: pick(
                requested.max_calls_per_execution,
                config.max_calls_per_execution,
            ),
            memory_bytes: pick(requested.memory_bytes, config.sandbox.memory_bytes),
            milli_cpus: pick(
                requested.milli_cpus,
                (config.sandbox.cpus * 1000.0).round() as u32,
            ),
            pids: pick(requested.pids, config.sandbox.pids),
        }
    }

    pub async fn create(&self, new: NewSession) -> Result<(SessionRecord, bool), SessionError> {
        validate_container_id(&new.container_id)?;
        if new.key_id.is_empty() {
            return Err(SessionError::InvalidArgument("key_id is required".into()));
        }
        if self.is_draining() {
            self.metrics.session_rejected("draining");
            return Err(SessionError::Unavailable(
                "this replica is shutting down".into(),
            ));
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
                self.metrics.session_rejected("capacity");
                return Err(SessionError::Unavailable(
                    "no sandbox capacity left on this replica".into(),
                ));
            }
            let per_key = live.iter().filter(|r| r.key_id == new.key_id).count();
            if per_key >= self.config.max_sessions_per_key as usize {
                self.metrics.session_rejected("key_limit");
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
                open_round: None,
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
        let starting = std::time::Instant::now();
        let limits = record_of(&session).limits;
        match self.start_container(&new.container_id, now, limits).await {
            Ok(conn) => {
                self.metrics
                    .session_created(starting.elapsed().as_secs_f64());
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
                self.metrics.session_rejected("sandbox_start");
                drop(conn_slot);
                self.forget(&new.container_id);
                Err(error)
            }
        }
    }

    /// A repeated creation: wait until the first one has started the container (it holds the
    /// connection lock meanwhile), then answer with the same session.
    async fn wait_started(
        &self,
        session: Arc<Session>,
    ) -> Result<(SessionRecord, bool), SessionError> {
        drop(session.conn.lock().await);
        let record = record_of(&session).clone();
        if record.phase == Phase::Starting || !self.holds(&record.container_id) {
            return Err(SessionError::Unavailable(
                "the sandbox did not start".into(),
            ));
        }
        Ok((record, false))
    }

    async fn start_container(
        &self,
        container_id: &str,
        now: i64,
        limits: Limits,
    ) -> Result<RunnerConn, SessionError> {
        let spec = ContainerSpec {
            container_id: container_id.to_owned(),
            replica_id: self.config.replica_id.clone(),
            expires_unix: (now + millis(self.max_lifetime())) / 1000 + 1,
            resources: Resources {
                memory_bytes: limits.memory_bytes,
                milli_cpus: limits.milli_cpus,
                pids: limits.pids,
            },
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
                Err(SessionError::Unavailable(format!(
                    "sandbox did not start: {error}"
                )))
            }
        }
    }
}

fn validate_container_id(id: &str) -> Result<(), SessionError> {
    let valid = id.strip_prefix("container_").is_some_and(|rest| {
        (16..=64).contains(&rest.len())
            && rest
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
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
