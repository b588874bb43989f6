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
use prometheus_client::registry::{Metric, Registry};

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
        let mut r = Registry::default();
        Self {
            sessions_active: registered(
                &mut r,
                "ptc_sessions_active",
                "Live sandbox sessions on this replica",
                Gauge::default(),
            ),
            sessions_created: registered(
                &mut r,
                "ptc_sessions_created",
                "Sandbox sessions created (one container each)",
                Counter::default(),
            ),
            sessions_closed: registered(
                &mut r,
                "ptc_sessions_closed",
                "Sessions ended, by reason (closed, expired, execution_failed, shutdown)",
                by_label("reason", &CLOSE_REASONS),
            ),
            sessions_rejected: registered(
                &mut r,
                "ptc_sessions_rejected",
                "Session creations refused, by reason",
                by_label("reason", &REJECT_REASONS),
            ),
            // A container starts in about 1.5 s; PTC_RUNNER_READY_S caps it (default 10 s).
            sandbox_start_seconds: registered(
                &mut r,
                "ptc_sandbox_start_duration_seconds",
                "Container start until the runner is ready",
                Histogram::new([0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0]),
            ),
            executions: registered(
                &mut r,
                "ptc_executions",
                "Executions ended, by outcome (ok, error: non-zero exit, timeout, unavailable)",
                by_label("outcome", &EXECUTION_OUTCOMES),
            ),
            // Running time only (client waits excluded); PTC_EXECUTION_TIMEOUT_S defaults to 60 s.
            execution_seconds: registered(
                &mut r,
                "ptc_execution_duration_seconds",
                "Running time of ended executions (time waiting for tool results excluded)",
                Histogram::new([
                    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                ]),
            ),
            tool_calls: registered(
                &mut r,
                "ptc_tool_calls",
                "Tool calls the code made (handed to the client)",
                Counter::default(),
            ),
            tool_batches: registered(
                &mut r,
                "ptc_tool_batches",
                "Pauses for tool results (one batch of calls each)",
                Counter::default(),
            ),
            registry: r,
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

/// Registers `metric` and hands it back: a metric is a shared handle, so the copy kept and the
/// one registered count together.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// A counter per value of one label. Known values start at zero, so dashboards and rate() see
/// every series.
fn by_label(label: &'static str, values: &[&'static str]) -> Family<Label, Counter> {
    let family = Family::<Label, Counter>::default();
    for value in values {
        let _ = family.get_or_create(&[(label, value)]);
    }
    family
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
