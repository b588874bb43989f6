//! The admin HTTP JSON API under `/admin/v1/...` (keys, pricing, model mapping, usage, budgets)
//! and the web portal under `/admin/` that drives it. Every API route requires the master key
//! (`x-api-key` or `Authorization: Bearer`, compared in constant time) or a portal session
//! (cookie, plus a CSRF token on changes); errors use the Anthropic envelope. Handlers are thin;
//! the stores do the work.

mod budgets;
mod catalog;
mod keys;
pub mod portal;
mod usage;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::ids;
use crate::keys::clock::Clock;
use crate::keys::{Dynamo, KeyStore, StoreError, Verifier};
use crate::pricing::PriceBook;

/// What the admin handlers work with.
pub struct AdminState {
    pub store: Arc<dyn KeyStore>,
    pub dynamo: Dynamo,
    pub verifier: Arc<Verifier>,
    pub prices: Arc<PriceBook>,
    pub clock: Arc<dyn Clock>,
    pub master_api_key: Option<String>,
    /// Portal settings, sessions and the sign-in brake.
    pub portal: portal::Portal,
}

pub use catalog::BuiltinModels;

type AppState = Arc<AdminState>;

const ADMIN_BODY_LIMIT_BYTES: usize = 1 << 20;

/// Every admin route, in one place. The result has no router-wide fallback, so it merges into
/// the service's router.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route(
            "/admin/v1/keys",
            with_405(get(keys::list).post(keys::create)),
        )
        .route(
            "/admin/v1/keys/{id}",
            with_405(get(keys::show).patch(keys::update).delete(keys::delete)),
        )
        .route("/admin/v1/keys/{id}/disable", with_405(post(keys::disable)))
        .route("/admin/v1/keys/{id}/enable", with_405(post(keys::enable)))
        .route("/admin/v1/keys/{id}/rotate", with_405(post(keys::rotate)))
        .route(
            "/admin/v1/keys/{id}/requests",
            with_405(get(usage::requests)),
        )
        .route("/admin/v1/usage", with_405(get(usage::summary)))
        .route("/admin/v1/pricing", with_405(get(catalog::list_prices)))
        .route(
            "/admin/v1/pricing/{model}",
            with_405(axum::routing::put(catalog::put_price).delete(catalog::delete_price)),
        )
        .route("/admin/v1/budgets", with_405(get(budgets::list)))
        .route("/admin/v1/models", with_405(get(catalog::list_models)))
        .route(
            "/admin/v1/models/{model}",
            with_405(axum::routing::put(catalog::put_model).delete(catalog::delete_model)),
        )
        .route("/admin/v1", any(not_found))
        .route("/admin/v1/{*rest}", any(not_found));
    routes
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        // Admin bodies are small; the service router may disable the default limit.
        .layer(DefaultBodyLimit::max(ADMIN_BODY_LIMIT_BYTES))
        .merge(portal::routes())
        .layer(middleware::map_response(portal::harden))
        .with_state(state)
}

fn with_405(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.fallback(|| async { AdminError(ApiError::method_not_allowed()) })
}

async fn not_found() -> AdminError {
    AdminError(ApiError::not_found("no such admin endpoint"))
}

/// The key presented in `x-api-key`, else in `Authorization: Bearer`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Whether `presented` is the master key. Equal-length digests keep the comparison constant-time
/// whatever the presented length.
fn master_key_matches(presented: &str, master: &str) -> bool {
    bool::from(digest(presented).ct_eq(&digest(master)))
}

/// The master key (through Envoy: verified by the gate; directly: compared here), else a portal
/// session.
async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Through Envoy the gate filter has already verified the key and stripped the credential
    // headers; the request-id layer trusts its `x-gw-key-id` only with the internal secret.
    if let Some(ctx) = request.extensions().get::<crate::api::Ctx>()
        && ctx.trusted
        && ctx.key_id.as_deref() == Some(crate::auth::MASTER_KEY_ID)
    {
        return next.run(request).await;
    }
    let Some(master) = state.master_api_key.as_deref() else {
        return AdminError(ApiError::authentication(
            "the admin API is disabled: set MASTER_API_KEY on translator-svc",
        ))
        .into_response();
    };
    let Some(presented) = presented_key(request.headers()) else {
        let sender = portal::Sender::of(&request);
        return match portal::authorize_session(&state, &sender).await {
            Some(Ok(())) => next.run(request).await,
            Some(Err(e)) => e.into_response(),
            None => AdminError(ApiError::authentication(
                "the admin API requires the master key in x-api-key or Authorization: Bearer, or a portal session",
            ))
            .into_response(),
        };
    };
    if !master_key_matches(presented, master) {
        return AdminError(ApiError::authentication("invalid master key")).into_response();
    }
    next.run(request).await
}

/// An admin error, rendered as the Anthropic envelope with a fresh request id.
#[derive(Debug)]
pub struct AdminError(pub ApiError);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let request_id = ids::request_id();
        let body = self.0.to_body(&request_id);
        let mut response = (
            self.0.status,
            [("request-id", request_id)],
            axum::Json(body),
        )
            .into_response();
        if let Some(secs) = self.0.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<ApiError> for AdminError {
    fn from(e: ApiError) -> Self {
        AdminError(e)
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError(match e {
            StoreError::NotFound => ApiError::not_found("not found"),
            StoreError::Conflict(message) => ApiError {
                status: StatusCode::CONFLICT,
                ..ApiError::invalid_request(message)
            },
            StoreError::Backend(_) | StoreError::Malformed(_) => {
                tracing::error!(error = %e, "admin API: key store error");
                ApiError::api("the key store is unavailable")
            }
        })
    }
}

pub type AdminResult = Result<Response, AdminError>;

/// A request body as handlers take it, so an oversized one still gets the Anthropic envelope.
pub type Body = Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>;

/// Parse a JSON request body into `T`, or a 400 (413) naming what is wrong.
fn parse_body<T: DeserializeOwned>(body: Body) -> Result<T, AdminError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::too_large("the request body is larger than 1 MiB")
        }
        _ => ApiError::invalid_request(format!("cannot read the request body: {e}")),
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request("a JSON request body is required").into());
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_request(format!("invalid request body: {e}")).into())
}

fn json(status: StatusCode, value: impl serde::Serialize) -> Response {
    (status, axum::Json(value)).into_response()
}

#[cfg(test)]
mod tests;
