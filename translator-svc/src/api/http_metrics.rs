//! The HTTP request metric: every response counted by route template, method, status, model and
//! Anthropic error type, also 4xx answers given before a model was known. Labels stay bounded:
//! the route is axum's matched template (`unmatched` for 404s), never the raw path, and the
//! model is the requested name only once the model table accepted it.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use crate::relay::Relay;

pub const REQUESTS: &str = "translator_http_requests_total";
pub const DURATION: &str = "translator_http_request_duration_seconds";

/// Response extension: the model a request asked for (`unknown` when absent or not a model the
/// gateway serves). Routes without a model leave the label empty.
#[derive(Debug, Clone)]
pub struct ModelLabel(pub String);

impl ModelLabel {
    pub fn unknown() -> Self {
        ModelLabel("unknown".to_string())
    }

    pub fn of(relay: &Relay, request: &Value) -> Self {
        let label = request
            .get("model")
            .and_then(Value::as_str)
            .filter(|model| relay.models().resolve(model).is_ok())
            .unwrap_or("unknown");
        ModelLabel(label.to_string())
    }
}

/// Response extension set by the one error renderer: the Anthropic error type.
#[derive(Debug, Clone, Copy)]
pub struct ErrorTypeLabel(pub &'static str);

fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Layer (inside routing, so the matched template is known): count and time every response.
/// For SSE streams the time is until the response head; the stream itself is measured by
/// `translator_request_duration_seconds`.
pub async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let model = response
        .extensions()
        .get::<ModelLabel>()
        .map(|m| m.0.clone())
        .unwrap_or_default();
    let error_type = response
        .extensions()
        .get::<ErrorTypeLabel>()
        .map_or("", |e| e.0);
    metrics::counter!(REQUESTS,
        "route" => route.clone(),
        "method" => method,
        "status" => response.status().as_u16().to_string(),
        "model" => model,
        "error_type" => error_type)
    .increment(1);
    metrics::histogram!(DURATION, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}
