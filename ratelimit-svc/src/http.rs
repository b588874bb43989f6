//! The operator's HTTP port: `/health` (liveness, never touches Redis), `/ready` (rules loaded
//! and listening; reports the store state without failing on it) and `/metrics` (Prometheus).
//!
//! `/ready` deliberately stays 200 while Redis is down: if every replica turned unready, Envoy
//! would have no rate-limit endpoint at all and its own failure mode would decide instead of
//! `RATELIMIT_FAILURE_MODE`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::check::Checker;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct HttpState {
    pub checker: Arc<Checker>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn health() -> impl IntoResponse {
    json(r#"{"status":"ok"}"#.to_owned())
}

async fn ready(State(state): State<HttpState>) -> impl IntoResponse {
    json(format!(
        r#"{{"status":"ready","store":"{}","store_up":{}}}"#,
        state.checker.store_kind(),
        state.checker.store_healthy()
    ))
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

fn json(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], body)
}
