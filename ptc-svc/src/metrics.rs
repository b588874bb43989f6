//! Prometheus metrics of ptc-svc, served as `GET /metrics` on the gRPC port (HTTP/1.1 is
//! accepted there for this one route). Labels are bounded by construction: never a container
//! id, a key id or code.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::session::{FailureCode, OutcomeKind, Sessions};

type Label = [(&'static str, &'static str); 1];

/// How a session ended, as the `reason` label spells it.
pub const CLOSE_REASONS: [&str; 5] = ["closed", "expired", "execution_failed", "shutdown", "other"];
/// Why a session was refused.
pub const REJECT_REASONS: [&str; 4] = ["capacity", "key_limit", "draining", "sandbox_start"];
/// How an execution ended.
pub const EXECUTION_OUTCOMES: [&str; 4] = ["ok", "error", "timeout", "unavailable"];

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sessions_active: Gauge,
    sessions_created: Counter,
    sessions_closed: Family<Label, Counter>,
    sessions_rejected: Family<Label, Counter>,
    sandbox_start_seconds: Histogram,
    executions: Family<Label, Counter>,
    execution_seconds: Histogram,
    tool_calls: Counter,
    tool_batches: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Self {
            sessions_active: Gauge::default(),
            sessions_created: Counter::default(),
            sessions_closed: Family::default(),
            sessions_rejected: Family::default(),
            // A container starts in about 1.5 s; PTC_RUNNER_READY_S caps it (default 10 s).
            sandbox_start_seconds: Histogram::new([0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0]),
            executions: Family::default(),
            // Running time only (client waits excluded); PTC_EXECUTION_TIMEOUT_S defaults to 60 s.
            execution_seconds: Histogram::new([
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
            ]),
            tool_calls: Counter::default(),
            tool_batches: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "ptc_sessions_active",
            "Live sandbox sessions on this replica",
            metrics.sessions_active.clone(),
        );
        registry.register(
            "ptc_sessions_created",
            "Sandbox sessions created (one container each)",
            metrics.sessions_created.clone(),
        );
        registry.register(
            "ptc_sessions_closed",
            "Sessions ended, by reason (closed, expired, execution_failed, shutdown)",
            metrics.sessions_closed.clone(),
        );
        registry.register(
            "ptc_sessions_rejected",
            "Session creations refused, by reason",
            metrics.sessions_rejected.clone(),
        );
        registry.register(
            "ptc_sandbox_start_duration_seconds",
            "Container start until the runner is ready",
            metrics.sandbox_start_seconds.clone(),
        );
        registry.register(
            "ptc_executions",
            "Executions ended, by outcome (ok, error: non-zero exit, timeout, unavailable)",
            metrics.executions.clone(),
        );
        registry.register(
            "ptc_execution_duration_seconds",
            "Running time of ended executions (time waiting for tool results excluded)",
            metrics.execution_seconds.clone(),
        );
        registry.register(
            "ptc_tool_calls",
            "Tool calls the code made (handed to the client)",
            metrics.tool_calls.clone(),
        );
        registry.register(
            "ptc_tool_batches",
            "Pauses for tool results (one batch of calls each)",
            metrics.tool_batches.clone(),
        );
        // Known label values start at zero, so dashboards and rate() see every series.
        for reason in CLOSE_REASONS {
            let _ = metrics.sessions_closed.get_or_create(&[("reason", reason)]);
        }
        for reason in REJECT_REASONS {
            let _ = metrics
                .sessions_rejected
                .get_or_create(&[("reason", reason)]);
        }
        for outcome in EXECUTION_OUTCOMES {
            let _ = metrics.executions.get_or_create(&[("outcome", outcome)]);
        }
        Self {
            registry,
            ..metrics
        }
    }

    /// Prometheus text exposition, with the live session count taken now.
    pub fn render(&self, active_sessions: usize) -> String {
        self.sessions_active
            .set(i64::try_from(active_sessions).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn session_created(&self, start_seconds: f64) {
        self.sessions_created.inc();
        self.sandbox_start_seconds.observe(start_seconds);
    }

    pub fn session_rejected(&self, reason: &'static str) {
        self.sessions_rejected
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// `why` is the reason `drive::close_session` logs.
    pub fn session_closed(&self, why: &str) {
        let reason = match why {
            "closed by request" => "closed",
            "expired" => "expired",
            "execution failed" => "execution_failed",
            "shutdown" => "shutdown",
            _ => "other",
        };
        self.sessions_closed
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// A segment ended: a pause hands tool calls out; anything else ends the execution.
    pub fn segment_ended(&self, kind: &OutcomeKind) {
        let (outcome, duration_ms) = match kind {
            OutcomeKind::Paused(calls) => {
                self.tool_batches.inc();
                self.tool_calls.inc_by(calls.len() as u64);
                return;
            }
            OutcomeKind::Finished(done) => (
                if done.return_code == 0 { "ok" } else { "error" },
                done.duration_ms,
            ),
            OutcomeKind::Failed {
                code: FailureCode::ExecutionTimeExceeded,
                duration_ms,
                ..
            } => ("timeout", *duration_ms),
            OutcomeKind::Failed {
                code: FailureCode::Unavailable,
                duration_ms,
                ..
            } => ("unavailable", *duration_ms),
        };
        self.executions.get_or_create(&[("outcome", outcome)]).inc();
        self.execution_seconds.observe(duration_ms as f64 / 1000.0);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `GET /metrics`, merged into the gRPC server's routes.
pub fn router(sessions: Arc<Sessions>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(render))
        .with_state(sessions)
}

async fn render(State(sessions): State<Arc<Sessions>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        sessions.metrics.render(sessions.active_sessions()),
    )
}
