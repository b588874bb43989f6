//! The one router: the `/_fake/` control API (scenario queue, recorded requests, reset) and, for every
//! other path, the Bedrock face in `handler`. Also the listener task behind `FakeBedrock`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State as AxumState};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{StatusCode, header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::handler;
use crate::scenario::Scenario;
use crate::state::State;

/// Large enough to receive (and reject) InvokeModel bodies over Bedrock's 25,000,000-byte limit.
const BODY_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// Every route, in order.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/_fake/scenarios", post(enqueue).get(scenarios))
        .route("/_fake/requests", get(requests).delete(clear_requests))
        .route("/_fake/reset", post(reset))
        .fallback(handler::bedrock)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(state)
}

/// Binds `addr` and serves in a background task; returns the bound address and the task.
pub async fn spawn(
    addr: SocketAddr,
    state: Arc<State>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(state);
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "fake bedrock server stopped");
        }
    });
    Ok((bound, task))
}

/// `POST /_fake/scenarios`: one scenario (or a JSON array of them) appended to the queue.
async fn enqueue(AxumState(state): AxumState<Arc<State>>, body: Bytes) -> Response {
    let parsed: Result<Vec<Scenario>, _> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items.into_iter().map(serde_json::from_value).collect(),
        Ok(item) => serde_json::from_value(item).map(|scenario| vec![scenario]),
        Err(error) => Err(error),
    };
    match parsed {
        Ok(scenarios) => {
            let added = scenarios.len();
            scenarios
                .into_iter()
                .for_each(|scenario| state.enqueue(scenario));
            json_reply(
                StatusCode::OK,
                &json!({ "queued": added, "queue_length": state.queued().len() }),
            )
        }
        Err(error) => json_reply(
            StatusCode::BAD_REQUEST,
            &json!({ "message": format!("invalid scenario: {error}") }),
        ),
    }
}

/// `GET /_fake/scenarios`: the scenarios still queued.
async fn scenarios(AxumState(state): AxumState<Arc<State>>) -> Response {
    json_reply(StatusCode::OK, &json!(state.queued()))
}

/// `GET /_fake/requests`: every recorded Bedrock call, oldest first.
async fn requests(AxumState(state): AxumState<Arc<State>>) -> Response {
    json_reply(StatusCode::OK, &json!(state.requests()))
}

/// `DELETE /_fake/requests`.
async fn clear_requests(AxumState(state): AxumState<Arc<State>>) -> StatusCode {
    state.clear_requests();
    StatusCode::NO_CONTENT
}

/// `POST /_fake/reset`: empties the queue and the recordings.
async fn reset(AxumState(state): AxumState<Arc<State>>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}

fn json_reply(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
