//! Unauthenticated probes and the metrics endpoint: `/health` never touches dependencies,
//! `/ready` reports what a background check last saw, `HEAD /` answers Claude Code's probes.

use std::sync::{Arc, RwLock};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

/// Why the service is not ready, as last observed; empty means ready.
#[derive(Default)]
pub struct Readiness {
    reasons: RwLock<Vec<String>>,
}

impl Readiness {
    pub fn starting() -> Self {
        Readiness {
            reasons: RwLock::new(vec!["starting".to_string()]),
        }
    }

    pub fn set(&self, reasons: Vec<String>) {
        if let Ok(mut guard) = self.reasons.write() {
            *guard = reasons;
        }
    }

    pub fn reasons(&self) -> Vec<String> {
        self.reasons.read().map(|r| r.clone()).unwrap_or_default()
    }
}

pub async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let reasons = state.readiness.reasons();
    if reasons.is_empty() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "reasons": reasons})),
        )
            .into_response()
    }
}

/// `HEAD /` and `HEAD /api/hello`: Claude Code's connectivity probes.
pub async fn hello() -> StatusCode {
    StatusCode::OK
}

/// `POST /api/event_logging/batch`: client telemetry, if ever sent to the base URL, is discarded.
pub async fn discard() -> Response {
    Json(json!({})).into_response()
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET|HEAD /health/ptc` (ptc.md section 15): the cached ptc-svc aggregate, or `disabled`.
pub async fn ptc(State(state): State<Arc<AppState>>) -> Response {
    let Some(ptc) = &state.ptc else {
        return Json(crate::ptc::disabled_health()).into_response();
    };
    let (status, body) = ptc.health().await;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (status, Json(body)).into_response()
}
